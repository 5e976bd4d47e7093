"""Engine: the stages of a run, in order, with the worker pool and the run record.

It knows only the contracts (``sync/contracts.py``): any source, any destination, the state.

baseline:    source listing into state -> link -> plan -> deposit; unlisted items deleted
incremental: source changes since the cursor into state -> link -> plan the touched items ->
             deposit (a source without a change feed: a fresh listing, like baseline)
replay:      finish a run that stopped short, re-plan every failed or unfinished item
audit:       compare source, state and destination; change nothing
undo:        delete the containers one run created
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from .contracts import (
    RETRYABLE,
    DeferredError,
    Destination,
    ItemState,
    ItemStatus,
    RunKind,
    RunStatus,
    Source,
    StateStore,
)
from .depositor import Depositor, DepositPolicy, Outcome
from .errors import MassDeletionError, SyncError, redact
from .linker import DEFAULT_PREFERENCE, LinkGraph, build_item
from .model import Entry, Item
from .planner import DELETE, UNCHANGED, ItemPlan, plan_item
from .progress import Progress

log = logging.getLogger(__name__)

SOURCE_MEMO = "source_memo"  # state meta: what the source asked to be given back next time


def later(cursor: str | None, previous: str | None) -> str | None:
    """The cursor after a complete pass: the newest change seen, never moving back (entries
    without a change time may carry an old ``lastmod``)."""
    if cursor is None or previous is None:
        return cursor or previous
    return max(datetime.fromisoformat(cursor), datetime.fromisoformat(previous)).isoformat()


COUNTS = ("created", "updated", "deleted", "unchanged", "failed", "skipped", "waiting")


@dataclass(frozen=True)
class EngineSettings:
    """What the engine needs from a pipeline (the protocols' settings live with them)."""

    name: str = "default"
    collection: str = ""  # the default destination collection
    collections: Mapping[str, str] = field(default_factory=dict)  # source collection -> dest
    metadata_preference: Sequence[str] = DEFAULT_PREFERENCE
    unlinked: Literal["deposit", "skip"] = "deposit"
    workers: int = 4
    limit: int | None = None
    overlap_seconds: int = 300
    max_delete_share: float = 0.5
    policy: DepositPolicy = field(default_factory=DepositPolicy)


@dataclass
class RunResult:
    """What a run did; ``exit_code`` 0 when every item synced, 1 when some failed."""

    run_id: int
    kind: RunKind
    status: RunStatus
    counts: dict[str, int] = field(default_factory=dict)
    message: str | None = None

    @property
    def exit_code(self) -> int:
        """0: everything synced, or stopped at --limit as asked; 1: failures or stopped."""
        return 0 if self.status in (RunStatus.OK, RunStatus.LIMITED) else 1


@dataclass(frozen=True)
class PassResult:
    """How far a pass got: ``complete`` = everything read; ``limited`` = stopped at --limit;
    ``cursor`` = where the next incremental run starts, if this pass earns it."""

    complete: bool
    limited: bool
    cursor: str | None
    note: str | None = None  # said in the run's message when nothing else is


class Counts:
    """Per-run counters shared by the workers."""

    def __init__(self) -> None:
        self.values = dict.fromkeys(COUNTS, 0)
        self._lock = threading.Lock()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.values[name] += n

    def __getitem__(self, name: str) -> int:
        return self.values[name]


class Engine:
    """Runs one pipeline: a source, a destination, the state DB."""

    def __init__(
        self,
        settings: EngineSettings,
        source: Source,
        destination: Destination,
        state: StateStore,
        *,
        progress: bool = True,
        requests_sent: Callable[[], int] = lambda: 0,
    ) -> None:
        self.s = settings
        self.source = source
        self.dest = destination
        self.state = state
        self.show_progress = progress
        self.requests_sent = requests_sent

    # -- runs --------------------------------------------------------------------------------
    def _begin(self, kind: RunKind, comment: str | None) -> tuple[int, Counts]:
        run_id = self.state.start_run(kind, self.s.name, comment)
        self.state.mark_interrupted(keep=run_id)
        self.dest.open_run(run_id)
        return run_id, Counts()

    def _end(
        self,
        run_id: int,
        kind: RunKind,
        counts: Counts,
        *,
        partial: bool = False,
        limited: bool = False,
        message: str | None = None,
        cursor: str | None = None,
    ) -> RunResult:
        self.dest.close_run()
        values = dict(counts.values, requests=self.requests_sent())
        if counts["failed"] or partial:
            status = RunStatus.PARTIAL
        else:
            status = RunStatus.LIMITED if limited else RunStatus.OK
        waiting = self.dest.waiting()
        if waiting and not message:
            message = "waiting to be imported: " + ", ".join(waiting)
        self.state.finish_run(run_id, status, values, message, cursor)
        return RunResult(run_id, kind, status, values, message)

    def _abort(self, run_id: int, kind: RunKind, counts: Counts, exc: SyncError) -> RunResult:
        self.dest.close_run()
        self.state.record_error(run_id, None, exc)
        values = dict(counts.values, requests=self.requests_sent())
        self.state.finish_run(run_id, RunStatus.FAILED, values, exc.describe())
        return RunResult(run_id, kind, RunStatus.FAILED, values, exc.describe())

    def check_destination(self) -> None:
        """The destination is reachable and has every collection the pipeline names."""
        self.dest.check({self.s.collection, *self.s.collections.values()})

    def _record_errors(self, run_id: int, errors: list[SyncError]) -> None:
        for exc in errors:
            self.state.record_error(run_id, None, exc)
            log.error("%s", exc.describe())

    # -- baseline ----------------------------------------------------------------------------
    def baseline(self, comment: str | None = None, *, force_delete: bool = False) -> RunResult:
        run_id, counts = self._begin(RunKind.BASELINE, comment)
        try:
            self.check_destination()
            result = self._full_pass(run_id, counts, force_delete)
        except SyncError as exc:
            return self._abort(run_id, RunKind.BASELINE, counts, exc)
        return self._finish_pass(run_id, RunKind.BASELINE, counts, result)

    def _finish_pass(
        self, run_id: int, kind: RunKind, counts: Counts, result: PassResult | None
    ) -> RunResult:
        """A pass that did not read everything, stopped at --limit or left changes waiting
        keeps the old cursor, so the next run (or ``replay``) sees the same changes again."""
        if result is None:
            return self._end(run_id, kind, counts)
        message = None
        if not result.complete:
            message = "not everything could be read; the next run continues from the same point"
        elif result.limited:
            message = f"stopped at --limit {self.s.limit}; the next run continues"
        else:
            message = result.note
        # a change that waits (a batch not imported yet) must be read again by the next run
        earned = result.complete and not result.limited and not counts["waiting"]
        return self._end(
            run_id,
            kind,
            counts,
            partial=not result.complete,
            limited=result.limited,
            cursor=result.cursor if earned else None,
            message=message,
        )

    def _full_pass(self, run_id: int, counts: Counts, force_delete: bool) -> PassResult:
        """The source's full listing into state, unlisted resources gone, every item
        reconciled."""
        listing = self.source.listing()
        total = self.state.upsert_entries(listing, run_id)
        self._record_errors(run_id, listing.errors)
        log.info("read %d entries from %s", total, self.source.location)
        if listing.complete:
            self._mark_unlisted(run_id, force_delete)
        limited = self._reconcile(run_id, counts, only=None, force_delete=force_delete)
        return PassResult(listing.complete, limited, listing.cursor)

    def _change_pass(self, run_id: int, counts: Counts, force_delete: bool) -> PassResult:
        """Changes since the cursor (minus the overlap) into state, touched items reconciled;
        a source without a change feed gets a full pass."""
        since_text = self.state.last_successful_cursor()
        since = datetime.fromisoformat(since_text) if since_text else None
        if since is not None:
            since -= timedelta(seconds=self.s.overlap_seconds)
        changes = self.source.changes(since, self.state.get_json(SOURCE_MEMO) or {})
        if changes is None:
            return self._full_pass(run_id, counts, force_delete)
        self._record_errors(run_id, changes.errors)
        dropped = self._dropped_files(changes.upserts)
        self.state.upsert_entries(changes.upserts, run_id)
        touched = {e.loc for e in changes.upserts}
        gone = list(dropped)
        deleted = changes.deleted
        if deleted and not changes.complete:
            # a partial run deletes nothing; the cursor stays, so the next run sees them again
            log.warning(
                "%d deletions wait for a run that reads every change; nothing is deleted now",
                len(deleted),
            )
            deleted = []
        for e in deleted:
            loc = (
                e.loc
                if self.state.is_known(e.loc)
                else self.source.resolve_deleted(e.loc, self.state.find_by_suffix)
            )
            if loc is not None:
                gone.append(loc)  # else never mirrored: nothing to delete
        self.state.mark_deleted(gone, run_id)
        touched.update(gone)
        log.info(
            "changes: %d (%d deletions) since %s",
            len(changes.changes),
            len(gone),
            since.isoformat() if since else "the beginning",
        )
        limited = self._reconcile(run_id, counts, only=touched, force_delete=force_delete)
        if changes.complete and not limited and changes.memo is not None:
            self.state.set_json(SOURCE_MEMO, changes.memo)
        note = "; ".join(changes.skipped_reasons) or None  # skipped changes are said
        return PassResult(changes.complete, limited, later(changes.cursor, since_text), note)

    def _dropped_files(self, upserts: list[Entry]) -> list[str]:
        """Files a changed record no longer describes are gone: a source that reports
        records (OAI-PMH) says no more than that. Only files that belong to the record (their
        own ``describedby`` names it) are dropped."""
        changed = {e.loc for e in upserts}
        # a record that now describes no file at all is one too: ask the state what each
        # changed entry described before
        before = self.state.entries(changed)
        dropped: list[str] = []
        for e in upserts:
            old = before.get(e.loc)
            if old is None or not old.links_with("describes"):
                continue
            now = {ln.href for ln in e.links_with("describes")}
            gone = sorted({ln.href for ln in old.links_with("describes")} - now - changed)
            for loc, f in self.state.entries(gone).items():
                if any(ln.href == e.loc for ln in f.links_with("describedby")):
                    dropped.append(loc)
        return dropped

    def _mark_unlisted(self, run_id: int, force_delete: bool) -> None:
        """Resources the fresh listing no longer names are gone (guarded against mass loss)."""
        present = self.state.count_resources()
        missing = list(self.state.unseen_present(run_id))
        if missing and len(missing) == present and not force_delete:
            raise MassDeletionError(
                f"the source now lists none of the {present} resources of the mirror; "
                "nothing was deleted",
                resource=self.source.location,
                hint="check the source; run with --force-delete if it is really empty",
            )
        self.state.mark_deleted(missing, run_id)

    # -- incremental -------------------------------------------------------------------------
    def incremental(self, comment: str | None = None, *, force_delete: bool = False) -> RunResult:
        run_id, counts = self._begin(RunKind.INCREMENTAL, comment)
        try:
            self.check_destination()
            result = self._change_pass(run_id, counts, force_delete)
        except SyncError as exc:
            return self._abort(run_id, RunKind.INCREMENTAL, counts, exc)
        return self._finish_pass(run_id, RunKind.INCREMENTAL, counts, result)

    # -- replay ------------------------------------------------------------------------------
    def replay(self, comment: str | None = None) -> RunResult:
        """Finish an unfinished run (killed, crashed, a document unreadable, --limit), then
        retry every failed or unfinished item. Safe to run any number of times."""
        run_id, counts = self._begin(RunKind.REPLAY, comment)
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
            return self._abort(run_id, RunKind.REPLAY, counts, exc)
        return self._finish_pass(run_id, RunKind.REPLAY, counts, result)

    # -- undo --------------------------------------------------------------------------------
    def undo(self, target_run: int, comment: str | None = None) -> RunResult:
        run_id, counts = self._begin(RunKind.UNDO, comment or f"undo of run {target_run}")
        dep = Depositor(self.state, self.source, self.dest, self.s.policy, run_id)
        for key in self.state.items_created_in(target_run):
            st = self.state.item(key)
            if st is None or st.status == ItemStatus.DELETED:
                continue
            try:
                dep.apply(None, ItemPlan(key, DELETE, recover=st.container is None), "", st)
                counts.add("deleted")
            except SyncError as exc:
                self.item_failed(run_id, key, exc, counts)
        message = None
        if counts["waiting"]:  # no later sync deletes them: the source still has them
            message = (
                f"{counts['waiting']} containers wait for their batch to be imported "
                f"({', '.join(self.dest.waiting())}); run undo {target_run} again after the import"
            )
        return self._end(run_id, RunKind.UNDO, counts, message=message)

    # -- link, plan, deposit -----------------------------------------------------------------
    def _depositor(self, run_id: int) -> Depositor:
        # with several workers, a remote source's files download while the item's record is
        # read: an item waits for one round trip to the source instead of one per resource
        threads = self.s.workers if self.s.workers > 1 and self.source.remote else 0
        return Depositor(
            self.state, self.source, self.dest, self.s.policy, run_id, fetch_threads=threads
        )

    def _desired(
        self, locs: set[str] | None, keys: set[str] | None
    ) -> Iterator[list[tuple[Item, ItemState | None]]]:
        """Items as the source has them now, each with its recorded state. With ``locs`` /
        ``keys`` given, only the items that contain one of those locs or have one of those
        keys (touched items). The state DB is read for a few dozen items at once: the workers'
        writes come in between, and each read waits for them."""
        graph = LinkGraph(known=self.state.is_known)
        for loc, links in self.state.iter_link_records():
            graph.add(loc, links)
        everything = locs is None and keys is None
        groups = (
            g
            for g in graph.groups()
            if g.kind != "orphan" and not (g.kind == "standalone" and self.s.unlinked == "skip")
        )
        while chunk := list(itertools.islice(groups, READ_AHEAD)):
            chunk_keys = self.state.keys_for([group.locs for group in chunk])
            wanted = [
                (group, key)
                for group, key in zip(chunk, chunk_keys, strict=True)
                if everything
                or (locs is not None and any(loc in locs for loc in group.locs))
                or (keys is not None and key in keys)
            ]
            entries = self.state.entries(loc for group, _key in wanted for loc in group.locs)
            items = [
                build_item(group, entries, preference=self.s.metadata_preference, key=key)
                for group, key in wanted
            ]
            states = self.state.items([item.key for item in items])
            yield [(item, states.get(item.key)) for item in items]

    def _collection_for(self, item: Item) -> str:
        if item.collection and item.collection in self.s.collections:
            return self.s.collections[item.collection]
        return self.s.collection

    def _reconcile(
        self,
        run_id: int,
        counts: Counts,
        *,
        only: set[str] | None,
        force_delete: bool,
        keys: set[str] | None = None,
    ) -> bool:
        """Plan and carry out; returns True when --limit left work for a later run."""
        if only is not None:
            # an item is touched when one of its locs changed, including locs it had before
            keys = (keys or set()) | {self.state.key_for([loc]) or "" for loc in only}
            keys.discard("")
        pool = _Pool(
            self._depositor(run_id),
            workers=self.s.workers,
            limit=self.s.limit,
            on_done=lambda key, outcome: counts.add(outcome.kind),
            on_error=lambda key, exc: self.item_failed(run_id, key, exc, counts),
            progress=self.show_progress,
        )
        # the keys seen are kept in memory only for a touched subset; a full pass marks them
        # in the state DB (items.seen_run) and finds the unseen ones in SQL
        live: set[str] | None = set() if keys is not None else None
        try:
            # creates and updates stream to the workers as they are planned: memory stays
            # bounded by the pool, not by the size of the source
            for chunk in self._desired(only, keys):
                self.state.set_members((item for item, _st in chunk), run_id=run_id)
                for item, st in chunk:
                    if self._plan_and_submit(item, st, pool, counts, only=only, live=live):
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
                elif st.status != ItemStatus.DELETED and st.container is None:
                    # gone before it was ever deposited: nothing to remove at the destination
                    self.state.mark_item_deleted(key, run_id)
            mirrored = sum(
                n for s, n in self.state.count_items().items() if s != ItemStatus.DELETED
            )
            if deletions and not force_delete and len(deletions) >= mirrored:
                raise MassDeletionError(
                    f"the source now has none of the {mirrored} items of the mirror; "
                    "nothing was deleted",
                    resource=self.source.location,
                    hint="check the source; run with --force-delete if it is really empty",
                )
            if (
                deletions
                and not force_delete
                and (len(deletions) > self.s.max_delete_share * max(1, mirrored))
            ):
                raise MassDeletionError(
                    f"this run would delete {len(deletions)} of {mirrored} mirrored items, "
                    f"more than max_delete_share={self.s.max_delete_share}; nothing was deleted",
                    resource=self.source.location,
                    hint="check the source; run with --force-delete if this is intended",
                )
            for plan, st in deletions:
                if not pool.submit(None, plan, "", st):
                    return True
        finally:
            pool.close()
        return False

    def _plan_and_submit(
        self,
        item: Item,
        st: ItemState | None,
        pool: _Pool,
        counts: Counts,
        *,
        only: set[str] | None,
        live: set[str] | None,
    ) -> bool:
        """Plan one item and hand it to the workers; True when --limit stops the run here."""
        if live is not None:
            live.add(item.key)
        if (
            only is not None
            and st is not None
            and st.status == ItemStatus.DELETED
            and self.state.undone_and_unchanged(item.key)
        ):
            # undone, and the changes read again are the same: it stays deleted until it
            # changes at the source or a full comparison deposits it again
            counts.add("unchanged")
            return False
        col = st.collection if st and st.collection else self._collection_for(item)
        plan = plan_item(item, st, col)
        if plan.kind == UNCHANGED:
            counts.add("unchanged")
            return False
        return not pool.submit(item, plan, col, st)

    def item_failed(self, run_id: int, key: str, exc: SyncError, counts: Counts) -> None:
        """One item failed (or must wait): recorded with its cause, the run goes on."""
        if isinstance(exc, DeferredError):
            self.state.record_error(run_id, key, exc)
            log.info("%s", exc.describe())
            counts.add("waiting")
            return
        st = self.state.item(key)
        status = (
            ItemStatus.CONFLICT if st and st.status == ItemStatus.CONFLICT else ItemStatus.FAILED
        )
        self.state.mark_failed(key, status, exc)
        self.state.record_error(run_id, key, exc)
        log.error("%s", exc.describe())
        counts.add("failed")


READ_AHEAD = 32  # items whose recorded state is read at once while planning

# Workers spend their time waiting on the network; what they share is the state DB, whose
# calls release the GIL and must win it back before the next worker may write. With many
# threads the default 5 ms switch interval makes that hand-off the bottleneck (measured:
# 16 workers queued on the state DB); 0.5 ms keeps it short.
SWITCH_INTERVAL = 0.0005


class _Pool:
    """Bounded worker pool: at most ``workers`` items in progress and ``2 x workers`` queued,
    at most ``limit`` items per run; one item's failure never stops the others."""

    def __init__(
        self,
        dep: Depositor,
        *,
        workers: int,
        limit: int | None,
        on_done: Callable[[str, Outcome], None],
        on_error: Callable[[str, SyncError], None],
        progress: bool,
    ) -> None:
        if workers > 1:
            sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        self.dep = dep
        self.limit = limit
        self.on_done = on_done
        self.on_error = on_error
        self.submitted = 0
        self.progress = Progress("sync") if progress else None
        self._sem = threading.BoundedSemaphore(workers * 2)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rsw")
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
        failed = False
        try:
            self.on_done(plan.key, self.dep.apply(item, plan, col, st))
        except SyncError as exc:
            failed = not isinstance(exc, DeferredError)
            self.on_error(plan.key, exc)
        except Exception as exc:  # a bug must not stop the other items
            failed = True
            err = SyncError(f"internal error: {exc!r}", resource=plan.key)
            err.code = "internal"
            log.debug("%s", redact(traceback.format_exc()))
            self.on_error(plan.key, err)
        finally:
            self._sem.release()
            if self.progress:
                self.progress.advance(failed)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.dep.close()
        if self.progress:
            self.progress.close()
