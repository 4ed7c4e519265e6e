"""`vdr crop` and the crop library, on real images made here with Pillow."""

from __future__ import annotations

import io
import json
import struct
import time
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from vdr_cli.errors import InputError, UsageError
from vdr_cli.tools.crop import BoxError, CropOptions, make_crops, parse_box, plan_regions
from vdr_cli.tools.images import open_source

RED, BLUE = (220, 20, 20), (20, 20, 220)


def two_halves(w: int, h: int, left=RED, right=BLUE) -> Image.Image:
    img = Image.new("RGB", (w, h), left)
    img.paste(right, (w // 2, 0, w, h))
    return img


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.jpg"
    two_halves(800, 600).save(path, quality=95)
    return path


def events(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.decode().splitlines()]


def near(color, expected, tol=40) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(color[:3], expected))


def fake_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height (no real pixel data)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


# --- boxes and units ---------------------------------------------------------

def test_parse_box_forms():
    assert parse_box("1,2,3,4") == (1, 2, 3, 4)
    assert parse_box("[1.5 2 3 4]") == (1.5, 2, 3, 4)
    for bad in ("1,2,3", "a,b,c,d", "1,2,3,inf"):
        with pytest.raises(UsageError):
            parse_box(bad)


def test_units_and_scales():
    [r] = plan_regions((100, 100, 900, 500), "1000", [1], 1000, 500)
    assert r.box == (100, 50, 900, 250)
    [r] = plan_regions((0.25, 0.5, 0.75, 1.0), "frac", [1], 400, 200)
    assert r.box == (100, 100, 300, 200)
    one, two, big = plan_regions((40, 40, 60, 60), "px", [1, 2, 50], 100, 100)
    assert one.box == (40, 40, 60, 60) and two.box == (30, 30, 70, 70) and big.box == (0, 0, 100, 100)


def test_bad_boxes():
    with pytest.raises(BoxError, match="inverted"):
        plan_regions((50, 50, 10, 10), "px", [1], 100, 100)
    with pytest.raises(BoxError, match="empty"):
        plan_regions((10, 10, 10, 50), "px", [1], 100, 100)
    with pytest.raises(BoxError, match="outside"):
        plan_regions((200, 200, 300, 300), "px", [1], 100, 100)
    [r] = plan_regions((-10, 50, 120, 90), "px", [1], 100, 100)
    assert r.clamped and r.box == (0, 50, 100, 90)


# --- pixels actually cut -------------------------------------------------------

def crop_one(tmp_path, img_bytes: bytes, box, **opts) -> tuple[dict, Image.Image]:
    source = open_source(img_bytes, "img", 10**9)
    [ev] = list(make_crops(source, [box], CropOptions(out_dir=tmp_path / "out", **opts)))
    assert not isinstance(ev, Exception), ev
    out = Image.open(ev["path"])
    out.load()
    return ev, out


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_exif_orientation_applies_before_boxes(tmp_path):
    stored = two_halves(200, 100)  # stored: red left, blue right
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90° clockwise: red on top
    data = encode(stored, "JPEG", exif=exif.tobytes(), quality=95)
    src = open_source(data, "rot.jpg", 10**9)
    assert (src.width, src.height) == (100, 200)
    ev, top = crop_one(tmp_path, data, (0, 0, 100, 90))
    assert near(top.getpixel((50, 45)), RED)
    ev, bottom = crop_one(tmp_path, data, (0, 110, 100, 200))
    assert near(bottom.getpixel((50, 45)), BLUE)


def test_cmyk_palette_16bit_alpha_and_animation(tmp_path):
    cmyk = Image.new("CMYK", (64, 64), (0, 255, 255, 0))  # red in CMYK
    _, out = crop_one(tmp_path, encode(cmyk, "JPEG"), None, fmt="png")
    assert out.mode == "RGB" and near(out.getpixel((5, 5)), (255, 0, 0), 60)

    pal = Image.new("P", (32, 32), 1)
    pal.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    pal.info["transparency"] = 0
    pal.paste(0, (0, 0, 16, 32))
    _, out = crop_one(tmp_path, encode(pal, "PNG", transparency=0), None)
    assert out.mode == "RGBA" and out.getpixel((4, 4))[3] == 0 and near(out.getpixel((20, 4)), (0, 200, 0))
    _, flat = crop_one(tmp_path, encode(pal, "PNG", transparency=0), None, fmt="jpeg")
    assert flat.mode == "RGB" and near(flat.getpixel((4, 4)), (255, 255, 255))  # transparent → white, not black

    deep = Image.new("I;16", (16, 16))
    deep.putdata([65535 if x < 8 else 32768 for y in range(16) for x in range(16)])
    _, out = crop_one(tmp_path, encode(deep, "PNG"), None)
    assert out.mode == "L" and out.getpixel((2, 2)) == 255 and abs(out.getpixel((12, 2)) - 128) <= 1

    rgba = Image.new("RGBA", (20, 20), (10, 200, 10, 128))
    _, out = crop_one(tmp_path, encode(rgba, "PNG"), (0, 0, 10, 10), fmt="webp")
    assert out.format == "WEBP" and out.size == (10, 10)

    frames = [Image.new("RGB", (30, 30), RED), Image.new("RGB", (30, 30), BLUE)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    src = open_source(buf.getvalue(), "anim.gif", 10**9)
    assert src.frames == 2
    _, out = crop_one(tmp_path, buf.getvalue(), None)
    assert near(out.convert("RGB").getpixel((10, 10)), RED)  # the first frame


def test_min_and_max_side_and_draft(tmp_path):
    data = encode(two_halves(2400, 1600), "JPEG", quality=90)
    ev, out = crop_one(tmp_path, data, (0, 0, 40, 20), min_side=200)
    assert out.size == (400, 200) and (ev["width"], ev["height"]) == (400, 200)
    ev, out = crop_one(tmp_path, data, None, max_side=300)
    assert out.size == (300, 200)
    assert near(out.getpixel((10, 100)), RED) and near(out.getpixel((290, 100)), BLUE)


def test_content_addressed_and_reused(tmp_path):
    data = encode(two_halves(100, 100), "PNG")
    ev1, _ = crop_one(tmp_path, data, (10, 10, 50, 50))
    mtime = Path(ev1["path"]).stat().st_mtime_ns
    ev2, _ = crop_one(tmp_path, data, (10, 10, 50, 50))
    assert ev1["path"] == ev2["path"] and Path(ev2["path"]).stat().st_mtime_ns == mtime
    ev3, _ = crop_one(tmp_path, data, (10, 10, 50, 51))
    assert ev3["path"] != ev1["path"]


def test_bad_images(tmp_path):
    with pytest.raises(InputError, match="not an image"):
        open_source(b"hello world", "notes.txt", 10**9)
    with pytest.raises(InputError, match="empty file"):
        open_source(b"", "empty.jpg", 10**9)
    with pytest.raises(InputError, match=r"100000×100000 .*over the 200 Mpx limit"):
        open_source(fake_png_header(100_000, 100_000), "bomb.png", 200_000_000)
    full = encode(two_halves(400, 300), "JPEG")
    src = open_source(full[: len(full) // 2], "cut.jpg", 10**9)
    with pytest.raises(InputError, match="cut.jpg: cannot decode image \\(image file is truncated\\)"):
        list(make_crops(src, [None], CropOptions(out_dir=tmp_path)))


# --- the command, through real processes ---------------------------------------

def test_cli_boxes_scales_and_events(vdr, photo, tmp_path):
    r = vdr("crop", str(photo), "--box", "120,80,640,500", "--scale", "1,2", "--out", str(tmp_path / "crops"))
    assert r.returncode == 0, r.stderr
    one, two = events(r)
    assert one["type"] == "crop" and one["box"] == [120, 80, 640, 500] and one["scale"] == 1
    assert two["box"] == [0, 0, 800, 600] and two["scale"] == 2
    assert Path(one["path"]).parent == tmp_path / "crops" and Path(one["path"]).exists()
    r = vdr("crop", str(photo), "--box", "150,133,800,833", "--units", "1000")
    [ev] = events(r)
    assert ev["box"] == [120, 79, 640, 500] and Path(ev["path"]).is_file()


def test_cli_partial_and_total_failure(vdr, photo):
    r = vdr("crop", str(photo), "-b", "0,0,100,100", "-b", "50,50,10,10", "-b", "700,500,900,700")
    assert r.returncode == 3
    types = [e["type"] for e in events(r)]
    assert types == ["crop", "error", "crop"]  # in the order the boxes were given
    err = r.stderr.decode()
    assert "error: " in err and "inverted" in err and "warning:" in err and "clamped" in err
    r = vdr("crop", str(photo), "-b", "50,50,10,10")
    assert r.returncode == 1


@pytest.mark.parametrize(
    "args, status, message",
    [
        (["missing.jpg"], 1, "vdr crop: error: missing.jpg: no such file"),
        (["PHOTO", "--box", "1,2,3"], 2, "needs exactly four finite numbers"),
        (["PHOTO", "--units", "miles"], 2, "unknown units 'miles'"),
        (["PHOTO", "--scale", "0.5"], 2, "scales must be numbers >= 1"),
        (["PHOTO", "--max-pixels", "1000"], 1, "over the 0 Mpx limit"),
    ],
)
def test_cli_error_lines(vdr, photo, args, status, message):
    r = vdr("crop", *[str(photo) if a == "PHOTO" else a for a in args])
    assert r.returncode == status
    assert message in r.stderr.decode()
    assert "Traceback" not in r.stderr.decode()
    assert r.stderr.decode().count("error:") == 1


def test_cli_rejects_bad_files_in_one_line(vdr, tmp_path):
    for name, data in {"bomb.png": fake_png_header(100_000, 100_000), "text.jpg": b"not an image",
                       "cut.jpg": encode(two_halves(300, 300), "JPEG")[:900]}.items():
        (tmp_path / name).write_bytes(data)
        r = vdr("crop", str(tmp_path / name))
        assert r.returncode == 1, name
        assert len(r.stderr.decode().splitlines()) <= 2 and name in r.stderr.decode() and "Traceback" not in r.stderr.decode()


def test_cli_stdin_bytes_and_jsonl(vdr, photo, tmp_path):
    r = vdr("crop", "-", "--box", "0,0,0.5,0.5", "--units", "frac", input=photo.read_bytes())
    [ev] = events(r)
    assert ev["source"] == "<stdin>" and ev["box"] == [0, 0, 400, 300]
    lines = [
        json.dumps({"path": str(photo), "box": [10, 10, 300, 200]}),
        json.dumps({"path": str(photo), "box": [[0, 0, 500, 500], [500, 500, 1000, 1000]], "units": "1000"}),
        "{broken",
        json.dumps({"path": str(tmp_path / "gone.jpg")}),
        json.dumps({"nopath": 1}),
    ]
    r = vdr("crop", "-", input="\n".join(lines) + "\n")
    out = events(r)
    assert [e["type"] for e in out] == ["crop", "crop", "crop", "error", "error", "error"]
    assert out[1]["box"] == [0, 0, 400, 300] and out[2]["box"] == [400, 300, 800, 600]
    assert out[3]["where"] == "<stdin>:3" and "gone.jpg: no such file" in out[4]["message"]
    assert r.returncode == 3
    # crop events are JSONL records with a path: they can be cropped again
    again = vdr("crop", "-", "--box", "0,0,10,10", input=json.dumps(out[0]) + "\n")
    assert events(again)[0]["width"] == 10


def test_cli_head_closes_pipe_quietly(photo, tmp_path):
    script = (f"set -o pipefail; {sys.executable} -m vdr_cli crop {photo} -b 0,0,100,100 -b 0,0,200,200 "
              f"-s 1,1.5,2,3 --out {tmp_path} | head -1")
    r = subprocess.run(["bash", "-c", script], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["type"] == "crop"
    assert r.stderr == b""


def test_cli_prefetched_decode_keeps_orientation_and_limits(vdr, tmp_path):
    """`vdr crop IMAGE` decodes while the CLI starts (tools/prefetch.py): the result must be
    the same pixels as the ordinary path, EXIF-rotated, and never bypass --max-pixels."""
    stored = two_halves(200, 100)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rot.jpg"
    stored.save(path, exif=exif.tobytes(), quality=95)
    r = vdr("crop", str(path), "-b", "0,0,100,90", "--out", str(tmp_path / "o"))
    [ev] = events(r)
    out = Image.open(ev["path"])
    assert out.size == (100, 90) and near(out.getpixel((50, 45)), RED)
    r = vdr("crop", str(path), "--max-pixels", "1000")
    assert r.returncode == 1 and "over the 0 Mpx limit" in r.stderr.decode()


def test_prefetch_is_used_only_for_the_same_unchanged_file(tmp_path):
    from vdr_cli.tools import prefetch

    path = tmp_path / "p.png"
    two_halves(40, 20).save(path)
    assert prefetch.crop_target(["vdr", "crop", "-b", "1,2,3,4", str(path), "--json"]) == str(path)
    assert prefetch.crop_target(["vdr", "crop", "-", "-b", "1,2,3,4"]) is None
    assert prefetch.crop_target(["vdr", "search", "x"]) is None
    prefetch.start(str(path))
    assert prefetch.take(str(path)).image.size == (40, 20)
    prefetch.start(str(path))
    time.sleep(0.2)
    two_halves(50, 20).save(path)  # changed after it was read
    assert prefetch.take(str(path)) is None
