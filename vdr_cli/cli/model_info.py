"""`vdr model info` for people: what the model is, what it needs, what it can read."""

from __future__ import annotations

from typing import Any

# llama.cpp's llama_ftype values (general.file_type) → the names files carry.
FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
              12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
              19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL",
              26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16"}


def needed_bytes(info: dict[str, Any], ctx: int, kv_type: str = "f16") -> int | None:
    """Weights, projector, the KV cache at `ctx` tokens and the compute reserve (models/memory.py)."""
    from vdr_cli.models.memory import RESERVE_BYTES

    per_token = (info.get("kv_bytes_per_token") or {}).get(kv_type)
    if not per_token:
        return None
    mm = info.get("mmproj") or {}
    return int(info["bytes"]) + int(mm.get("bytes") or 0) + per_token * ctx + RESERVE_BYTES


def describe(info: dict[str, Any], ctx: int | None = None) -> list[str]:
    """A few sentences summarising a model's GGUF header (and its projector's)."""
    from vdr_cli import config
    from vdr_cli.render.output import human_bytes

    ctx = ctx if isinstance(ctx, int) else config.current().get("model.ctx")
    ctx = ctx if isinstance(ctx, int) else info.get("ctx_auto") or 32768
    quant = FILE_TYPES.get(info.get("file_type")) if isinstance(info.get("file_type"), int) else None
    what = info.get("name") or info["model"]
    lines = [f"{info['model']}: {what} ({info.get('architecture') or 'unknown architecture'}"
             + (f", {quant}" if quant else "") + f"), {human_bytes(info['bytes'])}"]
    trained = info.get("context_length")
    if trained:
        lines.append(f"  context: trained for {trained:,} tokens; vdr uses {ctx:,} (--ctx or model.ctx)")
    mm = info.get("mmproj")
    if mm:
        lines.append(f"  vision: yes, projector {mm.get('projector_type') or '?'} ({human_bytes(mm['bytes'])})")
    else:
        lines.append("  vision: no projector registered, so text only (vdr model add NAME --gguf … --mmproj …)")
    lines.append("  chat template: " + ("in the file" if info.get("has_chat_template") else "none in the file: ChatML is assumed"))
    need = needed_bytes(info, ctx)
    if need is not None:
        per = info["kv_bytes_per_token"]
        lines.append(f"  memory: about {human_bytes(need)} at {ctx:,} tokens (weights, KV cache at f16, buffers); "
                     f"KV cache per token: " + ", ".join(f"{t} {human_bytes(n)}" for t, n in per.items()))
        if info.get("free_memory") and info.get("ctx_auto"):
            lines.append(f"  this machine: {human_bytes(info['free_memory'])} free now, room for a window of about "
                         f"{info['ctx_auto']:,} tokens (--ctx auto)")
    lines.append(f"  file: {info['path']}" + (f"\n  projector file: {mm['path']}" if mm else ""))
    return lines
