"""The entries of a sitemap document, read straight from expat: streaming, defended, fast.

Why not ``defusedxml.ElementTree.iterparse``: it runs the pure-Python ElementTree parser and
builds an element (with a dict of attributes) for every tag, about 50 microseconds per entry;
a 200,000-entry resource list index spent most of its reading time there. Here the expat
callbacks fill one small record per ``<url>`` and nothing else, fed 256 KiB at a time, so
memory stays flat and entries are handed out as soon as their chunk is parsed.

The defences are defusedxml's, set on the same expat parser the way defusedxml sets them: a
DTD (so also internal entities: the "billion laughs"), entity declarations and external
references are refused with defusedxml's own exceptions; expat never fetches anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from xml.parsers import expat

from defusedxml import DefusedXmlException

from ...errors import DocumentError, SyncError
from ...model import Entry, Link
from ...safexml import defused_parser

SM_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
RS_NS = "http://www.openarchives.org/rs/terms/"
_URL, _SITEMAP = f"{SM_NS} url", f"{SM_NS} sitemap"
_LOC, _LASTMOD = f"{SM_NS} loc", f"{SM_NS} lastmod"
_MD, _LN = f"{RS_NS} md", f"{RS_NS} ln"
CHUNK = 1 << 18

# an entry as read: loc text, lastmod text, rs:md attributes, rs:ln attributes
Raw = tuple[str | None, str | None, dict[str, str] | None, list[dict[str, str]]]
EntryBuilder = Callable[[str, Raw], Entry]


def iter_raw_entries(path: Path, url: str, max_entries: int) -> Iterator[Raw]:
    """The raw entries (children ``<url>`` / ``<sitemap>`` of the root) of the document at
    ``path``; malformed or refused XML and more than ``max_entries`` raise ``DocumentError``.

    The callbacks run about eleven times per entry, so they test the common case (depth 3)
    first; element names are interned as the module's constants, so a matching comparison
    is an identity check."""
    parser = defused_parser()
    for name in (_URL, _SITEMAP, _LOC, _LASTMOD, _MD, _LN):
        parser.intern[name] = name
    ready: list[Raw] = []
    depth = 0
    count = 0
    loc: str | None = None
    lastmod: str | None = None
    md: dict[str, str] | None = None
    lns: list[dict[str, str]] = []
    text: list[str] | None = None  # pieces of the <loc> / <lastmod> being read, if any
    reading_loc = False
    in_entry = False

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal depth, loc, lastmod, md, lns, text, reading_loc, in_entry
        depth += 1
        if depth == 3:
            if not in_entry:
                return
            if name == _LOC:
                if loc is None:
                    text, reading_loc = [], True
            elif name == _LASTMOD:
                if lastmod is None:
                    text, reading_loc = [], False
            elif name == _MD:
                if md is None:
                    md = attrs
            elif name == _LN:
                lns.append(attrs)
        elif depth == 2:
            in_entry = name in (_URL, _SITEMAP)
            if in_entry:
                loc = lastmod = md = None
                lns = []

    def end(name: str) -> None:
        nonlocal depth, loc, lastmod, text, in_entry, count
        if depth == 3:
            if text is not None:
                value = text[0] if len(text) == 1 else "".join(text)
                if reading_loc:
                    loc = value
                else:
                    lastmod = value
                text = None
        elif depth == 2 and in_entry:
            in_entry = False
            count += 1
            if count > max_entries:
                raise DocumentError(
                    f"more than {max_entries} entries in one document",
                    resource=url,
                    hint="raise max_list_entries in the pipeline if this is expected",
                )
            ready.append((loc, lastmod, md, lns))
        depth -= 1

    def data(chunk: str) -> None:
        if text is not None and depth == 3:
            text.append(chunk)  # one piece, unless split by a read or expat's buffer

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = data
    with path.open("rb") as fh:
        while True:
            block = fh.read(CHUNK)
            try:
                parser.Parse(block, not block)
            except (expat.ExpatError, DefusedXmlException) as exc:
                yield from ready  # the entries before the fault count, as with iterparse
                raise DocumentError(
                    f"not well-formed or refused XML: {exc}", resource=url
                ) from None
            except DocumentError:
                yield from ready
                raise
            if ready:
                yield from ready
                ready.clear()
            if not block:
                break


def iter_entries(
    path: Path,
    url: str,
    max_entries: int,
    build: EntryBuilder,
    on_error: Callable[[SyncError], None] | None = None,
) -> Iterator[Entry]:
    """Entries built by ``build``; a bad entry raises, or with ``on_error`` is reported there
    and skipped."""
    for raw in iter_raw_entries(path, url, max_entries):
        try:
            entry = build(url, raw)
        except DocumentError as exc:
            if on_error is None:
                raise
            on_error(exc)
            continue
        yield entry


def attr_name(key: str) -> str:
    """expat's ``"ns local"`` attribute name as ElementTree's ``"{ns}local"``."""
    if " " not in key:
        return key
    ns, _, local = key.partition(" ")
    return f"{{{ns}}}{local}"


__all__ = ["Link", "Raw", "attr_name", "iter_entries", "iter_raw_entries"]
