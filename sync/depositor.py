"""Depositor: carry out one item's plan against any destination, recording every step.

The order of a deposit is fixed: create the container (in progress) with the metadata, add
each file, then complete it. The intent to create is written to the state DB before the create
is sent, an item is marked unfinished before its files change, and every result is written
right after its call; so a run killed at any point is resumed by ``replay`` without
duplicates: a create whose answer was lost is looked up at the destination (``find``) before
it is sent again, and an unfinished item looks its uploads up in the container's contents
before sending them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Literal

from .contracts import (
    Container,
    DeferredError,
    Destination,
    Fetched,
    FileState,
    FileStatus,
    HeldFile,
    ItemState,
    ItemStatus,
    ListingUnsupportedError,
    Metadata,
    Source,
    StateStore,
)
from .crosswalk import DCRecord, UnreadableRecordError, read_metadata
from .errors import ConflictError, DepositError, FetchError, MetadataError, SyncError
from .filenames import filename_from_url
from .model import Entry, Item
from .planner import CREATE, DELETE, ItemPlan, metadata_fingerprint, slug_for
from .recovery import find_landed
from .settings import human_size

log = logging.getLogger(__name__)

OnArchived = Literal["fail", "skip", "recreate"]
MissingTitle = Literal["fallback", "fail"]
OutcomeKind = Literal["created", "updated", "deleted", "unchanged", "skipped", "waiting"]


def ambiguous(exc: SyncError) -> bool:
    """A failure after which the request may or may not have been carried out."""
    return bool(getattr(exc, "transient", False)) and isinstance(exc, (FetchError, DepositError))


@dataclass(frozen=True)
class DepositPolicy:
    """The pipeline's choices that shape a deposit."""

    on_archived: OnArchived = "fail"
    missing_title: MissingTitle = "fallback"
    attempts: int = 5


@dataclass
class Outcome:
    """What happened to one item."""

    kind: OutcomeKind
    warning: str | None = None


class Depositor:
    """Applies plans; one instance serves all worker threads (it holds no per-item state)."""

    def __init__(
        self,
        state: StateStore,
        source: Source,
        destination: Destination,
        policy: DepositPolicy,
        run_id: int,
        *,
        fetch_threads: int = 0,
    ) -> None:
        self.state = state
        self.source = source
        self.dest = destination
        self.policy = policy
        self.run_id = run_id
        self.attempts = max(1, policy.attempts)
        # an item's files download while its metadata record is read (each request still
        # takes a slot of its host's limit); 0: one after the other (deterministic tests)
        self._fetches = (
            ThreadPoolExecutor(fetch_threads, thread_name_prefix="rsw-fetch")
            if fetch_threads > 0
            else None
        )

    def close(self) -> None:
        if self._fetches is not None:
            self._fetches.shutdown(wait=True)

    # -- entry point -------------------------------------------------------------------------
    def apply(
        self, item: Item | None, plan: ItemPlan, collection: str, st: ItemState | None
    ) -> Outcome:
        if plan.kind == DELETE:
            if st is None:
                raise ValueError(f"delete plan for {plan.key} without a recorded item")
            return self._delete(st, plan)
        if item is None:
            raise ValueError(f"{plan.kind} plan for {plan.key} without a source item")
        try:
            return self._deposit(item, plan, collection, st)
        except ConflictError as exc:
            return self._on_conflict(item, plan, collection, st, exc)

    # -- metadata ----------------------------------------------------------------------------
    def _metadata(
        self, item: Item, first_file: Callable[[], str | None]
    ) -> tuple[Metadata, str | None]:
        """The item's metadata and a warning if a fallback title was used. A record refused
        for safety (DTD, entities) or not well-formed fails the item: the fallback title is
        only for well-formed records without a title."""
        problems: list[str] = []
        found: DCRecord | None = None
        for record in item.metadata:
            got = self.source.fetch(record)
            try:
                data = got.read_bytes()
            finally:
                got.discard()
            try:
                _fmt, dc = read_metadata(data, url=record.loc)
            except UnreadableRecordError as exc:
                # refused for safety or not well-formed: never deposited under a fallback title
                raise MetadataError(
                    exc.message,
                    resource=record.loc,
                    hint="the item is retried by replay once the source serves a readable record",
                ) from None
            except MetadataError as exc:
                problems.append(exc.describe())
                continue
            if dc.title:
                found = dc
                break
            problems.append(f"metadata-no-title [{record.loc}]: the record has no title")
            found = dc
            break
        titled = found is not None and bool(found.title)
        if item.metadata and problems and not titled and self.policy.missing_title == "fail":
            raise MetadataError(
                "no readable metadata record with a title: " + "; ".join(problems),
                resource=item.key,
                hint='set missing_title = "fallback" to deposit with a fallback title',
            )
        dc = found or DCRecord({})
        title = (
            dc.title
            or first_file()
            or filename_from_url(item.files[0].loc if item.files else item.key)
        )
        warning = None
        if problems and not titled:
            warning = "deposited with fallback title: " + "; ".join(problems)
        ids = tuple(dict.fromkeys(self.source.identifiers(item)))
        return Metadata(dc=dc, title=title, identifiers=ids, key=item.key), warning

    # -- deposit -----------------------------------------------------------------------------
    def _deposit(self, item: Item, plan: ItemPlan, col: str, st: ItemState | None) -> Outcome:
        key = item.key
        files = {f.loc: f for f in item.files}
        caps = self.dest.capabilities
        whole = plan.kind != CREATE and caps.whole_item_updates
        need_files = [files[loc] for loc in (*plan.add, *plan.replace)]
        need_metadata = plan.kind == CREATE or plan.replace_metadata or whole
        warning = None
        with ExitStack() as stack:
            # everything verified before the destination is touched: the files (downloading
            # meanwhile where a fetch pool runs) and the metadata record
            fetched = self._fetch_files(need_files, item, stack, need_metadata)
            metadata: Metadata | None = None
            if need_metadata:
                try:
                    metadata, warning = self._metadata(
                        item, lambda: self._first_name(item, fetched)
                    )
                except BaseException:
                    fetched.wait()  # a file's failure is the one reported, as before
                    raise
            fetched.wait()
            rebuild = whole or self._needs_media_rebuild(plan, st)
            if rebuild:
                self._fetch_all(item, fetched, stack)
            fp = metadata_fingerprint(item, col)
            if plan.kind == CREATE:
                if metadata is None:  # pragma: no cover - a create always reads metadata
                    raise ValueError("create without metadata")
                container = self._create(key, col, metadata, plan.recover, fp)
            else:
                if st is None or st.container is None:
                    raise ValueError(f"{plan.kind} plan for {key} without a container")
                container = st.container
                if st.status == ItemStatus.COMPLETE and (plan.add or plan.replace or plan.remove):
                    # file changes under way: a crash now must lead to a checked resume
                    self.state.set_status(key, ItemStatus.IN_PROGRESS)
                if metadata is not None and (plan.replace_metadata or whole):
                    self.dest.replace_metadata(container, metadata)
                    self.state.set_metadata(key, metadata_fp=fp, title=metadata.title)
            if not rebuild:
                try:
                    for fs in plan.remove:
                        self._remove_file(key, container, fs)
                    for loc in plan.replace:
                        old = st.files.get(loc) if st else None
                        if old is not None:
                            self._remove_file(key, container, old)
                except ConflictError:
                    # the server may refuse single-file deletes although it gave file refs:
                    # replace all media instead (a refusal of that is a real conflict)
                    rebuild = True
                    self._fetch_all(item, fetched, stack)
            if rebuild:
                self._rebuild_media(key, container, item, fetched)
            else:
                held: list[list[HeldFile]] = []  # the container's contents, read once if needed
                for loc in (*plan.replace, *plan.add):
                    self._add_file(
                        key, container, fetched[loc], held if loc in plan.verify else None
                    )
            # the destination's state word (archived, in review...) is informative only:
            # refusals are handled when they come; `audit` reads the contents
            if plan.complete:
                self.dest.complete(container)
        self.state.mark_complete(key, self.run_id, warning=warning)
        if warning:
            log.warning("%s: %s", key, warning)
        return Outcome("created" if plan.kind == CREATE else "updated", warning)

    def _fetch(self, loc: str, item: Item, stack: ExitStack) -> Fetched:
        entry = next(f for f in item.files if f.loc == loc)
        got = self.source.fetch(entry)
        stack.callback(got.discard)
        self._check_upload(got)
        return got

    def _fetch_files(
        self, files: list[Entry], item: Item, stack: ExitStack, overlap: bool
    ) -> _Fetching:
        """Start fetching ``files``: in the fetch pool when there is one and something to
        overlap with (the metadata record, another file), else here, one after the other."""
        if self._fetches is None or len(files) + int(overlap) < 2:
            return _Fetching({f.loc: self._fetch(f.loc, item, stack) for f in files}, {}, self)
        futures = {f.loc: self._fetches.submit(self.source.fetch, f) for f in files}
        return _Fetching({}, futures, self, stack)

    @staticmethod
    def _first_name(item: Item, fetched: _Fetching) -> str | None:
        """The first file's name (a fallback title), when it was fetched."""
        if not item.files:
            return None
        got = fetched.peek(item.files[0].loc)
        return got.filename if got is not None else None

    def _fetch_all(
        self, item: Item, fetched: MutableMapping[str, Fetched], stack: ExitStack
    ) -> None:
        """Every file of the item downloaded and verified (to rebuild its media)."""
        for f in item.files:
            if f.loc not in fetched:
                fetched[f.loc] = self._fetch(f.loc, item, stack)

    def _check_upload(self, got: Fetched) -> None:
        """Refuse what the destination said it would refuse, before touching it."""
        caps = self.dest.capabilities
        if caps.max_upload is not None and got.size > caps.max_upload:
            how = caps.max_upload_note or f"the destination accepts at most {caps.max_upload} bytes"
            raise DepositError(
                f"the file is over the destination's upload limit: {how}; this upload is "
                f"{got.size} bytes ({human_size(got.size)})",
                resource=got.entry.loc,
                hint="raise the repository's upload limit or exclude the file",
            )
        if got.size == 0 and not caps.empty_files:
            raise DepositError(
                "the file is empty and the destination refuses empty files",
                resource=got.entry.loc,
            )

    @staticmethod
    def _needs_media_rebuild(plan: ItemPlan, st: ItemState | None) -> bool:
        """Replacing or removing a file on a server without per-file refs, or a replacement
        of all media left unfinished: redo all media."""
        if st is None or not (plan.replace or plan.remove):
            return False
        if any(f.status == FileStatus.REPLACING for f in st.files.values()):
            return True
        touched = [st.files[loc] for loc in plan.replace if loc in st.files] + list(plan.remove)
        return any(not f.ref for f in touched)

    # -- create with recovery ----------------------------------------------------------------
    def _create(self, key: str, col: str, metadata: Metadata, recover: bool, fp: str) -> Container:
        """Create the container: the intent recorded first (one commit), the container right
        after (one commit). A lost answer is looked for before the create is sent again."""
        slug = slug_for(key)
        if recover:
            found = self._find_container(key, col, metadata, fp)
            if found is not None:
                return found
        for attempt in range(1, self.attempts + 1):
            self.state.record_intent(key, collection=col, title=metadata.title, run_id=self.run_id)
            try:
                container = self.dest.create(col, metadata, slug=slug)
            except (FetchError, DepositError) as exc:
                if not ambiguous(exc) or attempt == self.attempts:
                    raise
                found = self._find_container(key, col, metadata, fp)
                if found is not None:
                    return found
                continue
            self.state.record_container(key, container, metadata_fp=fp, title=metadata.title)
            return container
        raise RuntimeError("unreachable")  # pragma: no cover

    def _find_container(
        self, key: str, col: str, metadata: Metadata, fp: str | None
    ) -> Container | None:
        """Did an earlier create land? Ask the destination; record what it finds."""
        try:
            found = self.dest.find(
                col, metadata, slug=slug_for(key), owned=self.state.owns_container
            )
        except ListingUnsupportedError:
            log.warning("%s: cannot check whether an earlier create landed (no listing)", key)
            return None
        if found is None:
            return None
        self.state.record_container(key, found, metadata_fp=fp or "", title=metadata.title)
        # files are uploaded only after a container is recorded: one found this way holds
        # none of ours yet
        self.state.drop_files(key)
        return found

    # -- files -------------------------------------------------------------------------------
    def _landed(
        self, key: str, container: Container, got: Fetched, held: list[list[HeldFile]]
    ) -> str | None:
        """The ref ('' if none given) of an upload that landed although its answer was lost,
        from the container's contents (read once per item, then kept in ``held``). Never by
        name alone: servers rename files and list no checksums (``recovery.find_landed``)."""
        if not held:
            held.append(self.dest.contents(container))
        files = held[0]
        if not any(h.ref for h in files):
            # no per-file refs: only name and MD5 can tell
            for h in files:
                if h.name == got.filename and (h.md5 is None or h.md5 == got.md5):
                    return ""
            return None
        st = self.state.item(key)
        recorded = list(st.files.values()) if st else []
        found = find_landed(
            files,
            {f.ref for f in recorded if f.ref},
            name=got.filename,
            md5=got.md5,
            size=got.size,
            md5_of=lambda h: self.dest.file_md5(container, h),
            recorded_without_ref=[
                HeldFile(None, f.filename, f.md5, f.size)
                for f in recorded
                if not f.ref and f.status == FileStatus.UPLOADED and f.loc != got.entry.loc
            ],
        )
        return None if found is None else (found.ref or "")

    def _add_file(
        self, key: str, container: Container, got: Fetched, verify: list[list[HeldFile]] | None
    ) -> None:
        """Upload one file. ``verify`` (a contents cache): the item was left unfinished, so
        look first whether an earlier upload of this file landed."""
        if verify is not None:
            ref = self._landed(key, container, got, verify)
            if ref is not None:
                self._file_done(key, got, ref or None)
                return
        for attempt in range(1, self.attempts + 1):
            try:
                ref = self.dest.add_file(container, got)
            except (FetchError, DepositError) as exc:
                if not ambiguous(exc) or attempt == self.attempts:
                    raise
                landed = self._landed(key, container, got, [])
                if landed is not None:
                    self._file_done(key, got, landed or None)
                    return
                continue
            self._file_done(key, got, ref)
            return

    def _file_done(self, key: str, got: Fetched, ref: str | None) -> None:
        self.state.file_uploaded(
            key,
            got.entry.loc,
            run_id=self.run_id,
            filename=got.filename,
            md5=got.md5,
            size=got.size,
            content_type=got.content_type,
            fingerprint=got.entry.fingerprint,
            ref=ref,
        )

    def _remove_file(self, key: str, container: Container, fs: FileState) -> None:
        if fs.ref:
            self.dest.remove_file(container, fs.ref)
        self.state.drop_file(key, fs.loc)

    def _rebuild_media(
        self, key: str, container: Container, item: Item, fetched: MutableMapping[str, Fetched]
    ) -> None:
        """Replace all media by the first file, then add the others. The files are marked as
        being replaced first: a refused, failed or killed replacement is redone whole by the
        next attempt (it is idempotent), never taken for done."""
        self.state.mark_files_replacing(key)
        if not item.files:
            self.dest.replace_files(container, None)
            self.state.drop_files(key)
            return
        first, *rest = (fetched[f.loc] for f in item.files)
        ref = self.dest.replace_files(container, first)
        with self.state.tx():
            self.state.drop_files(key)
            self._file_done(key, first, ref)
        for got in rest:
            self._add_file(key, container, got, None)

    # -- delete ------------------------------------------------------------------------------
    def _delete(self, st: ItemState, plan: ItemPlan) -> Outcome:
        container = st.container
        if plan.recover and container is None and st.collection:
            metadata = Metadata(DCRecord({}), st.title or "", (st.key,), st.key)
            container = self._find_container(st.key, st.collection, metadata, st.metadata_fp)
        if container is not None:
            try:
                self.dest.delete(container)
            except ConflictError as exc:
                if self.policy.on_archived == "skip":
                    self.state.mark_item_deleted(
                        st.key, self.run_id, stale=True, warning=exc.describe()
                    )
                    return Outcome("skipped", exc.describe())
                self.state.mark_failed(st.key, ItemStatus.CONFLICT, exc)
                raise
        self.state.mark_item_deleted(st.key, self.run_id)
        return Outcome("deleted")

    # -- archived items ----------------------------------------------------------------------
    def _on_conflict(
        self, item: Item, plan: ItemPlan, col: str, st: ItemState | None, exc: ConflictError
    ) -> Outcome:
        policy = self.policy.on_archived
        key = item.key
        if policy == "skip" and st is not None:
            # accept the divergence: record the source's versions as seen, mark the item stale
            with self.state.tx():
                self.state.mark_stale(
                    key, metadata_fp=metadata_fingerprint(item, col), warning=exc.describe()
                )
                for f in item.files:
                    old = st.files.get(f.loc)
                    self.state.file_seen(
                        key,
                        f.loc,
                        run_id=self.run_id,
                        fingerprint=f.fingerprint,
                        ref=old.ref if old else None,
                    )
                for fs in plan.remove:
                    self.state.drop_file(key, fs.loc)
            return Outcome("skipped", exc.describe())
        if policy == "recreate" and st is not None and st.container is not None:
            left_behind = None
            try:
                self.dest.delete(st.container)
            except ConflictError:
                # DSpace's default workflow refuses deleting archived items as well: deposit
                # the new version anyway and say which old container needs removing by hand
                left_behind = st.container.id
            self.state.forget_container(key)
            fresh = ItemPlan(key, CREATE, add=tuple(f.loc for f in item.files), complete=True)
            outcome = self._deposit(item, fresh, col, None)
            if left_behind:
                note = (
                    f"recreated; the destination refused to delete the archived container "
                    f"{left_behind}: remove it by hand"
                )
                self.state.mark_complete(key, self.run_id, warning=note)
                log.warning("%s: %s", key, note)
                return Outcome(outcome.kind, note)
            return outcome
        self.state.mark_failed(key, ItemStatus.CONFLICT, exc)
        raise exc


__all__ = ["DeferredError", "DepositPolicy", "Depositor", "Outcome", "ambiguous"]


class _Fetching(MutableMapping[str, Fetched]):
    """An item's files, fetched or on their way: reading one waits for all (the first failure,
    in the item's order, is raised; every file that did arrive is discarded with the item)."""

    def __init__(
        self,
        done: dict[str, Fetched],
        pending: dict[str, Future[Fetched]],
        depositor: Depositor,
        stack: ExitStack | None = None,
    ) -> None:
        self._done = done
        self._pending = pending
        self._depositor = depositor
        self._stack = stack
        self._failure: BaseException | None = None

    def peek(self, loc: str) -> Fetched | None:
        """The file at ``loc`` once fetched (waiting for it), None if it failed or is not
        one of these."""
        if loc in self._pending:
            try:
                self.wait()
            except SyncError:
                return None
        return self._done.get(loc)

    def wait(self) -> None:
        """Every file here, or the first failure (in the item's order)."""
        self._settle()
        if self._failure is not None:
            raise self._failure

    def _settle(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        failure: BaseException | None = None
        for loc, future in pending.items():
            try:
                got = future.result()
            except BaseException as exc:  # kept: the first in order is the one reported
                failure = failure or exc
                continue
            assert self._stack is not None
            self._stack.callback(got.discard)
            self._done[loc] = got
        self._failure = failure
        if failure is None:
            for got in self._done.values():
                self._depositor._check_upload(got)

    def __getitem__(self, loc: str) -> Fetched:
        self.wait()
        return self._done[loc]

    def __setitem__(self, loc: str, got: Fetched) -> None:
        self.wait()
        self._done[loc] = got

    def __delitem__(self, loc: str) -> None:
        self.wait()
        del self._done[loc]

    def __contains__(self, loc: object) -> bool:
        return loc in self._done or loc in self._pending

    def __iter__(self) -> Iterator[str]:
        self._settle()
        return iter(self._done)

    def __len__(self) -> int:
        return len(self._done) + len(self._pending)
