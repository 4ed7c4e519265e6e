"""A GGUF header with Qwen3-VL-8B's real text hyperparameters (no tensors): what `--ctx auto` reads.

Values from Qwen/Qwen3-VL-8B-Instruct's config.json (text_config), as llama.cpp's
convert_hf_to_gguf.py writes them for architecture `qwen3vl`: 36 layers, hidden
4096, 32 attention heads, 8 KV heads, head_dim 128, max_position_embeddings 262144.
"""

from __future__ import annotations

from pathlib import Path

QWEN3VL_8B = {"block_count": 36, "embedding_length": 4096, "head_count": 32, "head_count_kv": 8,
              "key_length": 128, "value_length": 128, "context_length": 262144}
Q4_K_M_BYTES = 5_027_785_216  # Vision-DeepResearch-8B-Q4_K_M.gguf, about 5.03 GB (8.2 B parameters)
MMPROJ_F16_BYTES = 1_160_000_000  # its F16 vision projector, about 1.16 GB


def write_header(path: Path) -> Path:
    import gguf

    w = gguf.GGUFWriter(str(path), "qwen3vl")
    w.add_name("Qwen3-VL-8B (header only)")
    w.add_block_count(QWEN3VL_8B["block_count"])
    w.add_embedding_length(QWEN3VL_8B["embedding_length"])
    w.add_head_count(QWEN3VL_8B["head_count"])
    w.add_head_count_kv(QWEN3VL_8B["head_count_kv"])
    w.add_key_length(QWEN3VL_8B["key_length"])
    w.add_value_length(QWEN3VL_8B["value_length"])
    w.add_context_length(QWEN3VL_8B["context_length"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    return path
