"""Linker: group a source's resources into items (metadata records + their files). Pure.

Rules (ResourceSync 1.1 links, as real publishers use them):
- ``describes`` A -> B (B a resource of the source): A is a metadata record, B one of its files.
- ``describedby`` A -> B (B a resource of the source): A is a file, B its metadata record.
  A ``describedby`` or ``profile`` link to anything that is not a resource of the source (a
  schema such as ``http://purl.org/dc/terms/``, a format namespace) makes no file; it marks A
  as a metadata record.
- ``alternate`` between two metadata records: two formats of one record, so one item; several
  records describing the same files are one item too, and so are records whose URLs differ
  only in the format name (``.../{handle}/oai_dc`` and ``.../{handle}/qdc``; ``?format=``).
- A resource linked to nothing is an item of its own; a file whose records were all deleted is
  an orphan (it goes with its item, it never becomes an item of its own).
Rel values are compared lower-case (``describedBy`` occurs in the wild).

The graph keeps integers, not entries, so linking a large source needs little memory: the
engine feeds it (loc, links) pairs streamed from the state DB and loads entries group by group.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .crosswalk import format_hint
from .model import Entry, Item, Link

DESCRIBES, DESCRIBEDBY, ALTERNATE = 0, 1, 2
_REL_KIND = {"describes": DESCRIBES, "describedby": DESCRIBEDBY, "alternate": ALTERNATE}
DEFAULT_PREFERENCE = ("qdc", "dcterms", "oai_dc", "dim")


@dataclass(frozen=True)
class Group:
    """Locs that belong together. ``kind``: item | standalone | orphan."""

    kind: str
    metadata: tuple[str, ...]
    files: tuple[str, ...]

    @property
    def locs(self) -> tuple[str, ...]:
        return (*self.metadata, *self.files)


class LinkGraph:
    """Collects the present resources' links, then answers ``groups()``."""

    def __init__(self, known: Callable[[str], bool] | None = None) -> None:
        # ``known(loc)``: was loc ever a resource of this source (e.g. deleted since)?
        self._known = known or (lambda _loc: False)
        self._ids: dict[str, int] = {}
        self._locs: list[str] = []
        self._present = bytearray()
        self._schema_marked = bytearray()  # profile / describedby to a non-source URL
        self._src = array("l")
        self._dst = array("l")
        self._kind = array("b")

    def _id(self, loc: str) -> int:
        i = self._ids.get(loc)
        if i is None:
            i = self._ids[loc] = len(self._locs)
            self._locs.append(loc)
            self._present.append(0)
            self._schema_marked.append(0)
        return i

    def add(self, loc: str, links: Iterable[Link]) -> None:
        """Add a resource the source lists now, with its links."""
        i = self._id(loc)
        self._present[i] = 1
        for ln in links:
            rel = ln.rel.lower()
            if rel == "profile":
                self._schema_marked[i] = 1
                continue
            kind = _REL_KIND.get(rel)
            if kind is None or ln.href == loc:
                continue
            self._src.append(i)
            self._dst.append(self._id(ln.href))
            self._kind.append(kind)

    def groups(self) -> Iterator[Group]:
        """The groups, once: the loc index is released to keep the peak memory down."""
        self._ids = {}
        n = len(self._locs)
        present = self._present
        parent = list(range(n))

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        def union(a: int, b: int) -> None:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)

        metadata = bytearray(self._schema_marked)
        file_ = bytearray(n)
        lost_record = bytearray(n)  # a file whose (known) record is no longer listed
        alternates: list[tuple[int, int]] = []
        known_memo: dict[int, bool] = {}  # a schema URL is the target of every record
        for s, d, kind in zip(self._src, self._dst, self._kind, strict=True):
            if not present[s]:
                continue
            target_present = bool(present[d])
            if not target_present and d not in known_memo:
                known_memo[d] = self._known(self._locs[d])
            target_known = target_present or known_memo[d]
            if kind == DESCRIBES:
                metadata[s] = 1
                if target_present:
                    file_[d] = 1
                    union(s, d)
            elif kind == DESCRIBEDBY:
                if target_present:
                    metadata[d] = 1
                    file_[s] = 1
                    union(s, d)
                elif target_known:
                    file_[s] = 1
                    lost_record[s] = 1
                else:
                    metadata[s] = 1  # describedby a schema: s is itself a record
            elif target_present:
                alternates.append((s, d))
        for s, d in alternates:
            if metadata[s] and metadata[d]:
                union(s, d)
        families: dict[str, int] = {}
        for i in range(n):
            if present[i] and metadata[i]:
                fam = record_family(self._locs[i])
                if fam is not None:
                    union(i, families.setdefault(fam, i))
        # only linked resources are grouped in memory; a resource linked to nothing (most of
        # a plain source) is answered as it is met
        members: dict[int, list[int]] = {}
        for i in range(n):
            if not present[i]:
                continue
            if parent[i] == i and not metadata[i] and not file_[i]:
                yield Group("standalone", (), (self._locs[i],))
                continue
            members.setdefault(find(i), []).append(i)
        for ids in members.values():
            md = tuple(sorted(self._locs[i] for i in ids if metadata[i]))
            files = tuple(sorted(self._locs[i] for i in ids if not metadata[i]))
            if md:
                yield Group("item", md, files)
            elif any(lost_record[i] for i in ids):
                yield Group("orphan", (), files)
            else:
                for loc in files:
                    yield Group("standalone", (), (loc,))


# Metadata format names publishers put in record URLs (path segment or ?format=).
RECORD_FORMATS = frozenset(
    [
        "oai_dc",
        "qdc",
        "dim",
        "dc",
        "dcterms",
        "mods",
        "mets",
        "marc",
        "marcxml",
        "ore",
        "didl",
        "rdf",
        "xoai",
        "etdms",
        "etd_ms",
        "uketd_dc",
        "datacite",
        "oai_datacite",
        "rioxx",
    ]
)


def record_family(loc: str) -> str | None:
    """One item's records in several formats share a URL but for the format name:
    ``.../resource/{handle}/{prefix}`` (DSpace 7) or ``.../{handle}?format={prefix}``
    (DSpace 5/6). The URL without it, or None when the URL names no known format."""
    parts = urlsplit(loc)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    if any(k == "format" and v.lower() in RECORD_FORMATS for k, v in query):
        rest = urlencode([(k, v) for k, v in query if k != "format"])
        return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, ""))
    head, _, last = parts.path.rstrip("/").rpartition("/")
    if last.lower() in RECORD_FORMATS and head:
        return urlunsplit((parts.scheme, parts.netloc, head, parts.query, ""))
    return None


def order_metadata(records: Sequence[Entry], preference: Sequence[str]) -> list[Entry]:
    """Records ordered by the format preference (unknown formats last, then by URL)."""
    rank = {name: i for i, name in enumerate(preference)}

    def key(e: Entry) -> tuple[int, str]:
        fmt = format_hint(e)
        return (rank.get(fmt, len(rank)) if fmt else len(rank) + 1, e.loc)

    return sorted(records, key=key)


def build_item(
    group: Group,
    entries: dict[str, Entry],
    *,
    preference: Sequence[str] = DEFAULT_PREFERENCE,
    key: str | None = None,
) -> Item:
    """The item of a group: records by preference, files, source collection, stable key."""
    records = order_metadata([entries[loc] for loc in group.metadata], preference)
    files = [entries[loc] for loc in group.files]
    collection = None
    for e in [*records, *files]:
        links = e.links_with("collection")
        if links:
            collection = links[0].href
            break
    item_key = key or (records[0].loc if records else files[0].loc)
    return Item(key=item_key, metadata=records, files=files, collection=collection)


def link(
    entries: Iterable[Entry],
    *,
    preference: Sequence[str] = DEFAULT_PREFERENCE,
    known: Callable[[str], bool] | None = None,
    include_standalone: bool = True,
) -> list[Item]:
    """Group entries into items (convenience for callers holding all entries in memory)."""
    by_loc: dict[str, Entry] = {}
    graph = LinkGraph(known)
    for e in entries:
        by_loc[e.loc] = e
        graph.add(e.loc, e.links)
    items = []
    for group in graph.groups():
        if group.kind == "orphan" or (group.kind == "standalone" and not include_standalone):
            continue
        items.append(build_item(group, by_loc, preference=preference))
    return sorted(items, key=lambda it: it.key)
