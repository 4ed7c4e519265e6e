"""`vdr model`: list, pull, add, rm, info and path of local models."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from vdr_cli.cli.docs import epilog
from vdr_cli.cli.failures import reports
from vdr_cli.render.output import say

HELP = """\
Manage local models.

A model is a GGUF file plus, for vision, a projector (mmproj) GGUF. Named
models live in a registry in the data folder; `pull` downloads known models
from the model hub (resumable, checksum-verified), `add` registers files you
already have. --model elsewhere takes a registered name, a .gguf path,
openai:MODEL@URL for an OpenAI-compatible server, or scripted:TRACE.jsonl.
"""


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help=HELP, epilog=epilog("model"), no_args_is_help=True, rich_markup_mode=None)
    sub.command("list", help="Registered models and the ones `pull` knows.", epilog=epilog("model list"))(list_command)
    sub.command("pull", help="Download a known model (GGUF + mmproj) into the data folder and register it.", epilog=epilog("model pull"))(pull_command)
    sub.command("add", help="Register GGUF files you already have under a name.", epilog=epilog("model add"))(add_command)
    sub.command("rm", help="Remove a model from the registry (and its downloaded files with --delete-files).", epilog=epilog("model rm"))(rm_command)
    sub.command("info", help="A model's metadata, read from its GGUF header.", epilog=epilog("model info"))(info_command)
    sub.command("path", help="Print a model's GGUF path (or its mmproj path).", epilog=epilog("model path"))(path_command)
    app.add_typer(sub, name="model", short_help="Manage local models: list, pull, add, rm, info, path.")


@reports("model")
def list_command(json_out: bool = typer.Option(False, "--json", "-j", help="Write JSON Lines even on a terminal.")) -> None:
    from vdr_cli.render.output import json_mode, print_line, stdout_writer
    from vdr_cli.models.catalog import CATALOG
    from vdr_cli.models.registry import Registry

    rows = []
    for name, e in sorted(Registry().entries.items()):
        rows.append({"name": name, "installed": Path(e.gguf).is_file(), "gguf": e.gguf, "mmproj": e.mmproj, "ctx": e.ctx, "source": e.source})
    for name, c in CATALOG.items():
        if not any(r["name"] == name for r in rows):
            rows.append({"name": name, "installed": False, "gguf": None, "mmproj": None, "ctx": c.ctx,
                         "source": f"catalog:{c.repo}", "description": c.description})
    if json_mode(json_out):
        stdout_writer().write_all(rows)
        return
    for r in rows:
        state = "installed" if r["installed"] else ("missing file" if r["gguf"] else "not downloaded: vdr model pull " + r["name"])
        vision = " +vision" if r["mmproj"] else ""
        print_line(f"{r['name']:<16} {state}{vision}  {r['gguf'] or r.get('description', '')}")


@reports("model")
def add_command(
    name: str = typer.Argument(..., help="Name to register the model under."),
    gguf: Path = typer.Option(..., "--gguf", help="The model's GGUF file."),
    mmproj: Optional[Path] = typer.Option(None, "--mmproj", help="Vision projector GGUF (for image input)."),
    ctx: Optional[int] = typer.Option(None, "--ctx", help="Context size to use for this model."),
    chat_template: Optional[str] = typer.Option(None, "--chat-template", help="Jinja chat template (text, or @FILE) overriding the GGUF's."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite an existing entry of that name."),
) -> None:
    from vdr_cli.models.registry import ModelEntry, Registry

    template = chat_template
    if template and template.startswith("@"):
        template = Path(template[1:]).read_text("utf-8")
    entry = ModelEntry(name=name, gguf=str(gguf.expanduser().resolve()), mmproj=str(mmproj.expanduser().resolve()) if mmproj else None,
                       ctx=ctx, chat_template=template, source="add")
    Registry().add(entry, replace=replace)
    say("model", "info", f"registered {name}: {entry.gguf}" + (f" + {entry.mmproj}" if entry.mmproj else ""))


@reports("model")
def rm_command(
    name: str = typer.Argument(..., help="Registered model name."),
    delete_files: bool = typer.Option(False, "--delete-files", help="Also delete its files if `vdr model pull` downloaded them."),
) -> None:
    from vdr_cli.models.registry import Registry, models_dir

    entry = Registry().remove(name)
    if delete_files:
        root = models_dir().resolve()
        for f in (entry.gguf, entry.mmproj):
            if f and Path(f).resolve().is_relative_to(root):
                Path(f).unlink(missing_ok=True)
            elif f:
                say("model", "warning", f"kept {f}: vdr did not download it")


@reports("model")
def info_command(
    model: str = typer.Argument(..., help="Registered name or .gguf path."),
    json_out: bool = typer.Option(False, "--json", "-j", help="Write JSON even on a terminal."),
) -> None:
    from vdr_cli.render.output import json_mode, print_line, stdout_writer
    from vdr_cli.models.gguf_header import summary
    from vdr_cli.models.spec import parse_spec

    spec = parse_spec(model)
    if spec.kind != "llama" or spec.gguf is None:
        from vdr_cli.errors import UsageError

        raise UsageError(f"{model}: info reads local GGUF files only")
    info = {"model": spec.name, **summary(spec.gguf)}
    if spec.mmproj:
        info["mmproj"] = summary(spec.mmproj)
    info.update(_memory(spec.gguf, spec.mmproj))
    if json_mode(json_out):
        stdout_writer().write(info)
        return
    for key, value in info.items():
        if key == "kv_bytes_per_token":
            value = ", ".join(f"{t} {n}" for t, n in value.items())
        elif isinstance(value, dict):
            value = f"{value['path']} ({value['projector_type']}, {value['bytes'] / 1e6:.1f} MB)"
        print_line(f"{key:<18} {value}")


def _memory(gguf: Path, mmproj: Optional[Path]) -> dict:
    """KV cache bytes per token by cache type, and the window `--ctx auto` would pick here (CPU)."""
    from vdr_cli.errors import InputError
    from vdr_cli.models.gguf_header import read_metadata
    from vdr_cli.models.memory import KV_TYPES, auto_ctx, free_memory, kv_bytes_per_token

    meta = read_metadata(gguf)
    try:
        per_token = {t: kv_bytes_per_token(meta, t) for t in KV_TYPES}
    except InputError:
        return {}  # not a text model's header (a projector given as --model)
    size = gguf.stat().st_size + (mmproj.stat().st_size if mmproj else 0)
    free = free_memory(gpu=False)
    return {"kv_bytes_per_token": per_token, "free_memory": free, "ctx_auto": auto_ctx(meta, size, free)}


@reports("model")
def path_command(
    model: str = typer.Argument(..., help="Registered model name."),
    mmproj: bool = typer.Option(False, "--mmproj", help="Print the vision projector's path instead."),
) -> None:
    from vdr_cli.errors import InputError
    from vdr_cli.models.spec import parse_spec

    spec = parse_spec(model)
    target = spec.mmproj if mmproj else spec.gguf
    if target is None:
        raise InputError(f"{model}: has no {'mmproj' if mmproj else 'GGUF'} file")
    typer.echo(str(target))


@reports("model")
def pull_command(
    name: str = typer.Argument(..., help="A model the catalog knows (see `vdr model list`)."),
    repo: Optional[str] = typer.Option(None, "--repo", help="Hub repository to fetch from instead of the catalog's."),
    gguf: Optional[str] = typer.Option(None, "--file", help="GGUF file name in the repository instead of the catalog's."),
    mmproj: Optional[str] = typer.Option(None, "--mmproj-file", help="mmproj file name in the repository instead of the catalog's."),
    hub: Optional[str] = typer.Option(None, "--hub", help="Hub base URL [config model.hub_url]."),
) -> None:
    from vdr_cli import config
    from vdr_cli.errors import UsageError
    from vdr_cli.models.catalog import CATALOG
    from vdr_cli.models.download import download, hub_url
    from vdr_cli.models.registry import ModelEntry, Registry, check_name, models_dir

    check_name(name)
    entry = CATALOG.get(name)
    if entry is None and not (repo and gguf):
        raise UsageError(f"no model {name!r} in the catalog", hint="give --repo and --file, or see `vdr model list`")
    repo = repo or entry.repo
    files = [("gguf", gguf or entry.gguf, entry.gguf_sha256 if entry and not gguf else None)]
    mm_name = mmproj or (entry.mmproj if entry else None)
    if mm_name:
        files.append(("mmproj", mm_name, entry.mmproj_sha256 if entry and not mmproj else None))
    base = config.current().get("model.hub_url", hub)
    token = os.environ.get("HF_TOKEN") or None
    paths: dict[str, str] = {}
    for label, filename, sha in files:
        dest = models_dir() / name / filename
        if dest.is_file():
            say("model", "info", f"{filename}: already downloaded")
        else:
            with _progress(filename) as progress:
                got = download(hub_url(base, repo, entry.revision if entry else "main", filename), dest, sha256=sha, token=token, progress=progress)
            if not got.verified:
                say("model", "warning", f"{filename}: the hub gave no checksum; file not verified")
        paths[label] = str(dest)
    Registry().add(ModelEntry(name=name, gguf=paths["gguf"], mmproj=paths.get("mmproj"), ctx=entry.ctx if entry else None,
                              source=f"pull:{repo}"), replace=True)
    say("model", "info", f"{name} is ready: vdr ask --model {name} …")


class _progress:
    """A rich progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar = None

    def __enter__(self):
        from vdr_cli.render.output import stderr_is_terminal

        if not stderr_is_terminal():
            return None
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        from vdr_cli.render.output import stderr_console

        self.bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                            console=stderr_console(), transient=False)
        self.bar.start()
        task = self.bar.add_task(self.label, total=None)
        return lambda done, total: self.bar.update(task, completed=done, total=total)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
