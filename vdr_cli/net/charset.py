"""Which text encoding a web page is in, the way browsers decide, never raising.

A byte-order mark wins, then the charset the server declared, then the page's own
<meta> or XML declaration, else UTF-8 (windows-1252 when the bytes hold no UTF-8
at all).  Latin-1 and ASCII labels mean windows-1252, as in browsers.
"""

from __future__ import annotations

import codecs
import re

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: its BOM starts the same way
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_META = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)|<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""", re.I)
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
# Codecs that exist in Python but are not a web page's encoding: decoding with them
# rewrites content (escape codecs) or always fails.
_NOT_PAGE_CODECS = {"unicode_escape", "raw_unicode_escape", "idna", "punycode", "undefined", "utf_7", "mbcs", "oem"}


def charset_name(label: str | None) -> str | None:
    """A usable Python codec for a declared charset label, or None for a bogus one."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    # Browsers read latin-1 and ASCII labels as windows-1252, its superset; so do we.
    if name in ("iso-8859-1", "iso8859-1", "latin-1", "latin1", "l1", "us-ascii", "ascii", "iso_8859-1", "cp819"):
        return "cp1252"
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name.replace("-", "_") in _NOT_PAGE_CODECS:
        return None
    return info.name


def sniff_encoding(body: bytes, declared: str | None = None, *, html: bool = True) -> tuple[str | None, int]:
    """(codec, BOM length) from a BOM, else the declared charset, else a <meta>/XML
    declaration; codec None when nothing usable is declared."""
    for bom, enc in _BOMS:
        if body.startswith(bom):
            return enc, len(bom)
    enc = charset_name(declared)
    if enc is None and html:
        m = _META.search(body[:4096])
        if m:
            enc = charset_name((m.group(1) or m.group(2)).decode("ascii", "replace"))
            if enc and enc.replace("-", "_").startswith(("utf_16", "utf_32")):  # a meta tag readable as ASCII can't be UTF-16
                enc = "utf-8"
    return enc, 0


def decode_body(body: bytes, declared: str | None = None, *, html: bool = True) -> tuple[str, str]:
    """Decode a body: (text, encoding used). Never raises."""
    enc, skip = sniff_encoding(body, declared, html=html)
    if skip:
        return body[skip:].decode(enc, errors="replace"), enc
    if enc in (None, "utf-8", "utf_8"):
        try:
            return body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            if not _UTF8_MULTIBYTE.search(body):
                return body.decode("cp1252", errors="replace"), "cp1252"
            return body.decode("utf-8", errors="replace"), "utf-8"
    try:
        return body.decode(enc, errors="replace"), enc
    except Exception:  # a codec that misbehaves on odd input must not take the page down
        return body.decode("utf-8", errors="replace"), "utf-8"
