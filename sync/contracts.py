"""The contracts between the engine and what it syncs: sources, destinations, the state store.

The engine knows only these. A new protocol is one module implementing ``Source`` or
``Destination`` plus one line in ``sync/registry.py``; ``sync/sources/memory.py`` and
``sync/destinations/memory.py`` are the smallest complete examples.

Everything a source says is an ``Entry`` (``sync/model.py``): a resource with its fingerprint
(hashes, else length + lastmod) and its links. The linker groups entries into items by their
links (``describes`` / ``describedby``, ``alternate``, ``collection``), whatever the protocol:
an OAI-PMH record or a SAF item folder is written as a metadata entry that ``describes`` its
files, exactly as a ResourceSync publisher does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .crosswalk import DCRecord
from .errors import SyncError
from .model import Entry, Item, Link


# -- what a source gives -----------------------------------------------------------------------
@dataclass
class Fetched:
    """A resource's bytes in a local temporary file, verified against what the source
    announced (length, hashes, type), with the name and type to deposit it under. A source
    that builds a small record itself (SAF's item metadata) may hand the bytes over in
    ``data`` instead of a file: ``read_bytes`` gives them either way."""

    entry: Entry
    path: Path
    size: int
    md5: str
    filename: str
    content_type: str
    discard_fn: Callable[[], None] = lambda: None
    # a temporary copy only this run holds: a destination may link it in place of copying
    temporary: bool = False
    # the bytes themselves, held in memory (then ``path`` names no file): metadata records only
    data: bytes | None = None

    def read_bytes(self) -> bytes:
        """The resource's bytes (a metadata record is read whole)."""
        return self.data if self.data is not None else self.path.read_bytes()

    def discard(self) -> None:
        """Remove the temporary copy (sources that hand out their own files do nothing)."""
        self.discard_fn()


class Listing:
    """One pass over a source: iterate it once (entries stream; nothing is held whole), then
    read ``errors`` (refused entries and documents: the pass is then not ``complete``) and
    ``cursor`` (where the next incremental run starts, if this pass is complete).

    ``produce`` is called with the listing itself, so the generator can record errors and
    the cursor on it as it goes."""

    def __init__(self, produce: Callable[[Listing], Iterator[Entry]]) -> None:
        self.errors: list[SyncError] = []
        self.cursor: str | None = None
        self._entries = produce(self)

    def __iter__(self) -> Iterator[Entry]:
        return self._entries

    @property
    def complete(self) -> bool:
        return not self.errors


@dataclass
class Changes:
    """What changed at a source since a cursor: the last change per resource, in time order
    (``Entry.change`` is created | updated | deleted). ``skipped_reasons`` says which change
    entries the source read but chose not to apply, and why (reported, never dropped
    silently)."""

    changes: list[Entry] = field(default_factory=list)
    cursor: str | None = None
    errors: list[SyncError] = field(default_factory=list)
    skipped_reasons: list[str] = field(default_factory=list)
    memo: dict[str, Any] | None = None  # what the source wants back next time (e.g. which
    # change lists it read); kept by the engine only after a complete pass

    @property
    def complete(self) -> bool:
        return not self.errors

    @property
    def deleted(self) -> list[Entry]:
        return [e for e in self.changes if e.change == "deleted"]

    @property
    def upserts(self) -> list[Entry]:
        return [e for e in self.changes if e.change != "deleted"]


@runtime_checkable
class Source(Protocol):
    """Where items come from (ResourceSync, OAI-PMH, a SAF export, memory)."""

    type_name: str
    """The registry name (``resourcesync``, ``oai-pmh``, ``saf``, ``memory``)."""

    remote: bool
    """Whether a fetch waits on the network: an item's resources are then fetched at once
    (their round trips overlap). A local archive's fetches are disk and CPU work that the
    items' own workers already spread over the cores: handing them to more threads only
    costs hand-offs."""

    location: str
    """The URL or path the user gave: named in messages and guards."""

    def listing(self) -> Listing:
        """Everything the source has now, streamed (baseline, and the fallback comparison)."""
        ...

    def changes(self, since: datetime | None, memo: Mapping[str, Any]) -> Changes | None:
        """What changed at or after ``since`` (None: from the beginning). ``memo`` is what
        the last complete pass returned as ``Changes.memo`` ({} at first). Returns None when
        the source has no change feed; the engine then compares a fresh ``listing``."""
        ...

    def fetch(self, entry: Entry) -> Fetched:
        """The verified bytes of one resource (raises ``SyncError`` naming it)."""
        ...

    def identifiers(self, item: Item) -> list[str]:
        """The source's own identifiers for an item (URLs, handles, OAI identifiers): carried
        by the deposit so a lost create can be recognised and people can trace it back."""
        ...

    def resolve_deleted(self, loc: str, known: Callable[[str], list[str]]) -> str | None:
        """The recorded loc a deletion entry means, where the source names deleted resources
        differently (DSpace); ``known(suffix)`` lists recorded locs ending in ``suffix``."""
        ...

    def close(self) -> None:
        """Release connections and temporary files."""
        ...


# -- what a destination takes ------------------------------------------------------------------
@dataclass(frozen=True)
class Container:
    """Where one item lives at the destination. ``id`` is unique there (SWORD: the Edit-IRI;
    SAF: the item folder); ``data`` is the destination's own bookkeeping (SWORD: EM-IRI,
    SE-IRI, statement IRI), stored by the state DB as JSON and handed back unchanged."""

    id: str
    data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Metadata:
    """What the destination records about an item, whatever its format."""

    dc: DCRecord
    title: str
    identifiers: tuple[str, ...]  # the source's identifiers (dcterms:identifier)
    key: str  # the item key (stable across runs)


@dataclass(frozen=True)
class HeldFile:
    """A file a container holds, as the destination lists it (any field may be unknown)."""

    ref: str | None  # the destination's handle for the file (SWORD: file IRI)
    name: str | None
    md5: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a destination can do; the depositor chooses its strategy by these."""

    single_file_delete: bool = True  # remove one file; else all media are replaced
    listing: bool = True  # can list a collection (find a create whose answer was lost)
    checksums_in_listing: bool = True  # ``contents`` gives MD5s
    max_upload: int | None = None  # bytes, None = unknown / unlimited
    max_upload_note: str = ""  # how the limit was read (servers advertise it differently)
    empty_files: bool = True  # accepts zero-length files
    whole_item_updates: bool = False  # an update rewrites the whole item (SAF --replace):
    # the depositor then sends the metadata and every file again, not only what changed


@runtime_checkable
class Destination(Protocol):
    """Where items go (SWORD v2, SAF batches, memory). Every call either did its work or
    raises ``SyncError``; ``DepositError(transient=True)`` means it may have been carried out
    (the depositor then looks before trying again), ``ConflictError`` that the destination
    refuses changes to this container."""

    type_name: str
    location: str

    @property
    def capabilities(self) -> Capabilities: ...

    def check(self, collections: Iterable[str]) -> None:
        """Reachable, and every named collection exists (raises ``ConfigError``)."""
        ...

    def open_run(self, run_id: int) -> None:
        """A run begins (SAF: the batch folder of this run)."""
        ...

    def close_run(self) -> None:
        """A run ends (SAF: write the import script)."""
        ...

    def create(self, collection: str, metadata: Metadata, *, slug: str) -> Container:
        """A new container, in progress, holding the metadata."""
        ...

    def find(
        self, collection: str, metadata: Metadata, *, slug: str, owned: Callable[[str], bool]
    ) -> Container | None:
        """Did an earlier create of this item land although its answer was lost? ``owned(id)``
        is True for containers the state already records (so not lost ones). Raises
        ``ListingUnsupportedError`` where the destination cannot tell."""
        ...

    def add_file(self, container: Container, file: Fetched) -> str | None:
        """Upload one file; returns the file's ref where the destination gives one."""
        ...

    def replace_metadata(self, container: Container, metadata: Metadata) -> None: ...

    def replace_files(self, container: Container, first: Fetched | None) -> str | None:
        """Replace all media by ``first`` (None: remove all); returns its ref if given."""
        ...

    def remove_file(self, container: Container, ref: str) -> None: ...

    def complete(self, container: Container) -> str | None:
        """End the in-progress state; returns the destination's state word if it says one."""
        ...

    def delete(self, container: Container) -> None:
        """Remove the container; one that is already gone counts as removed (a delete whose
        answer was lost is sent again by ``replay``)."""
        ...

    def contents(self, container: Container) -> list[HeldFile]:
        """The files the container holds now (audit, crash recovery)."""
        ...

    def file_md5(self, container: Container, held: HeldFile) -> str:
        """The MD5 of one held file, by downloading it (only to resolve an ambiguous upload
        on destinations that list no checksums)."""
        ...

    def waiting(self) -> list[str]:
        """Work the destination holds that is not live yet (SAF: batches not imported)."""
        ...

    def close(self) -> None: ...


class DeferredError(SyncError):
    """The destination cannot take this change yet (SAF: the item's add batch has not been
    imported, so its handle is unknown). Not a failure: the item is counted as waiting and
    the next run (or ``replay``) writes it."""

    code = "waiting"
    transient = True


class ListingUnsupportedError(SyncError):
    """The destination cannot list a collection, so a lost create cannot be looked up."""

    code = "no-listing"


# -- statuses the state records ----------------------------------------------------------------
class ItemStatus(StrEnum):
    """Where an item is, in the order a deposit goes through them."""

    PENDING = "pending"
    CREATING = "creating"  # the intent to create is recorded; the answer is not
    IN_PROGRESS = "in-progress"  # the container exists; files or completion pending
    COMPLETE = "complete"
    FAILED = "failed"
    CONFLICT = "conflict"  # the destination refuses changes (archived)
    DELETED = "deleted"


RETRYABLE = (
    ItemStatus.PENDING,
    ItemStatus.CREATING,
    ItemStatus.IN_PROGRESS,
    ItemStatus.FAILED,
    ItemStatus.CONFLICT,
)


class FileStatus(StrEnum):
    UPLOADED = "uploaded"
    REPLACING = "replacing"  # all media are being replaced: the next attempt redoes it


class RunKind(StrEnum):
    BASELINE = "baseline"
    INCREMENTAL = "incremental"
    REPLAY = "replay"
    UNDO = "undo"


class RunStatus(StrEnum):
    RUNNING = "running"
    OK = "ok"
    PARTIAL = "partial"
    LIMITED = "limited"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


# -- what the state records --------------------------------------------------------------------
@dataclass(frozen=True)
class FileState:
    """A file as recorded at the destination: ``ref`` is the destination's handle for it (SWORD:
    file IRI), ``md5`` / ``size`` what was sent."""

    loc: str
    filename: str | None
    md5: str | None
    fingerprint: str | None
    ref: str | None
    status: str  # FileStatus
    size: int | None = None


@dataclass(frozen=True)
class ItemState:
    """An item as recorded: its container at the destination, status and files."""

    key: str
    status: ItemStatus
    collection: str | None = None
    container: Container | None = None
    metadata_fp: str | None = None
    title: str | None = None
    create_pending: bool = False  # a create was sent whose answer was not recorded
    stale: bool = False
    error_code: str | None = None
    error: str | None = None
    attempts: int = 0
    created_run: int | None = None
    files: dict[str, FileState] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRecord:
    id: int
    kind: str
    pipeline: str | None
    started: str
    finished: str | None
    status: str
    comment: str | None
    created: int
    updated: int
    deleted: int
    unchanged: int
    failed: int
    skipped: int
    requests: int
    message: str | None
    waiting: int = 0  # items a batch destination could not take yet

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class StateStore(Protocol):
    """The state DB: the single source of truth for what is mirrored where. Every method is
    one short transaction (a killed run loses at most the step under way); ``tx()`` groups
    several into one. SQLite (``sync/state/sqlite.py``) is the implementation."""

    path: Path

    def tx(self) -> AbstractContextManager[object]: ...
    def close(self) -> None: ...

    # settings kept between runs
    def get_json(self, key: str) -> Any: ...
    def set_json(self, key: str, value: Any) -> None: ...

    # runs
    def start_run(self, kind: RunKind, pipeline: str | None, comment: str | None) -> int: ...
    def finish_run(
        self,
        run_id: int,
        status: RunStatus,
        counts: Mapping[str, int],
        message: str | None,
        cursor: str | None = None,
    ) -> None: ...
    def mark_interrupted(self, keep: int) -> None: ...
    def runs(self) -> list[RunRecord]: ...
    def run(self, run_id: int) -> RunRecord | None: ...
    def previous_run_unfinished(self, current: int) -> bool: ...
    def last_successful_cursor(self) -> str | None: ...
    def record_error(self, run_id: int, key: str | None, error: SyncError) -> None: ...
    def errors(self, run_id: int | None = None, limit: int = 200) -> list[dict[str, Any]]: ...

    # resources (what the source lists)
    def upsert_entries(self, entries: Iterable[Entry], run_id: int) -> int: ...
    def mark_deleted(self, locs: Iterable[str], run_id: int) -> int: ...
    def unseen_present(self, run_id: int) -> Iterator[str]: ...
    def count_resources(self) -> int: ...
    def is_known(self, loc: str) -> bool: ...
    def find_by_suffix(self, suffix: str) -> list[str]: ...
    def iter_link_records(self) -> Iterator[tuple[str, tuple[Link, ...]]]: ...
    def entries(self, locs: Iterable[str]) -> dict[str, Entry]: ...

    # items and their members
    def key_for(self, locs: Iterable[str]) -> str | None: ...
    def keys_for(self, groups: Iterable[Iterable[str]]) -> list[str | None]: ...
    def set_members(self, items: Iterable[Item], run_id: int | None = None) -> None: ...
    def item(self, key: str) -> ItemState | None: ...
    def items(self, keys: Iterable[str]) -> dict[str, ItemState]: ...
    def item_keys(self, statuses: Iterable[ItemStatus] | None = None) -> list[str]: ...
    def count_items(self) -> dict[str, int]: ...
    def unseen_items(self, run_id: int) -> list[str]: ...
    def items_created_in(self, run_id: int) -> list[str]: ...
    def owns_container(self, container_id: str) -> bool: ...
    def undone_and_unchanged(self, key: str) -> bool: ...

    # the steps of a deposit, each recorded right after it happened
    def record_intent(self, key: str, *, collection: str, title: str | None, run_id: int) -> None:
        """Before a create is sent: a crash from now on must look for it before creating."""
        ...

    def record_container(
        self, key: str, container: Container, *, metadata_fp: str, title: str | None
    ) -> None: ...
    def forget_container(self, key: str) -> None: ...
    def set_status(self, key: str, status: ItemStatus) -> None: ...
    def set_metadata(self, key: str, *, metadata_fp: str, title: str | None) -> None: ...
    def mark_complete(self, key: str, run_id: int, *, warning: str | None = None) -> None: ...
    def mark_stale(self, key: str, *, metadata_fp: str, warning: str) -> None: ...
    def mark_item_deleted(
        self, key: str, run_id: int, *, stale: bool = False, warning: str | None = None
    ) -> None: ...
    def mark_failed(self, key: str, status: ItemStatus, error: SyncError) -> None: ...
    def file_uploaded(
        self,
        key: str,
        loc: str,
        *,
        run_id: int,
        filename: str | None,
        md5: str | None,
        size: int | None,
        content_type: str | None,
        fingerprint: str,
        ref: str | None,
    ) -> None: ...
    def file_seen(
        self, key: str, loc: str, *, run_id: int, fingerprint: str, ref: str | None
    ) -> None: ...
    def drop_file(self, key: str, loc: str) -> None: ...
    def drop_files(self, key: str) -> None: ...
    def mark_files_replacing(self, key: str) -> None: ...
