"""Copying a local file's bytes into a new file bound for the disk: direct I/O where taken.

The copies resync-sword makes of local files (a SAF export's files, into a batch or into the
run's temporary folder first) are written once, then fsynced into a batch or read back once.
Through the page cache every byte is copied a second time, into a freshly allocated page that
stays dirty until the fsync writes it, and gigabytes of such pages evict what the machine had
cached. On the benchmark's virtual machine that kernel copy cost as much CPU as ``cp`` itself
and most of a SAF run (fresh pages are expensive to touch in a guest). With ``O_DIRECT`` the
bytes go from one reused, aligned buffer to the disk, the fsync that follows has nothing left
to write, and the page cache keeps what it held.

Where direct I/O is refused (tmpfs, some network file systems: ``EINVAL`` when opening or
writing), or the platform has none, the copy goes through the page cache from where it is,
with the same result on disk.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

BLOCK = 1 << 20  # bytes per read and write: a multiple of any direct-I/O alignment
ALIGN = 4096  # direct writes are whole multiples of this (the largest common block size)
O_DIRECT: int = getattr(os, "O_DIRECT", 0)  # 0 where the platform has none (macOS)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
_REFUSED = frozenset({errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP})  # "not here"
_POOL_MAX = 32  # buffers kept for reuse; more threads than that allocate their own


class _Buffers:
    """Page-aligned buffers (anonymous maps) reused across copies: a fresh buffer per file
    would be zeroed and faulted in again, which is what direct I/O avoids."""

    def __init__(self) -> None:
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    @contextmanager
    def one(self) -> Iterator[memoryview]:
        with self._lock:
            buf = self._free.pop() if self._free else None
        if buf is None:
            buf = mmap.mmap(-1, BLOCK)
        view = memoryview(buf)
        try:
            yield view
        finally:
            view.release()
            with self._lock:
                if len(self._free) < _POOL_MAX:
                    self._free.append(buf)
                    buf = None
            if buf is not None:
                buf.close()


_buffers = _Buffers()


def copy_file(src: str | os.PathLike[str], dst: Path) -> int:
    """``dst`` (created or truncated) holds ``src``'s bytes; returns how many."""
    with open(src, "rb") as fh:
        return copy_into(fh, dst)


def copy_into(src: IO[bytes], dst: Path) -> int:
    """``dst`` (created or truncated) holds the rest of ``src``; returns the bytes copied."""
    if O_DIRECT:
        try:
            fd = os.open(dst, _CREATE | O_DIRECT, 0o666)
        except OSError as exc:
            if exc.errno not in _REFUSED:
                raise
        else:
            try:
                return _copy_direct(src, fd)
            finally:
                os.close(fd)
    with open(dst, "wb", buffering=0) as out:  # the kernel copies; a short write shows
        return kernel_copy(src, out)


def _copy_direct(src: IO[bytes], fd: int) -> int:
    """Whole blocks straight to the disk; the last, partial one (and everything, once a write
    is refused) through the page cache."""
    direct = True
    copied = 0
    with _buffers.one() as view:
        while n := _fill(src, view):
            done = _write_direct(fd, view[: n - n % ALIGN]) if direct else 0
            if done < n:
                if direct:  # from here on through the page cache
                    direct = False
                    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~O_DIRECT)
                _write_all(fd, view[done:n])
            copied += n
    return copied


def _write_direct(fd: int, data: memoryview) -> int:
    """Write ``data`` with direct I/O; returns how much was written before the file system
    refused (a refused write writes nothing)."""
    done = 0
    while done < len(data):
        try:
            done += os.write(fd, data[done:])
        except OSError as exc:
            if exc.errno not in _REFUSED:
                raise
            break
    return done


def _fill(src: IO[bytes], view: memoryview) -> int:
    """Read into ``view`` until it is full or ``src`` ends: a short read in the middle of a
    file would otherwise leave the next direct write unaligned."""
    filled = 0
    while filled < len(view):
        n = src.readinto(view[filled:])  # type: ignore[attr-defined]
        if not n:
            break
        filled += n
    return filled


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data) :]


def kernel_copy(src: IO[bytes], dst: IO[bytes]) -> int:
    """Copy the rest of ``src`` into ``dst`` through the page cache: ``copy_file_range``
    where the kernel offers it, else through Python. Returns the bytes copied."""
    copy_range = getattr(os, "copy_file_range", None)
    src_fd, dst_fd = src.fileno(), dst.fileno()
    copied = 0
    while copy_range is not None:
        try:
            n = copy_range(src_fd, dst_fd, 1 << 30)
        except OSError:
            if copied:
                raise
            break  # not across these file systems: copy in Python
        if n == 0:
            return copied
        copied += n
    before = dst.tell()
    shutil.copyfileobj(src, dst, BLOCK)
    return dst.tell() - before
