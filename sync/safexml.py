"""Untrusted XML, parsed one way everywhere: no DTDs, no entities, no external references.

Every document from a source or a destination (lists, metadata records, receipts, statements,
OAI-PMH pages, SAF metadata) may be hostile. defusedxml refuses DTDs and entity tricks; a
refusal or a malformed document becomes the caller's ``SyncError`` naming the document.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from .errors import SyncError


def parse_untrusted(
    data: bytes, *, what: str, url: str | None, error: type[SyncError], refused: str = ""
) -> Element:
    """The root element of ``data``; ``error`` (e.g. ``MetadataError``) if it is empty,
    hostile (``refused`` is added to the message) or not well-formed."""
    if not data or not data.strip():
        raise error(f"the {what} is empty", resource=url)
    try:
        root: Element = fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise error(
            f"the {what} was refused: it uses {type(exc).__name__}{refused}", resource=url
        ) from None
    except (ParseError, ValueError) as exc:
        raise error(f"the {what} is not well-formed XML ({exc})", resource=url) from None
    return root


def escape(text: str) -> str:
    """Text for XML character data (what ``xml.sax.saxutils.escape`` gives, without importing
    ``xml.sax``, which pulls in ``urllib.request`` and costs every run's start-up)."""
    return text.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")


def quoteattr(text: str) -> str:
    """A quoted XML attribute value, as ``xml.sax.saxutils.quoteattr`` writes it."""
    data = escape(text).replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")
    if '"' not in data:
        return f'"{data}"'
    if "'" not in data:
        return f"'{data}'"
    return '"{}"'.format(data.replace('"', "&quot;"))
