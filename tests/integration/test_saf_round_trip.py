"""Round trips at the contract level: a ``dspace export`` read by the SAF source, written by
the SAF destination, imported by the ``dspace import`` stand-in, must equal the export
(metadata of every schema, ORIGINAL files by MD5, handles with ``keep_handles``, no extra
items), after a baseline and after an incremental run on a newer export."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sync.destinations.saf import SafDestination
from sync.sources.saf import SafSource
from tests.saf_support import (
    ExportItem,
    Importer,
    MiniSync,
    export_dc,
    export_items,
    item_dc,
    item_files,
    same_terms,
    write_export,
)

COL = "123456789/2"


def assert_equals_export(importer: Importer, items: list[ExportItem], *, handles: bool) -> None:
    repo = importer.repo
    assert len(repo.items) == len(items), "no extra and no missing items"
    by_title = {item_dc(it).title: (h, it) for h, it in repo.items.items()}
    for exported in items:
        dc = export_dc(exported)
        if exported.handle:  # the source's handle is carried as dc.identifier.uri
            dc.add("identifier", f"http://hdl.handle.net/{exported.handle}")
        handle, imported = by_title[dc.title]
        assert same_terms(item_dc(imported), dc), exported.folder
        originals = {
            name: hashlib.md5(data).hexdigest()
            for name, bundle, data in exported.files
            if bundle in ("ORIGINAL", "") and name != "license"
        }
        assert item_files(repo, imported) == originals
        assert [b["bundle"] for b in imported["bitstreams"]] == ["ORIGINAL"] * len(originals)
        if handles and exported.handle:
            assert handle == exported.handle
        assert imported["collections"] == (exported.collections[:1] or [COL])


@pytest.mark.parametrize("keep_handles", [False, True])
def test_export_to_saf_and_back(tmp_path: Path, keep_handles: bool) -> None:
    items = export_items()
    out = tmp_path / "out"
    importer = Importer(out, tmp_path / "repo")
    sync = MiniSync(SafDestination(out, collection=COL, keep_handles=keep_handles), COL)
    v1 = SafSource(write_export(tmp_path / "v1", items))
    assert sync.run(v1, 1) == []
    importer.import_ok("run-0001")
    assert_equals_export(importer, items, handles=keep_handles)

    items[0].files[1] = ("data 1.csv", "ORIGINAL", b"a,b\n1,3\n")
    items[1].dc.append(("subject", None, "tides"))
    del items[2]
    items.append(ExportItem("item_003", "123456789/14", [("title", None, "Brand new")]))
    v2 = SafSource(write_export(tmp_path / "v2", items))
    assert sync.run(v2, 2) == []
    assert sync.waiting == []
    importer.import_ok("run-0002")
    assert_equals_export(importer, items, handles=keep_handles)


def test_incremental_before_import_waits_then_completes(tmp_path: Path) -> None:
    items = export_items()
    out = tmp_path / "out"
    importer = Importer(out, tmp_path / "repo")
    dest = SafDestination(out, collection=COL)
    sync = MiniSync(dest, COL)
    sync.run(SafSource(write_export(tmp_path / "v1", items)), 1)

    items[1].dc.append(("subject", None, "tides"))  # an update...
    del items[2]  # ...and a delete, before run-0001 was imported
    v2 = SafSource(write_export(tmp_path / "v2", items))
    sync.run(v2, 2)
    assert sorted(sync.waiting) == ["saf:123456789/12/metadata", "saf:item_002/metadata"]
    assert dest.waiting() == ["run-0001"]
    assert not (out / "run-0002").exists()  # nothing else changed: no batch

    importer.import_ok("run-0001")
    sync.run(v2, 3)  # the next run writes what waited
    assert sync.waiting == []
    importer.import_ok("run-0003")
    assert_equals_export(importer, items, handles=False)
