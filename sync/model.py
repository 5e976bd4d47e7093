"""Value objects shared by the stages: what a list entry says, and what an item is."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

HASH_ALGORITHMS = ("md5", "sha-1", "sha-256")


@dataclass(frozen=True)
class Link:
    """An ``rs:ln`` link. ``rel`` is stored lower-case (rel values are case-insensitive)."""

    rel: str
    href: str
    type: str | None = None
    attrs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Entry:
    """One ``<url>`` of a resource list or change list."""

    loc: str
    lastmod: datetime | None = None
    hashes: tuple[tuple[str, str], ...] = ()  # (algorithm, lower-case hex)
    length: int | None = None
    type: str | None = None
    links: tuple[Link, ...] = ()
    change: str | None = None  # created | updated | deleted (change lists only)
    change_time: datetime | None = None  # rs:md datetime: when the change happened
    capability: str | None = None  # capability lists, indexes and archives name what they link
    md_from: datetime | None = None  # change list archives: the listed list's span
    md_until: datetime | None = None

    def hash(self, algorithm: str) -> str | None:
        for name, value in self.hashes:
            if name == algorithm:
                return value
        return None

    def links_with(self, rel: str) -> list[Link]:
        return [ln for ln in self.links if ln.rel == rel]

    @property
    def fingerprint(self) -> str:
        """What identifies this version of the resource: best hash, else length + lastmod."""
        for alg in ("sha-256", "md5", "sha-1"):
            value = self.hash(alg)
            if value:
                return f"{alg}:{value}"
        stamp = self.lastmod.isoformat() if self.lastmod else ""
        return f"len:{self.length}|mod:{stamp}"


@dataclass(frozen=True)
class ListInfo:
    """The ``rs:md`` of a list document."""

    url: str
    capability: str | None
    is_index: bool
    at: datetime | None = None
    completed: datetime | None = None
    from_: datetime | None = None
    until: datetime | None = None


@dataclass
class Item:
    """What becomes one SWORD container: metadata records (primary first) and files."""

    key: str
    metadata: list[Entry] = field(default_factory=list)  # primary first, then alternates
    files: list[Entry] = field(default_factory=list)
    collection: str | None = None  # source collection URL (rel="collection")

    @property
    def primary(self) -> Entry | None:
        return self.metadata[0] if self.metadata else None

    @property
    def members(self) -> list[Entry]:
        return [*self.metadata, *self.files]
