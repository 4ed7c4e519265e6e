"""How big a context window fits: KV bytes per token from a GGUF header, free memory, `--ctx auto`.

The KV cache holds, per token and per layer, one key and one value vector
per KV head: ``n_layer × n_head_kv × (key_length + value_length)`` elements
in the cache's type (f16: 2 bytes; q8_0: 34 bytes per 32; q4_0: 18 per 32,
as ggml stores them).  Reads only the header (gguf_header.py): no llama.cpp.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from vdr_cli.errors import InputError

KV_TYPES = ("f16", "q8_0", "q4_0")
BYTES_PER_ELEMENT = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
MIN_CTX, STEP = 2048, 1024
RESERVE_BYTES = 1 << 30  # compute buffers, the vision encoder's work space, the OS's slack
USABLE = 0.9  # of the free memory


def _per_layer(value: Any, n_layer: int) -> list[int]:
    if isinstance(value, list):
        return [int(v) for v in value][:n_layer]
    return [int(value)] * n_layer


def kv_bytes_per_token(meta: dict[str, Any], kv_type: str = "f16") -> int:
    """KV cache bytes one token costs, from a GGUF header's hyperparameters."""
    if kv_type not in BYTES_PER_ELEMENT:
        raise InputError(f"--kv-type {kv_type!r}: use one of {', '.join(KV_TYPES)}")
    arch = meta.get("general.architecture") or ""
    try:
        n_layer = int(meta[f"{arch}.block_count"])
        n_embd = int(meta[f"{arch}.embedding_length"])
        n_head = _per_layer(meta[f"{arch}.attention.head_count"], n_layer)
    except (KeyError, TypeError, ValueError):
        raise InputError(f"GGUF header of architecture {arch or '?'} lacks the attention hyperparameters") from None
    n_head_kv = _per_layer(meta.get(f"{arch}.attention.head_count_kv", n_head), n_layer)
    k_len = meta.get(f"{arch}.attention.key_length")
    v_len = meta.get(f"{arch}.attention.value_length")
    elements = 0
    for heads, kv_heads in zip(n_head, n_head_kv):
        head_dim = n_embd // max(1, heads)
        elements += kv_heads * (int(k_len or head_dim) + int(v_len or head_dim))
    return int(round(elements * BYTES_PER_ELEMENT[kv_type]))


def free_memory(gpu: bool) -> int:
    """Bytes free for a model: the first GPU's free memory (nvidia-smi) when offloading, else
    MemAvailable from /proc/meminfo (the physical RAM elsewhere)."""
    if gpu and shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=5, check=True).stdout.split()
            if out:
                return int(out[0]) << 20
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def auto_ctx(meta: dict[str, Any], model_bytes: int, free_bytes: int, kv_type: str = "f16") -> int:
    """The window that fits: free memory less the weights and a reserve, over the KV bytes per
    token; a multiple of 1024, at least 2048, at most the model's trained context."""
    per_token = kv_bytes_per_token(meta, kv_type)
    budget = free_bytes * USABLE - model_bytes - RESERVE_BYTES
    n = int(budget // per_token) // STEP * STEP
    arch = meta.get("general.architecture") or ""
    trained = meta.get(f"{arch}.context_length")
    if isinstance(trained, int) and trained > 0:
        n = min(n, trained)
    return max(MIN_CTX, n)


def auto_ctx_for(gguf: Path, mmproj: Path | None, kv_type: str, gpu: bool) -> int:
    """`--ctx auto` for a local model: its header, its files' sizes, this machine's free memory."""
    from vdr_cli.models.gguf_header import read_metadata

    size = gguf.stat().st_size + (mmproj.stat().st_size if mmproj else 0)
    return auto_ctx(read_metadata(gguf), size, free_memory(gpu), kv_type)
