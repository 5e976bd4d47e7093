"""An in-memory source: the smallest complete ``Source``, for engine tests and as the example
to copy when adding a protocol (this module plus one line in ``sync/registry.py``).

Items are put in as a metadata record (Dublin Core) that ``describes`` its files, the same
shape every real source produces. Changes are recorded with a logical clock, so ``changes``
works like a change list; ``feed = False`` makes the source one without a change feed.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..contracts import Changes, Fetched, Listing
from ..errors import FetchError, IntegrityError
from ..model import Entry, Item, Link
from ..safexml import escape

if TYPE_CHECKING:
    from ..registry import Runtime

NAME = "memory"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def dc_record(title: str, creators: tuple[str, ...] = ()) -> bytes:
    """An oai_dc record (what the crosswalk reads)."""
    parts = [f"<dc:title>{escape(title)}</dc:title>"] + [
        f"<dc:creator>{escape(c)}</dc:creator>" for c in creators
    ]
    return (
        '<oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/">' + "".join(parts) + "</oai_dc:dc>"
    ).encode()


@dataclass
class _Resource:
    entry: Entry
    content: bytes


@dataclass
class MemorySource:
    """Resources by loc, and a log of changes in time order."""

    location: str = "mem://source"
    feed: bool = True
    type_name: str = NAME
    remote: bool = True  # stands in for a server in tests
    resources: dict[str, _Resource] = field(default_factory=dict)
    log: list[Entry] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)  # locs whose fetch fails
    clock: int = 0
    fetches: int = 0

    # -- building the source (tests) ---------------------------------------------------------
    def _tick(self) -> datetime:
        self.clock += 1
        return EPOCH + timedelta(seconds=self.clock)

    def put(self, loc: str, content: bytes, links: tuple[Link, ...] = ()) -> None:
        now = self._tick()
        change = "updated" if loc in self.resources else "created"
        entry = Entry(
            loc=loc,
            lastmod=now,
            hashes=(("md5", hashlib.md5(content).hexdigest()),),
            length=len(content),
            links=links,
        )
        self.resources[loc] = _Resource(entry, content)
        self.log.append(Entry(loc, now, entry.hashes, entry.length, None, links, change, now))

    def remove(self, loc: str) -> None:
        if self.resources.pop(loc, None) is not None:
            now = self._tick()
            self.log.append(Entry(loc, now, change="deleted", change_time=now))

    def put_item(
        self,
        key: str,
        title: str,
        files: dict[str, bytes],
        *,
        collection: str | None = None,
        creators: tuple[str, ...] = (),
    ) -> str:
        """A record at ``mem://{key}`` describing ``mem://{key}/{name}`` files; returns the
        record's loc (the item key the engine will use). Files the item no longer has are
        removed."""
        record = f"{self.location}/{key}"
        old = {loc for loc in self.resources if loc.startswith(record + "/") and loc != record}
        file_locs = {f"{record}/{name}": data for name, data in files.items()}
        for loc in sorted(old - file_locs.keys()):
            self.remove(loc)
        for loc, data in file_locs.items():
            current = self.resources.get(loc)
            if current is None or current.content != data:
                self.put(loc, data, (Link("describedby", record),))
        links = [Link("describes", loc) for loc in file_locs]
        if collection:
            links.append(Link("collection", collection))
        self.put(record, dc_record(title, creators), tuple(links))
        return record

    def remove_item(self, key: str) -> None:
        record = f"{self.location}/{key}"
        for loc in sorted(self.resources):
            if loc == record or loc.startswith(record + "/"):
                self.remove(loc)

    # -- the contract ------------------------------------------------------------------------
    def listing(self) -> Listing:
        def produce(listing: Listing) -> Iterator[Entry]:
            listing.cursor = (EPOCH + timedelta(seconds=self.clock)).isoformat()
            for loc in sorted(self.resources):
                yield self.resources[loc].entry

        return Listing(produce)

    def changes(
        self, since: datetime | None, memo: Mapping[str, Any] | None = None
    ) -> Changes | None:
        if not self.feed:
            return None
        last: dict[str, Entry] = {}
        for e in self.log:
            if since is None or (e.change_time is not None and e.change_time >= since):
                last.pop(e.loc, None)
                last[e.loc] = e
        cursor = (EPOCH + timedelta(seconds=self.clock)).isoformat()
        return Changes(changes=list(last.values()), cursor=cursor)

    def fetch(self, entry: Entry) -> Fetched:
        self.fetches += 1
        if entry.loc in self.broken:
            raise FetchError("the source answered HTTP 500", resource=entry.loc, transient=True)
        res = self.resources.get(entry.loc)
        if res is None:
            raise FetchError("the source answered HTTP 404", resource=entry.loc)
        md5 = hashlib.md5(res.content).hexdigest()
        expected = entry.hash("md5")
        if expected and expected != md5:
            raise IntegrityError(
                f"md5 mismatch: the list says {expected}, the bytes hash to {md5}",
                resource=entry.loc,
            )
        fd, name = tempfile.mkstemp(prefix="rsw-mem-")
        path = Path(name)
        with open(fd, "wb") as fh:
            fh.write(res.content)
        return Fetched(
            entry=entry,
            path=path,
            size=len(res.content),
            md5=md5,
            filename=entry.loc.rsplit("/", 1)[-1],
            content_type="application/octet-stream",
            discard_fn=lambda: path.unlink(missing_ok=True),
        )

    def identifiers(self, item: Item) -> list[str]:
        return [e.loc for e in item.metadata] or [item.key]

    def resolve_deleted(self, loc: str, known: Callable[[str], list[str]]) -> str | None:
        return None

    def close(self) -> None:
        return None


# -- registration: ``[source] type = "memory"``, ``name`` = a source put in ``SOURCES`` ----------
SOURCES: dict[str, MemorySource] = {}


@dataclass
class Settings:
    name: str = "default"

    @property
    def location(self) -> str:
        return f"mem://{self.name}"


def build(s: Settings, rt: Runtime) -> MemorySource:
    return SOURCES.setdefault(s.name, MemorySource(location=f"mem://{s.name}"))
