"""`vdr model pull`: find the files in a hub repository, check them, download them.

Order matters for multi-GB files: the repository is listed first (its files,
sizes and SHA-256s), the model and projector chosen, the disk checked, and the
first bytes of each file fetched to check the GGUF magic; only then do the
transfers start.  A transfer that fails keeps its `.part` (the next pull
resumes it) and says so; `vdr model rm NAME` deletes it.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from vdr_cli.errors import UsageError
from vdr_cli.render.output import animated, human_bytes, human_seconds, is_quiet, say


@dataclass
class PullPlan:
    name: str
    repo: str
    revision: str
    files: list[tuple[str, str, int, str | None]]  # (label, file name, size, sha256)
    ctx: int | None = None


def plan(name: str, repo: str | None, gguf: str | None, mmproj: str | None, hub: str, token: str | None) -> PullPlan:
    """What to download, decided from the catalog and the repository's own file listing."""
    from vdr_cli.models import hub as hubapi
    from vdr_cli.models.catalog import CATALOG, conversion_hint
    from vdr_cli.models.registry import check_name

    quant = None
    entry = None
    if name.startswith("hf:"):
        repo_ref, quant = hubapi.parse_ref(name)
        if repo and repo != repo_ref:
            raise UsageError("give the repository once: hf:OWNER/REPO or --repo, not both")
        repo = repo_ref
        name = None  # type: ignore[assignment]
    else:
        check_name(name)
        entry = CATALOG.get(name)
        if entry is None and not repo:
            raise UsageError(f"no model {name!r} in the catalog",
                             hint="pull any repository with `vdr model pull hf:OWNER/REPO[:QUANT]`; `vdr model list` shows the catalog")
        if entry is not None and entry.repo is None and not repo:
            from vdr_cli.models.download import DownloadError

            raise DownloadError(f"{name}: no GGUF of this model is published (its weights: {entry.convert_from}, safetensors)",
                                hint=conversion_hint(entry))
    repo = repo or entry.repo  # type: ignore[union-attr]
    revision = entry.revision if entry else "main"
    listing = hubapi.list_files(hub, repo, revision, token)
    catalog_files = entry is not None and repo == entry.repo
    model, projector = hubapi.choose(listing, repo, quant=quant, gguf=gguf or (entry.gguf if catalog_files else None),
                                     mmproj=mmproj or (entry.mmproj if catalog_files else None))
    files = [("model", model.path, model.size, (entry.gguf_sha256 if catalog_files and not gguf else None) or model.sha256)]
    if projector is not None:
        files.append(("projector", projector.path, projector.size,
                      (entry.mmproj_sha256 if catalog_files and not mmproj else None) or projector.sha256))
    if name is None:
        name = _name_for(repo, hubapi.quant_of(model.path))
    return PullPlan(name=name, repo=repo, revision=revision, files=files, ctx=entry.ctx if entry else None)


def _name_for(repo: str, quant: str | None) -> str:
    """A registry name for `hf:OWNER/REPO`: the repository's name, lower-case, without -GGUF."""
    import re

    base = re.sub(r"[-_.]?gguf$", "", repo.split("/")[-1], flags=re.I).lower()
    return re.sub(r"[^a-z0-9._-]+", "-", base).strip("-.") or "model"


def run_pull(name: str, repo: str | None, gguf: str | None, mmproj: str | None, hub: str, as_name: str | None) -> None:
    from vdr_cli.models import hub as hubapi
    from vdr_cli.models.download import DownloadError, download
    from vdr_cli.models.registry import ModelEntry, Registry, check_name, models_dir

    token = os.environ.get("HF_TOKEN") or None
    p = plan(name, repo, gguf, mmproj, hub, token)
    if as_name:
        p.name = check_name(as_name)
    folder = models_dir() / p.name
    todo = [(label, f, size, sha) for label, f, size, sha in p.files if not (folder / f).is_file()]
    total = sum(size for _, _, size, _ in todo)
    have = sum(_part_size(folder / f) for _, f, _, _ in todo)
    if not any(label == "projector" for label, *_ in p.files):
        say("model", "warning", f"{p.repo} has no vision projector (mmproj): {p.name} will read text only")
    described = ", ".join(f"{label} {f} ({human_bytes(size)})" for label, f, size, _ in p.files)
    say("model", "info", f"{p.repo}: {described}")
    if todo:
        folder.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(folder).free
        if total - have > free:
            raise DownloadError(f"{folder}: {human_bytes(total - have)} to download but {human_bytes(free)} free on that disk",
                                hint="free some space, or set VDR_HOME to a folder on a larger disk")
        for label, f, _, _ in todo:  # before committing to gigabytes: are these GGUF files at all?
            if not _part_size(folder / f):
                hubapi.check_magic(hub, p.repo, p.revision, f, token)
    from vdr_cli.models.download import hub_url

    for label, f, size, sha in p.files:
        dest = folder / f
        if dest.is_file():
            say("model", "info", f"{f}: already downloaded")
            continue
        resumed = _part_size(dest)
        bar = Progress(f, size, resumed)
        t0 = time.monotonic()
        try:
            got = download(hub_url(hub, p.repo, p.revision, f), dest, sha256=sha, token=token, progress=bar.update)
        except DownloadError as exc:
            bar.close()
            left = _part_size(dest)
            if left:
                exc.hint = (f"{human_bytes(left)} kept in {dest}.part: the same command resumes it; "
                            f"`vdr model rm {p.name}` deletes it")
            raise
        bar.close()
        took = time.monotonic() - t0
        check = "sha256 verified" if got.verified else "not verified (the hub gave no checksum)"
        say("model", "info", f"{f}: {human_bytes(got.bytes)} in {human_seconds(took)}, {check}")
    paths = {label: str(folder / f) for label, f, _, _ in p.files}
    Registry().add(ModelEntry(name=p.name, gguf=paths["model"], mmproj=paths.get("projector"), ctx=p.ctx,
                              source=f"pull:{p.repo}"), replace=True)
    say("model", "info", f"{p.name} is ready: vdr ask --model {p.name} --example 'What does the sign say?'")


def _part_size(dest: Path) -> int:
    part = dest.with_name(dest.name + ".part")
    try:
        return part.stat().st_size
    except OSError:
        return 0


class Progress:
    """Percent, size, speed and ETA on a redrawable terminal; a line when resuming otherwise."""

    def __init__(self, label: str, size: int, resumed: int) -> None:
        self.bar = None
        if resumed:
            say("model", "info", f"{label}: resuming at {human_bytes(resumed)} of {human_bytes(size)}")
        if is_quiet() or not animated():
            return
        from rich.progress import BarColumn, DownloadColumn, Progress as Bar, TaskProgressColumn, TimeRemainingColumn, TransferSpeedColumn

        from vdr_cli.render.output import stderr_console

        self.bar = Bar("{task.description}", BarColumn(), TaskProgressColumn(), DownloadColumn(), TransferSpeedColumn(),
                       "ETA", TimeRemainingColumn(), console=stderr_console(), transient=False)
        self.bar.start()
        self.task = self.bar.add_task(label + (" (resuming)" if resumed else ""), total=size or None, completed=resumed)

    def update(self, done: int, total: int | None) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
