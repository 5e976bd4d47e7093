"""Engine: the stages of a run, in order, with the worker pool and the run record.

baseline:    discover -> read resource lists into state -> link -> plan -> deposit
incremental: discover -> read change lists since the cursor -> apply to state -> link ->
             plan the touched items -> deposit (no change lists: a fresh resource list
             compared with the state, like baseline)
replay:      re-plan every failed or unfinished item and deposit
audit:       compare source, state and destination; change nothing
undo:        delete the containers one run created
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .changes import (
    READ_DOCUMENTS_KEY,
    SkipReport,
    alias_suffixes,
    collapse,
    next_cursor,
    select_changes,
)
from .config import Pipeline
from .contracts import HeldFile
from .discovery import SourcePlan, discover
from .errors import ConfigError, MassDeletionError, SyncError, redact
from .fetcher import Fetcher
from .http import Http, HttpSettings, host_key
from .linker import LinkGraph, build_item
from .lists import ListReader
from .model import Entry, Item
from .planner import DELETE, UNCHANGED, ItemPlan, plan_item
from .progress import Progress
from .recovery import compare_files
from .state import DELETED, FAILED, RETRYABLE, ItemState, State
from .sword.atom import held_files
from .sword.client import SwordClient

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a run did; ``exit_code`` 0 when every item synced, 1 when some failed."""

    run_id: int
    kind: str
    status: str
    counts: dict[str, int] = field(default_factory=dict)
    message: str | None = None

    @property
    def exit_code(self) -> int:
        """0: everything synced, or stopped at --limit as asked; 1: failures or stopped."""
        return 0 if self.status in ("ok", "limited") else 1


@dataclass(frozen=True)
class PassResult:
    """How far a pass got: ``complete`` = every document read; ``limited`` = stopped at
    --limit; ``cursor`` = where the next incremental run starts, if this pass earns it."""

    complete: bool
    limited: bool
    cursor: str | None
    note: str | None = None  # said in the run's message when nothing else is (skipped changes)


class Engine:
    """Runs one pipeline against its state DB."""

    def __init__(self, pipeline: Pipeline, state: State, *, progress: bool = True) -> None:
        self.p = pipeline
        self.state = state
        self.show_progress = progress
        settings = HttpSettings(
            connect_timeout=pipeline.connect_timeout,
            read_timeout=pipeline.read_timeout,
            attempts=pipeline.attempts,
            max_retry_seconds=pipeline.max_retry_seconds,
            backoff_initial=pipeline.backoff_initial,
            per_host_concurrency=pipeline.per_host_concurrency or pipeline.workers,
            per_host_rate=pipeline.per_host_rate,
            verify=(pipeline.ca_bundle or True) if pipeline.verify_tls else False,
            pool_size=max(4, pipeline.workers * 2),
        )
        allowed = {host_key(pipeline.source)}
        allowed |= {host_key(h if "://" in h else f"http://{h}") for h in pipeline.allowed_hosts}
        dest = [pipeline.collection, *pipeline.collections.values()]
        if pipeline.service_document:
            dest.append(pipeline.service_document)
        allowed |= {host_key(u) for u in dest}
        self.http = Http(settings=settings, allowed_hosts=allowed)
        password = pipeline.password()
        if pipeline.username:
            for url in dest:
                self.http.set_auth(url, pipeline.username, password or "")
        self.sword = SwordClient(self.http, on_behalf_of=pipeline.on_behalf_of or None)
        # list entries and index members refused while reading (reported, then skipped)
        self._list_errors: list[SyncError] = []
        self.reader = ListReader(
            self.http,
            max_bytes=pipeline.max_list_bytes,
            max_entries=pipeline.max_list_entries,
            on_error=self._list_errors.append,
        )
        self.fetcher = Fetcher(self.http, max_file_size=pipeline.max_file_size)
        self._counts_lock = threading.Lock()

    # -- runs --------------------------------------------------------------------------------
    def _begin(self, kind: str, comment: str | None) -> tuple[int, dict[str, int]]:
        run_id = self.state.start_run(kind, self.p.name, comment)
        self.state.mark_interrupted(keep=run_id)
        counts = dict.fromkeys(
            ("created", "updated", "deleted", "unchanged", "failed", "skipped"), 0
        )
        return run_id, counts

    def _end(
        self,
        run_id: int,
        kind: str,
        counts: dict[str, int],
        *,
        partial: bool = False,
        limited: bool = False,
        message: str | None = None,
        cursor: str | None = None,
    ) -> RunResult:
        counts["requests"] = self.http.requests_sent
        if counts["failed"] or partial:
            status = "partial"
        else:
            status = "limited" if limited else "ok"
        self.state.finish_run(run_id, status, counts, message, cursor)
        return RunResult(run_id, kind, status, counts, message)

    def _abort(self, run_id: int, kind: str, counts: dict[str, int], exc: SyncError) -> RunResult:
        self.state.record_error(run_id, None, exc)
        counts["requests"] = self.http.requests_sent
        self.state.finish_run(run_id, "failed", counts, exc.describe())
        return RunResult(run_id, kind, "failed", counts, exc.describe())

    def check_destination(self) -> None:
        """Read the service document once: the collections exist, limits are known."""
        if not self.p.service_document:
            return
        sd = self.sword.service_document(self.p.service_document)
        for col in {self.p.collection, *self.p.collections.values()}:
            if col not in sd.collections:
                raise ConfigError(
                    "the service document does not list this collection",
                    resource=col,
                    hint="collections offered: " + ", ".join(sorted(sd.collections)) or "none",
                )

    # -- baseline ----------------------------------------------------------------------------
    def baseline(self, comment: str | None = None, *, force_delete: bool = False) -> RunResult:
        run_id, counts = self._begin("baseline", comment)
        self.state.set_json("pipeline", self.p.to_json())
        try:
            self.check_destination()
            result = self._full_pass(run_id, counts, force_delete)
        except SyncError as exc:
            return self._abort(run_id, "baseline", counts, exc)
        return self._finish_pass(run_id, "baseline", counts, result)

    def _finish_pass(
        self, run_id: int, kind: str, counts: dict[str, int], result: PassResult | None
    ) -> RunResult:
        """A pass that did not read everything, or stopped at --limit, keeps the old cursor,
        so the next run (or ``replay``) sees the same changes again."""
        if result is None:
            return self._end(run_id, kind, counts)
        message = None
        if not result.complete:
            message = "not everything could be read; the next run continues from the same point"
        elif result.limited:
            message = f"stopped at --limit {self.p.limit}; the next run continues"
        else:
            message = result.note
        earned = result.complete and not result.limited
        return self._end(
            run_id,
            kind,
            counts,
            partial=not result.complete,
            limited=result.limited,
            cursor=result.cursor if earned else None,
            message=message,
        )

    def _full_pass(self, run_id: int, counts: dict[str, int], force_delete: bool) -> PassResult:
        """Resource lists into state, unlisted resources gone, every item reconciled."""
        plan = discover(self.reader, self.p.source)
        self.state.set_json("source_plan", plan.__dict__)
        complete, cursor = self._read_resource_lists(plan, run_id)
        if complete:
            self._mark_unlisted(run_id, force_delete)
        limited = self._reconcile(run_id, counts, only=None, force_delete=force_delete)
        return PassResult(complete, limited, cursor)

    def _change_pass(self, run_id: int, counts: dict[str, int], force_delete: bool) -> PassResult:
        """Changes since the cursor (minus the overlap) into state, touched items reconciled;
        without change lists, a full pass."""
        plan = discover(self.reader, self.p.source)
        if not plan.change_lists and not plan.changelist_archives:
            log.info("the source publishes no change list: comparing a fresh resource list")
            return self._full_pass(run_id, counts, force_delete)
        since_text = self.state.last_successful_cursor()
        since = datetime.fromisoformat(since_text) if since_text else None
        if since is not None:
            since -= timedelta(seconds=self.p.overlap_seconds)
        skips = SkipReport()
        touched, latest, complete = self._apply_change_lists(plan, run_id, since, skips)
        limited = self._reconcile(run_id, counts, only=touched, force_delete=force_delete)
        if complete and not limited:  # what the next run compares documents with
            self.state.set_json(READ_DOCUMENTS_KEY, skips.documents_read)
        return PassResult(
            complete, limited, next_cursor(latest, since_text), skips.describe() or None
        )

    def _read_resource_lists(self, plan: SourcePlan, run_id: int) -> tuple[bool, str]:
        """Every resource list into state, sitemap by sitemap. (all read?, cursor)."""
        started = datetime.now(UTC)
        ats: list[datetime] = []
        complete = True
        total = 0
        for url in plan.resource_lists:
            try:
                for info, entries in self.reader.walk(url, expect="resourcelist"):
                    if info.at:
                        ats.append(info.at)
                    try:
                        total += self.state.upsert_entries(self._inside(entries, run_id), run_id)
                    except SyncError as exc:  # this document is broken; the index's others count
                        self._list_errors.append(exc)
            except SyncError as exc:
                self._list_errors.append(exc)
        for refused in self._list_errors:
            complete = False  # no deletions and no new cursor after a partial read
            self.state.record_error(run_id, None, refused)
            log.error("%s", refused.describe())
        self._list_errors.clear()
        log.info("read %d list entries from %d resource list(s)", total, len(plan.resource_lists))
        cursor = min(ats) if ats else started
        return complete, cursor.isoformat()

    def _inside(self, entries: Iterator[Entry], run_id: int) -> Iterator[Entry]:
        """Entries whose URL is outside the source's hosts are refused (recorded with the
        other refused entries when the lists are read: the read is then partial)."""
        for e in entries:
            try:
                self.http.check_allowed(e.loc, what="resource")
            except SyncError as exc:
                self._list_errors.append(exc)
                continue
            yield e

    def _mark_unlisted(self, run_id: int, force_delete: bool) -> None:
        """Resources the fresh lists no longer name are gone (guarded against mass loss)."""
        present = self.state.count_resources()
        missing = list(self.state.unseen_present(run_id))
        if missing and len(missing) == present and not force_delete:
            raise MassDeletionError(
                f"the source now lists none of the {present} resources of the mirror; "
                "nothing was deleted",
                resource=self.p.source,
                hint="check the source; run with --force-delete if it is really empty",
            )
        self.state.mark_deleted(missing, run_id)

    # -- incremental -------------------------------------------------------------------------
    def incremental(self, comment: str | None = None, *, force_delete: bool = False) -> RunResult:
        run_id, counts = self._begin("incremental", comment)
        try:
            self.check_destination()
            result = self._change_pass(run_id, counts, force_delete)
        except SyncError as exc:
            return self._abort(run_id, "incremental", counts, exc)
        return self._finish_pass(run_id, "incremental", counts, result)

    def _change_entries(
        self,
        plan: SourcePlan,
        run_id: int,
        since: datetime | None,
        errors: list[SyncError],
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
        read_before = set(self.state.get_json(READ_DOCUMENTS_KEY) or ())
        seen: set[str] = set()
        for url in urls:
            if url in seen:
                continue
            seen.add(url)
            try:
                self.http.check_allowed(url, what="change list")
                for info, entries in self.reader.walk(url, expect="changelist"):
                    # one document at a time: whether it is new depends on all it says
                    batch = list(self._inside(entries, run_id))
                    yield from select_changes(info, batch, since, read_before, skips)
            except SyncError as exc:
                errors.append(exc)

    def _apply_change_lists(
        self, plan: SourcePlan, run_id: int, since: datetime | None, skips: SkipReport
    ) -> tuple[set[str], datetime | None, bool]:
        errors: list[SyncError] = []
        # entries are chosen per document (select_changes); collapse only orders them
        changes = collapse(self._change_entries(plan, run_id, since, errors, skips), None)
        errors.extend(self._list_errors)
        self._list_errors.clear()
        for exc in errors:
            self.state.record_error(run_id, None, exc)
            log.error("%s", exc.describe())
        touched: set[str] = set()
        self.state.upsert_entries(changes.upserts, run_id)
        touched.update(e.loc for e in changes.upserts)
        gone = []
        for e in changes.deleted:
            loc = e.loc if self.state.is_known(e.loc) else self._resolve_alias(e.loc)
            if loc is None:
                continue  # never mirrored: nothing to delete
            gone.append(loc)
        self.state.mark_deleted(gone, run_id)
        touched.update(gone)
        log.info(
            "change lists: %d changes (%d deletions) since %s",
            len(changes.changes),
            len(gone),
            since.isoformat() if since else "the beginning",
        )
        if skips.total:
            log.info("change lists: %s", skips.describe())
        return touched, changes.latest, not errors

    def _resolve_alias(self, loc: str) -> str | None:
        for suffix in alias_suffixes(loc):
            found = self.state.find_by_suffix(suffix)
            if len(found) == 1:
                return found[0]
        return None

    # -- replay ------------------------------------------------------------------------------
    def replay(self, comment: str | None = None) -> RunResult:
        """Finish an unfinished run (killed, crashed, a document unreadable, --limit), then
        retry every failed or unfinished item. Safe to run any number of times."""
        run_id, counts = self._begin("replay", comment)
        result = None
        try:
            self.check_destination()
            if self.state.previous_run_unfinished(run_id):
                if self.state.last_successful_cursor() is None:
                    result = self._full_pass(run_id, counts, force_delete=False)
                else:
                    result = self._change_pass(run_id, counts, force_delete=False)
            keys = set(self.state.item_keys(RETRYABLE))
            if keys:
                self._reconcile(run_id, counts, only=None, keys=keys, force_delete=False)
        except SyncError as exc:
            return self._abort(run_id, "replay", counts, exc)
        return self._finish_pass(run_id, "replay", counts, result)

    # -- undo --------------------------------------------------------------------------------
    def undo(self, target_run: int, comment: str | None = None) -> RunResult:
        run_id, counts = self._begin("undo", comment or f"undo of run {target_run}")
        keys = self.state.items_created_in(target_run)
        from .depositor import Depositor

        dep = Depositor(self.state, self.sword, self.fetcher, self.p, run_id)
        for key in keys:
            st = self.state.item(key)
            if st is None or st.status == DELETED:
                continue
            try:
                dep.apply(None, ItemPlan(key, DELETE, recover=not st.edit_iri), "", st)
                counts["deleted"] += 1
            except SyncError as exc:
                self._failed(run_id, key, exc, counts)
        return self._end(run_id, "undo", counts)

    # -- link, plan, deposit -----------------------------------------------------------------
    def _desired(self, locs: set[str] | None, keys: set[str] | None) -> Iterator[Item]:
        """Items as the source has them now. With ``locs`` / ``keys`` given, only the items
        that contain one of those locs or have one of those keys (touched items)."""
        graph = LinkGraph(known=self.state.is_known)
        for loc, links in self.state.iter_link_records():
            graph.add(loc, links)
        everything = locs is None and keys is None
        for group in graph.groups():
            if group.kind == "orphan":
                continue
            if group.kind == "standalone" and self.p.unlinked == "skip":
                continue
            key = self.state.key_for(group.locs)
            if not everything and not (
                (locs is not None and any(loc in locs for loc in group.locs))
                or (keys is not None and key in keys)
            ):
                continue
            entries = self.state.entries(group.locs)
            yield build_item(group, entries, preference=self.p.metadata_preference, key=key)

    def _collection_for(self, item: Item) -> str:
        if item.collection and item.collection in self.p.collections:
            return self.p.collections[item.collection]
        return self.p.collection

    def _reconcile(
        self,
        run_id: int,
        counts: dict[str, int],
        *,
        only: set[str] | None,
        force_delete: bool,
        keys: set[str] | None = None,
    ) -> bool:
        """Plan and carry out; returns True when --limit left work for a later run."""
        from .depositor import Depositor

        dep = Depositor(self.state, self.sword, self.fetcher, self.p, run_id)
        if only is not None:
            # an item is touched when one of its locs changed, including locs it had before
            keys = (keys or set()) | {self.state.key_for([loc]) or "" for loc in only}
            keys.discard("")
        pool = _Pool(self, dep, run_id, counts)
        # the keys seen are kept in memory only for a touched subset; a full pass marks them
        # in the state DB (items.seen_run) and finds the unseen ones in SQL
        live: set[str] | None = set() if keys is not None else None
        try:
            # creates and updates stream to the workers as they are planned: memory stays
            # bounded by the pool, not by the size of the source
            for item in self._desired(only, keys):
                st = self.state.item(item.key)
                self.state.set_members(
                    item.key,
                    [e.loc for e in item.metadata],
                    [e.loc for e in item.files],
                    run_id=run_id,
                )
                if live is not None:
                    live.add(item.key)
                col = st.collection_iri if st and st.collection_iri else self._collection_for(item)
                plan = plan_item(item, st, col)
                if plan.kind == UNCHANGED:
                    counts["unchanged"] += 1
                elif not pool.submit(item, plan, col, st):
                    return True  # --limit reached: the rest (and any deletion) waits
            # items that the source no longer has: all known before any is deleted
            if keys is not None and live is not None:
                candidates = sorted(keys - live)
            else:
                candidates = self.state.unseen_items(run_id)
            deletions: list[tuple[ItemPlan, ItemState]] = []
            for key in candidates:
                st = self.state.item(key)
                if st is None:
                    continue
                plan = plan_item(None, st, None)
                if plan.kind == DELETE:
                    deletions.append((plan, st))
                elif st.status != DELETED and not st.edit_iri:
                    # gone before it was ever deposited: nothing to remove at the destination
                    self.state.update_item(key, status=DELETED, deleted_run=run_id)
            mirrored = sum(n for s, n in self.state.count_items().items() if s != DELETED)
            if (
                deletions
                and not force_delete
                and (len(deletions) > self.p.max_delete_share * max(1, mirrored))
            ):
                raise MassDeletionError(
                    f"this run would delete {len(deletions)} of {mirrored} mirrored items, "
                    f"more than max_delete_share={self.p.max_delete_share}; nothing was deleted",
                    resource=self.p.source,
                    hint="check the source; run with --force-delete if this is intended",
                )
            for plan, st in deletions:
                if not pool.submit(None, plan, "", st):
                    return True
        finally:
            pool.close()
        return False

    def _failed(self, run_id: int, key: str, exc: SyncError, counts: dict[str, int]) -> None:
        st = self.state.item(key)
        status = st.status if st and st.status in ("conflict",) else FAILED
        self.state.update_item(
            key,
            status=status,
            error=exc.describe(),
            error_code=exc.code,
            attempts=(st.attempts if st else 0) + 1,
        )
        self.state.record_error(run_id, key, exc)
        log.error("%s", exc.describe())
        with self._counts_lock:
            counts["failed"] += 1


@dataclass
class AuditReport:
    """Differences between source, state DB and destination (empty = in sync)."""

    differences: list[str] = field(default_factory=list)
    checked_items: int = 0
    checked_resources: int = 0

    @property
    def in_sync(self) -> bool:
        return not self.differences


def audit(engine: Engine) -> AuditReport:
    """Compare the source's resource lists, the state DB and the destination; change nothing."""
    report = AuditReport()
    state = engine.state
    plan = discover(engine.reader, engine.p.source)
    listed: dict[str, str] = {}
    for url in plan.resource_lists:
        for _info, entries in engine.reader.walk(url, expect="resourcelist"):
            for e in entries:
                listed[e.loc] = e.fingerprint
    report.checked_resources = len(listed)
    recorded = {loc: e.fingerprint for loc, e in _present_entries(state)}
    for loc in sorted(listed.keys() - recorded.keys()):
        report.differences.append(f"source lists a resource the mirror lacks: {loc}")
    for loc in sorted(recorded.keys() - listed.keys()):
        report.differences.append(f"mirror holds a resource the source no longer lists: {loc}")
    for loc in sorted(listed.keys() & recorded.keys()):
        if listed[loc] != recorded[loc]:
            report.differences.append(f"resource changed at the source since the last sync: {loc}")
    for key in state.item_keys():
        st = state.item(key)
        if st is None:
            continue
        if st.status == DELETED:
            continue
        report.checked_items += 1
        if st.status != "complete":
            report.differences.append(f"item {key} is {st.status}: {st.error or ''}".rstrip(": "))
            continue
        if st.stale:
            report.differences.append(f"item {key} is stale (destination refused changes)")
        if not st.statement_iri:
            continue
        try:
            statement = engine.sword.statement(st.statement_iri)
        except SyncError as exc:
            report.differences.append(f"item {key}: cannot read its statement: {exc.describe()}")
            continue
        recorded_files = [
            HeldFile(ref=f.file_iri, name=f.filename, md5=f.md5) for f in st.files.values()
        ]
        for problem in compare_files(recorded_files, held_files(statement)):
            report.differences.append(f"item {key}: {problem}")
    return report


def _present_entries(state: State) -> Iterator[tuple[str, Entry]]:
    batch: list[str] = []
    for loc, _links in state.iter_link_records():
        batch.append(loc)
        if len(batch) >= 1000:
            yield from state.entries(batch).items()
            batch = []
    if batch:
        yield from state.entries(batch).items()


# Workers spend their time waiting on the network; what they share is the state DB, whose
# calls release the GIL and must win it back before the next worker may write. With many
# threads the default 5 ms switch interval makes that hand-off the bottleneck (measured:
# 16 workers queued on the state DB); 0.5 ms keeps it short.
SWITCH_INTERVAL = 0.0005


class _Pool:
    """Bounded worker pool: at most ``workers`` items in progress and ``2 x workers`` queued,
    at most ``limit`` items per run; one item's failure never stops the others."""

    def __init__(self, engine: Engine, dep: Any, run_id: int, counts: dict[str, int]) -> None:
        if engine.p.workers > 1:
            sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        self.engine = engine
        self.dep = dep
        self.run_id = run_id
        self.counts = counts
        self.limit = engine.p.limit
        self.submitted = 0
        self.progress = Progress("sync") if engine.show_progress else None
        self._sem = threading.BoundedSemaphore(engine.p.workers * 2)
        self._executor = ThreadPoolExecutor(max_workers=engine.p.workers, thread_name_prefix="rsw")
        self._futures: list[Future[None]] = []

    def submit(self, item: Item | None, plan: ItemPlan, col: str, st: ItemState | None) -> bool:
        """Queue one item; False when --limit is reached (the item is left for a later run)."""
        if self.limit is not None and self.submitted >= self.limit:
            return False
        self.submitted += 1
        self._sem.acquire()
        self._futures.append(self._executor.submit(self._task, item, plan, col, st))
        self._futures = [f for f in self._futures if not f.done()]
        return True

    def _task(self, item: Item | None, plan: ItemPlan, col: str, st: ItemState | None) -> None:
        engine, failed = self.engine, False
        try:
            outcome = self.dep.apply(item, plan, col, st)
            with engine._counts_lock:
                self.counts[outcome.kind] += 1
        except SyncError as exc:
            failed = True
            engine._failed(self.run_id, plan.key, exc, self.counts)
        except Exception as exc:  # a bug must not stop the other items
            failed = True
            err = SyncError(f"internal error: {exc!r}", resource=plan.key)
            err.code = "internal"
            log.debug("%s", redact(traceback.format_exc()))
            engine._failed(self.run_id, plan.key, err, self.counts)
        finally:
            self._sem.release()
            if self.progress:
                self.progress.advance(failed)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        if self.progress:
            self.progress.close()
