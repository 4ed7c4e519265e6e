"""Models `vdr model pull` knows how to fetch, by name.

Each entry names a hub repository that exists and the files in it (checked
against the hub's file listing on 2026-12-01).  `vdr model pull
hf:OWNER/REPO[:QUANT]` fetches any other repository; a registry entry added
with `vdr model add` always wins over the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    repo: str | None  # None: no GGUF is published; `convert_from` says where the weights are
    gguf: str | None  # file name in the repository
    mmproj: str | None
    description: str
    revision: str = "main"
    gguf_sha256: str | None = None  # when None, the hub's listing (LFS oid) or X-Linked-Etag is used
    mmproj_sha256: str | None = None
    ctx: int | None = None
    bytes: int = 0  # download size of both files, for `vdr model list` before a pull
    convert_from: str | None = None  # the publisher's safetensors repository


CATALOG: dict[str, CatalogEntry] = {
    e.name: e
    for e in [
        # The reference model.  Its authors publish safetensors only
        # (Osilly/Vision-DeepResearch-8B, architecture qwen3_vl) and no GGUF
        # conversion was found on the hub, so `pull` explains how to make one.
        CatalogEntry(
            name="vdr-8b",
            repo=None,
            gguf=None,
            mmproj=None,
            description="Vision-DeepResearch-8B (Qwen3-VL-8B fine-tune): safetensors only, convert to GGUF",
            convert_from="Osilly/Vision-DeepResearch-8B",
        ),
        # The official GGUF of the base model (Q4_K_M 5,027,784,800 bytes; F16
        # projector 1,159,029,824 bytes).
        CatalogEntry(
            name="qwen3-vl-8b",
            repo="Qwen/Qwen3-VL-8B-Instruct-GGUF",
            gguf="Qwen3VL-8B-Instruct-Q4_K_M.gguf",
            mmproj="mmproj-Qwen3VL-8B-Instruct-F16.gguf",
            description="Qwen3-VL-8B-Instruct (official GGUF, Q4_K_M + F16 projector), the base model",
            bytes=5_027_784_800 + 1_159_029_824,
        ),
    ]
}


def conversion_hint(entry: CatalogEntry) -> str:
    """What to do for a model that has no published GGUF."""
    return (f"convert {entry.convert_from} with llama.cpp's convert_hf_to_gguf.py (once for the model, once with --mmproj), "
            f"then `vdr model add {entry.name} --gguf MODEL.gguf --mmproj MMPROJ.gguf`; or pull a community conversion with "
            f"`vdr model pull hf:OWNER/REPO --name {entry.name}`; meanwhile `vdr model pull qwen3-vl-8b` gets the base model")
