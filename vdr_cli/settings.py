"""The known settings: name, type, default, environment variable, secrecy.

One table, so `vdr config list`, the man page's ENVIRONMENT section and the
precedence rules all read the same facts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# Kept here (settings sit below tools): tests/test_hardening.py checks these
# against the search registry, so a new provider cannot be forgotten.
TEXT_PROVIDERS = ("duckduckgo", "brave-web", "mojeek", "searxng", "serper", "brave", "serpapi")
IMAGE_PROVIDERS = ("bing", "yandex", "lens", "serpapi", "serper", "describe")
ALIASES = ("ddg", "searx", "googlelens", "google-lens")  # spellings the registry also takes


@dataclass(frozen=True)
class Setting:
    key: str
    type: type
    default: Any
    doc: str
    env: str = ""
    secret: bool = False
    # What a value must be; checked once, in `coerce`, whatever its source.
    min: float | None = None
    max: float | None = None
    positive: bool = False  # strictly above 0 (a timeout of 0 means nothing)
    choices: tuple[str, ...] = ()
    listed: bool = False  # a comma-separated list, each item one of `choices`

    @property
    def env_var(self) -> str:
        return self.env or "VDR_" + self.key.upper().replace(".", "_")


SETTINGS: dict[str, Setting] = {
    s.key: s
    for s in [
        Setting("model.default", str, "vdr-8b", "model used when --model is not given (registry name, .gguf path or openai:MODEL@URL)", env="VDR_MODEL"),
        # 32k tokens: a dozen tool turns with page summaries fit, and an 8B
        # model's KV cache for it (~4.5 GiB at f16) fits beside the weights on a
        # 16 GiB machine; the reference's 160k needs server memory.
        Setting("model.ctx", int, 32768, "context window in tokens for in-process models", env="VDR_CTX", min=128, max=1 << 24),
        Setting("model.n_gpu_layers", int, -1, "layers offloaded to the GPU (-1: all the build supports, 0: CPU only)", min=-1, max=100_000),
        Setting("model.hub_url", str, "https://huggingface.co", "model hub that `vdr model pull` downloads from", env="VDR_HUB_URL"),
        Setting("model.threads", int, 0, "CPU threads for in-process models (0: automatic)", min=0, max=4096),
        # Lists are fallback orders: the next engine is tried when one fails, blocks or rate-limits.
        Setting("search.provider", str, "duckduckgo,brave-web,mojeek",
                "text search providers, tried in order: duckduckgo, brave-web, mojeek (keyless), searxng, serper, brave, serpapi",
                choices=TEXT_PROVIDERS, listed=True),
        Setting("search.image_provider", str, "bing,yandex,lens,describe",
                "reverse image search engines, tried in order: bing, yandex, lens (keyless: the file goes to that engine only), "
                "serpapi, serper; describe (offline fallback: a text search for a description, not a reverse image search)",
                choices=IMAGE_PROVIDERS, listed=True),
        Setting("search.searxng_url", str, "http://127.0.0.1:8888", "base URL of a SearXNG instance with JSON output enabled"),
        Setting("search.results", int, 10, "results kept per query", min=1, max=100),
        # Every provider base URL is a setting: self-hosted mirrors, proxies and
        # tests (a loopback server) point them elsewhere.
        Setting("search.ddg_url", str, "https://html.duckduckgo.com/html/", "DuckDuckGo HTML endpoint (keyless; POST form)"),
        Setting("search.brave_web_url", str, "https://search.brave.com/search", "Brave Search result pages (keyless brave-web provider)"),
        Setting("search.mojeek_url", str, "https://www.mojeek.com/search", "Mojeek search endpoint (keyless)"),
        Setting("search.bing_url", str, "https://www.bing.com", "base URL of Bing visual search (keyless reverse image search)"),
        Setting("search.yandex_url", str, "https://yandex.com", "base URL of Yandex image search (keyless reverse image search)"),
        Setting("search.lens_url", str, "https://lens.google.com", "base URL of Google Lens (keyless reverse image search)"),
        Setting("search.serper_url", str, "https://google.serper.dev", "base URL of the Serper.dev API"),
        Setting("search.serpapi_url", str, "https://serpapi.com", "base URL of the SerpApi API"),
        Setting("search.brave_url", str, "https://api.search.brave.com/res/v1", "base URL of the Brave Search API"),
        Setting("search.uploader", str, "", "command that receives an image path and prints a public URL (lets Serper Lens search local files)"),
        Setting("search.concurrency", int, 8, "search requests in flight at once per provider host", min=1, max=256),
        Setting("keys.serper", str, "", "Serper.dev API key", env="VDR_SERPER_KEY", secret=True),
        Setting("keys.serpapi", str, "", "SerpApi API key", env="VDR_SERPAPI_KEY", secret=True),
        Setting("keys.brave", str, "", "Brave Search API key", env="VDR_BRAVE_KEY", secret=True),
        Setting("keys.openai", str, "", "API key for OpenAI-compatible model servers", env="VDR_OPENAI_KEY", secret=True),
        Setting("net.allow_private", bool, False, "let model-chosen URLs reach private, loopback and link-local addresses"),
        Setting("net.timeout", float, 20.0, "seconds allowed for one HTTP request", positive=True, max=24 * 3600),
        Setting("net.max_bytes", int, 5_000_000, "largest response body read, in bytes", min=1024, max=1 << 34),
        Setting("browse.max_chars", int, 120_000, "characters of main text kept per page (the reference model was trained on 120,000)", min=1, max=100_000_000),
        Setting("cache.enabled", bool, True, "cache network results on disk"),
        Setting("cache.ttl", int, 7 * 24 * 3600, "seconds a cached network result stays fresh", min=0, max=100 * 365 * 24 * 3600),
        Setting("crop.max_pixels", int, 200_000_000, "largest image accepted, in pixels (decompression-bomb guard)", min=1, max=1 << 34),
        Setting("crop.format", str, "auto", "crop output format: auto (JPEG for JPEG sources, else PNG), png, jpeg, webp", choices=("auto", "png", "jpeg", "jpg", "webp")),
        Setting("crop.quality", int, 90, "JPEG/WebP quality of crops (1-100)", min=1, max=100),
    ]
}

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


def coerce(setting: Setting, value: Any) -> Any:
    """Convert a value (a string from the environment or `vdr config set`, a TOML
    value, a flag) to the setting's type and check it; `ValueError` says why not."""
    return check_value(setting, _convert(setting, value))


def check_value(rule: Setting, value: Any) -> Any:
    """`value` if the rule allows it; else `ValueError` with what it must be."""
    if value is None:
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value}")
    if rule.choices and isinstance(value, str):
        items = [v.strip().lower() for v in value.split(",")] if rule.listed else [value.strip().lower()]
        bad = [v for v in items if v not in rule.choices and v not in ALIASES and v != "jpg"]
        if bad or not any(items):
            what = "each item must be" if rule.listed else "must be"
            raise ValueError(f"{what} one of {', '.join(rule.choices)}, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if rule.positive and value <= 0:
            raise ValueError(f"must be above 0, got {value:g}")
        if rule.min is not None and value < rule.min:
            raise ValueError(f"must be at least {rule.min:g}, got {value:g}")
        if rule.max is not None and value > rule.max:
            raise ValueError(f"must be at most {rule.max:g}, got {value:g}")
    return value


# Options that are not settings (no config key) but take numbers all the same:
# the same rules, checked by the same `check_value`.
FLAGS: dict[str, Setting] = {
    s.key: s
    for s in [
        Setting("--temperature", float, 0.6, "sampling temperature", min=0, max=100),
        Setting("--top-p", float, 0.95, "nucleus sampling", positive=True, max=1),
        Setting("--max-tokens", int, 4096, "longest model turn", min=1, max=1 << 24),
        Setting("--max-time", float, None, "wall-time budget", positive=True),
        Setting("--max-steps", int, 50, "model calls", min=1, max=1_000_000),
        Setting("--parallel", int, 1, "sessions at once", min=1, max=1024),
    ]
}


def check_flag(name: str, value: Any) -> Any:
    """`value` of option `name` if its rule allows it; else `ValueError`."""
    return check_value(FLAGS[name], value)


def _convert(setting: Setting, value: Any) -> Any:
    if not isinstance(value, str) or setting.type is str:
        if setting.type is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if setting.type is int and isinstance(value, bool):
            raise ValueError("expected int, got bool")
        if not isinstance(value, setting.type):
            raise ValueError(f"expected {setting.type.__name__}, got {type(value).__name__}")
        return value
    text = value.strip()
    if setting.type is bool:
        if text.lower() in TRUE:
            return True
        if text.lower() in FALSE:
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    try:
        return setting.type(text)
    except ValueError:
        raise ValueError(f"expected {setting.type.__name__}, got {value!r}") from None


def mask(value: str) -> str:
    """Show enough of a secret to recognise it, not to use it."""
    if not value:
        return ""
    if len(value) <= 8:
        return "****"
    return "****" + value[-4:]
