"""Incremental sync, fallback, conflicts and undo: the real CLI over HTTP."""

from __future__ import annotations

import json

from tests.conftest import Cli, expected_snapshot, snapshot
from tests.integration.scenario import mutate
from tests.servers.fixtures import SourceModel
from tests.servers.sword_server import SwordServer


def _runs(cli: Cli) -> list[dict]:
    return json.loads(cli("runs", "--state", str(cli.state), "--json").stdout)


def test_incremental_with_change_lists_converges(
    cli: Cli, sword: SwordServer, source_factory
) -> None:
    model = SourceModel.generate(200, seed=21)
    src = source_factory(model, changelists="index", changelist_size=25)
    assert cli.baseline(src.base_url + "/", sword, "--workers", "8").returncode == 0
    assert len(sword.store.containers()) == 200
    counts = mutate(model)

    result = cli("incremental", "--state", str(cli.state), "--rate", "0", "--workers", "8")
    assert result.returncode == 0, result.output
    assert snapshot(sword.store.containers()) == expected_snapshot(model)
    last = _runs(cli)[-1]
    assert last["kind"] == "incremental"
    assert last["created"] == counts["created"]
    assert last["deleted"] == counts["deleted"]
    assert last["updated"] == counts["updated"]
    assert last["failed"] == 0

    # nothing changed since: a second incremental does nothing to the destination
    sword.reset_stats()
    again = cli("incremental", "--state", str(cli.state), "--rate", "0")
    assert again.returncode == 0, again.output
    assert sword.stats.get("POST", 0) + sword.stats.get("PUT", 0) == 0
    assert sword.stats.get("DELETE", 0) == 0
    audit = cli("audit", "--state", str(cli.state))
    assert audit.returncode == 0, audit.output


def test_incremental_from_archive_and_single_change_list(
    cli: Cli, sword: SwordServer, source_factory
) -> None:
    model = SourceModel.generate(60, seed=4)
    src = source_factory(model, changelists="archive", changelist_size=7)
    assert cli.baseline(src.base_url + "/", sword).returncode == 0
    mutate(model, seed=5)
    result = cli("incremental", "--state", str(cli.state), "--rate", "0")
    assert result.returncode == 0, result.output
    assert snapshot(sword.store.containers()) == expected_snapshot(model)


def test_incremental_without_change_lists_uses_resource_list(
    cli: Cli, sword: SwordServer, source_factory
) -> None:
    model = SourceModel.generate(200, seed=22)
    src = source_factory(model, changelists="none")
    assert cli.baseline(src.base_url + "/", sword, "--workers", "8").returncode == 0
    mutate(model, seed=12)
    result = cli("incremental", "--state", str(cli.state), "--rate", "0", "--workers", "8")
    assert result.returncode == 0, result.output
    assert snapshot(sword.store.containers()) == expected_snapshot(model)


def test_mass_deletion_guard(cli: Cli, sword: SwordServer, source_factory) -> None:
    model = SourceModel.generate(20, seed=2)
    src = source_factory(model, changelists="none")
    assert cli.baseline(src.base_url + "/", sword).returncode == 0
    for key in sorted(model.items)[:15]:
        model.delete_item(key)
    stopped = cli("incremental", "--state", str(cli.state), "--rate", "0")
    assert stopped.returncode == 1
    assert "mass-deletion" in stopped.stderr and "--force-delete" in stopped.stderr
    assert len(sword.store.containers()) == 20  # nothing deleted
    forced = cli("incremental", "--state", str(cli.state), "--rate", "0", "--force-delete")
    assert forced.returncode == 0, forced.output
    assert snapshot(sword.store.containers()) == expected_snapshot(model)


def test_empty_source_never_empties_the_mirror(
    cli: Cli, sword: SwordServer, source_factory
) -> None:
    model = SourceModel.generate(9, seed=2)
    src = source_factory(model, changelists="none")
    assert cli.baseline(src.base_url + "/", sword).returncode == 0
    src.set_override(
        "/resourcelist.xml",
        200,
        b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        b'xmlns:rs="http://www.openarchives.org/rs/terms/"><rs:md capability="resourcelist" '
        b'at="2030-01-01T00:00:00Z"/></urlset>',
        {"Content-Type": "application/xml"},
    )
    result = cli("incremental", "--state", str(cli.state), "--rate", "0")
    assert result.returncode == 1 and "mass-deletion" in result.stderr
    assert len(sword.store.containers()) == 9


def test_undo_removes_exactly_what_the_run_created(
    cli: Cli, sword: SwordServer, source_factory
) -> None:
    model = SourceModel.generate(30, seed=8)
    src = source_factory(model)
    assert cli.baseline(src.base_url + "/", sword).returncode == 0
    before = {c.id for c in sword.store.containers()}
    for i in range(5):
        model.create_item(("dspace", "recipe", "plain")[i % 3])
    model.update_metadata(
        next(k for k, it in model.items.items() if it.style == "dspace"), title="Changed"
    )
    assert cli("incremental", "--state", str(cli.state), "--rate", "0").returncode == 0
    run_id = _runs(cli)[-1]["id"]
    assert len(sword.store.containers()) == 35
    refused = cli("undo", str(run_id), "--state", str(cli.state), input="n\n")
    assert refused.returncode != 0 and len(sword.store.containers()) == 35
    done = cli("undo", str(run_id), "--state", str(cli.state), "--yes")
    assert done.returncode == 0, done.output
    assert {c.id for c in sword.store.containers()} == before
    runs = _runs(cli)
    assert runs[-1]["kind"] == "undo" and runs[-1]["deleted"] == 5


def test_archived_readonly_destination_conflict_policies(
    tmp_path, cli: Cli, source_factory
) -> None:
    from tests.conftest import PASSWORD

    sword = SwordServer(tmp_path / "ro", password=PASSWORD, archived_readonly=True).start()
    try:
        model = SourceModel.generate(6, seed=9, styles=("recipe",))
        src = source_factory(model)
        assert cli.baseline(src.base_url + "/", sword).returncode == 0
        key = sorted(model.items)[0]
        model.update_metadata(key, title="After archiving")
        failed = cli("incremental", "--state", str(cli.state), "--rate", "0")
        assert failed.returncode == 1
        status = json.loads(cli("status", "--state", str(cli.state), "--json").stdout)
        assert status["items"].get("conflict") == 1
        assert "405" in status["not_synced"][0]["error"]
        # recreate: delete refused too on this server -> the item stays in conflict
        # skip: accepted divergence, recorded, not failed
        pipeline_json = cli.state  # the policy is a pipeline setting: use a pipeline file
        pfile = tmp_path / "ro.toml"
        pfile.write_text(
            f'source = "{src.base_url}/"\nstate = "{pipeline_json}"\n[destination]\n'
            f'collection = "{sword.col_iri("default")}"\nusername = "sword"\n'
            'on_archived = "skip"\n[options]\nper_host_rate = 0\n',
            encoding="utf-8",
        )
        skipped = cli("run", str(pfile))
        replayed = cli("replay", "--state", str(cli.state))
        assert replayed.returncode == 0, (skipped.output, replayed.output)
        status = json.loads(cli("status", "--state", str(cli.state), "--json").stdout)
        assert status["items"] == {"complete": 6}
        titles = {c.dc["title"][0] for c in sword.store.containers()}
        assert "After archiving" not in titles  # the destination kept its archived version

        # recreate: the new version is deposited as a new container; this server (like
        # DSpace's default workflow) refuses to delete the archived one, which is reported
        model.update_metadata(key, title="Recreated version")
        pfile.write_text(pfile.read_text().replace('"skip"', '"recreate"'), encoding="utf-8")
        recreated = cli("run", str(pfile))
        assert recreated.returncode == 0, recreated.output
        assert "remove it by hand" in recreated.stderr
        titles = [c.dc["title"][0] for c in sword.store.containers()]
        assert "Recreated version" in titles and len(titles) == 7
    finally:
        sword.stop()


def test_server_without_per_file_iris_gets_its_media_replaced(
    tmp_path, cli: Cli, source_factory
) -> None:
    from tests.conftest import PASSWORD

    sword = SwordServer(tmp_path / "nf", password=PASSWORD, per_file_iris=False).start()
    try:
        model = SourceModel.generate(30, seed=17, styles=("dspace", "recipe"))
        src = source_factory(model)
        assert cli.baseline(src.base_url + "/", sword).returncode == 0
        multi = [k for k, it in model.items.items() if len(it.files) >= 2]
        assert len(multi) >= 2
        model.replace_file(multi[0], 1, b"replaced on a server without file IRIs\n")
        model.remove_file(multi[1], model.items[multi[1]].files[0].name)
        result = cli("incremental", "--state", str(cli.state), "--rate", "0")
        assert result.returncode == 0, result.output
        assert snapshot(sword.store.containers()) == expected_snapshot(model)
    finally:
        sword.stop()
