"""Baseline mirror end to end: the real CLI, the local source and the local SWORD server."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli, expected_snapshot, snapshot
from tests.servers.fixtures import SourceModel
from tests.servers.sword_server import SwordServer


def test_baseline_300_items_three_styles_then_rerun_is_a_noop(
    cli: Cli, sword: SwordServer, source_factory
) -> None:
    model = SourceModel.generate(300, seed=7)
    src = source_factory(model, page_size=400)  # several sitemaps behind an index
    styles = {it.style for it in model.items.values()}
    assert styles == {"dspace", "recipe", "plain"}

    first = cli.baseline(src.base_url + "/", sword, "--workers", "8")
    assert first.returncode == 0, first.output
    containers = sword.store.containers()
    assert len(containers) == 300
    assert {c.state for c in containers} == {"archived"}
    assert snapshot(containers) == expected_snapshot(model)

    sword.reset_stats()
    second = cli.baseline(src.base_url + "/", sword)
    assert second.returncode == 0, second.output
    assert len(sword.store.containers()) == 300
    assert sword.stats.get("POST", 0) == 0 and sword.stats.get("PUT", 0) == 0
    assert sword.stats.get("DELETE", 0) == 0
    status = json.loads(cli("status", "--state", str(cli.state), "--json").stdout)
    assert status["items"] == {"complete": 300}
    assert [r["unchanged"] for r in status["runs"]] == [0, 300]
    assert [r["created"] for r in status["runs"]] == [300, 0]


def test_hash_mismatch_fails_only_that_item(cli: Cli, sword: SwordServer, source_factory) -> None:
    model = SourceModel.generate(24, seed=3)
    victim = next(it for it in model.items.values() if it.style == "dspace" and it.files)
    src = source_factory(model)
    bad_loc = f"{src.base_url}/bitstreams/{victim.files[0].fid}"
    model.tamper(bad_loc)

    result = cli.baseline(src.base_url + "/", sword)
    assert result.returncode == 1
    assert bad_loc in result.stderr and "md5 mismatch" in result.stderr
    held = sword.store.containers()
    assert len(held) == 23
    assert victim.title not in {c.dc.get("title", [None])[0] for c in held}

    status = cli("status", "--state", str(cli.state))
    assert status.returncode == 0
    assert "failed 1" in status.stdout and bad_loc in status.stdout
    data = json.loads(cli("status", "--state", str(cli.state), "--json").stdout)
    assert data["items"] == {"complete": 23, "failed": 1}
    assert data["not_synced"][0]["code"] == "integrity"

    # the source repairs the file: replay deposits it, nothing else changes
    model.tamper(bad_loc)  # tampering twice flips the byte back
    replay = cli("replay", "--state", str(cli.state))
    assert replay.returncode == 0, replay.output
    assert snapshot(sword.store.containers()) == expected_snapshot(model)


def test_collection_mapping_and_pipeline_file(
    tmp_path: Path, cli: Cli, sword: SwordServer, source_factory
) -> None:
    model = SourceModel.generate(12, seed=5, styles=("dspace",))
    src = source_factory(model)
    collections = sorted({it.collection for it in model.items.values() if it.collection})
    assert collections
    mapped = collections[0]
    pipeline = tmp_path / "mirror.toml"
    pipeline.write_text(
        f'source = "{src.base_url}/"\n'
        f'state = "{cli.state}"\n'
        "[destination]\n"
        f'service_document = "{sword.sd_iri}"\n'
        f'collection = "{sword.col_iri("default")}"\n'
        'username = "sword"\n'
        'password_env = "SWORD_PASSWORD"\n'
        "[options]\nworkers = 3\nper_host_rate = 0\n"
        "[collections]\n"
        f'"{src.base_url}/handle/{mapped}" = "{sword.col_iri("theses")}"\n',
        encoding="utf-8",
    )
    result = cli("run", str(pipeline))
    assert result.returncode == 0, result.output
    in_theses = sword.store.containers("theses")
    want = [it for it in model.items.values() if it.collection == mapped]
    assert len(in_theses) == len(want) > 0
    assert len(sword.store.containers()) == 12


def test_bad_credentials_and_missing_collection_are_clear(
    cli: Cli, sword: SwordServer, source_factory
) -> None:
    src = source_factory(SourceModel.generate(3, seed=1))
    wrong = cli(
        "baseline",
        src.base_url + "/",
        "--collection",
        sword.col_iri("default"),
        "--username",
        "sword",
        "--state",
        str(cli.state),
        env={"SWORD_PASSWORD": "wrong-password"},
    )
    assert wrong.returncode == 1
    assert "401" in wrong.stderr and "wrong-password" not in wrong.output
    missing = cli(
        "baseline",
        src.base_url + "/",
        "--collection",
        sword.base_url + "/col/nope",
        "--service-document",
        sword.sd_iri,
        "--username",
        "sword",
        "--state",
        str(cli.state),
    )
    assert missing.returncode == 1
    assert "/col/nope" in missing.stderr
    assert sword.store.containers() == []
