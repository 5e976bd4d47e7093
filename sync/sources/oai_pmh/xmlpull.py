"""The elements of an untrusted XML file, streamed by the C ElementTree parser and defended
as defusedxml defends: no DTD, so no entity declarations and no external references.

Why not ``defusedxml.ElementTree.iterparse``: it runs the pure-Python ElementTree parser, a
Python call per tag and per event; on a DSpace METS page (100 records, about 44 elements each)
that was the largest part of a harvest's CPU. The C parser builds the same elements in C.

Why it is as safe: a DTD may only stand in the prolog, before the root element, and entities
can only be declared (and external ones referenced) in a DTD. So the prolog is first read by
an expat parser that carries defusedxml's handlers (``defused_parser``), up to the root's
start tag: a DTD there raises defusedxml's ``DTDForbidden``, as ``forbid_dtd=True`` does. The
C parser then cannot meet a DTD (one after the root is not well-formed), and a reference to
any entity but the five predefined ones is "undefined entity": not well-formed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from xml.etree.ElementTree import Element, XMLPullParser
from xml.parsers import expat

from ..resourcesync.sitemap_parser import defused_parser

CHUNK = 1 << 16  # a feed holds the GIL: small ones let the download of the next page go on
PROLOG_CHUNK = 1 << 14


class _RootReachedError(Exception):
    """The prolog checker saw the root element start: no DTD can follow."""


def refuse_dtd(path: Path) -> None:
    """Raise defusedxml's ``DTDForbidden`` if the document's prolog holds a DTD. A prolog
    that is not well-formed is left to the real parse, which fails on it the same way."""
    parser = defused_parser()

    def root(name: str, attrs: dict[str, str]) -> None:
        raise _RootReachedError

    parser.StartElementHandler = root
    with path.open("rb") as fh:
        while True:
            block = fh.read(PROLOG_CHUNK)
            try:
                parser.Parse(block, not block)
            except (_RootReachedError, expat.ExpatError):
                return
            if not block:
                return


def iterparse(path: Path) -> Iterator[tuple[str, Element]]:
    """``("start" | "end", element)`` events of the file at ``path``, as ``iterparse`` gives
    them. Raises ``DTDForbidden`` for a DTD and ``ParseError`` for XML that is not
    well-formed, after the events that came before the fault."""
    refuse_dtd(path)
    parser: XMLPullParser[Element] = XMLPullParser(events=("start", "end"))
    with path.open("rb") as fh:
        while True:
            block = fh.read(CHUNK)
            if block:
                parser.feed(block)
            else:
                parser.close()
            yield from parser.read_events()  # type: ignore[misc]
            if not block:
                return
