"""Reading ResourceSync documents (sitemaps): streaming, defended, one document at a time.

A list document is downloaded to a temporary file (bounded size), then parsed streaming with
defusedxml's defences (DTDs, entities and external references refused: ``sitemap_parser`` for
the entries, ``safexml.iterparse`` for the header) and yielded entry by entry: memory stays
flat whatever the size of the source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urljoin
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException

from ...entry_factory import make_entry, make_link
from ...errors import DocumentError, SyncError
from ...http import Http
from ...model import HASH_ALGORITHMS, Entry, Link, ListInfo
from ...safexml import iterparse
from ...sniff import looks_html
from ...urls import join_url
from ...w3cdate import parse_datetime
from .sitemap_parser import Raw, attr_name, iter_entries

SM = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
RS = "{http://www.openarchives.org/rs/terms/}"
MAX_ENTRIES = 50_000  # the sitemap protocol's limit per document
MAX_BYTES = 60 * 1024 * 1024  # 50 MB allowed by the protocol, plus slack
_HASH_NAMES = {"md5": "md5", "sha-1": "sha-1", "sha1": "sha-1", "sha-256": "sha-256"}
_HASH_NAMES["sha256"] = "sha-256"
_LINK_ATTRS = frozenset(("rel", "href", "type"))  # the rest go to Link.attrs


def parse_hashes(value: str | None, *, where: str) -> tuple[tuple[str, str], ...]:
    """``md5:<hex> sha-256:<hex>`` -> ((md5, hex), ...). Unknown algorithms are refused."""
    if not value:
        return ()
    if value.startswith("md5:") and " " not in value and len(value) > 4:
        return (("md5", value[4:].lower()),)  # the common case, without the general loop
    out: list[tuple[str, str]] = []
    for token in value.split():
        name, sep, digest = token.partition(":")
        alg = _HASH_NAMES.get(name.lower())
        if not sep or not digest:
            raise DocumentError(f"malformed hash {token!r}", resource=where)
        if alg is None:
            raise DocumentError(
                f"unknown hash algorithm {name!r} (known: {', '.join(HASH_ALGORITHMS)})",
                resource=where,
            )
        out.append((alg, digest.lower()))
    return tuple(out)


def _int(value: str | None, *, where: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError as exc:
        raise DocumentError(f"bad length {value!r}", resource=where) from exc
    if number < 0:
        raise DocumentError(f"negative length {value!r}", resource=where)
    return number


def _link(attrs: dict[str, str], where: str) -> Link | None:
    rel, href = attrs.get("rel"), attrs.get("href")
    if not rel or not href:
        return None
    if _LINK_ATTRS.issuperset(attrs):
        extra: tuple[tuple[str, str], ...] = ()
    else:
        extra = tuple(sorted((attr_name(k), v) for k, v in attrs.items() if k not in _LINK_ATTRS))
    # sitemaps should carry absolute URLs; a relative one is read against its resource's URL
    href = join_url(where, href.strip())
    return make_link(rel.strip().lower(), href, attrs.get("type"), extra)


def _datetime(value: str | None, where: str) -> datetime | None:
    """``parse_datetime`` with a fast path for the common ``YYYY-MM-DDThh:mm:ssZ``."""
    if value is not None and len(value) == 20 and value[10] == "T" and value[19] == "Z":
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass  # the full parser names the problem
    return parse_datetime(value, where=where)


def build_entry(doc_url: str, raw: Raw) -> Entry:
    """An ``Entry`` from what the parser read of one ``<url>`` / ``<sitemap>``."""
    loc_text, lastmod, md, lns = raw
    loc = (loc_text or "").strip()
    if loc and "://" not in loc:
        loc = urljoin(doc_url, loc)
    if not loc:
        raise DocumentError("an entry has no <loc>", resource=doc_url)
    if md is None:
        hashes: tuple[tuple[str, str], ...] = ()
        length = change = change_time = md_from = md_until = None
        mtype = capability = None
    else:
        change = md.get("change")
        if change is not None and change not in ("created", "updated", "deleted"):
            raise DocumentError(f"unknown change type {change!r}", resource=loc)
        value = md.get("hash")
        hashes = parse_hashes(value, where=loc) if value else ()
        value = md.get("length")
        length = None if value is None else _int(value, where=loc)
        mtype, capability = md.get("type"), md.get("capability")
        value = md.get("datetime")
        change_time = None if value is None else _datetime(value, loc)
        value = md.get("from")
        md_from = None if value is None else _datetime(value, loc)
        value = md.get("until")
        md_until = None if value is None else _datetime(value, loc)
    return make_entry(
        loc,
        None if lastmod is None else _datetime(lastmod, loc),
        hashes,
        length,
        mtype,
        tuple(ln for ln in (_link(x, loc) for x in lns) if ln is not None) if lns else (),
        change,
        change_time,
        capability,
        md_from,
        md_until,
    )


@dataclass
class ListDocument:
    """A downloaded list document; ``entries()`` streams it and may be called once."""

    info: ListInfo
    path: Path
    max_entries: int
    links: tuple[Link, ...] = ()
    on_error: Callable[[SyncError], None] | None = None

    def entries(self) -> Iterator[Entry]:
        try:
            yield from _iter_entries(self.path, self.info.url, self.max_entries, self.on_error)
        finally:
            self.discard()

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def _iter_entries(
    path: Path,
    url: str,
    max_entries: int,
    on_error: Callable[[SyncError], None] | None = None,
) -> Iterator[Entry]:
    """Entries of a document. A bad entry (unknown hash algorithm, bad date or length, no
    <loc>) raises, or with ``on_error`` is reported there and skipped; malformed XML and a
    document over ``max_entries`` always raise."""
    return iter_entries(path, url, max_entries, build_entry, on_error)


def read_header(path: Path, url: str) -> tuple[ListInfo, tuple[Link, ...]]:
    """Root element and its ``rs:md`` / ``rs:ln``, without reading the entries."""
    root_tag = None
    capability: str | None = None
    attrs: dict[str, str] = {}
    links: list[Link] = []
    depth = 0
    try:
        for event, el in iterparse(path):
            if event == "start":
                depth += 1
                if depth == 1:
                    root_tag = el.tag
                    if el.tag not in (f"{SM}urlset", f"{SM}sitemapindex"):
                        raise DocumentError(
                            f"not a sitemap / ResourceSync document (root element {el.tag!r})",
                            resource=url,
                        )
                elif depth == 2 and el.tag in (f"{SM}url", f"{SM}sitemap"):
                    break
                continue
            depth -= 1
            if depth == 1 and el.tag == f"{RS}md":
                attrs = dict(el.attrib)
                capability = attrs.get("capability")
            elif depth == 1 and el.tag == f"{RS}ln":
                link = _link(el.attrib, url)
                if link is not None:
                    links.append(link)
    except (ParseError, DefusedXmlException) as exc:
        raise DocumentError(f"not well-formed or refused XML: {exc}", resource=url) from None
    if root_tag is None:
        raise DocumentError("empty document", resource=url)
    info = ListInfo(
        url=url,
        capability=capability,
        is_index=root_tag == f"{SM}sitemapindex",
        at=parse_datetime(attrs.get("at"), where=url),
        completed=parse_datetime(attrs.get("completed"), where=url),
        from_=parse_datetime(attrs.get("from"), where=url),
        until=parse_datetime(attrs.get("until"), where=url),
    )
    return info, tuple(links)


class ListReader:
    """Fetches list documents and walks indexes down to their lists, refusing loops."""

    def __init__(
        self,
        http: Http,
        *,
        max_bytes: int = MAX_BYTES,
        max_entries: int = MAX_ENTRIES,
        max_depth: int = 3,
        tmpdir: str | None = None,
        on_error: Callable[[SyncError], None] | None = None,
    ) -> None:
        self.http = http
        # where refused entries and index members are reported (then skipped); None: raise
        self.on_error = on_error
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.max_depth = max_depth
        self.tmpdir = tmpdir
        self.documents_read = 0

    def fetch(self, url: str) -> ListDocument:
        download = self.http.download(url, max_bytes=self.max_bytes, directory=self.tmpdir)
        self.documents_read += 1
        try:
            _refuse_html(download.path, download.content_type, url)
            info, links = read_header(download.path, url)
        except SyncError:
            download.discard()
            raise
        return ListDocument(
            info=info,
            path=download.path,
            max_entries=self.max_entries,
            links=links,
            on_error=self.on_error,
        )

    def walk(
        self,
        url: str,
        *,
        expect: str | None = None,
        _seen: set[str] | None = None,
        _depth: int = 0,
    ) -> Iterator[tuple[ListInfo, Iterator[Entry]]]:
        """Yield (info, entries) for every list under ``url`` (itself or, for an index, its
        members, recursively). ``expect`` is the capability wanted (a document of another
        capability is refused); an index's members must not loop or nest too deep."""
        seen = _seen if _seen is not None else set()
        if url in seen:
            raise DocumentError("sitemap index loops back to a document already read", resource=url)
        if _depth > self.max_depth:
            raise DocumentError(f"sitemap indexes nest deeper than {self.max_depth}", resource=url)
        seen.add(url)
        doc = self.fetch(url)
        cap = doc.info.capability
        if expect and cap and cap != expect:
            doc.discard()
            raise DocumentError(f"expected a {expect} but the document says {cap}", resource=url)
        if not doc.info.is_index:
            yield doc.info, doc.entries()
            return
        members = [e.loc for e in doc.entries()]
        if not members:
            raise DocumentError("sitemap index lists no documents", resource=url)
        for member in members:
            try:
                self.http.check_allowed(member, what="list document")
                yield from self.walk(member, expect=expect, _seen=seen, _depth=_depth + 1)
            except SyncError as exc:
                # a looping, too deep or broken member: the index's other members still count
                if self.on_error is None:
                    raise
                self.on_error(exc)


def _refuse_html(path: Path, content_type: str | None, url: str) -> None:
    """An HTML page (an error or login page, a repository's home page) is not a sitemap."""
    served = (content_type or "").split(";")[0].strip().lower()
    if looks_html(path, content_type):
        raise DocumentError(
            f"an HTML page ({served or 'no content type'}), not a sitemap / ResourceSync document",
            resource=url,
            hint="give the URL of the source description, capability list or resource list",
        )
