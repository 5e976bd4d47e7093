"""Change lists: which changes to apply, in which order. Pure.

Changes are ordered by ``rs:md datetime`` (falling back to ``lastmod``); when a resource
changed several times, the last change wins. Only changes at or after ``since`` count (the
caller passes the last successful sync minus an overlap window; applying a change twice is
harmless because planning compares fingerprints).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from .model import Entry


@dataclass(frozen=True)
class ChangeSet:
    """The last change per resource, in time order."""

    changes: tuple[Entry, ...]
    latest: datetime | None  # the newest change time seen (the next cursor)

    @property
    def deleted(self) -> list[Entry]:
        return [e for e in self.changes if e.change == "deleted"]

    @property
    def upserts(self) -> list[Entry]:
        return [e for e in self.changes if e.change != "deleted"]


def when(entry: Entry) -> datetime | None:
    return entry.change_time or entry.lastmod


def collapse(entries: Iterable[Entry], since: datetime | None) -> ChangeSet:
    """Keep changes at or after ``since``; the last one per loc wins (stable for ties)."""
    last: dict[str, tuple[datetime | None, int, Entry]] = {}
    latest: datetime | None = None
    for n, e in enumerate(entries):
        t = when(e)
        if since is not None and t is not None and t < since:
            continue
        if t is not None and (latest is None or t > latest):
            latest = t
        prev = last.get(e.loc)
        if prev is None or _key(t, n) >= _key(prev[0], prev[1]):
            last[e.loc] = (t, n, e)
    ordered = sorted(last.values(), key=lambda v: _key(v[0], v[1]))
    return ChangeSet(tuple(v[2] for v in ordered), latest)


def _key(t: datetime | None, n: int) -> tuple[float, int]:
    return (t.timestamp() if t else float("-inf"), n)


def alias_suffixes(loc: str) -> list[str]:
    """Path suffixes under which a deleted entry's resource may be known.

    The DSpace module reports a deleted metadata record at ``{base}/{handle}/{prefix}`` while
    it published it at ``{base}/resource/{handle}/{prefix}``: matching the last three path
    segments finds it. Returned longest first.
    """
    segments = [s for s in urlsplit(loc).path.split("/") if s]
    out = []
    for n in (3, 2):
        if len(segments) >= n:
            out.append("/resource/" + "/".join(segments[-n:]))
    return out
