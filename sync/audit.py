"""Audit: compare what the source lists, what the state DB recorded and what the destination
holds. Changes nothing; an empty report means the mirror is in sync."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from .contracts import Destination, FileState, HeldFile, ItemStatus, Source, StateStore
from .errors import SyncError
from .model import Entry
from .recovery import compare_files


@dataclass
class AuditReport:
    """Differences between source, state DB and destination (empty = in sync)."""

    differences: list[str] = field(default_factory=list)
    checked_items: int = 0
    checked_resources: int = 0

    @property
    def in_sync(self) -> bool:
        return not self.differences


def audit(source: Source, destination: Destination, state: StateStore) -> AuditReport:
    """Compare the source's listing, the state DB and the destination; change nothing."""
    report = AuditReport()
    listing = source.listing()
    listed = {e.loc: e.fingerprint for e in listing}
    for exc in listing.errors:
        report.differences.append(f"the source could not be read whole: {exc.describe()}")
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
        if st is None or st.status == ItemStatus.DELETED:
            continue
        report.checked_items += 1
        if st.status != ItemStatus.COMPLETE:
            report.differences.append(f"item {key} is {st.status}: {st.error or ''}".rstrip(": "))
            continue
        if st.stale:
            report.differences.append(f"item {key} is stale (destination refused changes)")
        if st.container is None:
            continue
        try:
            held = destination.contents(st.container)
        except SyncError as exc:
            report.differences.append(f"item {key}: cannot read its contents: {exc.describe()}")
            continue
        report.differences.extend(
            f"item {key}: {d}" for d in compare_files(_recorded(list(st.files.values())), held)
        )
    return report


def _recorded(files: list[FileState]) -> list[HeldFile]:
    return [HeldFile(ref=f.ref, name=f.filename, md5=f.md5, size=f.size) for f in files]


def _present_entries(state: StateStore) -> Iterator[tuple[str, Entry]]:
    batch: list[str] = []
    for loc, _links in state.iter_link_records():
        batch.append(loc)
        if len(batch) >= 1000:
            yield from state.entries(batch).items()
            batch = []
    if batch:
        yield from state.entries(batch).items()
