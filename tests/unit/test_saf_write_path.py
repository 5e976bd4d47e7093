"""The SAF fast path (bench part 4): a file is hashed once by the listing and copied unhashed by
the fetch only while it is provably the same file; fetched temporary files are linked into
staging, anything else copied; a staged file lost before completion is not claimed as held."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from sync.contracts import Fetched
from sync.destinations.saf import SafDestination
from sync.destinations.saf_files import place
from sync.errors import IntegrityError, SyncError
from sync.model import Entry
from sync.sources import saf as saf_source
from sync.sources.saf import SafSource, file_loc
from sync.sources.saf_hashing import Hashed, HashMemo, Stamp, copy_unchanged, ordered_map
from tests.saf_support import COL, deposit_create, export_items, metadata, record, write_export


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _listed(root: Path) -> tuple[SafSource, dict[str, Entry]]:
    source = SafSource(root)
    return source, {e.loc: e for e in source.listing()}


def test_fetch_copies_a_listed_file_without_hashing_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_export(tmp_path / "export", export_items()[:1])
    source, entries = _listed(root)

    def no_second_hash(*args: object) -> object:
        raise AssertionError("the fetch hashed a file the listing had hashed")

    monkeypatch.setattr(saf_source, "_digest", no_second_hash)
    entry = entries[file_loc("123456789/11", "data 1.csv")]
    got = source.fetch(entry)
    data = (root / "item_000" / "data 1.csv").read_bytes()
    assert got.path.read_bytes() == data
    assert (got.md5, got.size, got.temporary) == (_md5(data), len(data), True)
    got.discard()
    source.close()


def test_a_file_rewritten_after_the_listing_is_hashed_again_and_refused(tmp_path: Path) -> None:
    root = write_export(tmp_path / "export", export_items()[:1])
    source, entries = _listed(root)
    path = root / "item_000" / "data 1.csv"
    before = path.stat()
    path.write_bytes(b"x,y\n3,4\n")  # same size,
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # same mtime: ctime tells
    with pytest.raises(IntegrityError, match="changed since the archive was listed"):
        source.fetch(entries[file_loc("123456789/11", "data 1.csv")])
    source.close()


def test_copy_unchanged_refuses_a_file_whose_stamp_moved(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"a" * 5000)
    with src.open("rb") as fh:
        stamp = Stamp.of(fh)
    assert stamp is not None
    hashed = Hashed(stamp, _md5(b"a" * 5000), 5000)
    with src.open("rb") as fh:
        assert copy_unchanged(fh, tmp_path / "same", hashed)
    assert (tmp_path / "same").read_bytes() == b"a" * 5000
    time.sleep(0.01)
    src.write_bytes(b"b" * 5000)  # same size, new content
    with src.open("rb") as fh:
        assert not copy_unchanged(fh, tmp_path / "other", hashed)


def test_hash_memo_gives_each_file_once() -> None:
    memo = HashMemo()
    hashed = Hashed(Stamp(1, 2, 3, 4, 5), "x", 3)
    memo.remember("item", "a.pdf", hashed)
    assert memo.take("item", "a.pdf") == hashed
    assert memo.take("item", "a.pdf") is None


@pytest.mark.parametrize("workers", [1, 3])
def test_ordered_map_keeps_order_and_errors_per_item(workers: int) -> None:
    def work(n: int) -> int:
        if n == 4:
            raise ValueError("four")
        time.sleep(0.001 * (7 - n))
        return n * n

    got = []
    for n, future in ordered_map(work, range(7), workers=workers, ahead=3):
        try:
            got.append((n, future.result()))
        except ValueError:
            got.append((n, -1))
    assert got == [(0, 0), (1, 1), (2, 4), (3, 9), (4, -1), (5, 25), (6, 36)]


def _fetched(path: Path, *, temporary: bool) -> Fetched:
    data = path.read_bytes()
    return Fetched(
        entry=Entry(loc=f"test:{path.name}"),
        path=path,
        size=len(data),
        md5=_md5(data),
        filename=path.name,
        content_type="application/octet-stream",
        temporary=temporary,
    )


def test_place_links_a_temporary_file_and_copies_a_sources_own(tmp_path: Path) -> None:
    temp = tmp_path / "temp.bin"
    temp.write_bytes(b"temporary copy")
    own = tmp_path / "own.bin"
    own.write_bytes(b"the source's own file")
    place(_fetched(temp, temporary=True), tmp_path / "linked")
    place(_fetched(own, temporary=False), tmp_path / "copied")
    assert os.path.samefile(temp, tmp_path / "linked")
    assert not os.path.samefile(own, tmp_path / "copied")
    own.write_bytes(b"changed later")  # the batch keeps what was deposited
    assert (tmp_path / "copied").read_bytes() == b"the source's own file"
    temp.unlink()  # the fetcher discards its copy: the staged one stays
    assert (tmp_path / "linked").read_bytes() == b"temporary copy"


def test_a_batch_item_holds_exact_bytes_after_the_temporary_copies_are_gone(
    tmp_path: Path,
) -> None:
    dest = SafDestination(tmp_path / "out", collection=COL)
    dest.open_run(1)
    files = []
    for name, data in (("a.pdf", b"%PDF-1.5 one"), ("b.txt", b"two")):
        path = tmp_path / "fetched" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        files.append(_fetched(path, temporary=True))
    deposit_create(dest, COL, metadata("k1", record(title="One")), files)
    for f in files:
        f.path.unlink()
    dest.close_run()
    (folder,) = (tmp_path / "out" / "run-0001" / "add").iterdir()
    assert (folder / "a.pdf").read_bytes() == b"%PDF-1.5 one"
    assert (folder / "b.txt").read_bytes() == b"two"
    assert (folder / "contents").read_text(encoding="utf-8").splitlines() == [
        "a.pdf\tbundle:ORIGINAL",
        "b.txt\tbundle:ORIGINAL",
    ]
    assert not list(folder.glob(".tmp-*")) and not list(folder.glob(".part-*"))


def test_a_staged_file_lost_before_completion_is_not_held(tmp_path: Path) -> None:
    dest = SafDestination(tmp_path / "out", collection=COL)
    dest.open_run(1)
    container = dest.create(COL, metadata("k2", record(title="Two")), slug="k2")
    path = tmp_path / "x.pdf"
    path.write_bytes(b"bytes")
    dest.add_file(container, _fetched(path, temporary=False))
    assert [h.name for h in dest.contents(container)] == ["x.pdf"]
    (tmp_path / "out" / ".staging" / container.id / "x.pdf").unlink()  # e.g. a power cut
    assert dest.contents(container) == []


def test_an_item_folder_swapped_for_a_symlink_after_listing_is_refused(tmp_path: Path) -> None:
    root = write_export(tmp_path / "export", export_items()[:1])
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data 1.csv").write_bytes(b"TOP-SECRET")
    source, entries = _listed(root)
    (root / "item_000").rename(tmp_path / "moved")
    os.symlink(outside, root / "item_000")
    with pytest.raises(SyncError, match="outside the item folder"):
        source.fetch(entries[file_loc("123456789/11", "data 1.csv")])
    source.close()


def test_a_note_line_cut_short_by_a_kill_is_no_file_held(tmp_path: Path) -> None:
    dest = SafDestination(tmp_path / "out", collection=COL)
    dest.open_run(1)
    container = dest.create(COL, metadata("k3", record(title="Three")), slug="k3")
    files = []
    for name, data in (("a.pdf", b"first"), ("b.txt", b"second")):
        path = tmp_path / name
        path.write_bytes(data)
        files.append(_fetched(path, temporary=False))
    dest.add_file(container, files[0])
    dest.add_file(container, files[1])
    note = tmp_path / "out" / ".staging" / f"{container.id}.json"
    note.write_bytes(note.read_bytes()[:-9])  # killed while b.txt's line was written
    dest = SafDestination(tmp_path / "out", collection=COL)  # the replay's process
    dest.open_run(2)
    assert [h.name for h in dest.contents(container)] == ["a.pdf"]
    # the replay places b.txt again; the note is whole again and lists each file once
    assert dest.add_file(container, files[1]) == "b.txt"
    assert [(h.name, h.md5) for h in dest.contents(container)] == [
        ("a.pdf", _md5(b"first")),
        ("b.txt", _md5(b"second")),
    ]
    dest.complete(container)
    dest.close_run()
    (folder,) = (tmp_path / "out" / "run-0002" / "add").iterdir()
    assert (folder / "contents").read_text(encoding="utf-8").splitlines() == [
        "a.pdf\tbundle:ORIGINAL",
        "b.txt\tbundle:ORIGINAL",
    ]
    assert (folder / "b.txt").read_bytes() == b"second"


def test_a_note_written_by_an_earlier_version_is_read(tmp_path: Path) -> None:
    dest = SafDestination(tmp_path / "out", collection=COL)
    dest.open_run(1)
    container = dest.create(COL, metadata("k4", record(title="Four")), slug="k4")
    staging = tmp_path / "out" / ".staging"
    (staging / container.id / "a.pdf").write_bytes(b"held")
    old = {"kind": "add", "collection": COL, "handle": None, "files": []}
    old["files"] = [{"name": "a.pdf", "md5": _md5(b"held"), "size": 4}]
    (staging / f"{container.id}.json").write_text(json.dumps(old), encoding="utf-8")
    dest = SafDestination(tmp_path / "out", collection=COL)  # this version's process
    assert [(h.name, h.size) for h in dest.contents(container)] == [("a.pdf", 4)]


def test_the_item_metadata_is_handed_over_in_memory(tmp_path: Path) -> None:
    root = write_export(tmp_path / "export", export_items()[:1])
    source, entries = _listed(root)
    got = source.fetch(entries["saf:123456789/11/metadata"])
    assert got.data is not None and got.read_bytes() == got.data
    assert (got.md5, got.size) == (_md5(got.data), len(got.data))
    assert b"<saf_metadata>" in got.data
    assert not tempfile_leftovers(source)
    source.close()


def tempfile_leftovers(source: SafSource) -> list[Path]:
    """Files in the source's temporary folder (none: nothing fetched is held there)."""
    folder = source._tmp
    return list(folder.iterdir()) if folder is not None else []


def test_notes_of_batched_items_are_gone_when_the_run_closes(tmp_path: Path) -> None:
    dest = SafDestination(tmp_path / "out", collection=COL)
    dest.open_run(1)
    path = tmp_path / "a.pdf"
    path.write_bytes(b"bytes")
    done = deposit_create(
        dest, COL, metadata("k5", record(title="Five")), [_fetched(path, temporary=False)]
    )
    building = dest.create(COL, metadata("k6", record(title="Six")), slug="k6")
    # a batched item is read from its batch, also while its note waits for the run's end
    assert [h.name for h in dest.contents(done)] == ["a.pdf"]
    assert dest.complete(done) == "batched"
    dest.close_run()
    staging = tmp_path / "out" / ".staging"
    assert sorted(p.name for p in staging.iterdir()) == [building.id, f"{building.id}.json"]


def test_fetches_at_once_share_one_temporary_folder_removed_on_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    mkdtemp = tempfile.mkdtemp

    def slow_mkdtemp(*args: Any, **kwargs: Any) -> str:
        time.sleep(0.05)  # the other workers' first fetches come meanwhile
        return mkdtemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", slow_mkdtemp)
    root = write_export(tmp_path / "export", export_items())
    source, entries = _listed(root)
    files = [e for e in entries.values() if e.length is not None]
    with ThreadPoolExecutor(8) as pool:
        fetched = list(pool.map(source.fetch, files))
    assert len(list(temp.iterdir())) == 1
    for got in fetched:
        got.discard()
    source.close()
    assert list(temp.iterdir()) == []
