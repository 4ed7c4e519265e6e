#!/usr/bin/env python3
"""Generate man pages (man/) and shell completions (completions/) from the CLI.

The command tree is walked directly (click-man emits no OPTIONS for typer >=
0.26, which vendors click).  Run after changing any command; a test fails
when the committed files differ from what this writes.

    python scripts/gen_docs.py            # write man/ and completions/
    python scripts/gen_docs.py --out DIR  # write into DIR/man and DIR/completions
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from typer._click.core import Command, Context  # noqa: E402
from typer.core import TyperArgument, TyperGroup  # noqa: E402

from vdr_cli import __version__  # noqa: E402
from vdr_cli.cli import docs  # noqa: E402
from vdr_cli.cli.completion import SHELLS, script  # noqa: E402
from vdr_cli.cli.main import build_command  # noqa: E402
from vdr_cli.errors import EXIT_STATUS_DOC  # noqa: E402
from vdr_cli.settings import SETTINGS  # noqa: E402

# A fixed date keeps the output reproducible; bump it with the version.
DATE = "2026-11-25"
COMPLETION_FILES = {"bash": "vdr.bash", "zsh": "_vdr", "fish": "vdr.fish"}
# Which settings' environment variables each command reads.
SETTING_PREFIXES = {
    "crop": ("crop.",),
    "search": ("search.", "keys.serper", "keys.serpapi", "keys.brave", "net.", "cache."),
    "browse": ("net.", "cache."),
    "ask": ("",),
    "replay": ("",),
    "model": ("model.", "keys.openai"),
    "config": ("",),
    "doctor": ("",),
}


def _esc_word(word: str) -> str:
    return word.replace("\\", "\\e").replace("-", "\\-")


def esc(text: str, width: int = 79) -> str:
    """Escape text for roff and wrap it: lines of at most `width` bytes
    (mandoc's style check), none starting with a control character."""
    out = []
    for source_line in text.split("\n"):
        line = ""
        for word in source_line.split():
            word = _esc_word(word)
            if line and len(line) + 1 + len(word) > width:
                out.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        out.append(line)
    return "\n".join("\\&" + l if l.startswith((".", "'")) else l for l in out)


def paragraphs(help_text: str) -> list[str]:
    """Split click help text into paragraphs; `\\b` blocks keep their lines."""
    out = []
    for block in re.split(r"\n\s*\n", help_text.strip()):
        block = block.strip("\n")
        if block.startswith("\b"):
            out.append(block[1:].strip("\n"))
        else:
            out.append(" ".join(block.split()))
    return out


def walk(cmd: Command, path: list[str], ctx: Context):
    yield path, cmd, ctx
    if isinstance(cmd, TyperGroup):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from walk(sub, path + [name], Context(sub, info_name=name, parent=ctx))


def synopsis(cmd: Command, ctx: Context) -> str:
    """The arguments as man pages write them: NAME required, [NAME] optional, NAME... repeatable."""
    if isinstance(cmd, TyperGroup):
        return " ".join(cmd.collect_usage_pieces(ctx))
    pieces = ["[OPTIONS]"]
    for p in cmd.params:
        if not isinstance(p, TyperArgument):
            continue
        if p.metavar and p.metavar.startswith("["):
            pieces.append(p.metavar)  # written out in full by the command (vdr ask)
            continue
        name = (p.metavar or p.name or "").upper() + ("..." if p.nargs != 1 else "")
        pieces.append(name if p.required else f"[{name}]")
    return " ".join(pieces)


def page(path: list[str], cmd: Command, ctx: Context) -> str:
    name = "-".join(path)
    key = " ".join(path[1:]) or "vdr"
    summary = cmd.get_short_help_str(limit=200) or ""
    out = [
        f'.TH "{name.upper()}" "1" "{DATE}" "vdr {__version__}" "vdr manual"',
        ".SH NAME",
        esc(f"{name} - {summary.rstrip('.')}"),
        ".SH SYNOPSIS",
        f".B {esc(' '.join(path))}",
        esc(synopsis(cmd, ctx)),
        ".SH DESCRIPTION",
    ]
    for i, para in enumerate(paragraphs(cmd.help or summary)):
        out += ([".PP"] if i else []) + [esc(para) if "\n" not in para else ".nf\n" + esc(para) + "\n.fi"]
    if isinstance(cmd, TyperGroup):
        out.append(".SH COMMANDS")
        for sub_name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, sub_name)
            out += [".TP", f"\\fB{esc(sub_name)}\\fR", esc(sub.get_short_help_str(limit=200)), ]
            out.append(f"See \\fB{esc('-'.join(path + [sub_name]))}\\fR(1).")
    args = [p for p in cmd.params if isinstance(p, TyperArgument)]
    opts = [p for p in cmd.params if not isinstance(p, TyperArgument)]
    if args:
        out.append(".SH ARGUMENTS")
        for p in args:
            record = p.get_help_record(ctx)
            if record:
                out += [".TP", f"\\fI{esc(record[0].upper())}\\fR", esc(record[1] or "")]
    out.append(".SH OPTIONS")
    for p in opts:
        record = p.get_help_record(ctx)
        if record:
            flags = record[0]
            first, _, metavar = flags.partition(" <")
            rendered = ", ".join(f"\\fB{esc(f.strip())}\\fR" for f in first.split(","))
            if metavar:
                rendered += f" \\fI<{esc(metavar)}\\fR"
            out += [".TP", rendered, esc(record[1] or "")]
    out += [".TP", "\\fB\\-h\\fR, \\fB\\-\\-help\\fR", "Show help and exit."] if not any("--help" in (p.opts or []) for p in opts) else []
    out.append(".SH EXIT STATUS")
    for status, text in EXIT_STATUS_DOC.items():
        out += [".TP", f".B {int(status)}", esc(text)]
    out.append(".SH ENVIRONMENT")
    for var, text in docs.ENVIRONMENT:
        out += [".TP", f".B {esc(var)}", esc(text)]
    prefixes = SETTING_PREFIXES.get(path[1] if len(path) > 1 else "", ("",) if len(path) == 1 else ())
    for setting in SETTINGS.values():
        if any(setting.key.startswith(p) for p in prefixes):
            out += [".TP", f".B {esc(setting.env_var)}", esc(f"{setting.doc} (setting {setting.key})")]
    out.append(".SH FILES")
    for fname, text in docs.FILES:
        out += [".TP", f".I {esc(fname)}", esc(text)]
    examples = docs.EXAMPLES.get(key, [])
    if examples:
        out.append(".SH EXAMPLES")
        for i, (command, what) in enumerate(examples):
            out += ([".PP"] if i else []) + [esc(what[0].upper() + what[1:] + ":"), ".RS 4", ".nf", esc(command, 10**6), ".fi", ".RE"]
    see = ["vdr"] if len(path) > 1 else []
    see += ["-".join(p) for p, _, _ in walk(*_root()) if len(p) == 2 and p != path][:8] if len(path) == 1 else []
    if see:
        out.append(".SH SEE ALSO")
        out.append(", ".join(f"\\fB{esc(s)}\\fR(1)" for s in see))
    return "\n".join(out) + "\n"


def _root():
    cmd = build_command()  # the tree `vdr` runs: --quiet added to every command
    return cmd, ["vdr"], Context(cmd, info_name="vdr")


def generate() -> dict[str, str]:
    """Relative path → content for every generated file."""
    files = {}
    for path, cmd, ctx in walk(*_root()):
        files[f"man/{'-'.join(path)}.1"] = page(path, cmd, ctx)
    for shell in SHELLS:
        files[f"completions/{COMPLETION_FILES[shell]}"] = script(shell)
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT, help="root folder to write man/ and completions/ into")
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed files are stale")
    args = parser.parse_args()
    files = generate()
    if args.check:
        stale = [rel for rel, text in files.items() if not (ROOT / rel).exists() or (ROOT / rel).read_text() != text]
        extra = [str(p.relative_to(ROOT)) for d in ("man", "completions") for p in (ROOT / d).glob("*") if str(p.relative_to(ROOT)) not in files]
        for rel in stale + extra:
            print(f"stale: {rel}", file=sys.stderr)
        return 1 if stale or extra else 0
    for d in ("man", "completions"):
        if args.out == ROOT:
            for old in (ROOT / d).glob("*"):
                if f"{d}/{old.name}" not in files:
                    old.unlink()
    for rel, text in files.items():
        target = args.out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    print(f"wrote {len(files)} files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
