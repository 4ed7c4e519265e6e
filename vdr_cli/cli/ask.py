"""`vdr ask`: research a question (about images) with the agent loop."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from vdr_cli.cli import complete
from vdr_cli.cli.docs import epilog
from vdr_cli.cli.failures import reports

HELP = """\
Research a question, about one or more images or none, with the agent loop.

The last argument is the question (- reads it from stdin); those before it
are images: paths, http(s) URLs (downloaded once, size-capped, cached) or -
for image bytes on stdin. --example adds the image that ships with vdr. The model
thinks, calls tools (search, crop_and_search, visit, PythonInterpreter) and
answers in the format Vision-DeepResearch was trained on. Every session writes a trace
(one event per line) to -o FILE or to the data folder; its path is printed on
stderr. On a terminal a live view goes to stderr and the answer to stdout;
piped or with --json, the events go to stdout; with --answer-only just the
answer text does, for `A=$(vdr ask --answer-only ...)`.

Ctrl-C ends the current step, writes an "end" event with reason
"interrupted" and exits 130; `vdr ask --resume TRACE` continues a session
from its trace without re-running its tools. --batch FILE runs one session
per JSONL line ({"id", "question", "images"}).
"""


def register(app: typer.Typer) -> None:
    app.command("ask", help=HELP, epilog=epilog("ask"), short_help="Research a question about images with the agent loop.")(ask_command)


@reports("ask")
def ask_command(
    args: Optional[List[str]] = typer.Argument(None, metavar="[IMAGE...] QUESTION", help="Images (paths, http(s) URLs, - for stdin), then the question (- for stdin).", show_default=False),
    model: Optional[List[str]] = typer.Option(None, "--model", "-m", autocompletion=complete.model_names, help="Registered name, .gguf path, openai:MODEL@URL or scripted:TRACE [config model.default]. With --batch, give several openai:MODEL@URL to spread the sessions over those servers (each new one to the server with the most free slots)."),
    mmproj: Optional[str] = typer.Option(None, "--mmproj", help="Vision projector GGUF for a .gguf --model."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Trace file (or folder, with --batch). Default: the data folder's traces/."),
    json_out: bool = typer.Option(False, "--json", "-j", help="Write the events to stdout even on a terminal."),
    answer_only: bool = typer.Option(False, "--answer-only", "-a", help="Write only the answer text to stdout, piped or not (no events)."),
    example: bool = typer.Option(False, "--example", help="Ask about the example image that ships with vdr (a street corner with signs and a tram)."),
    max_steps: int = typer.Option(50, "--max-steps", help="Model calls before the final answer is requested (the reference uses 50)."),
    max_time: Optional[float] = typer.Option(None, "--max-time", help="Wall-time budget in seconds; then the final answer is requested."),
    ctx: Optional[str] = typer.Option(None, "--ctx", help="Context window in tokens, or auto: what fits in free RAM/VRAM (HTTP: the server's) [config model.ctx]."),
    fold: str = typer.Option("keep-last:3", "--fold", help="When the window fills: keep-last:K (fold older tool results to digests), summarise (the model's own summary replaces old steps) or off (ask for the final answer, as the reference)."),
    fold_at: Optional[float] = typer.Option(None, "--fold-at", help="Fold once the context passes this fraction of the window (default 0.75).", show_default=False),
    kv_type: str = typer.Option("f16", "--kv-type", help="KV cache type for in-process models: f16, q8_0 or q4_0 (quantized caches use flash attention)."),
    grammar: str = typer.Option("auto", "--grammar", help="Constrain decoding to the turn format: auto (in-process models not trained on it; never over HTTP), on, off."),
    zoom: bool = typer.Option(False, "--zoom", help="Offer the opt-in zoom tool (crops go back to the model as images)."),
    temperature: float = typer.Option(0.6, "--temperature", help="Sampling temperature (0: greedy)."),
    top_p: float = typer.Option(0.95, "--top-p", help="Nucleus sampling."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Sampling seed, for repeatable runs."),
    date: Optional[str] = typer.Option(None, "--date", help="The date the system prompt gives the model (YYYY-MM-DD; default today): with --seed, a run that repeats on another day.", show_default=False),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Longest single model turn, in tokens (default: 4096 in-process; HTTP servers get no limit, as in the reference eval)."),
    summaries: str = typer.Option("model", "--summaries", help="How visit summarises pages: model (side generation) or extractive (no model)."),
    summary_model: Optional[str] = typer.Option(None, "--summary-model", help="Model that summarises visit pages and crop_and_search hits (registered name, .gguf path or openai:MODEL@URL; the reference uses a separate extractor). Default: the session's own model, by side generation."),
    summary_mmproj: Optional[str] = typer.Option(None, "--summary-mmproj", help="Vision projector GGUF for a .gguf --summary-model (without one it reads pages as text)."),
    summary_tokens: int = typer.Option(16384, "--summary-tokens", help="Longest page summary, in tokens (the reference's 16384; in-process also bounded by the free context)."),
    search_provider: Optional[str] = typer.Option(None, "--search-provider", autocompletion=complete.providers, help="Text search provider [config search.provider]."),
    image_provider: Optional[str] = typer.Option(None, "--image-provider", autocompletion=complete.providers, help="Reverse image provider [config search.image_provider]."),
    allow_private: Optional[bool] = typer.Option(None, "--allow-private/--no-allow-private", help="Let model-chosen URLs reach private addresses [config net.allow_private]."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the network cache."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the session recorded in this trace."),
    batch: Optional[Path] = typer.Option(None, "--batch", help="JSONL file of questions: one session per line."),
    shard: Optional[str] = typer.Option(None, "--shard", help="With --batch: run only slice I of N (every N-th item from the I-th; 1-based), e.g. 2/4 on the second of four machines.", show_default=False),
    parallel: Optional[str] = typer.Option(None, "--parallel", "-P", help="Sessions at once: N, or auto. Default: over HTTP, the slots the server says it has (llama-server's /props total_slots; added up over several --model; else 1); in-process 1, auto as many context windows as memory holds (they decode in shared batches).", show_default=False),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show llama.cpp's own logs."),
    python: Optional[bool] = typer.Option(None, "--python/--no-python", help="Offer the PythonInterpreter tool (code runs in a sandbox: no network, no $HOME). Default: when a sandbox can be built here.", show_default=False),
) -> int:
    from vdr_cli.agent.host import parse_date, parse_parallel
    from vdr_cli.agent.runner import AskRequest, run_ask
    from vdr_cli.agent.servers import check_models

    models = list(model or [])
    check_models(models, batch=batch is not None)

    if answer_only and json_out:
        from vdr_cli.errors import UsageError

        raise UsageError("--answer-only and --json both choose what stdout gets; give one")
    if batch is None and resume is None:
        args = resolve_inputs(list(args or []), example)
    request = AskRequest(
        args=list(args or []), answer_only=answer_only, model=models[0] if models else None, models=models, mmproj=mmproj, output=output, json_out=json_out, max_steps=max_steps,
        max_time=max_time, ctx=ctx, grammar=grammar, zoom=zoom, temperature=temperature, top_p=top_p, seed=seed,
        max_tokens=max_tokens, summaries=summaries, summary_model=summary_model, summary_mmproj=summary_mmproj,
        summary_tokens=summary_tokens,
        search_provider=search_provider, image_provider=image_provider,
        allow_private=allow_private, no_cache=no_cache, resume=resume, batch=batch, parallel=parse_parallel(parallel),
        shard=shard, verbose=verbose,
        python=python,
        fold=fold, fold_at=fold_at, kv_type=kv_type, date=parse_date(date),
    )
    return run_ask(request)


def example_image() -> Path:
    """The example image shipped in the package (drawn by scripts/make_example_image.py)."""
    from importlib.resources import files

    return Path(str(files("vdr_cli") / "data" / "example.png"))


def resolve_inputs(args: list[str], example: bool) -> list[str]:
    """`-` and URLs become files; --example prepends the bundled image."""
    import sys

    from vdr_cli.errors import UsageError
    from vdr_cli.tools.image_inputs import image_from_stdin, image_from_url, is_url

    if not args:
        return args
    *images, question = args
    if images.count("-") + (question == "-") > 1:
        raise UsageError("stdin can hold the question or one image, not both")
    if question == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("`-` reads the question from stdin, but stdin is a terminal", hint="echo 'QUESTION' | vdr ask IMAGE -")
        question = sys.stdin.read().strip()
        if not question:
            raise UsageError("the question read from stdin is empty")
    out = [str(example_image())] if example else []
    for spec in images:
        if spec == "-":
            out.append(str(image_from_stdin()))
        elif is_url(spec):
            out.append(str(image_from_url(spec)))
        else:
            out.append(spec)
    return out + [question]
