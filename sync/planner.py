"""Planner: what to do for one item, from the source's view and the recorded state. Pure.

Identity and change are explicit (as in vdirsyncer): an item is keyed by a stable key; a file
is changed when its fingerprint (best hash, else length + lastmod) differs; the metadata is
changed when the fingerprints of its records differ. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from .contracts import FileState, FileStatus, ItemState, ItemStatus
from .model import Item


class PlanKind(StrEnum):
    CREATE = "create"
    RESUME = "resume"  # an unfinished item: finish it, checking what already landed
    UPDATE = "update"
    DELETE = "delete"
    UNCHANGED = "unchanged"


CREATE, RESUME, UPDATE = PlanKind.CREATE, PlanKind.RESUME, PlanKind.UPDATE
DELETE, UNCHANGED = PlanKind.DELETE, PlanKind.UNCHANGED


@dataclass(frozen=True)
class ItemPlan:
    """The actions for one item. ``recover``: a create may have landed unseen (crash)."""

    key: str
    kind: PlanKind
    replace_metadata: bool = False
    add: tuple[str, ...] = ()  # file locs to upload
    replace: tuple[str, ...] = ()  # file locs whose content changed
    remove: tuple[FileState, ...] = ()  # recorded files the source no longer has
    verify: tuple[str, ...] = ()  # uploads that may have landed unseen: check before re-adding
    complete: bool = False
    recover: bool = False


def metadata_fingerprint(item: Item, collection_iri: str | None) -> str:
    """One value that changes when any metadata record (or the target collection) changes."""
    parts = sorted(f"{e.loc}={e.fingerprint}" for e in item.metadata)
    parts.append(f"collection={collection_iri or ''}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def slug_for(key: str) -> str:
    """A deterministic Slug for an item (servers that honour it make creates detectable)."""
    return "rsw-" + hashlib.sha1(key.encode()).hexdigest()[:20]


def plan_item(item: Item | None, state: ItemState | None, collection_iri: str | None) -> ItemPlan:
    """Decide the actions that make the destination hold ``item`` (None: the item is gone)."""
    if item is None:
        if state is None:
            raise ValueError("plan_item needs an item or a recorded state")
        if state.status == ItemStatus.DELETED or (
            state.container is None and not state.create_pending
        ):
            return ItemPlan(state.key, UNCHANGED)
        return ItemPlan(state.key, DELETE, recover=state.container is None)
    wanted = [f.loc for f in item.files]
    if state is None or state.status == ItemStatus.DELETED or state.container is None:
        return ItemPlan(
            item.key,
            CREATE,
            add=tuple(wanted),
            complete=True,
            recover=bool(state and state.create_pending and state.status != ItemStatus.DELETED),
        )
    fp = metadata_fingerprint(item, collection_iri)
    files = {f.loc: f for f in item.files}
    # an item left unfinished (crash, failure) may hold uploads whose answer was lost: every
    # upload it still needs is looked for in its statement first
    unfinished = state.status != ItemStatus.COMPLETE
    add, replace, verify = [], [], []
    for loc in wanted:
        recorded = state.files.get(loc)
        if recorded is None:
            add.append(loc)
            if unfinished:
                verify.append(loc)
        elif recorded.status == FileStatus.REPLACING:
            replace.append(loc)  # a media replacement under way: redone whole
        elif recorded.status != FileStatus.UPLOADED:
            add.append(loc)
            verify.append(loc)
        elif recorded.fingerprint != files[loc].fingerprint:
            replace.append(loc)
    remove = tuple(f for loc, f in sorted(state.files.items()) if loc not in files)
    replace_md = fp != state.metadata_fp
    changed = bool(replace_md or add or replace or remove)
    if state.status != ItemStatus.COMPLETE:
        kind = RESUME
    else:
        kind = UPDATE if changed else UNCHANGED
    return ItemPlan(
        item.key,
        kind,
        replace_metadata=replace_md,
        add=tuple(add),
        replace=tuple(replace),
        remove=remove,
        verify=tuple(verify),
        complete=kind != UNCHANGED,
    )
