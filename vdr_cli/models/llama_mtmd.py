"""Low-level glue over llama-cpp-python's ctypes bindings (llama.cpp + libmtmd).

Owns raw pointers and frees them explicitly; knows nothing about chat turns.
``llama_cpp`` is imported on first use so that importing this module stays cheap.
"""

from __future__ import annotations

import ctypes
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .base import ImageInput
from .errors import ModelError, ModelLoadError
from .memory import KV_TYPES

_LOG_LINES: deque[str] = deque(maxlen=20)  # recent warnings/errors, for one-line messages
_LOG_CALLBACK: Any = None  # a reference must outlive every llama.cpp call
_BACKEND_READY = False
_VERBOSE = False


def llama() -> Any:
    import llama_cpp

    return llama_cpp


def mtmd() -> Any:
    from llama_cpp import mtmd_cpp

    return mtmd_cpp


def init_backend(verbose: bool) -> None:
    """Initialise llama.cpp once; route its and libmtmd's logs to a quiet sink unless verbose."""
    global _BACKEND_READY, _LOG_CALLBACK, _VERBOSE
    lc = llama()
    _VERBOSE = verbose
    if _LOG_CALLBACK is None:
        last_level = [0]

        def sink(level: int, text: bytes, _user: Any) -> None:
            # level 5 (CONT) continues the previous line's level; 3 = WARN, 4 = ERROR
            level = last_level[0] if level == 5 else level
            last_level[0] = level
            if level >= 3:
                _LOG_LINES.append(text.decode("utf-8", "replace").strip())
            if _VERBOSE:
                print(text.decode("utf-8", "replace"), end="", flush=True, file=sys.stderr)

        _LOG_CALLBACK = lc.llama_log_callback(sink)
        lc.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
        mtmd().mtmd_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
        mtmd().mtmd_helper_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
    if not _BACKEND_READY:
        lc.llama_backend_init()
        _BACKEND_READY = True


def last_log_error() -> str:
    """The latest llama.cpp warning/error line (for a one-line failure message)."""
    lines = [line for line in _LOG_LINES if line]
    return "; ".join(part.strip() for part in lines[-1].splitlines()) if lines else ""


def _load_failure(what: str, path: Path) -> ModelLoadError:
    detail = last_log_error()
    return ModelLoadError(f"cannot load {what} {path}" + (f": {detail}" if detail else ""))


def load_model(path: Path, n_gpu_layers: int) -> Any:
    lc = llama()
    if not path.is_file():
        raise ModelLoadError(f"cannot load model {path}: no such file")
    params = lc.llama_model_default_params()
    params.n_gpu_layers = n_gpu_layers if n_gpu_layers >= 0 else 0x7FFFFFFF
    _LOG_LINES.clear()
    model = lc.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise _load_failure("model", path)
    return model


def new_context(model: Any, *, n_ctx: int, n_batch: int, n_threads: int,
                flash_attn: bool | None, n_seq_max: int, kv_unified: bool = True,
                kv_type: str = "f16") -> Any:
    lc = llama()
    params = lc.llama_context_default_params()
    if kv_type not in KV_TYPES:
        raise ModelLoadError(f"unknown KV cache type {kv_type!r} (use {', '.join(KV_TYPES)})")
    params.type_k = params.type_v = getattr(lc, f"GGML_TYPE_{kv_type.upper()}")
    params.n_ctx = n_ctx
    params.n_batch = params.n_ubatch = n_batch
    params.n_threads = params.n_threads_batch = n_threads
    params.n_seq_max = n_seq_max
    # kv_unified: one pool of KV cells for all sequences (side work borrows free
    # cells instead of halving the conversation's context).  Otherwise each
    # sequence has a stream of n_ctx / n_seq_max cells of its own, and its
    # logits do not depend on what other sequences hold.
    params.kv_unified = kv_unified
    params.no_perf = False  # keep llama.cpp's own token counters (stats, bench)
    params.flash_attn_type = (lc.LLAMA_FLASH_ATTN_TYPE_AUTO if flash_attn is None else
                              lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else
                              lc.LLAMA_FLASH_ATTN_TYPE_DISABLED)
    ctx = lc.llama_init_from_model(model, params)
    if not ctx:
        raise ModelLoadError("cannot create a llama.cpp context"
                             + (f": {last_log_error()}" if last_log_error() else ""))
    return ctx


def model_meta(model: Any, key: str) -> str | None:
    lc = llama()
    size = 1 << 16
    buf = ctypes.create_string_buffer(size)
    n = lc.llama_model_meta_val_str(model, key.encode(), buf, size)
    if n < 0:
        return None
    if n >= size:  # templates can be long
        buf = ctypes.create_string_buffer(n + 1)
        lc.llama_model_meta_val_str(model, key.encode(), buf, n + 1)
    return buf.value.decode("utf-8", "replace")


class Vocab:
    """Tokenizer and detokenizer of one model; token pieces are cached."""

    def __init__(self, model: Any) -> None:
        lc = llama()
        self.ptr = lc.llama_model_get_vocab(model)
        self.n_vocab = lc.llama_vocab_n_tokens(self.ptr)
        self.bos = lc.llama_vocab_bos(self.ptr)
        self.eos = lc.llama_vocab_eos(self.ptr)
        self.add_bos = bool(lc.llama_vocab_get_add_bos(self.ptr))
        self._pieces: dict[int, bytes] = {}

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        """Token ids of `text`; `special=False` for content, whose `<|im_end|>` must
        stay text (only control-token spellings are affected: added plain tokens
        such as Qwen's `<tool_call>` are matched either way, as in training)."""
        lc = llama()
        data = text.encode("utf-8")
        cap = len(data) + 8
        out = (lc.llama_token * cap)()
        n = lc.llama_tokenize(self.ptr, data, len(data), out, cap, False, special)
        if n < 0:
            raise ModelError(f"cannot tokenize a text of {len(data)} bytes")
        return list(out[:n])

    def piece(self, token: int) -> bytes:
        cached = self._pieces.get(token)
        if cached is None:  # a buffer per call: sessions in several threads share the vocabulary
            buf = ctypes.create_string_buffer(256)
            n = llama().llama_token_to_piece(self.ptr, token, buf, len(buf), 0, False)
            cached = self._pieces[token] = buf.raw[:max(n, 0)]
        return cached

    def special_text(self, token: int) -> str:
        """A token's text with special tokens spelled out (``<|begin_of_text|>``), for templates."""
        if token < 0:
            return ""
        buf = ctypes.create_string_buffer(256)
        n = llama().llama_token_to_piece(self.ptr, token, buf, len(buf), 0, True)
        return buf.raw[:max(n, 0)].decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        return bool(llama().llama_vocab_is_eog(self.ptr, token))

    def single_token(self, text: str) -> int | None:
        ids = self.tokenize(text)
        return ids[0] if len(ids) == 1 else None


@dataclass
class Chunk:
    """A text or image piece of a tokenized prompt (image handles live in their ChunkList)."""

    is_image: bool
    n_tokens: int
    n_pos: int
    tokens: list[int]
    handle: Any = None


class ChunkList:
    """The chunks of one mtmd_tokenize call; free with ``close`` (or ``with``)."""

    def __init__(self, handle: Any, chunks: list[Chunk]) -> None:
        self.handle = handle
        self.chunks = chunks

    def __enter__(self) -> "ChunkList":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.handle is not None:
            mtmd().mtmd_input_chunks_free(self.handle)
            self.handle = None


class Projector:
    """A libmtmd context: the vision encoder + projector paired with a text model."""

    def __init__(self, path: Path, model: Any, *, n_threads: int, use_gpu: bool,
                 flash_attn: bool | None) -> None:
        m, lc = mtmd(), llama()
        if not path.is_file():
            raise ModelLoadError(f"cannot load projector {path}: no such file")
        params = m.mtmd_context_params_default()
        params.use_gpu = use_gpu
        params.n_threads = n_threads
        params.print_timings = False
        params.flash_attn_type = (lc.LLAMA_FLASH_ATTN_TYPE_AUTO if flash_attn is None else
                                  lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else
                                  lc.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        _LOG_LINES.clear()
        self.ctx = m.mtmd_init_from_file(str(path).encode(), model, params)
        if not self.ctx:
            raise _load_failure("projector", path)
        if not m.mtmd_support_vision(self.ctx):
            self.free()
            raise ModelLoadError(f"projector {path} has no vision encoder")
        self.marker = (m.mtmd_get_marker(self.ctx) or m.mtmd_default_marker()).decode()
        self.uses_mrope = bool(m.mtmd_decode_use_mrope(self.ctx))

    def _bitmap(self, image: ImageInput) -> Any:
        m = mtmd()
        try:
            data = image.read_bytes()
        except OSError as exc:
            raise ModelError(f"image {image.id}: cannot read {image.path}: {exc.strerror}") from None
        from vdr_cli.errors import VdrError
        from vdr_cli.tools.images import upright_rgb

        # Decoded here, not by libmtmd's stb_image, which ignores EXIF orientation: the
        # model must see the upright pixels that crop_and_search boxes refer to (and
        # Pillow is what the reference's vLLM decodes with).
        try:
            img = upright_rgb(data, str(image.path or image.id))
        except VdrError as exc:
            raise ModelError(f"image {image.id}: cannot decode the image data ({exc.message})") from None
        rgb = img.tobytes()
        buf = (ctypes.c_uint8 * len(rgb)).from_buffer_copy(rgb)
        bitmap = m.mtmd_bitmap_init(img.width, img.height, buf)
        if not bitmap:
            raise ModelError(f"image {image.id}: cannot decode the image data")
        m.mtmd_bitmap_set_id(bitmap, image.id.encode())
        return bitmap

    def tokenize(self, text: str, images: Sequence[ImageInput]) -> ChunkList:
        """Split ``text`` (one marker per image) into text and image chunks."""
        m = mtmd()
        bitmaps = [self._bitmap(img) for img in images]
        handle = m.mtmd_input_chunks_init()
        try:
            data = text.encode("utf-8")
            inp = m.mtmd_input_text()
            inp.text, inp.text_len = data, len(data)
            inp.add_special, inp.parse_special = False, True
            arr = (m.mtmd_bitmap_p_ctypes * max(len(bitmaps), 1))(*bitmaps)
            rc = m.mtmd_tokenize(self.ctx, handle, ctypes.byref(inp), arr, len(bitmaps))
            if rc != 0:
                raise ModelError(f"cannot tokenize the turn with its {len(images)} image(s) "
                                 f"(mtmd_tokenize code {rc})")
            chunks = []
            for i in range(m.mtmd_input_chunks_size(handle)):
                c = m.mtmd_input_chunks_get(handle, i)
                is_image = m.mtmd_input_chunk_get_type(c) != m.MTMD_INPUT_CHUNK_TYPE_TEXT
                n_tok = m.mtmd_input_chunk_get_n_tokens(c)
                tokens: list[int] = []
                if not is_image:
                    n_out = ctypes.c_size_t()
                    ptr = m.mtmd_input_chunk_get_tokens_text(c, ctypes.byref(n_out))
                    tokens = list(ptr[:n_out.value]) if n_out.value else []
                chunks.append(Chunk(is_image, n_tok, m.mtmd_input_chunk_get_n_pos(c), tokens, c))
        except BaseException:
            m.mtmd_input_chunks_free(handle)
            raise
        finally:
            for bitmap in bitmaps:
                m.mtmd_bitmap_free(bitmap)
        return ChunkList(handle, chunks)

    def eval_image(self, ctx: Any, chunk: Chunk, pos: int, seq_id: int, n_batch: int) -> int:
        """Encode one image chunk and decode its embeddings at ``pos``; return the next position."""
        lc, m = llama(), mtmd()
        # For image chunks the helper overwrites new_n_past (M-RoPE: pos + n_pos).
        new_pos = lc.llama_pos(pos)
        rc = m.mtmd_helper_eval_chunk_single(self.ctx, ctx, chunk.handle, pos, seq_id,
                                             n_batch, False, ctypes.byref(new_pos))
        if rc != 0:
            raise ModelError(f"image evaluation failed (code {rc})"
                             + (f": {last_log_error()}" if last_log_error() else ""))
        return int(new_pos.value)

    def free(self) -> None:
        if self.ctx:
            mtmd().mtmd_free(self.ctx)
            self.ctx = None


def seq_remove(ctx: Any, seq_id: int, from_pos: int = -1) -> None:
    """Drop a sequence's KV cells at positions >= from_pos (all with -1)."""
    lc = llama()
    lc.llama_memory_seq_rm(lc.llama_get_memory(ctx), seq_id, from_pos, -1)


def last_logits(ctx: Any, n_vocab: int) -> list[float]:
    ptr = llama().llama_get_logits_ith(ctx, -1)
    return list(ptr[:n_vocab])


def engine_decoded(ctx: Any) -> int:
    """Tokens (and image embeddings) llama.cpp itself counts as decoded in ``ctx``."""
    llama().llama_synchronize(ctx)  # llama.cpp adds queued tokens to its counters on sync
    data = llama().llama_perf_context(ctx)
    # It reports max(1, n) for each counter; a zero time tells a real 0 apart.
    n_prompt = data.n_p_eval if data.t_p_eval_ms > 0 else 0
    n_single = data.n_eval if data.t_eval_ms > 0 else 0
    return int(n_prompt + n_single)
