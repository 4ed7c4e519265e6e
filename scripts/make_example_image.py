#!/usr/bin/env python3
"""Draw vdr's example image (vdr_cli/data/example.png) with Pillow.

Made for vdr and released under the project's licence (Apache-2.0): a street
corner with a café sign, a street sign and a tram, things a question can be
asked about (`vdr ask --example 'What does the sign say?'`).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

OUT = Path(__file__).resolve().parent.parent / "vdr_cli" / "data" / "example.png"


def font(size: int):
    return ImageFont.load_default(size=size)


def main() -> None:
    w, h = 640, 400
    im = Image.new("RGB", (w, h), (135, 190, 235))  # sky
    d = ImageDraw.Draw(im)
    d.ellipse((540, 30, 600, 90), fill=(255, 220, 90))  # sun
    d.rectangle((0, 300, w, h), fill=(90, 90, 95))  # street
    for x in range(20, w, 80):
        d.rectangle((x, 345, x + 40, 352), fill=(235, 235, 235))  # lane marks
    d.rectangle((0, 285, w, 300), fill=(170, 165, 160))  # pavement
    # the café: a brick building with an awning and a sign
    d.rectangle((40, 90, 330, 285), fill=(170, 80, 60))
    for y in range(100, 285, 14):
        d.line((40, y, 330, y), fill=(150, 68, 52))
    d.rectangle((60, 110, 310, 160), fill=(30, 60, 40), outline=(230, 200, 120), width=4)
    d.text((185, 135), "CAFE LUMEN", fill=(240, 215, 140), font=font(30), anchor="mm")
    for i, x in enumerate(range(50, 330, 28)):
        d.polygon([(x, 175), (x + 28, 175), (x + 28, 200), (x, 200)], fill=(200, 40, 40) if i % 2 else (245, 245, 240))
    d.rectangle((70, 215, 150, 285), fill=(60, 40, 30))  # door
    d.rectangle((180, 215, 310, 265), fill=(190, 220, 235), outline=(60, 40, 30), width=4)  # window
    d.text((245, 240), "OPEN 8-18", fill=(40, 40, 40), font=font(16), anchor="mm")
    # the street sign on a pole
    d.rectangle((395, 150, 401, 290), fill=(60, 60, 60))
    d.rectangle((350, 120, 500, 158), fill=(20, 70, 150), outline=(245, 245, 245), width=3)
    d.text((425, 139), "RUE DES ARTS", fill=(245, 245, 245), font=font(18), anchor="mm")
    # a tram with its line number
    d.rounded_rectangle((430, 215, 630, 300), radius=14, fill=(240, 200, 30), outline=(60, 60, 60), width=3)
    for x in range(445, 610, 45):
        d.rectangle((x, 228, x + 32, 258), fill=(190, 220, 235))
    d.rectangle((585, 265, 620, 290), fill=(30, 30, 30))
    d.text((602, 277), "7", fill=(255, 255, 255), font=font(18), anchor="mm")
    d.line((470, 215, 500, 175), fill=(60, 60, 60), width=3)
    d.line((0, 175, w, 175), fill=(60, 60, 60), width=1)  # overhead wire
    OUT.parent.mkdir(parents=True, exist_ok=True)
    im.save(OUT, optimize=True)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
