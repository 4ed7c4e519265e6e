"""Opening images safely: size guard, EXIF orientation, odd pixel modes.

Pillow is imported lazily so that `vdr --help` stays fast.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from typing import Any

from vdr_cli.errors import InputError

# EXIF orientations that swap width and height (transpose/rotate 90/270).
_SWAPS_AXES = {5, 6, 7, 8}
MAX_BYTES = 512 * 1024 * 1024


_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG", "image/png"), (b"GIF8", "image/gif"), (b"BM", "image/bmp"))
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/bmp": ".bmp", "image/webp": ".webp"}


def sniff_mime(data: bytes) -> str | None:
    """The image type its first bytes announce (JPEG, PNG, GIF, BMP, WebP), or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _MAGIC if data.startswith(magic)), None)


@dataclass
class Source:
    """An opened image: its bytes, hash, displayed size (after EXIF rotation)."""

    name: str
    data: bytes
    sha256: str
    width: int  # as displayed, i.e. after EXIF orientation
    height: int
    format: str
    orientation: int = 1
    frames: int = 1
    preloaded: Any = field(default=None, repr=False)  # () -> decoded first frame or None (tools/prefetch.py)

    def opened(self) -> Any:
        """A fresh PIL image (not yet decoded) of the first frame."""
        from PIL import Image

        img = Image.open(io.BytesIO(self.data))
        img.seek(0)
        return img


def read_bytes(path: str) -> bytes:
    """Read an image file, naming it in any error."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not an image") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(data) > MAX_BYTES:
        raise InputError(f"{path}: file is over {MAX_BYTES // 2**20} MiB, too large to be an image vdr will open")
    return data


ACCEPTED = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")  # JPEG's opener also reads cameras' MPO files
OPTIONAL = ("HEIF", "AVIF")  # accepted where Pillow (or pillow-heif / pillow-avif) provides them


def accepted_formats() -> list[str]:
    from PIL import Image

    Image.init()
    return [f for f in ACCEPTED + OPTIONAL if f in Image.OPEN]


def _refusal(data: bytes) -> str:
    """Why bytes that no accepted decoder claims are refused, naming the format if Pillow knows it."""
    from PIL import Image

    for fmt, (factory, accept) in Image.OPEN.items():  # header checks only: nothing is decoded
        try:
            if fmt not in ACCEPTED + OPTIONAL and accept is not None and accept(data[:64]):
                return f"image format {fmt} is not accepted"
        except Exception:
            continue
    return "not an image (or a format vdr does not read)"


def open_source(data: bytes, name: str, max_pixels: int) -> Source:
    """Identify an image from its bytes without decoding the pixels.

    Refuses non-images and images whose header claims more than `max_pixels`
    (a decompression bomb would exhaust memory when decoded).
    """
    from PIL import Image, UnidentifiedImageError

    # We check the size ourselves, with a clear message; Pillow's own guard
    # would warn or raise its own exception type.
    Image.MAX_IMAGE_PIXELS = None
    if not data:
        raise InputError(f"{name}: empty file, not an image")
    try:
        # Only the formats people use are parsed at all: Pillow's other decoders
        # (ICNS, FITS, PSD, ...) are attack surface, and some decode far past
        # what their header declares (a 240 KB ICNS took 6.3 GB).
        img = Image.open(io.BytesIO(data), formats=accepted_formats())
    except UnidentifiedImageError:
        raise InputError(f"{name}: {_refusal(data)}", hint=f"accepted: {', '.join(accepted_formats())}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{name}: unreadable image ({exc})") from None
    w, h = img.size
    if w <= 0 or h <= 0:
        raise InputError(f"{name}: image has no pixels ({w}×{h})")
    if w * h > max_pixels:
        raise InputError(
            f"{name}: image is {w}×{h} ({w * h / 1e6:.0f} Mpx), over the {max_pixels / 1e6:.0f} Mpx limit",
            hint="raise it with --max-pixels or `vdr config set crop.max_pixels N` if the file is trusted",
        )
    orientation = 1
    try:
        orientation = int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # a broken EXIF block is not a reason to refuse the image
        orientation = 1
    if orientation in _SWAPS_AXES:
        w, h = h, w
    return Source(
        name=name,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        width=w,
        height=h,
        format=img.format or "",
        orientation=orientation,
        frames=int(getattr(img, "n_frames", 1) or 1),
    )


def decode(source: Source, reduce: float = 1.0) -> tuple[Any, float]:
    """Decode the first frame, EXIF-oriented; JPEGs may decode at reduced size.

    Returns the image and the factor by which it is smaller than `source`
    (1.0 when decoded whole).  `reduce` < 1 lets JPEG's DCT scaling (draft
    mode) skip most of the decoding work for downscaled crops.
    """
    from PIL import ImageOps

    ready = source.preloaded() if source.preloaded is not None and reduce >= 1.0 else None
    if ready is not None:
        # Decoded while the CLI started (full size: used only when no draft reduction is wanted).
        img = ImageOps.exif_transpose(ready) if source.orientation != 1 else ready
        return img, img.width / source.width
    img = source.opened()
    try:
        if reduce < 1.0 and img.format == "JPEG":
            import math

            img.draft(img.mode, (math.ceil(img.width * reduce), math.ceil(img.height * reduce)))
        img.load()
        img = ImageOps.exif_transpose(img) if source.orientation != 1 else img
    except (OSError, ValueError, SyntaxError) as exc:
        msg = str(exc)
        if "truncated" in msg:
            msg = "image file is truncated"
        raise InputError(f"{source.name}: cannot decode image ({msg})") from None
    factor = img.width / source.width
    return img, factor


# Pixels an image given to the model may have (session images were checked against
# crop.max_pixels already; this bounds web images shown to a summariser).
MODEL_MAX_PIXELS = 250_000_000


def upright_rgb(data: bytes, name: str = "image", max_pixels: int = MODEL_MAX_PIXELS) -> Any:
    """The image as displayed (EXIF orientation applied), in RGB: the pixels the model is
    shown, and the pixels crop_and_search boxes refer to (`crop.reference_crop`)."""
    img, _ = decode(open_source(data, name, max_pixels))
    return img if img.mode == "RGB" else img.convert("RGB")


def upright_bytes(data: bytes, name: str = "image", max_pixels: int = MODEL_MAX_PIXELS) -> bytes:
    """Bytes any server decodes to the upright image: `data` itself unless its EXIF
    orientation turns it, else a lossless PNG of `upright_rgb` (no orientation tag left),
    so a server that ignores EXIF sees what vdr crops."""
    if open_source(data, name, max_pixels).orientation == 1:
        return data
    out = io.BytesIO()
    upright_rgb(data, name, max_pixels).save(out, "PNG", compress_level=1)
    return out.getvalue()


def normalize_mode(img: Any, keep_alpha: bool) -> Any:
    """Convert palette/CMYK/16-bit/float/alpha images to RGB, RGBA or L."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit and 32-bit integer greys: scale to 8 bits instead of clipping.
        img = img.convert("I").point(lambda v: v * (1 / 256)).convert("L") if mode != "I" or img.getextrema()[1] > 255 else img.convert("L")
        return img
    if mode == "F":
        return img.convert("L")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        img = img.convert("RGBA")
        if keep_alpha:
            return img
        from PIL import Image

        # Composite on white: black is what dropping alpha would show.
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    if mode in ("L", "RGB"):
        return img
    return img.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV, 1
