"""Round trips through the real CLI: a ``dspace export`` read as a SAF source, written as SAF
batches (``resync-sword baseline EXPORT --saf OUT``), imported with each batch's ``IMPORT.sh``
by the ``dspace import`` stand-in, must equal the export (metadata of every schema, ORIGINAL
files by MD5, handles with ``--keep-handles``, no extra items), after a baseline and after an
incremental run on an export taken again (``incremental --source NEWPATH``). Also: a run made
before the previous batch was imported waits, then completes; ``--saf-zip``; ``undo`` and
``audit`` on a SAF destination."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.saf_support import (
    COL,
    ExportItem,
    Importer,
    export_dc,
    export_items,
    item_dc,
    item_files,
    last_run,
    saf_baseline,
    same_terms,
    status_json,
    write_export,
)


def assert_equals_export(importer: Importer, items: list[ExportItem], *, handles: bool) -> None:
    repo = importer.repo
    assert len(repo.items) == len(items), "no extra and no missing items"
    by_title = {item_dc(it).title: (h, it) for h, it in repo.items.items()}
    assert len(by_title) == len(items), "no item imported twice"
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


def change_export(items: list[ExportItem]) -> None:
    """The export taken again: a file changed, metadata changed, an item gone, one new."""
    items[0].files[1] = ("data 1.csv", "ORIGINAL", b"a,b\n1,3\n")
    items[1].dc.append(("subject", None, "tides"))
    del items[2]
    items.append(ExportItem("item_003", "123456789/14", [("title", None, "Brand new")]))


# two batches with additions, one replacement step, one deletion step: nothing imported twice
EACH_STEP_ONCE = ["--add", "--add", "--replace", "--delete"]


def import_steps(importer: Importer) -> list[str]:
    """The ``dspace import`` modes the batches' scripts ran, in order."""
    return [c.split()[1] for c in importer.commands()]


def counts(run: dict[str, object]) -> dict[str, object]:
    names = ("status", "created", "updated", "deleted", "unchanged", "failed", "waiting")
    return {k: run[k] for k in names}


@pytest.mark.parametrize("keep_handles", [False, True])
def test_export_to_saf_and_back(tmp_path: Path, cli: Cli, keep_handles: bool) -> None:
    items = export_items()
    out = tmp_path / "out"
    importer = Importer(out, tmp_path / "repo")
    v1 = write_export(tmp_path / "v1", items)
    extra = ("--keep-handles",) if keep_handles else ()
    done = saf_baseline(cli, str(v1), out, *extra)
    assert done.returncode == 0, done.output
    assert counts(last_run(cli)) == dict(
        status="ok", created=3, updated=0, deleted=0, unchanged=0, failed=0, waiting=0
    )
    assert status_json(cli)["waiting"] == ["run-0001"]
    importer.import_ok("run-0001")
    assert status_json(cli)["waiting"] == []
    assert_equals_export(importer, items, handles=keep_handles)

    change_export(items)
    v2 = write_export(tmp_path / "v2", items)
    done = cli("incremental", "--state", str(cli.state), "--source", str(v2))
    assert done.returncode == 0, done.output
    assert counts(last_run(cli)) == dict(
        status="ok", created=1, updated=2, deleted=1, unchanged=0, failed=0, waiting=0
    )
    batch = out / "run-0002"
    assert len((batch / "replace.map").read_text().split()) == 2 * 2
    assert len((batch / "delete.map").read_text().split()) == 1 * 2
    assert len(list((batch / "add").iterdir())) == 1
    importer.import_ok("run-0002")
    assert_equals_export(importer, items, handles=keep_handles)

    # the new export is the source from now on: a run without --source changes nothing
    done = cli("incremental", "--state", str(cli.state))
    assert done.returncode == 0, done.output
    assert counts(last_run(cli))["unchanged"] == 3
    assert not (out / "run-0003").exists()
    assert import_steps(importer) == EACH_STEP_ONCE


def test_incremental_before_import_waits_then_completes(tmp_path: Path, cli: Cli) -> None:
    items = export_items()
    out = tmp_path / "out"
    importer = Importer(out, tmp_path / "repo")
    assert saf_baseline(cli, str(write_export(tmp_path / "v1", items)), out).returncode == 0

    items[1].dc.append(("subject", None, "tides"))  # an update...
    del items[2]  # ...and a delete, before run-0001 was imported...
    items.append(ExportItem("item_003", None, [("title", None, "Brand new")]))  # ...and a create
    v2 = write_export(tmp_path / "v2", items)
    done = cli("incremental", "--state", str(cli.state), "--source", str(v2))
    assert done.returncode == 0, done.output  # waiting is not failing
    assert "failed 0, waiting 2" in done.stdout
    assert counts(last_run(cli)) == dict(
        status="ok", created=1, updated=0, deleted=0, unchanged=1, failed=0, waiting=2
    )
    status = status_json(cli)
    assert status["waiting"] == ["run-0001", "run-0002"]
    assert status["not_synced"] == []
    waited = sorted(e["item"] for e in status["last_run_errors"] if e["code"] == "waiting")
    assert waited == ["saf:123456789/12/metadata", "saf:item_002/metadata"]
    text = cli("status", "--state", str(cli.state))
    assert "waiting to be imported" in text.stdout and "run-0001, run-0002" in text.stdout
    batch2 = out / "run-0002"  # the create only: the change and the delete wait
    assert sorted(p.name for p in batch2.iterdir()) == ["IMPORT.sh", "add"]

    # run-0002's script refuses to run before run-0001 was imported; then both go in
    assert importer.run("run-0002").returncode != 0
    importer.import_ok("run-0001")
    importer.import_ok("run-0002")
    done = cli("incremental", "--state", str(cli.state))  # the next run writes what waited
    assert done.returncode == 0, done.output
    assert counts(last_run(cli)) == dict(
        status="ok", created=0, updated=1, deleted=1, unchanged=2, failed=0, waiting=0
    )
    assert status_json(cli)["waiting"] == ["run-0003"]  # its replace and delete, no add
    assert not (out / "run-0003" / "add").exists()
    importer.import_ok("run-0003")
    assert status_json(cli)["waiting"] == []
    assert_equals_export(importer, items, handles=False)
    # nothing lost, nothing written twice: each batch imported once, each change once
    assert import_steps(importer) == EACH_STEP_ONCE
    done = cli("incremental", "--state", str(cli.state))
    assert done.returncode == 0 and counts(last_run(cli))["unchanged"] == 3
    assert not (out / "run-0004").exists()


def test_zip_batches_are_imported_with_zip(tmp_path: Path, cli: Cli) -> None:
    items = export_items()
    out = tmp_path / "out"
    importer = Importer(out, tmp_path / "repo")
    done = saf_baseline(cli, str(write_export(tmp_path / "v1", items)), out, "--saf-zip")
    assert done.returncode == 0, done.output
    assert (out / "run-0001" / "add.zip").is_file()
    importer.import_ok("run-0001")
    assert_equals_export(importer, items, handles=False)

    change_export(items)
    v2 = write_export(tmp_path / "v2", items)
    done = cli("incremental", "--state", str(cli.state), "--source", str(v2))
    assert done.returncode == 0, done.output
    assert (out / "run-0002" / "add.zip").is_file() and (out / "run-0002" / "replace.zip").is_file()
    importer.import_ok("run-0002")
    assert_equals_export(importer, items, handles=False)
    commands = importer.commands()
    assert import_steps(importer) == EACH_STEP_ONCE
    assert all("--zip" in c for c in commands if "--delete" not in c)


def test_undo_of_a_saf_run_deletes_what_it_created(tmp_path: Path, cli: Cli) -> None:
    items = export_items()
    out = tmp_path / "out"
    importer = Importer(out, tmp_path / "repo")
    assert saf_baseline(cli, str(write_export(tmp_path / "v1", items)), out).returncode == 0
    importer.import_ok("run-0001")
    new = ExportItem("item_003", "123456789/14", [("title", None, "Brand new")])
    v2 = write_export(tmp_path / "v2", [*items, new])
    done = cli("incremental", "--state", str(cli.state), "--source", str(v2))
    assert done.returncode == 0, done.output
    importer.import_ok("run-0002")
    assert len(importer.repo.items) == 4

    done = cli("undo", "2", "--state", str(cli.state), "--yes")
    assert done.returncode == 0, done.output
    assert counts(last_run(cli)) == dict(
        status="ok", created=0, updated=0, deleted=1, unchanged=0, failed=0, waiting=0
    )
    assert len((out / "run-0003" / "delete.map").read_text().split()) == 2
    importer.import_ok("run-0003")
    assert_equals_export(importer, items, handles=False)  # run 2's item gone, the rest kept

    done = cli("undo", "1", "--state", str(cli.state), "--yes")
    assert done.returncode == 0, done.output
    assert last_run(cli)["deleted"] == 3
    importer.import_ok("run-0004")
    assert importer.repo.items == {}
    assert status_json(cli)["items"] == {"deleted": 4}


def test_undo_before_the_import_waits_and_says_to_undo_again(tmp_path: Path, cli: Cli) -> None:
    items = export_items()
    out = tmp_path / "out"
    importer = Importer(out, tmp_path / "repo")
    assert saf_baseline(cli, str(write_export(tmp_path / "v1", items)), out).returncode == 0
    done = cli("undo", "1", "--state", str(cli.state), "--yes")
    assert done.returncode == 0, done.output
    assert counts(last_run(cli)) == dict(
        status="ok", created=0, updated=0, deleted=0, unchanged=0, failed=0, waiting=3
    )
    assert "run undo 1 again after the import" in done.stderr
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("run-")) == ["run-0001"]

    importer.import_ok("run-0001")
    done = cli("incremental", "--state", str(cli.state))  # a sync does not undo
    assert done.returncode == 0 and last_run(cli)["unchanged"] == 3
    done = cli("undo", "1", "--state", str(cli.state), "--yes")
    assert done.returncode == 0, done.output
    assert counts(last_run(cli))["deleted"] == 3
    importer.import_ok("run-0004")
    assert importer.repo.items == {}


def test_audit_on_a_saf_destination(tmp_path: Path, cli: Cli) -> None:
    items = export_items()
    out = tmp_path / "out"
    export = write_export(tmp_path / "v1", items)
    assert saf_baseline(cli, str(export), out).returncode == 0
    Importer(out, tmp_path / "repo").import_ok("run-0001")
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))

    clean = cli("audit", "--state", str(cli.state))
    assert clean.returncode == 0, clean.output
    assert "0 differences" in clean.stdout

    # a file disappears from a batch, and the export changes
    folder = next(p for p in (out / "run-0001" / "add").iterdir() if (p / "data 1.csv").exists())
    (folder / "data 1.csv").unlink()
    (export / "item_001" / "dublin_core.xml").write_text(
        '<dublin_core schema="dc"><dcvalue element="title">Changed</dcvalue></dublin_core>',
        "utf-8",
    )
    report = cli("audit", "--state", str(cli.state))
    assert report.returncode == 1
    assert "data 1.csv" in report.stdout
    assert "changed at the source" in report.stdout and "saf:123456789/12/metadata" in report.stdout
    after = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert set(before) - set(after) == {f"run-0001/add/{folder.name}/data 1.csv"}
    assert set(after) <= set(before)  # audit wrote nothing
    assert last_run(cli)["kind"] == "baseline"  # audit is not a run


def test_a_saf_destination_without_a_collection_is_refused_up_front(
    tmp_path: Path, cli: Cli
) -> None:
    export = write_export(tmp_path / "v1", export_items())
    out = tmp_path / "out"
    done = cli("baseline", str(export), "--saf", str(out), "--state", str(cli.state))
    assert done.returncode == 2
    assert "destination.collection" in done.stderr and "--saf-collection" in done.stderr
    assert not out.exists() and not cli.state.exists()  # nothing written, nothing to mend
