"""``OaiPmhSource``: an OAI-PMH repository as a ``sync.contracts.Source``.

One harvest lists everything: ``ListRecords`` in a format that lists files (METS, which
carries MD5 checksums, else the ORE resource map), page by page. Each record becomes a
metadata entry (its GetRecord URL in the richest metadata format the crosswalk reads) that
``describes`` its files, exactly as a ResourceSync publisher links them, so the linker groups
items unchanged. The metadata itself is fetched per item at deposit time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from xml.etree.ElementTree import Element, tostring

from ...contracts import Changes, Fetched, Listing
from ...errors import DocumentError, MetadataError, SyncError
from ...fetcher import Fetcher
from ...filenames import filename_from_url, safe_filename
from ...http import Http
from ...model import Entry, Item, Link
from ...w3cdate import parse_datetime
from . import mets, ore
from .files import DEFAULT_BUNDLES, FileDesc
from .protocol import Harvest, Identify, ListVerb, OaiClient, Record

log = logging.getLogger(__name__)

METADATA_PREFERENCE: tuple[str, ...] = ("dim", "qdc", "oai_dc")
"""Formats the crosswalk reads, richest first (DSpace's own intermediate format leads)."""
FILE_FORMATS: tuple[str, ...] = ("mets", "ore")
"""Formats that list a record's files, preferred first (METS gives checksums)."""
_NAMESPACES = {
    "dim": "http://www.dspace.org/xmlns/dspace/dim",
    "qdc": "http://epubs.cclrc.ac.uk/xmlns/qdc/",
    "oai_dc": "http://www.openarchives.org/OAI/2.0/oai_dc/",
}
XML_TYPE = "application/xml"


def detect(url: str, http: Http) -> bool:
    """Does ``url`` answer ``?verb=Identify`` with an OAI-PMH document?"""
    try:
        OaiClient(http, url).identify()
    except SyncError:
        return False
    return True


def handle_of(identifier: str) -> str | None:
    """``oai:host:123456789/45`` -> ``123456789/45`` (DSpace and other handle systems)."""
    local = identifier.rsplit(":", 1)[-1]
    prefix, sep, suffix = local.partition("/")
    if sep and prefix.replace(".", "").isdigit() and suffix:
        return local
    return None


class OaiPmhSource:
    """An OAI-PMH 2.0 data provider, with files from its ORE or METS records."""

    type_name = "oai-pmh"
    remote = True

    def __init__(
        self,
        base_url: str,
        *,
        http: Http,
        fetcher: Fetcher,
        sets: Sequence[str] = (),
        metadata_prefix: str | None = None,
        bundles: Sequence[str] = DEFAULT_BUNDLES,
        tmpdir: str | None = None,
    ) -> None:
        self.location = base_url
        self.http = http
        self.fetcher = fetcher
        self.sets = tuple(sets)
        self.bundles = tuple(b.upper() for b in bundles)
        self.tmpdir = tmpdir
        self.client = OaiClient(http, base_url, tmpdir=tmpdir)
        self._wanted_prefix = metadata_prefix
        self._identify: Identify | None = None
        self._formats: dict[str, str] | None = None
        self._loc_head: tuple[str, str] | None = None
        self._profile: tuple[str, tuple[Link, ...]] | None = None
        self._set_links: dict[tuple[str, ...], tuple[Link, ...]] = {}

    # -- what the repository offers --------------------------------------------------------
    @property
    def identify(self) -> Identify:
        if self._identify is None:
            self._identify = self.client.identify()
        return self._identify

    @property
    def formats(self) -> dict[str, str]:
        if self._formats is None:
            self._formats = self.client.list_metadata_formats()
        return self._formats

    @property
    def metadata_prefix(self) -> str:
        """The configured prefix, else the richest offered format the crosswalk reads."""
        if self._wanted_prefix:
            return self._wanted_prefix
        for prefix in METADATA_PREFERENCE:
            if prefix in self.formats:
                return prefix
        raise DocumentError(
            "the repository offers none of the metadata formats resync-sword reads "
            f"({', '.join(METADATA_PREFERENCE)}); it offers {', '.join(self.formats) or 'none'}",
            resource=self.location,
            hint="set metadata_prefix to a Dublin Core based format the repository offers",
        )

    @property
    def files_prefix(self) -> str | None:
        """METS if offered (checksums), else ORE, else None (metadata-only items)."""
        return next((p for p in FILE_FORMATS if p in self.formats), None)

    def metadata_loc(self, identifier: str) -> str:
        """The GetRecord URL of a record: its metadata entry's loc (as ``client.url`` writes
        it; the part before the identifier is made once)."""
        prefix = self.metadata_prefix
        if self._loc_head is None or self._loc_head[0] != prefix:
            self._loc_head = (prefix, self.client.url("GetRecord", metadataPrefix=prefix) + "&")
        return self._loc_head[1] + _identifier_query(identifier)

    # -- entries ---------------------------------------------------------------------------
    def _files(self, record: Record, where: str) -> list[FileDesc]:
        """The wanted bundles' files, each once, from the record's METS or ORE document."""
        root = record.metadata
        if root is None or self.files_prefix is None:
            return []
        if mets.is_mets(root):
            found = mets.parse_mets(root, where=where, bundles=self.bundles)
        elif ore.is_resource_map(root):
            found = ore.parse_resource_map(root, where=where, bundles=self.bundles)
        else:
            raise DocumentError(
                f"the {self.files_prefix} record of {record.header.identifier} is not a "
                f"{self.files_prefix.upper()} document (root <{root.tag}>)",
                resource=where,
            )
        unique: dict[str, FileDesc] = {}
        for f in found:  # the wanted bundles' only, as parsed
            unique.setdefault(f.href, f)
        return list(unique.values())

    def _modified(self, record: Record) -> datetime | None:
        """The record's own modification time where finer than the datestamp (ORE
        ``atom:updated``, METS ``LASTMODDATE``): day-granularity datestamps would hide a
        second change on the same day from the fingerprint."""
        root = record.metadata
        stamp: str | None = None
        if root is not None and ore.is_resource_map(root):
            stamp = ore.updated(root)
        elif root is not None and mets.is_mets(root):
            stamp = mets.last_modified(root)
        if stamp == record.header.datestamp:
            return record.header.stamp  # the same text: parsed already
        where = record.header.identifier
        try:
            finer = parse_datetime(stamp, where=where) if stamp else None
        except DocumentError:
            finer = None
        return finer or record.header.stamp

    def _listed_metadata_md5(self, record: Record) -> tuple[tuple[str, str], ...]:
        """Where the listing harvested the metadata format itself (no ORE or METS), the
        record is the very document ``fetch`` writes: its MD5 is a true fingerprint, so a
        change within one datestamp (day granularity) is still seen."""
        root = record.metadata
        if root is None or self.files_prefix is not None:
            return ()
        return (("md5", hashlib.md5(_serialize(root)).hexdigest()),)

    def entries(self, record: Record, *, change: str | None = None) -> list[Entry]:
        """The metadata entry of a record and its files' entries (the wanted bundles)."""
        header = record.header
        meta_loc = self.metadata_loc(header.identifier)
        if header.deleted:
            stamp = header.stamp
            return [Entry(loc=meta_loc, lastmod=stamp, change="deleted", change_time=stamp)]
        files = self._files(record, meta_loc)
        lastmod = self._modified(record)
        for f in files:
            self.http.check_allowed(f.href, what=f"file of {header.identifier}")
        links = (
            *self._profile_links(),
            *(Link(rel="describes", href=f.href) for f in files),
            *self._collection_links(header.sets),
        )
        out = [
            Entry(
                loc=meta_loc,
                lastmod=lastmod,
                hashes=self._listed_metadata_md5(record),
                type=XML_TYPE,
                links=links,
                change=change,
                change_time=lastmod if change else None,
            )
        ]
        for f in files:
            title = (("title", f.name),) if f.name else ()
            out.append(
                Entry(
                    loc=f.href,
                    lastmod=lastmod,
                    hashes=(("md5", f.md5),) if f.md5 else (),
                    length=f.length,
                    type=f.type,
                    links=(Link(rel="describedby", href=meta_loc, attrs=title),),
                    change=change,
                    change_time=lastmod if change else None,
                )
            )
        return out

    def _profile_links(self) -> tuple[Link, ...]:
        """The metadata format's namespace as a ``profile`` link (made once: every record
        carries the same)."""
        prefix = self.metadata_prefix
        if self._profile is None or self._profile[0] != prefix:
            namespace = _NAMESPACES.get(prefix) or self.formats.get(prefix, "")
            links = (Link(rel="profile", href=namespace),) if namespace else ()
            self._profile = (prefix, links)
        return self._profile[1]

    def _collection_links(self, sets: tuple[str, ...]) -> tuple[Link, ...]:
        """A record's sets as ``collection`` links, collections (``col_``) first; made once
        per combination of sets (a repository has few)."""
        links = self._set_links.get(sets)
        if links is None:
            ordered = sorted(sets, key=lambda s: (not s.startswith("col_"), s))
            links = tuple(Link(rel="collection", href=spec) for spec in ordered)
            if len(self._set_links) < 10_000:
                self._set_links[sets] = links
        return links

    def _harvests(self, verb: ListVerb, prefix: str, from_: str | None) -> Iterator[Harvest]:
        for spec in self.sets or (None,):
            yield self.client.harvest(verb, metadata_prefix=prefix, set_spec=spec, from_=from_)

    def _records(
        self, errors: list[SyncError], cursor: Callable[[str | None], None], from_: str | None
    ) -> Iterator[Record]:
        """Every record once (several sets may hold one record); a refused page or listing
        goes to ``errors`` and ends that set's listing (the pass is then partial)."""
        prefix = self.files_prefix or self.metadata_prefix
        several = len(self.sets) > 1
        done: set[str] = set()
        for harvest in self._harvests("ListRecords", prefix, from_):
            try:
                for record in harvest:
                    cursor(harvest.response_date)
                    if several:
                        if record.header.identifier in done:
                            continue
                        done.add(record.header.identifier)
                    yield record
                cursor(harvest.response_date)
            except SyncError as exc:
                errors.append(exc)

    # -- the contract ----------------------------------------------------------------------
    def listing(self) -> Listing:
        """Everything the repository lists now, streamed page by page."""

        def stream(listing: Listing) -> Iterator[Entry]:
            def first_date(date: str | None) -> None:
                if listing.cursor is None and date:
                    listing.cursor = date

            try:
                self.metadata_prefix  # noqa: B018 - fail early, as one error of the pass
            except SyncError as exc:
                listing.errors.append(exc)
                return
            for record in self._records(listing.errors, first_date, None):
                if record.header.deleted:
                    continue
                try:
                    yield from self.entries(record)
                except SyncError as exc:
                    listing.errors.append(exc)

        return Listing(stream)

    def changes(
        self, since: datetime | None, memo: Mapping[str, Any] | None = None
    ) -> Changes | None:
        """Records changed at or after ``since``; None when the repository keeps no
        deletions (``deletedRecord=no``: the engine compares a fresh listing instead)."""
        if self.identify.deleted_record == "no":
            return None
        result = Changes()
        from_ = self.identify.format_from(since) if since is not None else None

        def first_date(date: str | None) -> None:
            if result.cursor is None and date:
                result.cursor = date

        latest: dict[str, list[Entry]] = {}
        for record in self._records(result.errors, first_date, from_):
            try:
                entries = self.entries(record, change="updated")
            except SyncError as exc:
                result.errors.append(exc)
                continue
            latest.pop(record.header.identifier, None)
            latest[record.header.identifier] = entries
        for entries in latest.values():
            result.changes.extend(entries)
        result.changes.sort(key=lambda e: e.change_time or e.lastmod or datetime.min)
        return result

    def fetch(self, entry: Entry) -> Fetched:
        if self._is_metadata(entry.loc):
            return self._fetch_metadata(entry)
        got = self.fetcher.fetch(entry)
        title = _title(entry)
        if title and got.filename == safe_filename(filename_from_url(entry.loc)):
            # no Content-Disposition: the name the ORE title / METS gives wins over the URL's
            got.filename = safe_filename(title)
        return got

    def _is_metadata(self, loc: str) -> bool:
        parts = urlsplit(loc)
        query = parse_qs(parts.query)
        return loc.startswith(self.client.base_url + "?") and query.get("verb") == ["GetRecord"]

    def _fetch_metadata(self, entry: Entry) -> Fetched:
        query = parse_qs(urlsplit(entry.loc).query)
        identifier = query.get("identifier", [""])[0]
        prefix = query.get("metadataPrefix", [""])[0]
        try:
            record = self.client.get_record(identifier, prefix)
        except DocumentError as exc:
            # the record's own document is bad (DTD, entity, not well-formed, HTML): that is
            # this item's metadata failing, as for a ResourceSync metadata record
            raise MetadataError(
                f"the metadata record {identifier} is refused: {exc.message}",
                resource=entry.loc,
                hint=exc.hint,
            ) from None
        if record.metadata is None:
            raise MetadataError(
                "the repository answered the record without metadata (deleted?)",
                resource=entry.loc,
            )
        data = _serialize(record.metadata)
        fd, name = tempfile.mkstemp(prefix="rsw-oai-", suffix=".xml", dir=self.tmpdir)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        path = Path(name)
        return Fetched(
            entry=entry,
            path=path,
            size=len(data),
            md5=hashlib.md5(data).hexdigest(),
            filename=f"{prefix}.xml",
            content_type=XML_TYPE,
            discard_fn=lambda: path.unlink(missing_ok=True),
        )

    def identifiers(self, item: Item) -> list[str]:
        """The handle URI (where the OAI identifier holds a handle) and the OAI identifier."""
        out: list[str] = []
        for meta in item.metadata:
            identifier = parse_qs(urlsplit(meta.loc).query).get("identifier", [""])[0]
            if not identifier:
                continue
            handle = handle_of(identifier)
            for value in (f"http://hdl.handle.net/{handle}" if handle else None, identifier):
                if value and value not in out:
                    out.append(value)
        return out

    def resolve_deleted(self, loc: str, known: Callable[[str], list[str]]) -> str | None:
        return None  # a deleted record keeps its metadata loc

    def close(self) -> None:
        pass


_PLAIN_IDENTIFIER = re.compile(r"[A-Za-z0-9_.~:/\-]+")


def _identifier_query(identifier: str) -> str:
    """``urlencode({"identifier": identifier})``; the usual ``oai:host:123/45`` without
    urllib's quoting machinery (only ``:`` and ``/`` need escaping there)."""
    if _PLAIN_IDENTIFIER.fullmatch(identifier):
        return "identifier=" + identifier.replace(":", "%3A").replace("/", "%2F")
    return urlencode({"identifier": identifier})


def _title(entry: Entry) -> str | None:
    for link in entry.links_with("describedby"):
        for key, value in link.attrs:
            if key == "title" and value:
                return value
    return None


def _serialize(el: Element) -> bytes:
    """The record's metadata document on its own (namespaces declared on its root)."""
    body = tostring(el, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n").encode("utf-8")
