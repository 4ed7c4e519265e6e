"""Documentation that help text alone does not carry: examples per command.

The man pages (scripts/gen_docs.py) and `--help` epilogs read these, and a
test fails when a command has none.
"""

from __future__ import annotations

EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "vdr": [
        ("vdr ask photo.jpg 'who built this?'", "research a question about an image"),
        ("vdr crop photo.jpg --box 120,80,640,500 --units 1000 | jq -r .path", "crop a region given in model units"),
        ("vdr config set search.provider searxng", "change a setting"),
    ],
    "crop": [
        ("vdr crop photo.jpg --box 120,80,640,500 --scale 1,2 --out crops/", "a region and the same region with context, into crops/"),
        ("vdr crop photo.jpg --box 120,80,640,500 --units 1000 | jq -r .path", "a box in Qwen-VL 0-1000 units; print the file path"),
        ("printf '{\"path\":\"photo.jpg\",\"box\":[10,10,300,200]}\\n' | vdr crop -", "JSONL records on stdin"),
        ("curl -s https://example.org/p.jpg | vdr crop - --box 0,0,0.5,0.5 --units frac", "image bytes on stdin"),
        ("vdr crop small.png --box 5,5,60,40 --min-side 512 --format webp", "enlarge a small region (LANCZOS) and write WebP"),
    ],
    "config": [
        ("vdr config path", "where the config file is"),
        ("vdr config list", "every setting, its value and where it came from"),
        ("vdr config set search.provider searxng", "set a value"),
        ("vdr config get keys.serper --reveal", "print a secret unmasked"),
        ("vdr config unset search.provider", "back to the default"),
    ],
    "config path": [("vdr config path", "the config file"), ("vdr config path cache", "the cache folder")],
    "config list": [("vdr config list --json | jq -r 'select(.source==\"env\") | .key'", "settings taken from the environment")],
    "config get": [("vdr config get model.ctx", "one value")],
    "config set": [("vdr config set net.timeout 30", "a typed value, checked before it is written")],
    "config unset": [("vdr config unset net.timeout", "remove a value from the file")],
    "completion": [
        ("vdr completion bash > ~/.local/share/bash-completion/completions/vdr", "install bash completion"),
        ("vdr completion zsh > \"${fpath[1]}/_vdr\"", "install zsh completion"),
        ("vdr completion fish > ~/.config/fish/completions/vdr.fish", "install fish completion"),
    ],
    "ask": [
        ("vdr ask photo.jpg 'who built this?'", "live view on a terminal, the answer on stdout"),
        ("vdr ask photo.jpg 'who built this?' --json | jq -c 'select(.type==\"call\")'", "the session's events"),
    ],
    "eval": [
        ("vdr eval bench.jsonl --model vdr-8b --judge openai:qwen3@http://gpu:8000/v1 -o runs/vdr-8b",
         "run every item, judge with the reference prompt on a served model"),
        ("vdr eval bench.parquet --model openai:vdr-8b@http://gpu:8000/v1 -P 8 --judge none -o runs/a",
         "eight sessions at once; exact-match judging"),
        ("vdr eval bench.jsonl -m vdr-8b -o runs/vdr-8b --group-by source",
         "the same command again: resume; accuracy per source too"),
        ("jq -r 'select(.correct|not) | .trace' runs/vdr-8b/results.jsonl | xargs -n1 vdr replay",
         "read the sessions that got it wrong"),
        ("jq .accuracy runs/vdr-8b/metrics.json", "the overall accuracy"),
    ],
    "search": [
        ("vdr search 'Gustave Eiffel' 'Maurice Koechlin' -n 5 | jq -r .url", "several queries at once"),
        ("vdr search --images 'eiffel tower 1889' --provider searxng | jq -r .image_url", "images by text"),
        ("VDR_SERPAPI_KEY=… vdr search --image crop.jpg --provider serpapi", "reverse image search (the file goes to SerpApi only)"),
        ("vdr search --image crop.jpg --describe 'wrought-iron lattice tower'", "keyless: search by a description, upload nothing"),
        ("vdr crop p.jpg --box 120,80,640,500 | vdr search --image - --provider serpapi", "reverse-search each crop"),
        ("vdr search 'eiffel tower' --json | jq -c 'select(.type==\"error\")'", "which queries failed, and why"),
    ],
    "browse": [
        ("vdr browse https://example.org --goal architect", "read a page for a goal"),
        ("vdr search 'eiffel tower architect' | vdr browse --goal 'who designed it' | jq -r .summary", "read search hits"),
        ("printf '%s\\n' https://a.example https://b.example | vdr browse --json | jq -r .title", "URLs as lines on stdin"),
        ("vdr browse https://intranet.local/page --no-cache --max-chars 5000", "skip the cache, keep 5,000 characters"),
    ],
    "cache": [
        ("vdr cache stats", "entries and size of the network cache"),
        ("vdr cache clear --namespace browse", "forget cached pages only"),
    ],
    "cache path": [("vdr cache path", "the SQLite file")],
    "cache stats": [("vdr cache stats --json | jq .entries", "the number of entries")],
    "cache clear": [("vdr cache clear", "remove everything")],
    "replay": [
        ("vdr replay trace.jsonl", "a readable timeline"),
        ("vdr replay --last --full", "the newest session in the data folder, nothing shortened"),
        ("vdr replay trace.jsonl --check", "validate a trace: problems as FILE:LINE: message"),
        ("vdr replay trace.jsonl --html report.html", "one self-contained page to share"),
        ("cat trace.jsonl | vdr replay - --json | jq -c 'select(.type==\"result\") | {tool, ms}'", "the events, for jq"),
        ("vdr replay --list", "sessions in the data folder: date, steps, ending, question"),
        ("vdr replay --from reference episodes.jsonl -o traces/", "import the reference system's saved episodes"),
    ],
    "model": [
        ("vdr model list", "registered models, and the ones pull knows"),
        ("vdr model pull qwen3-vl-8b", "download a known model (resumable, verified)"),
        ("vdr model add mine --gguf model.gguf --mmproj mmproj.gguf", "register local files"),
        ("vdr ask photo.jpg 'where is this?' --model openai:vdr-8b@http://gpu:8000/v1", "use a model on an OpenAI-compatible server"),
    ],
    "model list": [("vdr model list --json | jq -r 'select(.installed) | .name'", "names of installed models")],
    "model pull": [
        ("vdr model pull vdr-8b", "the reference model and its vision projector"),
        ("HF_TOKEN=hf_xxx vdr model pull mine --repo me/private-gguf --file m.gguf", "a gated or private repository"),
    ],
    "model add": [("vdr model add vdr-8b --gguf ~/models/vdr-8b-q4.gguf --mmproj ~/models/mmproj.gguf", "use files you converted yourself")],
    "model rm": [("vdr model rm qwen3-vl-8b --delete-files", "unregister and delete downloaded files")],
    "model info": [("vdr model info vdr-8b", "architecture, context length, projector"), ("vdr model info ./x.gguf --json", "any GGUF file")],
    "model path": [("ls -l \"$(vdr model path vdr-8b)\"", "the GGUF file"), ("vdr model path vdr-8b --mmproj", "the projector")],
}

EXAMPLES.update({
    "doctor": [
        ("vdr doctor", "is everything in place for vdr ask? what to fix"),
        ("vdr doctor --offline --model qwen3-vl-8b", "check a model without touching the network"),
        ("vdr doctor --json | jq -r 'select(.state==\"fail\") | .fix'", "only the fixes"),
    ],
})

ENVIRONMENT: list[tuple[str, str]] = [
    ("VDR_HOME", "put the config, data and cache folders under this one folder"),
    ("VDR_CONFIG", "read and write this config file instead of the default"),
    ("VDR_DEBUG", "set to 1 to show tracebacks of internal errors"),
    ("NO_COLOR", "set to disable colour on stderr"),
]

FILES: list[tuple[str, str]] = [
    ("config.toml", "settings, in the config folder (`vdr config path`); mode 0600 because it may hold API keys"),
    ("data folder", "session traces and the model registry (`vdr config path data`)"),
    ("cache folder", "crops and cached network results (`vdr config path cache`)"),
]


def epilog(command: str) -> str:
    """Examples as a help epilog (click keeps `\\b` blocks unwrapped)."""
    examples = EXAMPLES.get(command, [])
    if not examples:
        return ""
    lines = ["\b", "Examples:"]
    for cmd, what in examples:
        lines.append(f"  {cmd}")
        lines.append(f"      {what}")
    return "\n".join(lines)
