"""Read each byte of a SAF export folder once: hash a file while listing, copy it unhashed later.

The listing must hash every file (the MD5s are the fingerprints an incremental run compares),
and the fetch must hand over bytes that match them. Hashing twice costs more than the copy
itself (MD5 runs at about half the speed of a kernel copy), so the listing remembers what each
file was when it hashed it (device, inode, size, mtime and ctime: the quick check git's index
and rsync rely on; ctime changes on every write and cannot be set back by a user) and the
fetch copies a file still in that state without hashing it again (``filecopy``: straight to
the disk where the file system allows). A file that changed, or any doubt, falls back to
copying and hashing it.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

from ..filecopy import copy_into

BLOCK = 1 << 20
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Stamp:
    """What identifies a file's content without reading it."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, fh: IO[bytes]) -> Stamp | None:
        """The stamp of an open file; None for a stream that is not a plain file (a zip
        member)."""
        try:
            st = os.fstat(fh.fileno())
        except (OSError, ValueError, AttributeError):
            return None
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True)
class Hashed:
    """A file as the listing hashed it."""

    stamp: Stamp
    md5: str
    size: int


def hash_stream(fh: IO[bytes]) -> tuple[str, int, Stamp | None]:
    """MD5 and size of an open file, and its stamp if it did not change while being read."""
    before = Stamp.of(fh)
    digest, size = hashlib.md5(), 0
    for block in iter(lambda: fh.read(BLOCK), b""):
        digest.update(block)
        size += len(block)
    after = Stamp.of(fh)
    stamp = before if before is not None and before == after and before.size == size else None
    return digest.hexdigest(), size, stamp


class HashMemo:
    """What the listing hashed, by (item folder, file name); each is used once by the fetch."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], Hashed] = {}
        self._lock = threading.Lock()

    def remember(self, folder: str, name: str, hashed: Hashed) -> None:
        with self._lock:
            self._seen[(folder, name)] = hashed

    def take(self, folder: str, name: str) -> Hashed | None:
        with self._lock:
            return self._seen.pop((folder, name), None)


def copy_unchanged(src: IO[bytes], dst: Path, hashed: Hashed) -> bool:
    """Copy ``src`` to ``dst`` without reading it into Python's hash if it is still the file
    the listing hashed, and still was when the copy ended; False (``dst`` incomplete)
    otherwise."""
    if Stamp.of(src) != hashed.stamp:
        return False
    copied = copy_into(src, dst)
    return copied == hashed.size and Stamp.of(src) == hashed.stamp


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], *, workers: int, ahead: int = 16
) -> Iterator[tuple[T, Future[R]]]:
    """``fn`` over ``items`` in ``workers`` threads, in order, at most ``ahead`` in flight (so
    memory stays bounded); each result is a future, so one item's error stays its own. Hashing
    and reading release the GIL: two cores hash two files at once."""
    if workers <= 1:
        for item in items:
            yield item, _done(fn, item)
        return
    pending: list[tuple[T, Future[R]]] = []
    with ThreadPoolExecutor(workers, thread_name_prefix="saf-hash") as pool:
        for item in items:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) >= ahead:
                yield pending.pop(0)
        while pending:
            yield pending.pop(0)


def _done(fn: Callable[[T], R], item: T) -> Future[R]:
    future: Future[R] = Future()
    try:
        future.set_result(fn(item))
    except BaseException as exc:  # handed over with the item, as a pool would
        future.set_exception(exc)
    return future
