#!/usr/bin/env python3
"""`vdr crop` of a 24-megapixel JPEG at 3 scales, whole process, median (goal <= 0.3 s).

Each run writes into a fresh folder, so no crop is served from a previous
run's files.

    python bench/crop.py [--runs N] [--max-side N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import report, time_runs, vdr_command  # noqa: E402


def make_photo(path: Path) -> None:
    from PIL import Image, ImageDraw

    # 6000×4000 with gradients and shapes: compresses like a photo, not like a flat colour.
    img = Image.linear_gradient("L").resize((6000, 4000)).convert("RGB")
    draw = ImageDraw.Draw(img)
    for i in range(0, 6000, 150):
        draw.ellipse((i, (i * 7) % 3600, i + 400, (i * 7) % 3600 + 400), fill=((i * 3) % 255, (i * 5) % 255, (i * 11) % 255))
    # Sensor-like noise makes the file as large and slow to decode as a real photo.
    noise = Image.merge("RGB", [Image.effect_noise((6000, 4000), 40) for _ in range(3)])
    img = Image.blend(img, noise, 0.35)
    img.save(path, quality=90)


def _decode_times(photo: Path, runs: int) -> list[float]:
    import io
    import time

    from PIL import Image

    data = photo.read_bytes()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        Image.open(io.BytesIO(data)).load()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    cmd = vdr_command()
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo24mp.jpg"
        make_photo(photo)
        size = photo.stat().st_size
        print(f"source: 6000×4000 JPEG, {size / 1e6:.1f} MB")
        box = ["--box", "2400,1500,3600,2500", "--scale", "1,1.5,2"]
        fresh = iter(range(10**6))
        run = lambda i, extra=(): cmd + ["crop", str(photo), *box, *extra, "--out", f"{tmp}/out{next(fresh)}"]  # noqa: E731
        time_runs(run, 1)
        report("crop, 3 scales, full resolution", time_runs(run, args.runs), goal=0.3)
        report("crop, 3 scales, --max-side 1024 (JPEG draft mode)",
               time_runs(lambda i: run(i, ("--max-side", "1024")), args.runs))
        report("floor: Pillow decode of the whole JPEG, in-process", _decode_times(photo, args.runs))
        report("repeat of the same crop (content-addressed files exist)",
               time_runs(lambda i: cmd + ["crop", str(photo), *box, "--out", f"{tmp}/out0"], args.runs))


if __name__ == "__main__":
    main()
