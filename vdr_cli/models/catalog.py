"""Models `vdr model pull` knows how to fetch, by name.

Repository ids and file names can be overridden per model in the config
(`vdr config set model.hub_url …` for the hub; a registry entry added with
`vdr model add` always wins over the catalog).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    repo: str
    gguf: str  # file name in the repository
    mmproj: str | None
    description: str
    revision: str = "main"
    gguf_sha256: str | None = None  # when None, the hub's X-Linked-Etag is used
    mmproj_sha256: str | None = None
    ctx: int | None = None
    verified: bool = False  # True once the repository and file names were checked to exist


CATALOG: dict[str, CatalogEntry] = {
    e.name: e
    for e in [
        # The reference model.  Its authors publish safetensors; the GGUF
        # repository below is where a community conversion is expected and
        # has not been verified from here: if the hub says 404, convert with
        # llama.cpp's convert_hf_to_gguf.py (text model and --mmproj) and
        # register the files with `vdr model add vdr-8b --gguf … --mmproj …`.
        CatalogEntry(
            name="vdr-8b",
            repo="Osilly/Vision-DeepResearch-8B-GGUF",
            gguf="Vision-DeepResearch-8B-Q4_K_M.gguf",
            mmproj="mmproj-Vision-DeepResearch-8B-F16.gguf",
            description="Vision-DeepResearch-8B (Qwen3-VL-8B fine-tune), Q4_K_M + F16 projector",
        ),
        CatalogEntry(
            name="qwen3-vl-8b",
            repo="Qwen/Qwen3-VL-8B-Instruct-GGUF",
            gguf="Qwen3VL-8B-Instruct-Q4_K_M.gguf",
            mmproj="mmproj-Qwen3VL-8B-Instruct-F16.gguf",
            description="Qwen3-VL-8B-Instruct (official GGUF), the fallback base model",
        ),
    ]
}
