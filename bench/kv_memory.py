"""KV cache bytes per token and the window `--ctx auto` picks (a script, not a test).

1. SmolLM2-135M (the in-process engine): bytes per token computed from its GGUF
   header, and measured from llama.cpp itself (the growth of a sequence's saved
   state per evaluated token, which adds a few bytes of cell metadata), for
   f16, q8_0 and q4_0 caches.
2. An 8B Qwen3-VL model (Vision-DeepResearch-8B's architecture): a GGUF header
   written with the `gguf` package with its real hyperparameters (no weights,
   nothing downloaded); bytes per token per cache type, and the window
   `--ctx auto` chooses on a 16 GiB machine (16 GiB free, and a more usual
   12 GiB free) with the Q4_K_M weights and the F16 projector.

    python bench/kv_memory.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _loopback import smollm2  # noqa: E402
from _qwen3vl_header import MMPROJ_F16_BYTES, Q4_K_M_BYTES, write_header  # noqa: E402

from vdr_cli.models.gguf_header import read_metadata  # noqa: E402
from vdr_cli.models.memory import KV_TYPES, auto_ctx, kv_bytes_per_token  # noqa: E402

GIB = 1 << 30


def measured(kv_type: str) -> float:
    from vdr_cli.models import llama_mtmd as glue
    from vdr_cli.models.base import Turn
    from vdr_cli.models.llama_session import LlamaSession

    with LlamaSession(smollm2(), n_ctx=2048, n_threads=2, kv_type=kv_type) as s:
        s.start("You are a research assistant.", Turn("user", "hello " * 20))
        s.next_logits()
        a = (s.n_tokens, glue.llama().llama_state_seq_get_size(s._ctx, 0))  # noqa: SLF001
        s.append(Turn("user", "the tower was built " * 100))
        s.next_logits()
        b = (s.n_tokens, glue.llama().llama_state_seq_get_size(s._ctx, 0))  # noqa: SLF001
    return (b[1] - a[1]) / (b[0] - a[0])


def main() -> None:
    meta = read_metadata(smollm2())
    print("SmolLM2-135M (30 layers, 3 KV heads, head dim 64): KV bytes per token")
    print(f"  {'type':<6} {'header':>8} {'llama.cpp':>10}")
    for t in KV_TYPES:
        print(f"  {t:<6} {kv_bytes_per_token(meta, t):>8} {measured(t):>10.0f}")
    with tempfile.TemporaryDirectory() as tmp:
        q = read_metadata(write_header(Path(tmp) / "qwen3vl-8b.gguf"))
    weights = Q4_K_M_BYTES + MMPROJ_F16_BYTES
    print("\nQwen3-VL-8B header (36 layers, 8 KV heads, head dim 128; weights Q4_K_M + F16 mmproj "
          f"= {weights / GIB:.2f} GiB)")
    print(f"  {'type':<6} {'bytes/token':>11} {'KiB':>6} {'ctx auto, 16 GiB free':>22} {'12 GiB free':>12}")
    for t in KV_TYPES:
        per = kv_bytes_per_token(q, t)
        print(f"  {t:<6} {per:>11} {per / 1024:>6.1f} {auto_ctx(q, weights, 16 * GIB, t):>22} "
              f"{auto_ctx(q, weights, 12 * GIB, t):>12}")


if __name__ == "__main__":
    main()
