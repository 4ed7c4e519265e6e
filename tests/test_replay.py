"""`vdr replay`: timeline, --check, --html (rendered by headless Chromium), --list/--last, import.

The fixed traces in tests/fixtures/traces/ were written by hand (session.jsonl:
5 steps, a crop on the committed photo.png, hits, a page, an invalid turn, a
failed visit, an unknown event type).  Golden files: tests/golden/replay_*.txt;
UPDATE_GOLDEN=1 rewrites them.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

FIXTURES = Path(__file__).parent / "fixtures" / "traces"
GOLDEN = Path(__file__).parent / "golden"
SESSION = FIXTURES / "session.jsonl"
ANSWER = "Designed by Maurice Koechlin and Émile Nouguier of Gustave Eiffel's company; finished in March 1889."
BOX_RGB = (0xE6, 0x00, 0x7E)


def lines_of(path: Path = SESSION) -> list[str]:
    return path.read_text("utf-8").splitlines()


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), "utf-8")
    return path


def golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(actual, "utf-8")
    assert actual == path.read_text("utf-8"), f"differs from {path} (UPDATE_GOLDEN=1 rewrites it)"


# --- the timeline -------------------------------------------------------------

def test_text_golden(vdr):
    r = vdr("replay", str(SESSION), "--text", "--width", "100")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stderr == b""
    golden("replay_session.txt", r.stdout.decode())


def test_text_full_golden(vdr):
    r = vdr("replay", str(SESSION), "--text", "--width", "100", "--full")
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode()
    assert "Maurice Koechlin — https://en.wikipedia.org/wiki/Maurice_Koechlin" in out  # no "… more hits"
    golden("replay_session_full.txt", out)


def test_text_has_no_escape_codes_when_piped(vdr):
    out = vdr("replay", str(SESSION), "--text").stdout.decode()
    assert "\x1b[" not in out
    for part in ("Q: Who designed the tower", "step 2", "→ crop_and_search", "5 hits", "cached", ANSWER,
                 "ended: answer · 5 steps · 3 calls", "time: 12.3 s total · model 6.8 s · tools 5.5 s"):
        assert part in out, part


def test_text_drops_terminal_control_sequences(vdr, tmp_path):
    lines = lines_of()
    result = json.loads(lines[3])
    result["data"][0]["title"] = "Evil\x1b]0;pwned\x07 title\x1b[2J"
    trace = write(tmp_path / "t.jsonl", lines[:3] + [json.dumps(result)] + lines[4:])
    out = vdr("replay", str(trace), "--text").stdout.decode()
    assert "\x1b" not in out and "\x07" not in out and "Evil]0;pwned title[2J" in out


def test_incomplete_trace_says_so(vdr):
    r = vdr("replay", str(FIXTURES / "incomplete.jsonl"), "--text")
    assert r.returncode == 0
    assert "incomplete: no end event" in r.stdout.decode()


# --- JSONL pass-through ---------------------------------------------------------

def test_json_passes_lines_through_unchanged(vdr):
    original = SESSION.read_bytes()
    assert vdr("replay", str(SESSION), "--json").stdout == original
    assert vdr("replay", str(SESSION)).stdout == original  # piped stdout: JSONL
    assert b'"type":"x-annotation"' in original  # unknown types pass too


def test_stdin_dash(vdr):
    r = vdr("replay", "-", "--json", input=SESSION.read_bytes())
    assert r.returncode == 0 and r.stdout == SESSION.read_bytes()
    r = vdr("replay", "-", "--text", "--width", "100", input=SESSION.read_bytes())
    assert r.returncode == 0 and ANSWER in r.stdout.decode()
    r = vdr("replay", "-", "--check", input=SESSION.read_bytes())
    assert r.returncode == 0 and r.stderr.decode().strip() == "ok: 15 events"


def test_jq_style_selection(vdr):
    out = vdr("replay", str(SESSION), "--json").stdout.decode().splitlines()
    results = [json.loads(line) for line in out if json.loads(line).get("type") == "result"]
    assert [(r["tool"], r["ms"]) for r in results] == [("search", 850.2), ("crop_and_search", 3400.0), ("visit", 1200.0)]


@pytest.mark.parametrize("mode", ["--json", "--text"])
def test_head_closes_the_pipe_quietly(tmp_path, mode):
    lines = lines_of()
    step = json.loads(lines[1])
    body = [lines[0]] + [json.dumps({**step, "n": n}) for n in range(1, 3001)]
    big = write(tmp_path / "big.jsonl", body)
    cmd = f"set -o pipefail; {sys.executable} -m vdr_cli replay {big} {mode} | head -1"
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stderr == b""
    assert len(r.stdout.splitlines()) == 1


# --- errors --------------------------------------------------------------------

def one_error_line(r: subprocess.CompletedProcess) -> str:
    err = r.stderr.decode()
    assert "Traceback" not in err
    return err.splitlines()[0]


def test_missing_file(vdr, tmp_path):
    r = vdr("replay", str(tmp_path / "nope.jsonl"))
    assert r.returncode == 1
    assert one_error_line(r) == f"vdr replay: error: {tmp_path / 'nope.jsonl'}: no such file"


def test_empty_file(vdr, tmp_path):
    (tmp_path / "e.jsonl").write_text("\n\n")
    r = vdr("replay", str(tmp_path / "e.jsonl"), "--check")
    assert r.returncode == 1
    assert "empty trace" in one_error_line(r)


def test_directory_and_binary(vdr, tmp_path):
    assert "is a directory" in one_error_line(vdr("replay", str(tmp_path)))
    (tmp_path / "b.jsonl").write_bytes(b'{"type":"session"}\n\xff\xfe\x00')
    r = vdr("replay", str(tmp_path / "b.jsonl"))
    assert r.returncode == 1 and f"{tmp_path / 'b.jsonl'}:2: not UTF-8" in one_error_line(r)


def test_malformed_lines_are_named_and_the_rest_rendered(vdr, tmp_path):
    lines = lines_of()
    lines[6] = lines[6][:40]  # a line cut short, as by kill -9
    bad = write(tmp_path / "t.jsonl", lines)
    r = vdr("replay", str(bad), "--text")
    assert r.returncode == 1
    assert f"{bad}:7: not valid JSON" in r.stderr.decode()
    assert ANSWER in r.stdout.decode()
    assert "Traceback" not in r.stderr.decode()


def test_not_a_trace(vdr, tmp_path):
    r = vdr("replay", str(write(tmp_path / "x.jsonl", ['{"type":"hit","url":"u"}'])), "--text")
    assert r.returncode == 1 and "no session header" in one_error_line(r)


@pytest.mark.parametrize("args", [(), ("a.jsonl", "--last"), ("a.jsonl", "--text", "--json"), ("--from", "other", "x", "-o", "d"),
                                  ("--list", "a.jsonl"), ("a.jsonl", "-o", "d"), ("--width", "5", "a.jsonl")])
def test_usage_errors(vdr, args):
    r = vdr("replay", *args)
    assert r.returncode == 2, (args, r.stderr.decode())
    assert "Traceback" not in r.stderr.decode()


# --- --check -------------------------------------------------------------------

def test_check_ok(vdr):
    r = vdr("replay", str(SESSION), "--check")
    assert r.returncode == 0
    assert r.stderr.decode() == "ok: 15 events\n"
    assert r.stdout == b""


def corrupt(tmp_path: Path, edit) -> Path:
    lines = lines_of()
    events = [json.loads(line) for line in lines]
    edit(events)
    return write(tmp_path / "bad.jsonl", [json.dumps(e, ensure_ascii=False) for e in events])


def check_problems(vdr, path: Path, *extra: str) -> list[str]:
    r = vdr("replay", str(path), "--check", *extra)
    err = r.stderr.decode()
    assert "Traceback" not in err
    assert r.returncode == 1, err
    return err.splitlines()


# Line numbers in session.jsonl: 1 session, 2 step 1, 3 call c1, 4 result c1, 5 x-annotation,
# 6 step 2, 7 call c2, 8 result c2, 9 step 3, 10 step 4, 11 call c4, 12 result c4, 13 step 5,
# 14 answer, 15 end.

def test_check_malformed_json(vdr, tmp_path):
    lines = lines_of()
    lines[3] = lines[3][:50]
    problems = check_problems(vdr, write(tmp_path / "bad.jsonl", lines))
    assert len(problems) == 1 and problems[0].startswith(f"{tmp_path / 'bad.jsonl'}:4: not valid JSON ("), problems


def test_check_schema_violation(vdr, tmp_path):
    def edit(ev):
        del ev[3]["ok"]
        ev[5]["n"] = "two"
    problems = check_problems(vdr, corrupt(tmp_path, edit))
    assert any(p.endswith(":4: result: ok: required field missing") for p in problems), problems
    assert any(":6: step: n: expected integer, got string" in p for p in problems), problems


def test_check_header_not_first(vdr, tmp_path):
    path = corrupt(tmp_path, lambda ev: ev.insert(1, ev.pop(0)))
    problems = check_problems(vdr, path)
    assert problems[0] == f"{path}:1: the trace must start with a session header, not a 'step' event"
    assert f"{path}:2: the session header must be the first event (line 1 comes before it)" in problems


def test_check_no_header(vdr, tmp_path):
    path = corrupt(tmp_path, lambda ev: ev.pop(0))
    assert check_problems(vdr, path)[0] == f"{path}:1: the trace must start with a session header, not a 'step' event"


def test_check_two_headers(vdr, tmp_path):
    path = corrupt(tmp_path, lambda ev: ev.insert(5, dict(ev[0])))
    assert check_problems(vdr, path) == [f"{path}:6: second session header (the first is on line 1)"]


def test_check_steps_out_of_order(vdr, tmp_path):
    def edit(ev):
        ev[5]["n"] = 3  # step 2 recorded as 3; the next is also 3
    path = corrupt(tmp_path, edit)
    problems = check_problems(vdr, path)
    assert problems[0] == f"{path}:6: step 3 out of order: expected step 2"
    assert f"{path}:9: step 3 repeated (first on line 6)" in problems


def test_check_call_to_unknown_step(vdr, tmp_path):
    def edit(ev):
        ev[6]["step"] = 9
    path = corrupt(tmp_path, edit)
    assert check_problems(vdr, path) == [f"{path}:7: call c2 refers to step 9, which is not recorded before it"]


def test_check_result_without_call(vdr, tmp_path):
    def edit(ev):
        ev[7]["id"] = "c7"
    path = corrupt(tmp_path, edit)
    assert check_problems(vdr, path) == [f"{path}:8: result c7 answers no earlier call"]


def test_check_result_before_its_call(vdr, tmp_path):
    path = corrupt(tmp_path, lambda ev: ev.insert(6, ev.pop(7)))
    assert check_problems(vdr, path) == [f"{path}:7: result c2 answers no earlier call"]


def test_check_result_from_another_tool(vdr, tmp_path):
    def edit(ev):
        ev[7]["tool"] = "visit"
    path = corrupt(tmp_path, edit)
    assert check_problems(vdr, path) == [
        f"{path}:8: result c2 is from tool 'visit' but call c2 (line 7) was to 'crop_and_search'"]


def test_check_two_results_for_one_call(vdr, tmp_path):
    path = corrupt(tmp_path, lambda ev: ev.insert(4, dict(ev[3])))
    assert check_problems(vdr, path) == [f"{path}:5: second result for call c1 (the first is on line 4)"]


def test_check_answer_to_unknown_step(vdr, tmp_path):
    def edit(ev):
        ev[13]["step"] = 6
    path = corrupt(tmp_path, edit)
    assert check_problems(vdr, path) == [f"{path}:14: answer refers to step 6, which is not recorded before it"]


def test_check_answer_without_step(vdr, tmp_path):
    def edit(ev):
        del ev[13]["step"]
    path = corrupt(tmp_path, edit)
    assert check_problems(vdr, path) == [f"{path}:14: answer names no step"]


def test_check_end_not_last(vdr, tmp_path):
    path = corrupt(tmp_path, lambda ev: ev.insert(13, ev.pop(14)))
    problems = check_problems(vdr, path)
    assert problems == [f"{path}:15: answer after the end event (line 14); end must be last"]


def test_check_two_ends(vdr, tmp_path):
    path = corrupt(tmp_path, lambda ev: ev.append(dict(ev[14])))
    assert check_problems(vdr, path) == [f"{path}:16: second end event (the first is on line 15)"]


def test_check_incomplete(vdr):
    path = FIXTURES / "incomplete.jsonl"
    assert check_problems(vdr, path) == [
        f"{path}:8: incomplete: no end event (the session was cut short, or is still running)"]
    r = vdr("replay", str(path), "--check", "--allow-incomplete")
    assert r.returncode == 0
    assert r.stderr.decode() == "ok: 8 events (incomplete: no end event)\n"


# --- --list and --last ----------------------------------------------------------

def _install_traces(home: Path) -> Path:
    folder = home / "data" / "traces"
    folder.mkdir(parents=True)
    lines = lines_of()
    older = json.loads(lines[0]) | {"id": "older0000001", "ts": "2025-12-31T23:00:00.000Z", "question": "An older question?"}
    write(folder / "20251231-230000-older0000001.jsonl", [json.dumps(older)] + lines[1:6])
    shutil.copy(SESSION, folder / "20260102-030405-fixture0001.jsonl")
    (folder / "junk.jsonl").write_text("not json\n")
    return folder


def test_list_and_last(vdr, vdr_home):
    folder = _install_traces(vdr_home)
    r = vdr("replay", "--list")
    assert r.returncode == 0
    rows = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert [(x["id"], x["steps"], x["reason"]) for x in rows] == [("fixture0001", 5, "answer"), ("older0000001", 2, "incomplete")]
    assert rows[0]["path"] == str(folder / "20260102-030405-fixture0001.jsonl")
    assert "junk.jsonl: not a vdr trace" in r.stderr.decode()
    text = vdr("replay", "--list", "--text").stdout.decode().splitlines()
    assert text[0].startswith("2026-01-02 03:04    5 steps  answer") and "Who designed the tower" in text[0]
    assert "incomplete" in text[1] and "An older question?" in text[1]
    r = vdr("replay", "--last", "--json")
    assert r.returncode == 0 and r.stdout == SESSION.read_bytes()


def test_list_and_last_with_no_traces(vdr):
    r = vdr("replay", "--list")
    assert r.returncode == 0 and r.stdout == b""
    r = vdr("replay", "--last")
    assert r.returncode == 1 and "no session traces in" in one_error_line(r)


# --- --html ---------------------------------------------------------------------

def render(vdr, tmp_path: Path, trace: Path = SESSION, name: str = "report.html") -> str:
    out = tmp_path / name
    r = vdr("replay", str(trace), "--html", str(out))
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == b""
    return out.read_text("utf-8")


def test_html_structure(vdr, tmp_path):
    page = render(vdr, tmp_path)
    assert page.startswith("<!DOCTYPE html>")
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "Who designed the tower in this picture, and when was it finished?" in page
    assert html_text(ANSWER) in page
    # The session image, inline, with the cropped box numbered on it (SVG, no script needed).
    assert re.search(r'<svg viewBox="0 0 320 240"[^>]*>', page)
    assert '<image href="data:image/png;base64,' in page
    assert '<g class="box" id="box-1" data-box="1"><rect x="80.0" y="24.0" width="112.0" height="144.0"/>' in page
    assert re.search(r'<text [^>]*>1</text>', page)
    # The crop itself, embedded; links for hits; summaries; thoughts collapsible; timings.
    assert re.search(r'<figure class="crop" id="crop-1" data-box="1"><img src="data:image/png;base64,', page)
    assert '<a href="https://en.wikipedia.org/wiki/Maurice_Koechlin" rel="noopener noreferrer nofollow"' in page
    assert "designed by Koechlin and Nouguier of Eiffel&#x27;s company" in page
    assert page.count('<details class="think">') == 5
    assert "850 ms" in page and "3.4 s cached" in page and "12.3 s total" in page
    # No network: every src and href of an image is a data: URL; one script, ours.
    assert not re.search(r'(?:src|href)="(?!data:|#|https?://[^"]*"\s+rel=)', page.replace('<a href="#', ''))
    assert page.count("<script") == 1


def html_text(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def test_html_escapes_trace_content(vdr, tmp_path):
    page = render(vdr, tmp_path)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; History of the tower" in page
    assert "&lt;b&gt;opened&lt;/b&gt;" in page
    assert 'href="javascript:' not in page and "Not a real link" in page


def test_html_without_image_files_still_draws_boxes(vdr, tmp_path):
    shutil.copy(SESSION, tmp_path / "t.jsonl")  # photo.png and crop_1.png are not beside it
    page = render(vdr, tmp_path, tmp_path / "t.jsonl")
    assert "image file not found" in page and 'id="box-1"' in page and "crop file not found" in page


def test_html_downscales_large_images(vdr, tmp_path):
    from PIL import Image

    Image.new("RGB", (2400, 1800), (10, 120, 200)).save(tmp_path / "big.jpg", quality=90)
    lines = lines_of()
    header = json.loads(lines[0])
    header["images"] = [{"id": "image_1", "path": "big.jpg", "width": 2400, "height": 1800}]
    trace = write(tmp_path / "t.jsonl", [json.dumps(header)] + lines[1:])
    page = render(vdr, tmp_path, trace)
    data = re.search(r'<image href="data:image/jpeg;base64,([^"]+)"', page).group(1)
    with Image.open(io.BytesIO(base64.b64decode(data))) as im:
        assert max(im.size) <= 1024 and im.size == (1024, 768)
    assert '<svg viewBox="0 0 2400 1800"' in page  # boxes stay in source pixels


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _run_chromium(browser: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    return subprocess.run([browser, *flags, *args], capture_output=True, timeout=120)


def test_html_in_headless_chromium(vdr, tmp_path):
    from PIL import Image

    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    render(vdr, tmp_path)
    url = (tmp_path / "report.html").as_uri()
    dom = _run_chromium(browser, tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr.decode()[-2000:]
    text = dom.stdout.decode()
    assert html_text(ANSWER) in text or ANSWER in text
    assert 'id="box-1"' in text and re.search(r"<text [^>]*>1</text>", text)
    shot = tmp_path / "shot.png"
    r = _run_chromium(browser, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", url)
    assert r.returncode == 0 and shot.is_file() and shot.stat().st_size > 1000, r.stderr.decode()[-2000:]
    with Image.open(shot) as im:
        assert im.format == "PNG" and im.size == (1280, 2000)
        near = pixels_near(im.convert("RGB"), BOX_RGB)
    # The box colour is used for nothing but the outlines (on the image and around the crop).
    assert near >= 200, f"only {near} pixels of the box colour in the screenshot"


def pixels_near(rgb, colour: tuple[int, int, int], tolerance: int = 12) -> int:
    """How many pixels are within `tolerance` of `colour` on every channel (Pillow only, fast)."""
    from PIL import ImageChops

    masks = [band.point(lambda v, c=c: 255 if abs(v - c) <= tolerance else 0) for band, c in zip(rgb.split(), colour)]
    both = ImageChops.multiply(ImageChops.multiply(masks[0], masks[1]), masks[2])
    return both.histogram()[255]


# --- --from reference -----------------------------------------------------------

def test_import_reference_episodes(vdr, tmp_path):
    out = tmp_path / "traces"
    r = vdr("replay", "--from", "reference", str(FIXTURES / "reference_episodes.jsonl"), "-o", str(out))
    assert r.returncode == 0, r.stderr.decode()
    rows = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert [(x["id"], x["steps"], x["calls"], x["reason"]) for x in rows] == [
        ("ref-001", 3, 2, "answer"), ("ref/002 odd id", 3, 1, "max_steps"), ("ref-003", 0, 0, "error")]
    assert sorted(p.name for p in out.iterdir()) == ["ref-001.image_1.png", "ref-001.jsonl", "ref-003.jsonl", "ref_002_odd_id.jsonl"]
    for trace in out.glob("*.jsonl"):
        check = vdr("replay", str(trace), "--check")
        assert check.returncode == 0, check.stderr.decode()
    events = [json.loads(line) for line in (out / "ref-001.jsonl").read_text().splitlines()]
    header = events[0]
    assert header["question"] == "What is this landmark?" and header["date"] == "2026-01-02"
    assert header["tools"] == ["search", "crop_and_search", "visit"]
    image = header["images"][0]
    assert (image["id"], image["width"], image["height"]) == ("image_1", 64, 48) and Path(image["path"]).is_file()
    kinds = [e["type"] for e in events]
    assert kinds == ["session", "step", "call", "result", "step", "call", "result", "step", "answer", "end"]
    assert events[3]["content"].startswith("A Google search for 'iron lattice tower'") and events[3]["content"].endswith(")")
    assert events[5]["args"] == {"image_id": "image_1", "bbox": [[300, 150, 700, 850]], "goal": "name"}
    assert events[-1]["reference"]["termination_reason"] == "answer"
    second = [json.loads(line) for line in (out / "ref_002_odd_id.jsonl").read_text().splitlines()]
    assert second[0]["images"] == [{"id": "image_1"}]  # "<base64-image>": no pixels kept
    assert second[1]["error"] == "no <tool_call> or <answer>" and second[2]["prompt"].startswith("Error: Invalid content format")
    assert second[5]["prompt"].startswith("You have reached the maximum number")
    # The imported crop_and_search box is drawn from the call's 0-1000 bbox.
    page = render(vdr, tmp_path, out / "ref-001.jsonl")
    assert '<g class="box" id="box-1" data-box="1"><rect x="19.2" y="7.2" width="25.6" height="33.6"/>' in page


def test_import_reports_bad_lines_and_goes_on(vdr, tmp_path):
    lines = lines_of(FIXTURES / "reference_episodes.jsonl")
    source = write(tmp_path / "episodes.jsonl", [lines[0], "{broken", '{"id": 5}'])
    r = vdr("replay", "--from", "reference", str(source), "-o", str(tmp_path / "o"), "--text")
    assert r.returncode == 3
    err = r.stderr.decode()
    assert f"{source}:2: not valid JSON" in err and f"{source}:3: not a reference episode" in err
    assert r.stdout.decode().startswith(str(tmp_path / "o" / "ref-001.jsonl"))
