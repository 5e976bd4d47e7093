"""Depositor: carry out one item's plan against the SWORD v2 server, recording every step.

The order of a deposit is fixed by the SWORD profile: create the container with an Atom entry
and ``In-Progress: true``, add each file to the EM-IRI, then complete it. The intent to create
is written to the state DB before the POST, an item is marked unfinished before its files
change, and every result is written right after its call; so a run killed at any point can be
resumed by ``replay`` without duplicates: a create whose answer was lost is looked up in the
collection (by Slug, source identifier, or title and receipt) before it is sent again, and an
unfinished item looks its uploads up in the statement before sending them.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from .config import Pipeline
from .contracts import Fetched
from .crosswalk import DCRecord, UnreadableRecordError, read_metadata
from .errors import ConflictError, DepositError, FetchError, MetadataError, SyncError
from .fetcher import Fetcher
from .filenames import filename_from_url
from .model import Item
from .planner import CREATE, DELETE, ItemPlan, metadata_fingerprint, slug_for
from .recovery import find_landed
from .state import COMPLETE, CONFLICT, CREATING, DELETED, IN_PROGRESS, FileState, ItemState, State
from .sword.atom import Receipt, Statement, build_entry, held_files
from .sword.client import ListingUnsupportedError, SwordClient
from .sword.limits import over_limit_message

log = logging.getLogger(__name__)


def ambiguous(exc: SyncError) -> bool:
    """A failure after which the request may or may not have been carried out."""
    return bool(getattr(exc, "transient", False)) and isinstance(exc, (FetchError, DepositError))


@dataclass
class Outcome:
    """What happened to one item: created | updated | deleted | unchanged | skipped."""

    kind: str
    warning: str | None = None


class Depositor:
    """Applies plans; one instance serves all worker threads (it holds no per-item state)."""

    def __init__(
        self, state: State, sword: SwordClient, fetcher: Fetcher, pipeline: Pipeline, run_id: int
    ) -> None:
        self.state = state
        self.sword = sword
        self.fetcher = fetcher
        self.pipeline = pipeline
        self.run_id = run_id
        self.attempts = max(1, pipeline.attempts)

    # -- entry point -------------------------------------------------------------------------
    def apply(
        self, item: Item | None, plan: ItemPlan, collection_iri: str, st: ItemState | None
    ) -> Outcome:
        if plan.kind == DELETE:
            if st is None:
                raise ValueError(f"delete plan for {plan.key} without a recorded item")
            return self._delete(st, plan)
        if item is None:
            raise ValueError(f"{plan.kind} plan for {plan.key} without a source item")
        try:
            return self._deposit(item, plan, collection_iri, st)
        except ConflictError as exc:
            return self._on_conflict(item, plan, collection_iri, st, exc)

    # -- metadata ----------------------------------------------------------------------------
    def _metadata(self, item: Item, first_file: str | None) -> tuple[DCRecord, str, str | None]:
        """The item's DC record, its title, and a warning if a fallback was used."""
        problems: list[str] = []
        for record in item.metadata:
            dl = self.fetcher.fetch(record)
            try:
                data = dl.path.read_bytes()
            finally:
                dl.discard()
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
                return dc, dc.title, None
            problems.append(f"metadata-no-title [{record.loc}]: the record has no title")
            fallback_dc = dc
            break
        else:
            fallback_dc = DCRecord({})
        if item.metadata and problems and self.pipeline.missing_title == "fail":
            raise MetadataError(
                "no readable metadata record with a title: " + "; ".join(problems),
                resource=item.key,
                hint='set missing_title = "fallback" to deposit with a fallback title',
            )
        title = first_file or filename_from_url(item.files[0].loc if item.files else item.key)
        warning = ("deposited with fallback title: " + "; ".join(problems)) if problems else None
        return fallback_dc, title, warning

    def _entry_bytes(self, item: Item, dc: DCRecord, title: str) -> bytes:
        ids = [e.loc for e in item.metadata] or [item.key]
        return build_entry(dc, title=title, source_ids=ids)

    # -- deposit -----------------------------------------------------------------------------
    def _deposit(self, item: Item, plan: ItemPlan, col: str, st: ItemState | None) -> Outcome:
        key = item.key
        files = {f.loc: f for f in item.files}
        need_files = [files[loc] for loc in (*plan.add, *plan.replace)]
        need_metadata = plan.kind == CREATE or plan.replace_metadata
        warning = None
        with ExitStack() as stack:
            fetched: dict[str, Fetched] = {}
            for f in need_files:  # everything verified before the destination is touched
                got = self.fetcher.fetch(f)
                stack.callback(got.discard)
                fetched[f.loc] = got
                self._check_upload_size(got)
            title, entry = "", b""
            if need_metadata:
                first = (
                    fetched[item.files[0].loc].filename
                    if item.files and item.files[0].loc in fetched
                    else None
                )
                dc, title, warning = self._metadata(item, first)
                entry = self._entry_bytes(item, dc, title)
            rebuild = self._needs_media_rebuild(plan, st)
            if rebuild:
                self._fetch_all(item, fetched, stack)
            fp = metadata_fingerprint(item, col)
            if plan.kind == CREATE:
                receipt = self._create(key, col, entry, plan.recover, metadata_fp=fp, title=title)
                em_iri, se_iri = receipt.em_iri, receipt.se_iri or receipt.edit_iri
            else:
                if st is None or not st.edit_iri:
                    raise ValueError(f"{plan.kind} plan for {key} without a container")
                em_iri, se_iri = st.em_iri, st.se_iri or st.edit_iri
                if st.status == COMPLETE and (plan.add or plan.replace or plan.remove):
                    # file changes under way: a crash now must lead to a checked resume
                    self.state.update_item(key, status=IN_PROGRESS)
                if plan.replace_metadata:
                    self.state.journal(self.run_id, key, "replace-metadata", st.edit_iri, "intent")
                    self.sword.replace_metadata(st.edit_iri, entry, in_progress=True)
                    self.state.update_item(key, metadata_fp=fp, title=title)
                    self.state.journal(self.run_id, key, "replace-metadata", st.edit_iri, "done")
            if not em_iri or not se_iri:
                raise DepositError("the server gave no EM-IRI for the container", resource=key)
            landed: dict[str, Statement] = {}  # the statement, read once if needed
            if not rebuild:
                try:
                    for fs in plan.remove:
                        self._remove_file(key, fs)
                    for loc in plan.replace:
                        old = st.files.get(loc) if st else None
                        if old is not None:
                            self._remove_file(key, old)
                except ConflictError:
                    # the server may refuse single-file deletes although it gave file IRIs:
                    # replace all media instead (a refusal of that is a real conflict)
                    rebuild = True
                    self._fetch_all(item, fetched, stack)
            if rebuild:
                self._rebuild_media(key, em_iri, item, fetched)
            else:
                for loc in (*plan.replace, *plan.add):
                    self._add_file(
                        key, em_iri, fetched[loc], landed if loc in plan.verify else None
                    )
            # the state (archived, in review...) is informative only: refusals are handled
            # when they come; `audit` reads the statements
            dest_state = self.sword.complete(se_iri) if plan.complete else None
        self.state.update_item(
            key,
            status=COMPLETE,
            error=warning,
            error_code="warning" if warning else None,
            updated_run=self.run_id,
            stale=0,
            dest_state=dest_state,
        )
        if warning:
            log.warning("%s: %s", key, warning)
        kind = "created" if plan.kind == CREATE else "updated"
        return Outcome(kind, warning)

    def _fetch_all(self, item: Item, fetched: dict[str, Fetched], stack: ExitStack) -> None:
        """Every file of the item downloaded and verified (to rebuild its media)."""
        for f in item.files:
            if f.loc not in fetched:
                got = self.fetcher.fetch(f)
                stack.callback(got.discard)
                fetched[f.loc] = got
                self._check_upload_size(got)

    def _check_upload_size(self, got: Fetched) -> None:
        limit = self.sword.max_upload_kb
        if limit is not None and got.size > limit * 1024:
            raise DepositError(
                "file is over the server's upload limit: " + over_limit_message(got.size, limit),
                resource=got.entry.loc,
                hint="ask the repository to raise its upload limit",
            )

    @staticmethod
    def _needs_media_rebuild(plan: ItemPlan, st: ItemState | None) -> bool:
        """Replacing or removing a file on a server without per-file IRIs: redo all media."""
        if st is None or not (plan.replace or plan.remove):
            return False
        touched = [st.files[loc] for loc in plan.replace if loc in st.files] + list(plan.remove)
        return any(not f.file_iri for f in touched)

    # -- create with recovery ----------------------------------------------------------------
    def _create(self, key: str, col: str, entry: bytes, recover: bool, **recorded: Any) -> Receipt:
        """POST the Atom entry, the intent recorded first (one commit) and the receipt right
        after (one commit, with ``recorded`` columns such as the metadata fingerprint)."""
        slug = slug_for(key)
        if recover:
            found = self._find_container(key, col, slug, **recorded)
            if found is not None:
                return found
        for attempt in range(1, self.attempts + 1):
            with self.state.tx():
                self.state.update_item(
                    key,
                    title=recorded.get("title"),  # lets a lost create be found by its title
                    status=CREATING,
                    create_pending=1,
                    slug=slug,
                    collection_iri=col,
                    created_run=self.run_id,
                    edit_iri=None,
                    em_iri=None,
                    se_iri=None,
                    statement_iri=None,
                )
                self.state.drop_files(key)
                self.state.journal(self.run_id, key, "create", col, "intent")
            try:
                receipt = self.sword.create(col, entry, slug=slug, in_progress=True)
            except (FetchError, DepositError) as exc:
                if not ambiguous(exc) or attempt == self.attempts:
                    raise
                found = self._find_container(key, col, slug, **recorded)
                if found is not None:
                    return found
                continue
            self._record_receipt(key, receipt, "done", **recorded)
            return receipt
        raise AssertionError("unreachable")  # pragma: no cover

    def _record_receipt(self, key: str, receipt: Receipt, how: str, **recorded: Any) -> None:
        with self.state.tx():
            self.state.update_item(
                key,
                status=IN_PROGRESS,
                create_pending=0,
                edit_iri=receipt.edit_iri,
                em_iri=receipt.em_iri,
                se_iri=receipt.se_iri or receipt.edit_iri,
                statement_iri=receipt.statement_atom or receipt.statement_ore,
                **recorded,
            )
            self.state.journal(self.run_id, key, "create", receipt.edit_iri, how)

    def _find_container(self, key: str, col: str, slug: str, **recorded: Any) -> Receipt | None:
        """Did an earlier create land? Look for our Slug or source identifier."""
        try:
            entries = self.sword.list_collection(col)
        except ListingUnsupportedError:
            log.warning("%s: cannot check whether an earlier create landed (no listing)", key)
            return None
        found = next((ce for ce in entries if ce.slug == slug or key in ce.identifiers), None)
        receipt = self.sword.receipt(found.edit_iri) if found else None
        if receipt is None and recorded.get("title"):
            # servers that list only titles (DSpace): read the receipts of the containers with
            # our title that the state DB does not know, and look for our source identifier
            for ce in entries:
                if ce.title == recorded["title"] and not self.state.owns_edit_iri(ce.edit_iri):
                    candidate = self.sword.receipt(ce.edit_iri)
                    if key in candidate.identifiers:
                        receipt = candidate
                        break
        if receipt is None:
            return None
        self._record_receipt(key, receipt, "recovered", **recorded)
        # files are uploaded only after a receipt is recorded: a container found this way
        # holds none of ours yet
        self.state.drop_files(key)
        return receipt

    # -- files -------------------------------------------------------------------------------
    def _landed(self, key: str, got: Fetched, seen: dict[str, Statement]) -> str | None:
        """The IRI ('' if none given) of an upload that landed although its answer was lost,
        from the container's statement (read once per item, then kept in ``seen``)."""
        st = self.state.item(key)
        if st is None or not st.statement_iri:
            return None
        if "statement" not in seen:
            seen["statement"] = self.sword.statement(st.statement_iri)
        held = held_files(seen["statement"])
        known = {f.file_iri for f in st.files.values() if f.file_iri}
        if not any(h.ref for h in held):
            # no per-file IRIs: only name and MD5 can tell (the earlier behaviour)
            for f in seen["statement"].files:
                if f.name == got.filename and (f.md5 is None or f.md5 == got.md5):
                    return ""
            return None
        found = find_landed(
            held,
            known,
            name=got.filename,
            md5=got.md5,
            size=got.size,
            md5_of=lambda h: self.sword.file_md5(h.ref or ""),
        )
        return None if found is None else (found.ref or "")

    def _add_file(
        self, key: str, em_iri: str, got: Fetched, verify: dict[str, Statement] | None
    ) -> None:
        """Upload one file. ``verify`` (a statement cache): the item was left unfinished, so
        look first whether an earlier upload of this file landed."""
        if verify is not None:
            iri = self._landed(key, got, verify)
            if iri is not None:
                self._file_done(key, got, iri or None)
                return
        for attempt in range(1, self.attempts + 1):
            try:
                iri = self.sword.add_file(
                    em_iri,
                    got.path,
                    filename=got.filename,
                    md5=got.md5,
                    content_type=got.content_type,
                    in_progress=True,
                )
            except (FetchError, DepositError) as exc:
                if not ambiguous(exc) or attempt == self.attempts:
                    raise
                landed = self._landed(key, got, {})
                if landed is not None:
                    self._file_done(key, got, landed or None)
                    return
                continue
            self._file_done(key, got, iri)
            return

    def _file_done(self, key: str, got: Fetched, iri: str | None) -> None:
        self.state.set_file(
            key,
            got.entry.loc,
            status="uploaded",
            run_id=self.run_id,
            filename=got.filename,
            md5=got.md5,
            size=got.size,
            content_type=got.content_type,
            fingerprint=got.entry.fingerprint,
            file_iri=iri,
        )

    def _remove_file(self, key: str, fs: FileState) -> None:
        if fs.file_iri:
            self.state.journal(self.run_id, key, "delete-file", fs.file_iri, "intent")
            self.sword.delete_file(fs.file_iri)
        self.state.drop_file(key, fs.loc)

    def _rebuild_media(
        self, key: str, em_iri: str, item: Item, fetched: dict[str, Fetched]
    ) -> None:
        """No per-file IRIs: PUT the first file on the EM-IRI (replacing all media), then add
        the others. Idempotent, so a crash in between is repaired by doing it again."""
        self.state.journal(self.run_id, key, "replace-media", em_iri, "intent")
        self.state.drop_files(key)
        if not item.files:
            self.sword.delete_media(em_iri)
            return
        first, *rest = (fetched[f.loc] for f in item.files)
        self.sword.replace_media(
            em_iri,
            first.path,
            filename=first.filename,
            md5=first.md5,
            content_type=first.content_type,
        )
        self._file_done(key, first, self._sole_file_iri(key))
        for got in rest:
            self._add_file(key, em_iri, got, None)

    def _sole_file_iri(self, key: str) -> str | None:
        """After all media were replaced by one file: its IRI from the statement (a PUT
        answers none), so that file is known by its ref and never taken for a lost upload."""
        st = self.state.item(key)
        if st is None or not st.statement_iri:
            return None
        files = self.sword.statement(st.statement_iri).files
        return files[0].iri if len(files) == 1 and files[0].iri else None

    # -- delete ------------------------------------------------------------------------------
    def _delete(self, st: ItemState, plan: ItemPlan) -> Outcome:
        edit_iri = st.edit_iri
        if plan.recover and not edit_iri and st.collection_iri:
            found = self._find_container(
                st.key, st.collection_iri, st.slug or slug_for(st.key), title=st.title
            )
            edit_iri = found.edit_iri if found else None
        if edit_iri:
            self.state.journal(self.run_id, st.key, "delete", edit_iri, "intent")
            try:
                self.sword.delete_container(edit_iri)
            except ConflictError as exc:
                if self.pipeline.on_archived == "skip":
                    self.state.update_item(
                        st.key,
                        status=DELETED,
                        stale=1,
                        deleted_run=self.run_id,
                        error=exc.describe(),
                        error_code="warning",
                    )
                    return Outcome("skipped", exc.describe())
                self.state.update_item(
                    st.key, status=CONFLICT, error=exc.describe(), error_code=exc.code
                )
                raise
            self.state.journal(self.run_id, st.key, "delete", edit_iri, "done")
        self.state.drop_files(st.key)
        self.state.update_item(
            st.key,
            status=DELETED,
            deleted_run=self.run_id,
            create_pending=0,
            error=None,
            error_code=None,
        )
        return Outcome("deleted")

    # -- archived items ----------------------------------------------------------------------
    def _on_conflict(
        self, item: Item, plan: ItemPlan, col: str, st: ItemState | None, exc: ConflictError
    ) -> Outcome:
        policy = self.pipeline.on_archived
        key = item.key
        if policy == "skip" and st is not None:
            # accept the divergence: record the source's versions as seen, mark the item stale
            self.state.update_item(
                key,
                status=COMPLETE,
                stale=1,
                metadata_fp=metadata_fingerprint(item, col),
                error=exc.describe(),
                error_code="warning",
            )
            for f in item.files:
                old = st.files.get(f.loc)
                self.state.set_file(
                    key,
                    f.loc,
                    status="uploaded",
                    run_id=self.run_id,
                    fingerprint=f.fingerprint,
                    file_iri=old.file_iri if old else None,
                )
            for fs in plan.remove:
                self.state.drop_file(key, fs.loc)
            return Outcome("skipped", exc.describe())
        if policy == "recreate" and st is not None and st.edit_iri:
            self.state.journal(self.run_id, key, "recreate", st.edit_iri, "intent")
            left_behind = None
            try:
                self.sword.delete_container(st.edit_iri)
            except ConflictError:
                # DSpace's default workflow refuses deleting archived items as well: deposit
                # the new version anyway and say which old container needs removing by hand
                left_behind = st.edit_iri
            self.state.drop_files(key)
            self.state.update_item(
                key, status=DELETED, edit_iri=None, em_iri=None, se_iri=None, statement_iri=None
            )
            fresh = ItemPlan(key, CREATE, add=tuple(f.loc for f in item.files), complete=True)
            outcome = self._deposit(item, fresh, col, None)
            if left_behind:
                note = (
                    f"recreated; the server refused to delete the archived container "
                    f"{left_behind}: remove it by hand"
                )
                self.state.update_item(key, error=note, error_code="warning")
                log.warning("%s: %s", key, note)
                return Outcome(outcome.kind, note)
            return outcome
        self.state.update_item(key, status=CONFLICT, error=exc.describe(), error_code=exc.code)
        raise exc
