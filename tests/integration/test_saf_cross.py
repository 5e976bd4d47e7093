"""SAF with the other protocols, through the real CLI: the local ResourceSync source and the
local OAI-PMH provider mirrored into SAF batches (``baseline URL --saf OUT``) and imported by
the ``dspace import`` stand-in; a SAF export mirrored into the local SWORD v2 server
(``baseline EXPORT --collection COL_IRI``); a hostile archive, whose bad item fails alone
without anything outside the archive being read."""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli, expected_snapshot
from tests.saf_support import (
    COL,
    ExportItem,
    Importer,
    export_dc,
    export_items,
    last_run,
    repository_snapshot,
    saf_baseline,
    status_json,
    write_export,
    zip_folder,
)
from tests.servers.fixtures import SourceModel
from tests.servers.oai_provider import OaiProvider
from tests.servers.sword_server import SwordServer

SECRET = b"TOP-SECRET-OUTSIDE-THE-ARCHIVE"


@pytest.fixture
def oai_provider() -> Iterator[Callable[[SourceModel], OaiProvider]]:
    started: list[OaiProvider] = []

    def start(model: SourceModel) -> OaiProvider:
        provider = OaiProvider(model, page_size=5).start()
        started.append(provider)
        return provider

    yield start
    for provider in started:
        provider.stop()


def test_resourcesync_to_saf_then_changes(tmp_path: Path, cli: Cli, source_factory) -> None:
    model = SourceModel.generate(12, seed=5)  # DSpace module, recipe and plain resources
    src = source_factory(model)
    out = tmp_path / "out"
    importer = Importer(out, tmp_path / "repo")
    done = saf_baseline(cli, src.base_url + "/", out)
    assert done.returncode == 0, done.output
    assert last_run(cli)["created"] == 12
    importer.import_ok("run-0001")
    assert len(importer.repo.items) == 12
    assert repository_snapshot(importer.repo) == expected_snapshot(model)

    # a day at the source: metadata and a file changed, an item deleted, one created
    keys = sorted(k for k, it in model.items.items() if it.style != "plain" and it.files)
    model.update_metadata(keys[0], title="A new title")
    model.replace_file(keys[1], 0, b"new bytes of the first file")
    model.delete_item(keys[2])
    model.create_item("recipe")
    done = cli("incremental", "--state", str(cli.state))
    assert done.returncode == 0, done.output
    run = last_run(cli)
    assert (run["created"], run["updated"], run["deleted"], run["failed"]) == (1, 2, 1, 0)
    importer.import_ok("run-0002")
    assert len(importer.repo.items) == 12
    assert repository_snapshot(importer.repo) == expected_snapshot(model)


def test_a_change_list_run_before_the_import_waits_then_completes(
    tmp_path: Path, cli: Cli, source_factory
) -> None:
    """With a change feed the next run reads only newer changes: one that waited for an
    import must still be written (no overlap window to hide a loss)."""
    model = SourceModel.generate(6, seed=11, styles=("recipe",))
    src = source_factory(model)
    out = tmp_path / "out"
    importer = Importer(out, tmp_path / "repo")
    pipeline = tmp_path / "saf.toml"
    pipeline.write_text(
        f'[source]\nurl = "{src.base_url}/"\n\n'
        f'[destination]\ntype = "saf"\npath = "{out}"\ncollection = "{COL}"\n\n'
        "[options]\noverlap_seconds = 0\nper_host_rate = 0\n",
        "utf-8",
    )
    run_pipeline = ("run", str(pipeline), "--state", str(cli.state))
    assert cli(*run_pipeline).returncode == 0
    keys = sorted(model.items)
    model.update_metadata(keys[0], title="Changed before the import")  # oldest change...
    model.delete_item(keys[1])
    model.create_item("recipe")  # ...newest change
    done = cli(*run_pipeline)
    assert done.returncode == 0, done.output
    run = last_run(cli)
    assert (run["created"], run["updated"], run["deleted"], run["waiting"]) == (1, 0, 0, 2)
    assert status_json(cli)["waiting"] == ["run-0001", "run-0002"]

    importer.import_ok("run-0001")
    importer.import_ok("run-0002")
    done = cli(*run_pipeline)
    assert done.returncode == 0, done.output
    run = last_run(cli)
    assert (run["created"], run["updated"], run["deleted"], run["waiting"]) == (0, 1, 1, 0)
    importer.import_ok("run-0003")
    assert repository_snapshot(importer.repo) == expected_snapshot(model)
    assert [c.split()[1] for c in importer.commands()] == [
        "--add",
        "--add",
        "--replace",
        "--delete",
    ]


def test_oai_pmh_to_saf(
    tmp_path: Path, cli: Cli, oai_provider: Callable[[SourceModel], OaiProvider]
) -> None:
    model = SourceModel.generate(9, seed=7, styles=("dspace",))
    provider = oai_provider(model)
    out = tmp_path / "out"
    importer = Importer(out, tmp_path / "repo")
    done = saf_baseline(cli, provider.base_url, out)
    assert done.returncode == 0, done.output
    assert status_json(cli)["waiting"] == ["run-0001"]
    importer.import_ok("run-0001")
    assert len(importer.repo.items) == 9
    assert repository_snapshot(importer.repo) == expected_snapshot(model)
    assert all(item["collections"] == [COL] for item in importer.repo.items.values())


def assert_sword_holds_export(sword: SwordServer, items: list[ExportItem]) -> None:
    held = {c.dc["title"][0]: c for c in sword.store.containers()}
    assert len(held) == len(sword.store.containers()) == len(items), "no extra items"
    for exported in items:
        dc = export_dc(exported)
        container = held[dc.title]  # type: ignore[index]
        assert container.state == "archived"
        assert container.dc.get("creator", []) == dc.get("creator")
        assert container.dc.get("audience", []) == dc.get("audience")  # metadata_dcterms.xml
        originals = {
            name: hashlib.md5(data).hexdigest()
            for name, bundle, data in exported.files
            if bundle in ("ORIGINAL", "") and name != "license"
        }
        got = {f.name: hashlib.md5(f.path.read_bytes()).hexdigest() for f in container.files}
        assert got == originals
        if exported.handle:  # traceable to the source's handle
            assert f"http://hdl.handle.net/{exported.handle}" in container.dc["identifier"]


@pytest.mark.parametrize("zipped", [False, True])
def test_saf_export_to_sword(tmp_path: Path, cli: Cli, sword: SwordServer, zipped: bool) -> None:
    items = export_items()
    export = write_export(tmp_path / "export", items)
    source = zip_folder(export, tmp_path / "export.zip", top="export") if zipped else export
    done = cli.baseline(str(source), sword)
    assert done.returncode == 0, done.output
    assert last_run(cli)["created"] == len(items)
    assert_sword_holds_export(sword, items)

    # the export taken again elsewhere: a file changed, metadata changed, one gone, one new
    items[0].files[1] = ("data 1.csv", "ORIGINAL", b"a,b\n1,3\n")
    items[1].dc.append(("subject", None, "tides"))
    del items[2]
    items.append(ExportItem("item_003", "123456789/14", [("title", None, "Brand new")]))
    again = write_export(tmp_path / "again", items)
    done = cli("incremental", "--state", str(cli.state), "--source", str(again))
    assert done.returncode == 0, done.output
    run = last_run(cli)
    assert (run["created"], run["updated"], run["deleted"], run["failed"]) == (1, 2, 1, 0)
    assert_sword_holds_export(sword, items)


# -- a hostile archive, once through the CLI -------------------------------------------------
def _hostile_folder(tmp_path: Path, case: str) -> tuple[Path, str]:
    """An export of good items plus ``item_bad``, which tries to read ``outside.txt``."""
    outside = tmp_path / "outside.txt"
    outside.write_bytes(SECRET)
    root = write_export(tmp_path / "export", export_items())
    bad = root / "item_bad"
    bad.mkdir()
    (bad / "dublin_core.xml").write_bytes(
        b'<dublin_core schema="dc"><dcvalue element="title">Bad</dcvalue></dublin_core>'
    )
    contents = ""
    if case == "dotdot":
        contents = "../../outside.txt\tbundle:ORIGINAL\n"
    elif case == "absolute":
        contents = f"{outside}\n"
    elif case == "symlink":
        os.symlink(outside, bad / "paper.pdf")
        contents = "paper.pdf\n"
    elif case == "entity":
        (bad / "metadata_dcterms.xml").write_bytes(
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file://'
            + str(outside).encode()
            + b'">]><dublin_core schema="dcterms"><dcvalue element="abstract">&x;</dcvalue>'
            b"</dublin_core>"
        )
    (bad / "contents").write_text(contents, "utf-8")
    return root, "item_bad"


def _hostile_zip(tmp_path: Path) -> tuple[Path, str]:
    """A zip whose ``item_bad`` lists a member that climbs out of the zip (zip slip)."""
    root = write_export(tmp_path / "export", export_items())
    target = zip_folder(root, tmp_path / "evil.zip")
    with zipfile.ZipFile(target, "a") as zf:
        zf.writestr("item_bad/dublin_core.xml", b'<dublin_core schema="dc"/>')
        zf.writestr("item_bad/contents", "../../evil.txt\n")
        zf.writestr("item_bad/../../evil.txt", SECRET)
    return target, "item_bad"


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink", "entity", "zip-slip"])
def test_a_hostile_item_fails_alone_and_nothing_outside_is_read(
    tmp_path: Path, cli: Cli, sword: SwordServer, case: str
) -> None:
    source, bad = _hostile_zip(tmp_path) if case == "zip-slip" else _hostile_folder(tmp_path, case)
    done = cli.baseline(str(source), sword)
    assert done.returncode == 1, done.output
    assert "Traceback" not in done.output and "internal error" not in done.output
    assert last_run(cli)["status"] == "partial"

    status = cli("status", "--state", str(cli.state))
    assert status.returncode == 0
    assert bad in status.stdout  # the refused item is named
    refused = status_json(cli)["last_run_errors"]
    assert refused and all(bad in e["message"] for e in refused)

    assert_sword_holds_export(sword, export_items())  # the others are mirrored, whole
    for container in sword.store.containers():
        for f in container.files:
            assert SECRET not in f.path.read_bytes()
        assert "Bad" not in container.dc.get("title", [])
    stored = b"".join(p.read_bytes() for p in cli.state.parent.iterdir() if p.is_file())
    assert SECRET not in stored
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path.parent / "evil.txt").exists()
