"""ResourceSync as a source: discovery, resource lists, change lists (and their archives).

Documents are read one at a time, streaming (``lists.py``); entries on hosts outside the
source's are refused and reported with the document's other refusals, so the pass is partial
(no deletions, no new cursor) and the next run reads the same again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from ...changes import READ_DOCUMENTS_KEY, SkipReport, alias_suffixes, collapse, select_changes
from ...contracts import Changes, Fetched, Listing
from ...errors import SyncError
from ...fetcher import Fetcher
from ...http import Http
from ...model import Entry, Item
from .discovery import SourcePlan, discover
from .lists import ListReader
from .origin_memo import OriginMemo

log = logging.getLogger(__name__)

BATCH = 2000  # entries of one document held before they are handed on


class ResourceSyncSource:
    """A ResourceSync source: a site, source description, capability list, resource list
    (index) or change list URL."""

    type_name = "resourcesync"
    remote = True

    def __init__(
        self,
        url: str,
        *,
        http: Http,
        fetcher: Fetcher,
        max_list_bytes: int,
        max_list_entries: int,
    ) -> None:
        self.location = url
        self.http = http
        self.fetcher = fetcher
        self._refused: list[SyncError] = []
        self.reader = ListReader(
            http,
            max_bytes=max_list_bytes,
            max_entries=max_list_entries,
            on_error=self._refused.append,
        )
        self._plan: SourcePlan | None = None

    def plan(self) -> SourcePlan:
        """The lists the source publishes (discovered once per run)."""
        if self._plan is None:
            self._plan = discover(self.reader, self.location)
        return self._plan

    def _take_refused(self, errors: list[SyncError]) -> None:
        errors.extend(self._refused)
        self._refused.clear()

    def _inside(self, entries: Iterator[Entry]) -> Iterator[Entry]:
        """Entries whose URL is outside the source's hosts are refused (and reported)."""
        check = OriginMemo(lambda url: self.http.check_allowed(url, what="resource"))
        for e in entries:
            try:
                check(e.loc)
            except SyncError as exc:
                self._refused.append(exc)
                continue
            yield e

    # -- full listing ------------------------------------------------------------------------
    def listing(self) -> Listing:
        plan = self.plan()
        return Listing(lambda listing: self._resource_entries(plan, listing))

    def _resource_entries(self, plan: SourcePlan, listing: Listing) -> Iterator[Entry]:
        started = datetime.now(UTC)
        ats: list[datetime] = []
        for url in plan.resource_lists:
            try:
                for info, entries in self.reader.walk(url, expect="resourcelist"):
                    if info.at:
                        ats.append(info.at)
                    yield from self._document(entries, listing)
            except SyncError as exc:
                listing.errors.append(exc)
        self._take_refused(listing.errors)
        # the resource list's own `at` is where the next incremental starts (not lastmods)
        listing.cursor = (min(ats) if ats else started).isoformat()

    def _document(self, entries: Iterator[Entry], listing: Listing) -> Iterator[Entry]:
        """One document's entries in batches: a document found broken or too long part-way
        is refused from the batch under way (a list of up to ``BATCH`` entries is refused
        whole; of a longer one, the batches before the fault are kept and the run is
        partial). The index's other documents still count."""
        batch: list[Entry] = []
        try:
            for e in self._inside(entries):
                batch.append(e)
                if len(batch) >= BATCH:
                    yield from batch
                    batch.clear()
        except SyncError as exc:
            listing.errors.append(exc)
            return
        yield from batch

    # -- changes -----------------------------------------------------------------------------
    def changes(self, since: datetime | None, memo: Mapping[str, Any]) -> Changes | None:
        """The change lists' entries to apply, chosen document by document
        (``select_changes``): entries without ``rs:md datetime`` count when their document
        is new since the last sync; what is left out is counted and said."""
        plan = self.plan()
        if not plan.change_lists and not plan.changelist_archives:
            log.info("the source publishes no change list: comparing a fresh resource list")
            return None
        errors: list[SyncError] = []
        skips = SkipReport()
        read_before = set(memo.get(READ_DOCUMENTS_KEY) or ())
        # entries are chosen per document; collapse only orders them, the last change wins
        entries = self._change_entries(plan, since, errors, read_before, skips)
        collapsed = collapse(entries, None)
        self._take_refused(errors)
        if skips.total:
            log.info("change lists: %s", skips.describe())
        return Changes(
            changes=list(collapsed.changes),
            cursor=collapsed.latest.isoformat() if collapsed.latest else None,
            errors=errors,
            skipped_reasons=[skips.describe()] if skips.total else [],
            memo={READ_DOCUMENTS_KEY: skips.documents_read},
        )

    def _change_entries(
        self,
        plan: SourcePlan,
        since: datetime | None,
        errors: list[SyncError],
        read_before: set[str],
        skips: SkipReport,
    ) -> Iterator[Entry]:
        urls = list(plan.change_lists)
        for archive in plan.changelist_archives:
            try:
                doc = self.reader.fetch(archive)
                for e in doc.entries():
                    if since is not None and e.md_until is not None and e.md_until < since:
                        continue  # a closed list wholly before the cursor
                    urls.append(e.loc)
            except SyncError as exc:
                errors.append(exc)
        seen: set[str] = set()
        for url in urls:
            if url in seen:
                continue
            seen.add(url)
            try:
                self.http.check_allowed(url, what="change list")
                for info, entries in self.reader.walk(url, expect="changelist"):
                    # one document at a time: whether it is new depends on all it says
                    batch = list(self._inside(entries))
                    yield from select_changes(info, batch, since, read_before, skips)
            except SyncError as exc:
                errors.append(exc)

    def resolve_deleted(self, loc: str, known: Callable[[str], list[str]]) -> str | None:
        """DSpace names a deleted metadata record ``{base}/{handle}/{prefix}`` although it
        was listed as ``{base}/resource/{handle}/{prefix}``: find it by its tail."""
        for suffix in alias_suffixes(loc):
            found = known(suffix)
            if len(found) == 1:
                return found[0]
        return None

    # -- resources ---------------------------------------------------------------------------
    def fetch(self, entry: Entry) -> Fetched:
        return self.fetcher.fetch(entry)

    def identifiers(self, item: Item) -> list[str]:
        return [e.loc for e in item.metadata] or [item.key]

    def close(self) -> None:
        return None
