"""File names that are safe to send and store: no directories, no control characters, bounded.

Pure functions. ``content_disposition`` builds the header SWORD servers need: an ASCII quoted
fallback plus the exact UTF-8 name as ``filename*`` (RFC 6266 / RFC 5987), because many servers
reject or mangle non-ASCII bytes in a plain ``filename=``.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote, unquote, urlsplit

MAX_NAME_BYTES = 200
_MAX_EXT_BYTES = 16
# RFC 5987 attr-char beyond what ``quote`` always keeps (ALPHA / DIGIT / "-._~").
_ATTR_CHAR_EXTRA = "!#$&+^`|"


def _is_dropped(ch: str) -> bool:
    """Control characters (C0, DEL, C1), line/paragraph separators, and lone surrogates."""
    category = unicodedata.category(ch)
    return category in ("Cc", "Cs", "Zl", "Zp")


def _clean(name: str) -> str:
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    if name.isascii() and name.isprintable():  # the usual name: nothing to drop or normalise
        return name.strip()
    name = "".join(ch for ch in name if not _is_dropped(ch))
    return unicodedata.normalize("NFC", name).strip()


def _truncate_utf8(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def _split_ext(name: str) -> tuple[str, str]:
    """``("report", ".pdf")``; an extension is short, without spaces, and not the whole name."""
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    ext = name[dot:]
    if len(ext.encode("utf-8")) > _MAX_EXT_BYTES or " " in ext or ext == ".":
        return name, ""
    return name[:dot], ext


def safe_filename(name: str, fallback: str = "file") -> str:
    """A single, non-empty path segment of at most 200 UTF-8 bytes, NFC, without controls.

    Directory parts (``/`` and ``\\``) are removed, ``.``/``..``/empty become ``fallback``; a
    long name is cut in its stem so that the extension survives.
    """
    cleaned = _clean(name)
    if cleaned in ("", ".", ".."):
        cleaned = _clean(fallback)
        if cleaned in ("", ".", ".."):
            cleaned = "file"
    if len(cleaned.encode("utf-8")) <= MAX_NAME_BYTES:
        return cleaned
    stem, ext = _split_ext(cleaned)
    stem = _truncate_utf8(stem, MAX_NAME_BYTES - len(ext.encode("utf-8"))).rstrip()
    result = (stem + ext) if stem else _truncate_utf8(cleaned, MAX_NAME_BYTES)
    return result or "file"


def ascii_fallback(name: str) -> str:
    """An ASCII rendering: accents dropped (``café`` -> ``cafe``), other characters -> ``_``."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFKD", name):
        if unicodedata.combining(ch):
            continue
        out.append(ch if 0x20 <= ord(ch) < 0x7F else "_")
    return "".join(out) or "file"


def content_disposition(name: str) -> str:
    """``attachment; filename="<ASCII>"; filename*=UTF-8''<percent-encoded UTF-8>``."""
    safe = safe_filename(name)
    plain = ascii_fallback(safe).replace("\\", "\\\\").replace('"', '\\"')
    encoded = quote(safe, safe=_ATTR_CHAR_EXTRA, encoding="utf-8")
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{encoded}"


def filename_from_url(url: str) -> str:
    """The last non-empty path segment, percent-decoded (UTF-8, bad bytes -> U+FFFD), made safe.

    ``"file"`` when the path has no segment (``http://host/``).
    """
    try:
        path = urlsplit(url).path
    except ValueError:
        return "file"
    segments = [seg for seg in path.split("/") if seg]
    if not segments:
        return "file"
    return safe_filename(unquote(segments[-1], encoding="utf-8", errors="replace"))


__all__ = [
    "MAX_NAME_BYTES",
    "ascii_fallback",
    "content_disposition",
    "filename_from_url",
    "safe_filename",
]


_FILENAME_STAR = re.compile(r"filename\*\s*=\s*([^']*)'[^']*'([^;]+)", re.I)
_FILENAME = re.compile(r'filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]+))', re.I)


def filename_from_disposition(value: str | None) -> str | None:
    """The file name a server gives in Content-Disposition (RFC 6266 / 5987), decoded."""
    if not value:
        return None
    star = _FILENAME_STAR.search(value)
    if star:
        charset = star.group(1) or "utf-8"
        try:
            return unquote(star.group(2).strip(), encoding=charset, errors="strict")
        except (LookupError, UnicodeDecodeError):
            pass
    plain = _FILENAME.search(value)
    if plain:
        name = plain.group(1) if plain.group(1) is not None else plain.group(2).strip()
        return re.sub(r"\\(.)", r"\1", name)
    return None
