"""Untrusted XML, parsed one way everywhere: no DTDs, no entities, no external references.

Every document from a source or a destination (lists, metadata records, receipts, statements,
OAI-PMH pages, SAF metadata) may be hostile. defusedxml's defences refuse DTDs and entity
tricks; a refusal or a malformed document becomes the caller's ``SyncError`` naming it.

Documents are built by the C ElementTree parser, not by ``defusedxml.ElementTree``, which runs
the pure-Python parser (a Python call per tag: the largest part of a harvest's CPU, and a
tenth of a mirror run's). It is as safe: a DTD may only stand in the prolog, before the root
element, and entities can only be declared (and external ones referenced) in a DTD. So the
prolog is first read by an expat parser that carries defusedxml's handlers
(``defused_parser``), up to the root's start tag (``refuse_dtd``): a DTD there raises
defusedxml's ``DTDForbidden``, as ``forbid_dtd=True`` does. The C parser then cannot meet a
DTD (one after the root is not well-formed), and a reference to any entity but the five
predefined ones is "undefined entity": not well-formed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Any, NoReturn
from xml.etree.ElementTree import Element, ParseError, XMLParser, XMLPullParser
from xml.parsers import expat

from defusedxml import (
    DefusedXmlException,
    DTDForbidden,
    EntitiesForbidden,
    ExternalReferenceForbidden,
)

from .errors import SyncError


def defused_parser() -> Any:
    """An expat parser (namespaces split by a space) that refuses DTDs, entities and external
    references, like defusedxml's parsers with ``forbid_dtd=True``."""
    parser = expat.ParserCreate(namespace_separator=" ")

    def doctype(name: str, sysid: str | None, pubid: str | None, has_internal: bool) -> NoReturn:
        raise DTDForbidden(name, sysid, pubid)

    def entity(
        name: str,
        is_param: bool,
        value: str | None,
        base: str | None,
        sysid: str | None,
        pubid: str | None,
        notation: str | None,
    ) -> NoReturn:
        raise EntitiesForbidden(name, value, base, sysid, pubid, notation)

    def unparsed(
        name: str, base: str | None, sysid: str | None, pubid: str | None, notation: str
    ) -> NoReturn:
        raise EntitiesForbidden(name, None, base, sysid, pubid, notation)

    def external(context: str, base: str | None, sysid: str | None, pubid: str | None) -> NoReturn:
        raise ExternalReferenceForbidden(context, base, sysid, pubid)

    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
    parser.UnparsedEntityDeclHandler = unparsed
    parser.ExternalEntityRefHandler = external
    parser.buffer_text = True
    return parser


PROLOG_CHUNK = 1 << 14  # the prolog check reads this much at a time, up to the root


class _RootReachedError(Exception):
    """The prolog checker saw the root element start: no DTD can follow."""


def refuse_dtd(blocks: Iterable[bytes]) -> None:
    """Raise defusedxml's ``DTDForbidden`` if the prolog of the document made of ``blocks``
    holds a DTD; reading stops at the root's start tag. A prolog that is not well-formed is
    left to the real parse, which fails on it the same way."""
    parser = defused_parser()

    def root(name: str, attrs: dict[str, str]) -> NoReturn:
        raise _RootReachedError

    parser.StartElementHandler = root
    for block in chain((b for b in blocks if b), (b"",)):  # lazily: stops at the root
        try:
            parser.Parse(block, not block)
        except (_RootReachedError, expat.ExpatError):
            return


def parse_untrusted(
    data: bytes, *, what: str, url: str | None, error: type[SyncError], refused: str = ""
) -> Element:
    """The root element of ``data``; ``error`` (e.g. ``MetadataError``) if it is empty,
    hostile (``refused`` is added to the message) or not well-formed."""
    if not data or not data.strip():
        raise error(f"the {what} is empty", resource=url)
    try:
        refuse_dtd((data,))
        parser = XMLParser()
        parser.feed(data)
        root: Element = parser.close()
    except DefusedXmlException as exc:
        raise error(
            f"the {what} was refused: it uses {type(exc).__name__}{refused}", resource=url
        ) from None
    except (ParseError, ValueError) as exc:
        raise error(f"the {what} is not well-formed XML ({exc})", resource=url) from None
    return root


def iterparse(path: Path, *, chunk: int = 1 << 16) -> Iterator[tuple[str, Element]]:
    """``("start" | "end", element)`` events of the untrusted file at ``path``, as
    ``iterparse`` gives them, ``chunk`` bytes parsed at a time (a feed holds the GIL). Raises
    ``DTDForbidden`` for a DTD and ``ParseError`` for XML that is not well-formed, after the
    events that came before the fault."""
    parser: XMLPullParser[Element] = XMLPullParser(events=("start", "end"))
    with path.open("rb") as fh:
        refuse_dtd(iter(partial(fh.read, PROLOG_CHUNK), b""))
        fh.seek(0)
        while True:
            block = fh.read(chunk)
            if block:
                parser.feed(block)
            else:
                parser.close()
            yield from parser.read_events()  # type: ignore[misc]
            if not block:
                return


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
