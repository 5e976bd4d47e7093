"""The SAF destination driven through the destination contract, as the depositor calls it,
then imported with each batch's ``IMPORT.sh`` into the ``dspace import`` stand-in: the
imported repository must equal what was sent (metadata, files by MD5, no extra items)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from sync.contracts import Container, DeferredError, Destination, Fetched, Metadata
from sync.destinations.saf import SafDestination, item_name
from sync.errors import ConfigError, DepositError
from tests.saf_support import (
    Importer,
    deposit_create,
    deposit_update,
    expected_dc,
    fetched,
    item_dc,
    item_files,
    md5,
    metadata,
    record,
    same_terms,
)

COL = "123456789/2"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


@pytest.fixture
def importer(tmp_path: Path, out: Path) -> Importer:
    return Importer(out, tmp_path / "repo")


def _md(key: str, title: str, **terms: list[str] | str) -> Metadata:
    return metadata(key, record(title=title, **terms), (f"https://source.example.org/{key}",))


def assert_repository_holds(importer: Importer, sent: dict[str, tuple[Metadata, list[Fetched]]]):
    """Every sent item once, with its metadata and files; nothing else."""
    repo = importer.repo
    by_title = {}
    for handle, item in repo.items.items():
        title = item_dc(item).title
        assert title not in by_title, f"{title} imported twice"
        by_title[title] = (handle, item)
    assert sorted(by_title) == sorted(md.title for md, _ in sent.values())
    for md, files in sent.values():
        _handle, item = by_title[md.title]
        assert same_terms(item_dc(item), expected_dc(md))
        assert item_files(repo, item) == {f.filename: f.md5 for f in files}
        assert item["collections"] == [COL]
    return by_title


def test_create_update_delete_across_runs(tmp_path: Path, out: Path, importer: Importer) -> None:
    dest: Destination = SafDestination(out, collection=COL)
    assert isinstance(dest, Destination)
    assert dest.capabilities.whole_item_updates and not dest.capabilities.single_file_delete
    dest.check([COL])
    a_md = _md(
        "a",
        "Über Wasser & <Land>",
        creator=["Müller, Anna", "Lee, Bo"],
        issued="2020-05-01",
        abstract="Line one.\n\nLine two.",
        subject=["water", "land"],
        audience="students",  # no dc field: goes to metadata_dcterms.xml
    )
    a_files = [fetched(tmp_path, "résumé.pdf", b"%PDF a1"), fetched(tmp_path, "data.csv", b"x,y")]
    b_md, b_files = _md("b", "Bee"), [fetched(tmp_path, "b.txt", b"bee")]
    c_md, c_files = _md("c", "Sea"), [fetched(tmp_path, "contents", b"clash with SAF")]

    dest.open_run(1)
    a = deposit_create(dest, COL, a_md, a_files)
    b = deposit_create(dest, COL, b_md, b_files)
    deposit_create(dest, COL, c_md, c_files)
    dest.close_run()

    batch = out / "run-0001"
    assert sorted(p.name for p in (batch / "add").iterdir()) == sorted(item_name(k) for k in "abc")
    folder = batch / "add" / a.id
    assert (folder / "contents").read_text("utf-8") == "résumé.pdf\tbundle:ORIGINAL\n" + (
        "data.csv\tbundle:ORIGINAL\n"
    )
    assert (folder / "metadata_dcterms.xml").is_file()
    assert (folder / "collections").read_text() == f"{COL}\n"
    assert not (folder / "handle").exists()
    assert os.access(batch / "IMPORT.sh", os.X_OK)
    assert dest.waiting() == ["run-0001"]

    importer.import_ok("run-0001")
    assert dest.waiting() == []
    # a file named like SAF's own "contents" was renamed, not lost
    c_files[0].filename = "file-contents"
    before = assert_repository_holds(
        importer, {"a": (a_md, a_files), "b": (b_md, b_files), "c": (c_md, c_files)}
    )

    a_md2 = _md("a", "Über Wasser & <Land>", creator="Müller, Anna", issued="2021")
    a_files2 = [fetched(tmp_path, "résumé.pdf", b"%PDF a2")]  # changed; data.csv removed
    d_md, d_files = _md("d", "Dee"), [fetched(tmp_path, "d.bin", bytes(range(256)))]
    dest.open_run(2)
    deposit_update(dest, a, a_md2, a_files2)
    dest.delete(b)
    dest.delete(b)  # a delete whose answer was lost, sent again: harmless
    deposit_create(dest, COL, d_md, d_files)
    dest.close_run()

    lines = (out / "run-0002" / "replace.map").read_text().split()
    assert lines == [a.id, before[a_md.title][0]]
    assert (out / "run-0002" / "delete.map").read_text().split() == [
        b.id,
        before[b_md.title][0],
    ]
    importer.import_ok("run-0002")
    after = assert_repository_holds(
        importer, {"a": (a_md2, a_files2), "c": (c_md, c_files), "d": (d_md, d_files)}
    )
    assert after[a_md.title][0] == before[a_md.title][0]  # replaced in place: same handle
    assert [c.split()[1] for c in importer.commands()] == [
        "--add",
        "--add",
        "--replace",
        "--delete",
    ]
    dest.open_run(3)  # a run that changes nothing writes nothing
    dest.close_run()
    assert not (out / "run-0003").exists()


def test_change_before_import_waits_then_completes(
    tmp_path: Path, out: Path, importer: Importer
) -> None:
    dest = SafDestination(out, collection=COL)
    a_md, a_files = _md("a", "Alpha"), [fetched(tmp_path, "a.txt", b"one")]
    dest.open_run(1)
    a = deposit_create(dest, COL, a_md, a_files)
    dest.close_run()

    a_md2, a_files2 = _md("a", "Alpha 2"), [fetched(tmp_path, "a.txt", b"two")]
    n_md, n_files = _md("n", "New"), [fetched(tmp_path, "n.txt", b"new")]
    dest.open_run(2)
    with pytest.raises(DeferredError, match="run-0001"):
        deposit_update(dest, a, a_md2, a_files2)
    with pytest.raises(DeferredError, match="run-0001"):
        dest.delete(a)
    deposit_create(dest, COL, n_md, n_files)
    dest.close_run()
    assert not (out / "run-0002" / "replace.map").exists()
    assert dest.waiting() == ["run-0001", "run-0002"]

    # the later batch refuses to go first: its changes may need the earlier handles
    refused = importer.run("run-0002")
    assert refused.returncode != 0 and "run-0001" in refused.stderr
    assert importer.repo.items == {}

    importer.import_ok("run-0001")
    importer.import_ok("run-0002")
    dest.open_run(3)  # the waiting update goes through now
    deposit_update(dest, a, a_md2, a_files2)
    dest.close_run()
    importer.import_ok("run-0003")
    assert_repository_holds(importer, {"a": (a_md2, a_files2), "n": (n_md, n_files)})


def test_killed_before_complete_leaves_nothing_importable(
    tmp_path: Path, out: Path, importer: Importer
) -> None:
    md, files = _md("k", "Killed"), [fetched(tmp_path, f"f{i}.txt", b"%d" % i) for i in range(3)]
    first = SafDestination(out, collection=COL)
    first.open_run(1)
    c = first.create(COL, md, slug="k")
    first.add_file(c, files[0])
    first.add_file(c, files[1])
    # killed here: no close_run, no complete
    assert not (out / "run-0001").exists()

    again = SafDestination(out, collection=COL)  # the replay, a new process
    again.open_run(2)
    found = again.find(COL, md, slug="k", owned=lambda _id: False)
    assert found is not None and found.id == c.id
    held = again.contents(found)
    assert [(h.name, h.md5) for h in held] == [(f.filename, f.md5) for f in files[:2]]
    again.add_file(found, files[2])
    again.complete(found)
    again.close_run()
    importer.import_ok("run-0002")
    assert_repository_holds(importer, {"k": (md, files)})


def test_killed_after_complete_gets_its_script_on_replay(
    tmp_path: Path, out: Path, importer: Importer
) -> None:
    md, files = _md("k", "Killed late"), [fetched(tmp_path, "x.txt", b"x")]
    first = SafDestination(out, collection=COL)
    first.open_run(1)
    c = deposit_create(first, COL, md, files)  # completed, then killed before close_run
    assert not (out / "run-0001" / "IMPORT.sh").exists()

    again = SafDestination(out, collection=COL)
    again.open_run(2)
    assert again.complete(c) == "batched"  # completing again is harmless
    again.close_run()
    assert (out / "run-0001" / "IMPORT.sh").exists()
    assert not (out / "run-0002").exists()
    importer.import_ok("run-0001")
    assert_repository_holds(importer, {"k": (md, files)})


def test_zip_batches_import_with_zip(tmp_path: Path, out: Path, importer: Importer) -> None:
    dest = SafDestination(out, collection=COL, zip=True)
    md, files = _md("z", "Zipped"), [fetched(tmp_path, "ž.txt", b"zip me")]
    dest.open_run(1)
    c = deposit_create(dest, COL, md, files)
    dest.close_run()
    with zipfile.ZipFile(out / "run-0001" / "add.zip") as zf:
        assert f"add/{c.id}/ž.txt" in zf.namelist()
    importer.import_ok("run-0001")
    md2, files2 = _md("z", "Zipped again"), [fetched(tmp_path, "ž.txt", b"zip me 2")]
    dest.open_run(2)
    deposit_update(dest, c, md2, files2)
    dest.close_run()
    assert (out / "run-0002" / "replace.zip").is_file()
    importer.import_ok("run-0002")
    assert all("--zip" in line for line in importer.commands())
    assert_repository_holds(importer, {"z": (md2, files2)})


def test_keep_handles_writes_the_source_handle(
    tmp_path: Path, out: Path, importer: Importer
) -> None:
    dest = SafDestination(out, collection=COL, keep_handles=True)
    dc = record(title="Kept")
    md = metadata("h", dc, ("http://hdl.handle.net/10673/77", "item_000"))
    files = [fetched(tmp_path, "h.txt", b"h")]
    dest.open_run(1)
    c = deposit_create(dest, COL, md, files)
    dest.close_run()
    assert (out / "run-0001" / "add" / c.id / "handle").read_text() == "10673/77\n"
    md2 = metadata("h", record(title="Kept 2"), md.identifiers)
    dest.open_run(2)
    deposit_update(dest, c, md2, files)  # the handle is known: no waiting
    dest.close_run()
    importer.import_ok("run-0001")
    importer.import_ok("run-0002")
    assert list(importer.repo.items) == ["10673/77"]
    assert item_dc(importer.repo.items["10673/77"]).title == "Kept 2"


def test_check_refuses_unwritable_folder_and_bad_collection(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot write"):
        SafDestination(blocker / "out", collection=COL).check([])
    with pytest.raises(ConfigError, match="handle"):
        SafDestination(tmp_path / "out", collection="https://x/col").check([])


def test_staging_leftover_is_replaced_by_a_fresh_create(tmp_path: Path, out: Path) -> None:
    md = _md("s", "Staged")
    dest = SafDestination(out, collection=COL)
    dest.open_run(1)
    c = dest.create(COL, md, slug="s")
    dest.add_file(c, fetched(tmp_path, "old.txt", b"old"))
    c2: Container = dest.create(COL, md, slug="s")  # the depositor starts over
    assert c2.id == c.id and dest.contents(c2) == []
    dest.add_file(c2, fetched(tmp_path, "new.txt", b"new"))
    dest.complete(c2)
    folder = out / "run-0001" / "add" / c.id
    assert sorted(p.name for p in folder.iterdir()) == [
        "collections",
        "contents",
        "dublin_core.xml",
        "new.txt",
    ]
    assert md5((folder / "new.txt").read_bytes()) == md5(b"new")


def test_a_second_add_of_a_live_item_is_refused(tmp_path: Path, out: Path) -> None:
    md = _md("twice", "Twice")
    dest = SafDestination(out, collection=COL)
    dest.open_run(1)
    deposit_create(dest, COL, md, [])
    dest.close_run()
    lost_state = SafDestination(out, collection=COL)  # as if the state DB were lost
    lost_state.open_run(2)
    with pytest.raises(DepositError, match="already in batch run-0001"):
        lost_state.create(COL, md, slug="twice")
    found = lost_state.find(COL, md, slug="twice", owned=lambda _id: False)
    assert found is not None and found.data["batch"] == "run-0001"
    assert lost_state.find(COL, md, slug="twice", owned=lambda _id: True) is None


def test_mapped_collections_let_each_item_choose(
    tmp_path: Path, out: Path, importer: Importer
) -> None:
    dest = SafDestination(out, collection=COL)
    dest.open_run(1)
    deposit_create(dest, COL, _md("one", "One"), [])
    deposit_create(dest, "123456789/7", _md("two", "Two"), [])  # a [collections] mapping
    dest.close_run()
    script = (out / "run-0001" / "IMPORT.sh").read_text()
    assert "--add" in script and "--collection" not in script
    importer.import_ok("run-0001")
    held = {item_dc(it).title: it["collections"] for it in importer.repo.items.values()}
    assert held == {"One": [COL], "Two": ["123456789/7"]}


def test_killed_update_is_redone_whole(tmp_path: Path, out: Path, importer: Importer) -> None:
    md, files = _md("u", "Before"), [fetched(tmp_path, "u.txt", b"v1")]
    dest = SafDestination(out, collection=COL)
    dest.open_run(1)
    c = deposit_create(dest, COL, md, files)
    dest.close_run()
    importer.import_ok("run-0001")

    md2 = _md("u", "After")
    files2 = [fetched(tmp_path, "u.txt", b"v2"), fetched(tmp_path, "w.txt", b"w")]
    dest.open_run(2)
    dest.replace_metadata(c, md2)
    dest.replace_files(c, files2[0])  # killed here, before the second file and complete
    assert not (out / "run-0002").exists()

    again = SafDestination(out, collection=COL)
    again.open_run(3)
    deposit_update(again, c, md2, files2)  # the depositor sends the whole item again
    again.close_run()
    assert (out / "run-0003" / "replace.map").is_file()
    importer.import_ok("run-0003")
    assert_repository_holds(importer, {"u": (md2, files2)})
