"""``sync.filecopy``: copies bound for the disk, with direct I/O where the file system takes it.

Every test compares the copy byte for byte with its source, on the paths a real file system
may take: direct I/O accepted, refused when opening (tmpfs), refused in the middle of a copy,
a short write, a source that reads in small pieces.
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sync import filecopy
from sync.filecopy import ALIGN, BLOCK, copy_file, copy_into

SIZES = [0, 1, ALIGN - 1, ALIGN, ALIGN + 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 123]
direct_only = pytest.mark.skipif(not filecopy.O_DIRECT, reason="no O_DIRECT on this platform")


@pytest.fixture
def direct_fs(tmp_path: Path) -> None:
    """Skip unless the file system under ``tmp_path`` takes direct writes (tmpfs may not)."""
    if not filecopy.O_DIRECT:
        pytest.skip("no O_DIRECT on this platform")
    probe = tmp_path / "probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | filecopy.O_DIRECT, 0o600)
    except OSError:
        pytest.skip("this file system refuses O_DIRECT")
    try:
        with filecopy._buffers.one() as view:
            os.write(fd, view[:ALIGN])
    except OSError:
        pytest.skip("this file system refuses direct writes")
    finally:
        os.close(fd)
        probe.unlink()


def payload(size: int, seed: int = 7) -> bytes:
    return random.Random(seed + size).randbytes(size)


def write_source(tmp_path: Path, size: int, name: str = "src.bin") -> tuple[Path, bytes]:
    data = payload(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, data


@pytest.mark.parametrize("size", SIZES)
def test_the_copy_holds_the_same_bytes(tmp_path: Path, size: int) -> None:
    src, data = write_source(tmp_path, size)
    assert copy_file(src, tmp_path / "dst.bin") == size
    assert (tmp_path / "dst.bin").read_bytes() == data


def test_the_rest_of_an_open_file_is_copied_from_where_it_stands(tmp_path: Path) -> None:
    src, data = write_source(tmp_path, BLOCK + 5000)
    with src.open("rb") as fh:
        fh.seek(1234)
        assert copy_into(fh, tmp_path / "dst.bin") == len(data) - 1234
    assert (tmp_path / "dst.bin").read_bytes() == data[1234:]


def test_a_longer_file_in_the_way_is_truncated(tmp_path: Path) -> None:
    src, data = write_source(tmp_path, 5000)
    (tmp_path / "dst.bin").write_bytes(b"x" * (3 * BLOCK))
    copy_file(src, tmp_path / "dst.bin")
    assert (tmp_path / "dst.bin").read_bytes() == data


class Trickle(io.RawIOBase):
    """A stream that gives at most ``step`` bytes per read (a pipe, a network file system)."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._pos, self._step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(self._step, len(self._data) - self._pos, len(buffer))
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


def test_short_reads_still_give_whole_aligned_blocks(tmp_path: Path, direct_fs: None) -> None:
    data = payload(2 * BLOCK + 777)
    written: list[int] = []
    real_write = os.write

    def spy(fd: int, chunk: Any) -> int:
        written.append(len(chunk))
        return real_write(fd, chunk)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(filecopy.os, "write", spy)
        assert copy_into(Trickle(data, 1000), tmp_path / "dst.bin") == len(data)  # type: ignore[arg-type]
    assert (tmp_path / "dst.bin").read_bytes() == data
    assert written[0] == BLOCK  # filled before writing, not 1,000 bytes at a time


@direct_only
def test_the_target_is_opened_for_direct_io(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, data = write_source(tmp_path, BLOCK)
    flags_seen: list[int] = []
    real_open = os.open

    def spy(path: Any, flags: int, *args: Any) -> int:
        flags_seen.append(flags)
        return real_open(path, flags, *args)

    monkeypatch.setattr(filecopy.os, "open", spy)
    copy_file(src, tmp_path / "dst.bin")
    assert flags_seen and flags_seen[0] & filecopy.O_DIRECT
    assert (tmp_path / "dst.bin").read_bytes() == data


@direct_only
def test_a_file_system_that_refuses_direct_io_gets_a_buffered_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, data = write_source(tmp_path, 2 * BLOCK + 99)
    real_open = os.open

    def tmpfs_like(path: Any, flags: int, *args: Any) -> int:
        if flags & filecopy.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(filecopy.os, "open", tmpfs_like)
    assert copy_file(src, tmp_path / "dst.bin") == len(data)
    assert (tmp_path / "dst.bin").read_bytes() == data


def test_a_direct_write_refused_midway_goes_on_through_the_page_cache(
    tmp_path: Path, direct_fs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, data = write_source(tmp_path, 3 * BLOCK + 5)
    real_write = os.write
    calls = {"direct": 0}

    def picky(fd: int, chunk: Any) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & filecopy.O_DIRECT:
            calls["direct"] += 1
            if calls["direct"] > 1:  # the first block goes straight, then "not here"
                raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, chunk)

    monkeypatch.setattr(filecopy.os, "write", picky)
    assert copy_file(src, tmp_path / "dst.bin") == len(data)
    assert (tmp_path / "dst.bin").read_bytes() == data
    assert calls["direct"] == 2  # one written, one refused; none tried after that


def test_a_short_direct_write_leaves_no_gap(
    tmp_path: Path, direct_fs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, data = write_source(tmp_path, 2 * BLOCK)
    real_write = os.write
    first = [True]

    def short(fd: int, chunk: Any) -> int:
        if first[0]:
            first[0] = False
            return real_write(fd, chunk[: ALIGN * 3])  # the device took only part of it
        return real_write(fd, chunk)

    monkeypatch.setattr(filecopy.os, "write", short)
    assert copy_file(src, tmp_path / "dst.bin") == len(data)
    assert (tmp_path / "dst.bin").read_bytes() == data


def test_other_write_errors_are_raised(
    tmp_path: Path, direct_fs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, _data = write_source(tmp_path, BLOCK + 1)

    def full(fd: int, chunk: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(filecopy.os, "write", full)
    with pytest.raises(OSError) as caught:
        copy_file(src, tmp_path / "dst.bin")
    assert caught.value.errno == errno.ENOSPC


def test_copies_in_many_threads_each_get_their_own_bytes(tmp_path: Path) -> None:
    sources = [write_source(tmp_path, 50_000 + i * 40_000, f"s{i}") for i in range(40)]

    def copy(i: int) -> bool:
        src, data = sources[i]
        target = tmp_path / f"d{i}"
        copy_file(src, target)
        return target.read_bytes() == data

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(copy, range(len(sources))))
