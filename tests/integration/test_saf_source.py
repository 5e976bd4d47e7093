"""The SAF source on a ``dspace export`` fixture generated here: what it lists, what it
fetches, path independence (folder and zip, anywhere), incremental comparison, and the hostile
archives it must refuse without reading anything outside them."""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from sync.contracts import Source
from sync.crosswalk import read_metadata
from sync.errors import SyncError
from sync.linker import link
from sync.model import Entry
from sync.sources.saf import SafSource, file_loc, metadata_loc
from tests.saf_support import ExportItem, export_dc, export_items, write_export, zip_folder

SECRET = b"TOP-SECRET-OUTSIDE-THE-ARCHIVE"


def _entries(source: SafSource) -> tuple[dict[str, Entry], list[SyncError]]:
    listing = source.listing()
    entries = {e.loc: e for e in listing}
    return entries, listing.errors


@pytest.fixture
def export(tmp_path: Path) -> Path:
    return write_export(tmp_path / "export", export_items())


def test_lists_one_item_per_folder_with_original_files(export: Path) -> None:
    source = SafSource(export)
    assert isinstance(source, Source)
    entries, errors = _entries(source)
    assert errors == []
    items = {it.key: it for it in link(entries.values())}
    assert sorted(items) == sorted(
        metadata_loc(k) for k in ("123456789/11", "123456789/12", "item_002")
    )
    first = items[metadata_loc("123456789/11")]
    # ORIGINAL only: thumbnails, extracted text and the licence stay behind
    assert sorted(f.loc for f in first.files) == sorted(
        file_loc("123456789/11", n) for n in ("Ångström paper.pdf", "data 1.csv")
    )
    assert first.collection == "123456789/2"
    pdf = entries[file_loc("123456789/11", "Ångström paper.pdf")]
    assert pdf.hash("md5") == hashlib.md5(b"%PDF-1.4 angstrom").hexdigest()
    assert pdf.length == len(b"%PDF-1.4 angstrom")
    assert items[metadata_loc("item_002")].files == []
    assert source.identifiers(first) == ["http://hdl.handle.net/123456789/11", "item_000"]
    assert source.changes(None) is None


def test_bundles_option_takes_other_bundles(export: Path) -> None:
    entries, _ = _entries(SafSource(export, bundles=("ORIGINAL", "THUMBNAIL", "LICENSE")))
    names = {loc.rsplit("/", 1)[-1] for loc in entries if loc.startswith("saf:123456789/11/")}
    assert "license" in names and "%C3%85ngstr%C3%B6m%20paper.pdf.jpg" in names
    assert "%C3%85ngstr%C3%B6m%20paper.pdf.txt" not in names


def test_fetch_gives_metadata_of_every_schema_and_exact_files(export: Path) -> None:
    source = SafSource(export)
    entries, _ = _entries(source)
    items = {it.key: it for it in link(entries.values())}
    item = items[metadata_loc("123456789/11")]
    assert item.primary is not None
    got = source.fetch(item.primary)
    fmt, dc = read_metadata(got.read_bytes(), url=got.entry.loc)
    got.discard()
    assert fmt == "saf"
    assert dc.terms == export_dc(export_items()[0]).terms
    assert dc.get("audience") == ["researchers"]  # from metadata_dcterms.xml
    for f in item.files:
        fetched = source.fetch(f)
        assert fetched.md5 == f.hash("md5")
        assert fetched.filename in ("Ångström paper.pdf", "data 1.csv")
        assert fetched.path.read_bytes() == (export / "item_000" / fetched.filename).read_bytes()
        fetched.discard()
        assert not fetched.path.exists()
    source.close()


def test_same_export_elsewhere_and_zipped_gives_the_same_entries(
    tmp_path: Path, export: Path
) -> None:
    here, _ = _entries(SafSource(export))
    moved = shutil.copytree(export, tmp_path / "elsewhere" / "again")
    there, _ = _entries(SafSource(moved))
    zipped, errors = _entries(SafSource(zip_folder(export, tmp_path / "export.zip")))
    nested, _ = _entries(SafSource(zip_folder(export, tmp_path / "nested.zip", top="export")))
    assert errors == []
    assert here == there == zipped == nested


def test_zip_fetch_reads_members(tmp_path: Path, export: Path) -> None:
    source = SafSource(zip_folder(export, tmp_path / "export.zip"))
    entries, _ = _entries(source)
    loc = file_loc("123456789/12", "報告書.pdf")
    got = source.fetch(entries[loc])
    assert got.path.read_bytes() == b"%PDF report" and got.filename == "報告書.pdf"
    source.close()


def test_a_new_export_shows_creates_updates_and_deletes(tmp_path: Path) -> None:
    items = export_items()
    old, _ = _entries(SafSource(write_export(tmp_path / "v1", items)))
    items[0].files[1] = ("data 1.csv", "ORIGINAL", b"a,b\n1,3\n")  # a file changed
    items[1].dc.append(("subject", None, "tides"))  # metadata changed
    del items[2]  # deleted
    items.append(ExportItem("item_003", "123456789/14", [("title", None, "New")]))
    new, _ = _entries(SafSource(write_export(tmp_path / "v2", items)))
    changed = {
        loc for loc in old.keys() & new.keys() if old[loc].fingerprint != new[loc].fingerprint
    }
    assert changed == {
        file_loc("123456789/11", "data 1.csv"),
        metadata_loc("123456789/12"),
    }
    assert old.keys() - new.keys() == {metadata_loc("item_002")}
    assert new.keys() - old.keys() == {metadata_loc("123456789/14")}


# -- hostile archives ----------------------------------------------------------------------
def _hostile(tmp_path: Path, folder: str, contents: str) -> Path:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(SECRET)
    root = write_export(tmp_path / "export", export_items()[1:2])
    bad = root / folder
    bad.mkdir()
    (bad / "dublin_core.xml").write_bytes(
        b'<dublin_core schema="dc"><dcvalue element="title">Bad</dcvalue></dublin_core>'
    )
    (bad / "contents").write_text(contents, "utf-8")
    return root


def _refused(root: Path, folder: str) -> str:
    source = SafSource(root)
    try:
        entries, errors = _entries(source)
        assert [e.loc for e in entries.values() if e.loc.startswith("saf:123456789/12")], "good"
        assert not [loc for loc in entries if folder in loc], "the bad item must not be listed"
        assert len(errors) == 1
        for e in entries.values():
            if e.length:
                got = source.fetch(e)
                assert SECRET not in got.read_bytes()
                got.discard()
        return errors[0].describe()
    finally:
        source.close()


@pytest.mark.parametrize(
    ("contents", "why"),
    [
        ("../outside.txt\n", "outside the item folder"),
        ("../../outside.txt\tbundle:ORIGINAL\n", "outside the item folder"),
        ("/etc/passwd\n", "absolute"),
        ("missing.pdf\n", "missing"),
    ],
)
def test_contents_that_leave_the_item_or_miss_are_refused(
    tmp_path: Path, contents: str, why: str
) -> None:
    root = _hostile(tmp_path, "item_bad", contents)
    message = _refused(root, "item_bad")
    assert why in message and "item_bad" in message


def test_symlink_leading_outside_is_refused(tmp_path: Path) -> None:
    root = _hostile(tmp_path, "item_bad", "link.pdf\n")
    os.symlink(tmp_path / "outside.txt", root / "item_bad" / "link.pdf")
    assert "outside the item folder" in _refused(root, "item_bad")


def test_symlink_swapped_in_after_listing_is_refused_by_fetch(tmp_path: Path) -> None:
    root = write_export(tmp_path / "export", export_items()[1:2])
    (tmp_path / "outside.txt").write_bytes(SECRET)
    source = SafSource(root)
    entries, _ = _entries(source)
    target = root / "item_001" / "報告書.pdf"
    target.unlink()
    os.symlink(tmp_path / "outside.txt", target)
    with pytest.raises(SyncError, match="outside the item folder"):
        source.fetch(entries[file_loc("123456789/12", "報告書.pdf")])
    # the refused fetch left nothing in the source's temporary folder
    assert source._tmp is None or not any(source._tmp.iterdir())
    source.close()


@pytest.mark.parametrize(
    ("xml", "why"),
    [
        (b"<dublin_core schema='dc'><dcvalue element='title'>x</dublin_core>", "well-formed"),
        (
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<dublin_core schema="dc"><dcvalue element="title">&x;</dcvalue></dublin_core>',
            "DTDs and entities",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b'<dublin_core schema="dc"><dcvalue element="title">&b;</dcvalue></dublin_core>',
            "DTDs and entities",
        ),
    ],
)
def test_malformed_or_hostile_metadata_is_refused(tmp_path: Path, xml: bytes, why: str) -> None:
    root = _hostile(tmp_path, "item_bad", "")
    (root / "item_bad" / "metadata_dcterms.xml").write_bytes(xml)
    assert why in _refused(root, "item_bad")


def test_zip_slip_and_symlink_members_are_refused(tmp_path: Path) -> None:
    root = write_export(tmp_path / "export", export_items()[1:2])
    target = zip_folder(root, tmp_path / "evil.zip")
    with zipfile.ZipFile(target, "a") as zf:
        zf.writestr("../evil.txt", SECRET)
        zf.writestr("/abs/evil.txt", SECRET)
        zf.writestr("item_009/dublin_core.xml", b'<dublin_core schema="dc"/>')
        zf.writestr("item_009/contents", "../../evil.txt\n")
        link = zipfile.ZipInfo("item_001/link.pdf")
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "/etc/passwd")
    source = SafSource(target)
    entries, errors = _entries(source)
    messages = " | ".join(e.describe() for e in errors)
    assert "zip slip" in messages and "symlink" in messages and "item_009" in messages
    assert len(errors) == 4
    assert sorted(loc for loc in entries) == sorted(
        [metadata_loc("123456789/12"), file_loc("123456789/12", "報告書.pdf")]
    )
    assert not (tmp_path / "evil.txt").exists()


def test_not_an_archive_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("hello")
    listing = SafSource(tmp_path / "plain.txt").listing()
    with pytest.raises(SyncError, match="not a SAF folder or zip"):
        list(listing)
