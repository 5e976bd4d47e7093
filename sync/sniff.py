"""Is this an HTML page? One answer for lists, OAI-PMH pages and resources.

Servers answer an error or login page with 200 where a document or a file was asked for. A
page is recognised by libmagic where it ran (``sniffed``), else by the served type or by its
first bytes; a document that opens with an XML declaration is not taken for a page only
because it was served as HTML (some servers send every XML document as text/html).
"""

from __future__ import annotations

from pathlib import Path

HTML_TYPES = ("text/html", "application/xhtml+xml")
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<title")


def is_html_type(mime: str | None) -> bool:
    return bool(mime) and (mime or "").split(";")[0].strip().lower() in HTML_TYPES


def head_of(path: Path, n: int = 512) -> bytes:
    """The first bytes, without a BOM and leading white space, lower-cased."""
    with path.open("rb") as fh:
        return fh.read(n).lstrip(b"\xef\xbb\xbf \t\r\n").lower()


def looks_html(path: Path, served: str | None, sniffed: str | None = None) -> bool:
    """An HTML page, by libmagic's ``sniffed`` type; without it, by the served type (unless
    the body opens with an XML declaration) or the first bytes."""
    if sniffed is not None:
        return is_html_type(sniffed)
    head = head_of(path)
    if head.startswith(_HTML_STARTS):
        return True
    return is_html_type(served) and not head.startswith(b"<?xml")
