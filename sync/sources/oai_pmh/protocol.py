"""OAI-PMH 2.0 requests and responses: streaming, defended, one page at a time.

Every response page is downloaded to a temporary file through ``Http`` (allow-list, timeouts,
HTTP 503 + ``Retry-After`` waited out and the same request repeated) and parsed streaming
with defusedxml's defences (``safexml.iterparse``: no DTDs, no entities): records are yielded
one by one and cleared, so memory does not grow with the repository. Lists follow resumption
tokens; an expired token restarts the listing from the last datestamp seen, a token seen twice
or a list that never ends is an error (the caller's pass is then partial).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlencode
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException

from ...errors import DocumentError, SyncError
from ...http import Download, Http
from ...safexml import iterparse
from ...sniff import looks_html
from ...w3cdate import parse_datetime
from .prefetch import PagePrefetch, peek_token
from .tuning import reading_pages

log = logging.getLogger(__name__)

OAI = "{http://www.openarchives.org/OAI/2.0/}"
MAX_PAGE_BYTES = 64 * 1024 * 1024
MAX_PAGES = 100_000  # a list longer than this (10M records at 100 a page) is taken as endless
MAX_RESTARTS = 5  # expired tokens with nothing new read in between before giving up
MAX_EMPTY_PAGES = 10  # pages in a row with a token but no records: a broken list
Granularity = Literal["day", "seconds"]
DeletedRecord = Literal["no", "transient", "persistent"]
ListVerb = Literal["ListRecords", "ListIdentifiers"]


class OaiError(SyncError):
    """The repository answered with an OAI-PMH ``<error code>`` (``oai_code`` keeps it)."""

    code = "oai-error"

    def __init__(self, oai_code: str, text: str, *, resource: str) -> None:
        self.oai_code = oai_code
        hints = {
            "cannotDisseminateFormat": "choose another metadata_prefix (ListMetadataFormats)",
            "badArgument": "check the set specs and the metadata prefix",
            "noSetHierarchy": "this repository has no sets: remove `sets`",
        }
        super().__init__(
            f"the repository answered {oai_code}: {text or '(no text)'}",
            resource=resource,
            hint=hints.get(oai_code),
        )


class ListingLoopError(DocumentError):
    """A list whose resumption tokens repeat or never end: stopped, the pass is partial."""

    code = "oai-loop"


@dataclass(frozen=True)
class Identify:
    """What ``?verb=Identify`` says that a harvester acts on."""

    base_url: str
    repository_name: str
    granularity: Granularity
    earliest: str | None
    deleted_record: DeletedRecord

    def format_from(self, when: datetime) -> str:
        """``when`` as a ``from`` argument in the repository's granularity (UTC)."""
        if when.tzinfo is not None:
            when = when.astimezone(UTC)
        if self.granularity == "day":
            return when.strftime("%Y-%m-%d")
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Header:
    identifier: str
    datestamp: str  # as the repository wrote it (its granularity)
    stamp: datetime  # the same, parsed (UTC)
    sets: tuple[str, ...] = ()
    deleted: bool = False


@dataclass
class Record:
    """One record of a page; ``metadata`` is the element inside ``<metadata>`` (None for
    deleted records and for ListIdentifiers). Valid only until the next record is read."""

    header: Header
    metadata: Element | None = None


@dataclass
class _Page:
    """A response page being read: its items stream, the rest is known once they are read."""

    path: Path
    url: str
    verb: str
    response_date: str | None = None
    token: str | None = None
    complete_size: int | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)

    def items(self) -> Iterator[Element]:
        """Children of the verb element (records, headers, sets, formats...), each cleared
        once the caller moves on."""
        depth = 0
        verb_seen = False
        try:
            for event, el in iterparse(self.path):
                if event == "start":
                    depth += 1
                    if depth == 1 and el.tag != f"{OAI}OAI-PMH":
                        raise DocumentError(
                            f"not an OAI-PMH response (root element {el.tag!r})",
                            resource=self.url,
                            hint="give the repository's OAI-PMH base URL "
                            "(DSpace 7: https://host/server/oai/request)",
                        )
                    continue
                depth -= 1
                if depth == 1:
                    if el.tag == f"{OAI}responseDate":
                        self.response_date = (el.text or "").strip() or None
                    elif el.tag == f"{OAI}error":
                        self.errors.append((el.get("code") or "", (el.text or "").strip()))
                    elif el.tag == f"{OAI}{self.verb}":
                        verb_seen = True
                    el.clear()
                elif depth == 2 and el.tag == f"{OAI}resumptionToken":
                    self.token = (el.text or "").strip() or None
                    size = el.get("completeListSize")
                    self.complete_size = int(size) if size and size.isdigit() else None
                elif depth == 2:
                    yield el
                    el.clear()
        except (ParseError, DefusedXmlException) as exc:
            raise DocumentError(
                f"not well-formed or refused XML (DTDs and entities are not accepted): {exc}",
                resource=self.url,
            ) from None
        if depth != 0:
            raise DocumentError("the response ended early", resource=self.url)
        if not verb_seen and not self.errors:
            raise DocumentError(
                f"the answer is an OAI-PMH document but not a {self.verb} response",
                resource=self.url,
            )

    def raise_errors(self) -> bool:
        """Raise the first OAI error other than ``noRecordsMatch``; True if the list is
        empty (``noRecordsMatch``)."""
        for code, text in self.errors:
            if code != "noRecordsMatch":
                raise OaiError(code, text, resource=self.url)
        return bool(self.errors)


def _refuse_html(path: Path, content_type: str | None, url: str) -> None:
    served = (content_type or "").split(";")[0].strip().lower()
    if looks_html(path, content_type):
        raise DocumentError(
            f"an HTML page ({served or 'no content type'}), not an OAI-PMH response",
            resource=url,
            hint="give the repository's OAI-PMH base URL (DSpace 7: .../server/oai/request)",
        )


def _text(el: Element, tag: str) -> str | None:
    child = el.find(f"{OAI}{tag}")
    return (child.text or "").strip() or None if child is not None else None


def parse_header(el: Element, *, where: str) -> Header:
    identifier = _text(el, "identifier")
    datestamp = _text(el, "datestamp")
    if not identifier or not datestamp:
        raise DocumentError("a record header lacks its identifier or datestamp", resource=where)
    stamp = parse_datetime(datestamp, where=identifier)  # a bad one is refused, named
    if stamp is None:  # pragma: no cover - parse_datetime gives None only for ""
        raise DocumentError("a record header has an empty datestamp", resource=identifier)
    sets = tuple((s.text or "").strip() for s in el.findall(f"{OAI}setSpec") if s.text)
    return Header(identifier, datestamp, stamp, sets, el.get("status") == "deleted")


def parse_record(el: Element, *, where: str) -> Record:
    """A ``<record>`` (or a bare ``<header>`` of ListIdentifiers)."""
    if el.tag == f"{OAI}header":
        return Record(parse_header(el, where=where))
    header_el = el.find(f"{OAI}header")
    if header_el is None:
        raise DocumentError("a record has no header", resource=where)
    header = parse_header(header_el, where=where)
    wrapper = el.find(f"{OAI}metadata")
    inner = next(iter(wrapper), None) if wrapper is not None else None
    return Record(header, inner)


class OaiClient:
    """Requests to one OAI-PMH base URL."""

    def __init__(
        self,
        http: Http,
        base_url: str,
        *,
        tmpdir: str | None = None,
        max_page_bytes: int = MAX_PAGE_BYTES,
        max_pages: int = MAX_PAGES,
    ) -> None:
        self.http = http
        self.base_url = base_url.split("?", 1)[0]
        self.tmpdir = tmpdir
        self.max_page_bytes = max_page_bytes
        self.max_pages = max_pages
        self.pages_read = 0

    def url(self, verb: str, **args: str | None) -> str:
        query = {"verb": verb, **{k: v for k, v in args.items() if v is not None}}
        return f"{self.base_url}?{urlencode(query)}"

    def download(self, url: str) -> Download:
        return self.http.download(url, max_bytes=self.max_page_bytes, directory=self.tmpdir)

    def _pages(self, verb: str, url: str, fetch: PagePrefetch | None = None) -> Iterator[_Page]:
        """Download ``url`` (or take it from ``fetch``) and hand out its page; the temporary
        file is removed after."""
        dl = fetch.take(url) if fetch is not None else self.download(url)
        self.pages_read += 1
        try:
            _refuse_html(dl.path, dl.content_type, url)
            yield _Page(dl.path, url, verb)
        finally:
            dl.discard()

    def _small(self, verb: str, **args: str | None) -> tuple[_Page, list[Element]]:
        """A one-page answer (Identify, GetRecord), its items kept whole."""
        url = self.url(verb, **args)
        for page in self._pages(verb, url):
            items = [_detach(el) for el in page.items()]
            return page, items
        raise AssertionError("unreachable")  # pragma: no cover

    def identify(self) -> Identify:
        page, items = self._small("Identify")
        page.raise_errors()
        values = {el.tag.removeprefix(OAI): (el.text or "").strip() for el in items}
        gran = values.get("granularity", "YYYY-MM-DD")
        deleted = values.get("deletedRecord", "no")
        if deleted not in ("no", "transient", "persistent"):
            deleted = "no"  # unknown policy: deletions are found by comparison, the safe way
        return Identify(
            base_url=values.get("baseURL") or self.base_url,
            repository_name=values.get("repositoryName", ""),
            granularity="seconds" if "hh" in gran else "day",
            earliest=values.get("earliestDatestamp"),
            deleted_record=deleted,  # type: ignore[arg-type]
        )

    def list_metadata_formats(self) -> dict[str, str]:
        """metadataPrefix -> namespace."""
        page, items = self._small("ListMetadataFormats")
        if page.raise_errors():
            return {}
        out: dict[str, str] = {}
        for el in items:
            prefix = _text(el, "metadataPrefix")
            if prefix:
                out[prefix] = _text(el, "metadataNamespace") or ""
        return out

    def list_sets(self) -> Iterator[tuple[str, str]]:
        """(setSpec, setName) of every set, following resumption tokens."""
        for el in self._list("ListSets", {}):
            spec = _text(el, "setSpec")
            if spec:
                yield spec, _text(el, "setName") or ""

    def get_record(self, identifier: str, metadata_prefix: str) -> Record:
        url = self.url("GetRecord", identifier=identifier, metadataPrefix=metadata_prefix)
        page, items = self._small(
            "GetRecord", identifier=identifier, metadataPrefix=metadata_prefix
        )
        page.raise_errors()
        records = [el for el in items if el.tag == f"{OAI}record"]
        if len(records) != 1:
            raise DocumentError("GetRecord did not answer one record", resource=url)
        return parse_record(records[0], where=url)

    def _list(self, verb: str, args: dict[str, str | None]) -> Iterator[Element]:
        """Every item of a list, page after page (no restart: ListSets)."""
        token: str | None = None
        seen: set[str] = set()
        while True:
            url = self.url(verb, resumptionToken=token) if token else self.url(verb, **args)
            for page in self._pages(verb, url):
                yield from page.items()
                if page.raise_errors():
                    return
                token = _next_token(page, seen)
            if token is None:
                return
            if len(seen) > self.max_pages:
                raise ListingLoopError(
                    f"{verb} did not end after {self.max_pages} pages", resource=url
                )

    def harvest(
        self,
        verb: ListVerb,
        *,
        metadata_prefix: str,
        set_spec: str | None = None,
        from_: str | None = None,
        until: str | None = None,
    ) -> Harvest:
        return Harvest(self, verb, metadata_prefix, set_spec, from_, until)


class Harvest:
    """One ListRecords / ListIdentifiers listing, iterated once. ``response_date`` is the
    first page's (where the next incremental harvest starts)."""

    def __init__(
        self,
        client: OaiClient,
        verb: ListVerb,
        metadata_prefix: str,
        set_spec: str | None,
        from_: str | None,
        until: str | None,
    ) -> None:
        self.client = client
        self.verb: ListVerb = verb
        self.args: dict[str, str | None] = {
            "metadataPrefix": metadata_prefix,
            "set": set_spec,
            "from": from_,
            "until": until,
        }
        self.response_date: str | None = None
        self.restarts = 0

    def __iter__(self) -> Iterator[Record]:
        fetch = PagePrefetch(self.client.download)
        try:
            with reading_pages():
                yield from self._walk(fetch)
        finally:
            fetch.close()  # the page on its way, if any, is waited for and removed

    def _walk(self, fetch: PagePrefetch) -> Iterator[Record]:
        client = self.client
        args = dict(self.args)
        token: str | None = None
        seen_tokens: set[str] = set()
        mark = _Watermark()
        pages = empty_pages = stalled = 0
        while True:
            url = (
                client.url(self.verb, resumptionToken=token)
                if token
                else client.url(self.verb, **args)
            )
            expired = False
            count = 0
            for page in client._pages(self.verb, url, fetch):
                # the next page travels while this one is read, unless this one may be the
                # last the loop guards allow (a page too many would be one request too many)
                ahead = peek_token(page.path)
                last = pages + 2 > client.max_pages or empty_pages + 1 >= MAX_EMPTY_PAGES
                if ahead is not None and ahead not in seen_tokens and not last:
                    fetch.start(client.url(self.verb, resumptionToken=ahead))
                for el in page.items():
                    record = parse_record(el, where=url)
                    count += 1
                    if mark.admit(record.header):
                        yield record
                if self.response_date is None:
                    self.response_date = page.response_date
                if token and any(code == "badResumptionToken" for code, _ in page.errors):
                    expired = True
                elif page.raise_errors():
                    return
                else:
                    token = _next_token(page, seen_tokens)
            pages += 1
            if expired:
                # progress since the last restart resets the count: only a token that
                # expires before anything new was read, again and again, gives up
                stalled = 0 if mark.moved_since_restart() else stalled + 1
                self.restarts += 1
                if stalled >= MAX_RESTARTS:
                    raise ListingLoopError(
                        f"resumption tokens expired {MAX_RESTARTS} times with no progress",
                        resource=url,
                        hint="the repository may keep tokens too briefly; try again later",
                    )
                log.warning(
                    "resumption token expired at %s; listing again from %s",
                    url,
                    mark.latest_text or "the start",
                )
                args = dict(self.args)
                if mark.latest_text is not None:
                    args["from"] = mark.latest_text
                mark.restart()
                token = None
                seen_tokens.clear()
                continue
            if token is None:
                return
            empty_pages = empty_pages + 1 if count == 0 else 0
            if empty_pages >= MAX_EMPTY_PAGES:
                raise ListingLoopError(
                    f"{self.verb} gave {MAX_EMPTY_PAGES} empty pages in a row with tokens",
                    resource=url,
                )
            if pages >= client.max_pages:
                raise ListingLoopError(
                    f"{self.verb} did not end after {client.max_pages} pages", resource=url
                )


class _Watermark:
    """The newest datestamp seen and the records read with it. After an expired token the
    listing restarts ``from`` that datestamp (inclusive), so those records come again: they
    are not handed out twice. Assumes the repository lists in datestamp order, as the
    ``from`` restart itself does."""

    def __init__(self) -> None:
        self.latest: datetime | None = None
        self.latest_text: str | None = None
        self._at_latest: set[str] = set()
        self._restarted_from: datetime | None = None
        self._moved = False

    def admit(self, header: Header) -> bool:
        stamp = header.stamp
        if (
            self._restarted_from is not None
            and stamp == self._restarted_from
            and header.identifier in self._at_latest
        ):
            return False
        if self.latest is None or stamp > self.latest:
            self.latest, self.latest_text, self._at_latest = stamp, header.datestamp, set()
        if stamp == self.latest:
            self._at_latest.add(header.identifier)
        self._moved = True
        return True

    def moved_since_restart(self) -> bool:
        return self._moved

    def restart(self) -> None:
        self._restarted_from = self.latest
        self._moved = False


def _next_token(page: _Page, seen: set[str]) -> str | None:
    token = page.token
    if token is None:
        return None
    if token in seen:
        raise ListingLoopError(
            f"the resumption token {token!r} came back a second time: the list would never end",
            resource=page.url,
        )
    seen.add(token)
    return token


def _detach(el: Element) -> Element:
    """A copy that survives the parser clearing the original."""
    copy = Element(el.tag, dict(el.attrib))
    copy.text, copy.tail = el.text, el.tail
    copy.extend(_detach(child) for child in el)
    return copy
