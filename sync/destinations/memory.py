"""An in-memory destination: the smallest complete ``Destination``, for engine tests and as the
example to copy when adding a protocol (this module plus one line in ``sync/registry.py``).

It can behave like the servers the engine must survive: ``faults`` makes a call fail before
or after it took effect (a lost answer), ``capabilities`` can deny single-file deletes,
listings or checksums, and ``rename`` stores files under other names (as the SWORD reference
server does).
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar

from ..contracts import (
    Capabilities,
    Container,
    Fetched,
    HeldFile,
    ListingUnsupportedError,
    Metadata,
)
from ..errors import ConfigError, ConflictError, DepositError

if TYPE_CHECKING:
    from ..registry import Runtime

NAME = "memory"
T = TypeVar("T")
Operation = Literal[
    "create", "add_file", "replace_metadata", "replace_files", "remove_file", "complete", "delete"
]


@dataclass
class StoredFile:
    ref: str
    name: str
    content: bytes

    @property
    def md5(self) -> str:
        return hashlib.md5(self.content).hexdigest()


@dataclass
class StoredContainer:
    id: str
    collection: str
    slug: str
    metadata: Metadata
    files: dict[str, StoredFile] = field(default_factory=dict)
    in_progress: bool = True


@dataclass
class Fault:
    """Fail the next call of ``op``; ``applied``: after it took effect (the answer is lost)."""

    op: Operation
    applied: bool = False
    conflict: bool = False


@dataclass
class MemoryDestination:
    location: str = "mem://destination"
    collections: set[str] = field(default_factory=lambda: {"mem://col/default"})
    caps: Capabilities = field(default_factory=Capabilities)
    rename: bool = False  # store files as "<n>_<name>" (the reference server's habit)
    archived_read_only: bool = False  # completed containers refuse changes (DSpace)
    type_name: str = NAME
    containers: dict[str, StoredContainer] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def capabilities(self) -> Capabilities:
        return self.caps

    # -- fault injection ---------------------------------------------------------------------
    def _call(self, op: Operation, act: Callable[[], T]) -> T:
        with self._lock:
            self.calls.append(op)
            fault = next((f for f in self.faults if f.op == op), None)
            if fault is not None:
                self.faults.remove(fault)
                if fault.conflict:
                    raise ConflictError(f"{op} refused: the item is archived", status=405)
                if fault.applied:
                    act()
                raise DepositError(f"{op}: the connection broke off", transient=True)
            return act()

    def _container(self, c: Container) -> StoredContainer:
        stored = self.containers.get(c.id)
        if stored is None:
            raise DepositError("the container does not exist", resource=c.id, status=404)
        return stored

    def _writable(self, c: Container) -> StoredContainer:
        stored = self._container(c)
        if self.archived_read_only and not stored.in_progress:
            raise ConflictError("the item is archived", resource=c.id, status=405)
        return stored

    # -- the contract ------------------------------------------------------------------------
    def check(self, collections: Iterable[str]) -> None:
        for col in collections:
            if col not in self.collections:
                raise ConfigError("the destination has no such collection", resource=col)

    def open_run(self, run_id: int) -> None:
        return None

    def close_run(self) -> None:
        return None

    def waiting(self) -> list[str]:
        return []

    def close(self) -> None:
        return None

    def create(self, collection: str, metadata: Metadata, *, slug: str) -> Container:
        def act() -> Container:
            cid = f"{self.location}/c/{next(self._ids)}"
            self.containers[cid] = StoredContainer(cid, collection, slug, metadata)
            return Container(cid)

        return self._call("create", act)

    def find(
        self, collection: str, metadata: Metadata, *, slug: str, owned: Callable[[str], bool]
    ) -> Container | None:
        if not self.caps.listing:
            raise ListingUnsupportedError("no listing", resource=collection)
        with self._lock:
            for c in self.containers.values():
                if c.collection == collection and (
                    c.slug == slug or metadata.key in c.metadata.identifiers
                ):
                    return Container(c.id)
        return None

    def add_file(self, container: Container, file: Fetched) -> str | None:
        content = file.path.read_bytes()

        def act() -> str:
            stored = self._writable(container)
            n = next(self._ids)
            name = f"{n}_{file.filename}" if self.rename else file.filename
            ref = f"{container.id}/f/{n}"
            stored.files[ref] = StoredFile(ref, name, content)
            return ref

        ref = self._call("add_file", act)
        return ref if self.caps.single_file_delete else None

    def replace_metadata(self, container: Container, metadata: Metadata) -> None:
        def act() -> None:
            self._writable(container).metadata = metadata

        self._call("replace_metadata", act)

    def replace_files(self, container: Container, first: Fetched | None) -> str | None:
        content = first.path.read_bytes() if first is not None else b""

        def act() -> str | None:
            stored = self._writable(container)
            stored.files.clear()
            if first is None:
                return None
            n = next(self._ids)
            ref = f"{container.id}/f/{n}"
            name = f"{n}_{first.filename}" if self.rename else first.filename
            stored.files[ref] = StoredFile(ref, name, content)
            return ref

        ref = self._call("replace_files", act)
        return ref if self.caps.single_file_delete else None

    def remove_file(self, container: Container, ref: str) -> None:
        if not self.caps.single_file_delete:
            raise ConflictError("single files cannot be deleted here", resource=ref, status=405)

        def act() -> None:
            self._writable(container).files.pop(ref, None)

        self._call("remove_file", act)

    def complete(self, container: Container) -> str | None:
        def act() -> None:
            self._container(container).in_progress = False

        self._call("complete", act)
        return "archived"

    def delete(self, container: Container) -> None:
        def act() -> None:
            if container.id in self.containers:  # already gone: removed (the contract)
                self._writable(container)
                self.containers.pop(container.id, None)

        self._call("delete", act)

    def contents(self, container: Container) -> list[HeldFile]:
        stored = self._container(container)
        checksums = self.caps.checksums_in_listing
        return [
            HeldFile(
                ref=f.ref,
                name=f.name,
                md5=f.md5 if checksums else None,
                size=len(f.content) if checksums else None,
            )
            for f in stored.files.values()
        ]

    def file_md5(self, container: Container, held: HeldFile) -> str:
        stored = self._container(container)
        if held.ref is None or held.ref not in stored.files:
            raise DepositError("no such file", resource=held.ref or container.id, status=404)
        return stored.files[held.ref].md5


# -- registration: ``[destination] type = "memory"``, ``name`` = one put in ``DESTINATIONS`` ----
DESTINATIONS: dict[str, MemoryDestination] = {}


@dataclass
class Settings:
    name: str = "default"
    collection: str = "mem://col/default"


def build(s: Settings, rt: Runtime) -> MemoryDestination:
    return DESTINATIONS.setdefault(s.name, MemoryDestination(location=f"mem://{s.name}"))
