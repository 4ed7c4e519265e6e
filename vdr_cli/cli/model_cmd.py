"""`vdr model`: list, pull, add, rm, info and path of local models."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from vdr_cli.cli import complete
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
    from vdr_cli.render.output import human_bytes, json_mode, print_line, stdout_writer
    from vdr_cli.models.catalog import CATALOG
    from vdr_cli.models.registry import Registry, models_dir

    rows = []
    for name, e in sorted(Registry().entries.items()):
        files = [Path(f) for f in (e.gguf, e.mmproj) if f]
        rows.append({"name": name, "installed": Path(e.gguf).is_file(), "gguf": e.gguf, "mmproj": e.mmproj, "ctx": e.ctx,
                     "source": e.source, "bytes": sum(f.stat().st_size for f in files if f.is_file())})
    for name, c in CATALOG.items():
        if not any(r["name"] == name for r in rows):
            partial = sum(p.stat().st_size for p in (models_dir() / name).glob("*.part")) if (models_dir() / name).is_dir() else 0
            rows.append({"name": name, "installed": False, "gguf": None, "mmproj": None, "ctx": c.ctx,
                         "source": f"hf:{c.repo}" if c.repo else f"convert:{c.convert_from}", "bytes": c.bytes,
                         "description": c.description, **({"partial_bytes": partial} if partial else {})})
    root = models_dir()
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        parts = list(folder.glob("*.part")) if folder.is_dir() else []
        if parts and not any(r["name"] == folder.name for r in rows):  # a pull that never finished: shown, not hidden
            rows.append({"name": folder.name, "installed": False, "gguf": None, "mmproj": None, "ctx": None,
                         "source": "unfinished pull", "bytes": 0, "partial_bytes": sum(p.stat().st_size for p in parts)})
    if json_mode(json_out):
        stdout_writer().write_all(rows)
        return
    print_line(f"{'NAME':<16} {'SIZE':>8}  {'STATE':<24} SOURCE")
    for r in rows:
        if r["installed"]:
            state = "installed" + (" +vision" if r["mmproj"] else " (text only)")
        elif r["gguf"]:
            state = "missing file"
        elif r.get("partial_bytes"):
            state = f"partial ({human_bytes(r['partial_bytes'])})"
        elif str(r["source"]).startswith("convert:"):
            state = "no GGUF published"
        else:
            state = "available"
        size = human_bytes(r["bytes"]) if r["bytes"] else "-"
        print_line(f"{r['name']:<16} {size:>8}  {state:<24} {r['source'] or ''}")


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
        try:
            template = Path(template[1:]).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            from vdr_cli.errors import InputError

            raise InputError(f"--chat-template {chat_template}: cannot read {template[1:]} "
                             f"({getattr(exc, 'strerror', None) or exc})") from None
    entry = ModelEntry(name=name, gguf=str(gguf.expanduser().resolve()), mmproj=str(mmproj.expanduser().resolve()) if mmproj else None,
                       ctx=ctx, chat_template=template, source="add")
    Registry().add(entry, replace=replace)
    say("model", "info", f"registered {name}: {entry.gguf}" + (f" + {entry.mmproj}" if entry.mmproj else ""))


@reports("model")
def rm_command(
    name: str = typer.Argument(..., autocompletion=complete.registered_models, help="Registered model name (or a pull that did not finish)."),
    delete_files: bool = typer.Option(False, "--delete-files", help="Also delete its files if `vdr model pull` downloaded them."),
) -> None:
    import shutil

    from vdr_cli.models.registry import Registry, check_name, models_dir

    check_name(name)
    root = models_dir().resolve()
    folder = root / name
    registry = Registry()
    if registry.get(name) is None and folder.is_dir():
        shutil.rmtree(folder)  # a pull that never finished: nothing registered, only its files
        say("model", "info", f"removed the unfinished download {folder}")
        return
    entry = registry.remove(name)
    if delete_files:
        for f in (entry.gguf, entry.mmproj):
            if f and Path(f).resolve().is_relative_to(root):
                Path(f).unlink(missing_ok=True)
            elif f:
                say("model", "warning", f"kept {f}: vdr did not download it")
        if folder.is_dir() and not any(p for p in folder.iterdir() if not p.name.endswith(".part")):
            shutil.rmtree(folder)


@reports("model")
def info_command(
    model: str = typer.Argument(..., autocompletion=complete.registered_models, help="Registered name or .gguf path."),
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
    from vdr_cli.cli.model_info import describe

    for line in describe(info, spec.ctx):
        print_line(line)


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
    model: str = typer.Argument(..., autocompletion=complete.registered_models, help="Registered model name."),
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
    name: str = typer.Argument(..., autocompletion=complete.catalog_names, help="A catalog name (see `vdr model list`) or hf:OWNER/REPO[:QUANT] for any hub repository."),
    as_name: Optional[str] = typer.Option(None, "--name", help="Register the model under this name (default: the catalog name, or the repository's)."),
    repo: Optional[str] = typer.Option(None, "--repo", help="Hub repository to fetch from instead of the catalog's."),
    gguf: Optional[str] = typer.Option(None, "--file", help="GGUF file name in the repository (default: the catalog's, or the Q4_K_M file)."),
    mmproj: Optional[str] = typer.Option(None, "--mmproj-file", help="Projector file name in the repository (default: found by name, F16 first)."),
    hub: Optional[str] = typer.Option(None, "--hub", help="Hub base URL [config model.hub_url]."),
) -> None:
    from vdr_cli import config
    from vdr_cli.cli.model_pull import run_pull

    run_pull(name, repo, gguf, mmproj, config.current().get("model.hub_url", hub), as_name)
