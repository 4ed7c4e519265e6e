"""What `--model` accepts, parsed into one `ModelSpec`.

    NAME                     a registered model (`vdr model list`) or a catalog name
    PATH.gguf                a GGUF file; a sibling `mmproj*.gguf` is not guessed:
                             give it with --mmproj
    openai:MODEL@URL         an OpenAI-compatible server, e.g.
                             openai:vdr-8b@http://gpu:8000/v1 (MODEL may be empty:
                             openai:@http://127.0.0.1:8080/v1 uses the server's default)
    scripted:TRACE.jsonl     replay the assistant turns recorded in a trace
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from vdr_cli.errors import InputError, UsageError

SPEC_HELP = "a registered name, a .gguf path, openai:MODEL@URL, or scripted:TRACE.jsonl"


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # "llama", "openai" or "scripted"
    name: str
    gguf: Path | None = None
    mmproj: Path | None = None
    base_url: str | None = None
    trace: Path | None = None
    ctx: int | None = None
    chat_template: str | None = None


def public_spec(text: str) -> str:
    """`--model` as a trace header may keep it: an openai: URL loses its query
    (`?api_key=`) and credentials; other specs are kept as given."""
    if not text.strip().startswith("openai:"):
        return text
    from vdr_cli.net.urls import public_url

    model, sep, url = text.strip()[len("openai:"):].rpartition("@")
    return f"openai:{model}{sep}{public_url(url)}" if sep else text


def parse_spec(text: str, mmproj: str | None = None) -> ModelSpec:
    """Resolve a `--model` value; raises a one-line error saying what is accepted."""
    text = text.strip()
    if not text:
        raise UsageError("empty --model", hint=f"give {SPEC_HELP}")
    if text.startswith("openai:"):
        model, sep, url = text[len("openai:"):].rpartition("@")
        if not sep:
            raise UsageError(f"--model {text!r}: missing @URL", hint="write openai:MODEL@http://host:port/v1")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"--model {text!r}: {url!r} is not an http(s) URL", hint="write openai:MODEL@http://host:port/v1")
        return ModelSpec(kind="openai", name=model, base_url=url.rstrip("/"))
    if text.startswith("scripted:"):
        trace = Path(text[len("scripted:"):]).expanduser()
        if not trace.is_file():
            raise InputError(f"{trace}: no such trace file")
        return ModelSpec(kind="scripted", name=f"scripted:{trace.name}", trace=trace)
    if text.endswith(".gguf") or "/" in text or text.startswith("."):
        path = Path(text).expanduser()
        if not path.is_file():
            raise InputError(f"{path}: no such model file", hint=f"--model takes {SPEC_HELP}")
        mm = Path(mmproj).expanduser() if mmproj else None
        if mm is not None and not mm.is_file():
            raise InputError(f"{mm}: no such mmproj file")
        return ModelSpec(kind="llama", name=path.stem, gguf=path.resolve(), mmproj=mm.resolve() if mm else None)
    from vdr_cli.models.registry import Registry

    entry = Registry().get(text)
    if entry is not None:
        mm = mmproj or entry.mmproj
        return ModelSpec(kind="llama", name=entry.name, gguf=Path(entry.gguf), mmproj=Path(mm) if mm else None,
                         ctx=entry.ctx, chat_template=entry.chat_template)
    from vdr_cli.models.catalog import CATALOG

    if text in CATALOG:
        raise InputError(f"model {text!r} is not downloaded yet", hint=f"run `vdr model pull {text}` (or `vdr model add {text} --gguf FILE`)")
    raise InputError(f"unknown model {text!r}", hint=f"--model takes {SPEC_HELP}; `vdr model list` shows registered models")
