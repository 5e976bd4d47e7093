"""Change lists: which changes to apply, in which order. Pure.

Changes are ordered by ``rs:md datetime`` (falling back to ``lastmod``); when a resource
changed several times, the last change wins. Only changes at or after ``since`` count (the
caller passes the last successful sync minus an overlap window; applying a change twice is
harmless because planning compares fingerprints). ``select_changes`` decides, document by
document, which entries count at all: entries without ``rs:md datetime`` are not judged by
their ``lastmod`` but by whether their document is new since the last sync.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from .model import Entry, ListInfo


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


# -- which entries of which change-list documents to apply -------------------------------------
READ_DOCUMENTS_KEY = "changelists_read"  # state meta: the documents the last sync read


def document_digest(entries: Iterable[Entry]) -> str:
    """What a change-list document says, as a digest: a document rewritten at the same URL
    (the ``resync`` client overwrites ``changelist.xml``) is a new document."""
    h = hashlib.sha256()
    for e in entries:
        parts = (e.loc, e.change, e.lastmod, e.change_time, e.length, e.hashes)
        h.update(repr(parts).encode("utf-8", "surrogatepass"))
        h.update(b"\n")
    return h.hexdigest()


def document_key(url: str, digest: str) -> str:
    return f"{url}#{digest}"


def is_new_document(
    info: ListInfo, key: str, since: datetime | None, read_before: Collection[str]
) -> bool:
    """New since the last sync: by its own ``rs:md`` from / until / at, or because this
    document (URL and content) was never read before."""
    if since is None or key not in read_before:
        return True
    return any(t is not None and t >= since for t in (info.from_, info.until, info.at))


@dataclass
class SkipReport:
    """Change entries a run did not apply, counted by reason (reported, never silent)."""

    before_cursor: int = 0  # rs:md datetime before the cursor: applied by an earlier sync
    already_read: int = 0  # no datetime, in a document an earlier sync read unchanged
    closed_before_cursor: int = 0  # in a closed change list that ended before the cursor
    documents_read: list[str] = field(default_factory=list)  # document keys (to remember)

    @property
    def total(self) -> int:
        return self.before_cursor + self.already_read + self.closed_before_cursor

    def describe(self) -> str:
        parts = [
            (self.before_cursor, "dated before the cursor (applied by an earlier sync)"),
            (self.already_read, "without a datetime, in change lists already read unchanged"),
            (self.closed_before_cursor, "in closed change lists that ended before the cursor"),
        ]
        said = ", ".join(f"{n} {why}" for n, why in parts if n)
        return f"{self.total} change entries not applied: {said}" if said else ""


def select_changes(
    info: ListInfo,
    entries: list[Entry],
    since: datetime | None,
    read_before: Collection[str],
    report: SkipReport,
) -> list[Entry]:
    """The entries of one change-list document to apply; what is left out is counted.

    An entry with ``rs:md datetime`` is judged by it. One without (``resync`` 2.0.1 and
    ResourceSync 1.0 publishers write ``lastmod`` only, and a file restored with its old
    mtime gets an old ``lastmod``) is applied whatever its ``lastmod`` when its document is
    new since the last sync (plans compare fingerprints, so applying it again is harmless).
    """
    key = document_key(info.url, document_digest(entries))
    report.documents_read.append(key)
    if since is None:
        return entries
    if info.until is not None and info.until < since:
        report.closed_before_cursor += len(entries)
        return []
    new = is_new_document(info, key, since, read_before)
    kept = []
    for e in entries:
        if e.change_time is not None:
            if e.change_time >= since:
                kept.append(e)
            else:
                report.before_cursor += 1
        elif new:
            kept.append(e)
        else:
            report.already_read += 1
    return kept
