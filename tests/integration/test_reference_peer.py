"""Fidelity with a peer nobody here wrote (#8): the SWORD reference server's behaviour.

The local SWORD server's ``reference`` mode stores every file under a new name
(``<time>_"<name>"``), lists neither MD5 nor size in statements, answers 405 to a single-file
DELETE, refuses empty bodies and advertises ``maxUploadSize`` in bytes. Its ``lost`` fault
carries a POST out and drops the connection without answering. Every test asserts what the
destination holds, by MD5, never by the (renamed) file names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import PASSWORD, Cli
from tests.integration.scenario import mutate
from tests.integration.test_crash import _run_killed
from tests.servers.base import LOST, FaultPolicy
from tests.servers.fixtures import SourceModel
from tests.servers.sword_server import StoredContainer, SwordServer

MAX_REPLAYS = 8
OPTIONS = (
    "workers = 4\nper_host_rate = 0\nread_timeout = 5.0\nbackoff_initial = 0.01\n"
    "attempts = 3\nmax_retry_seconds = 10\n"
)

Held = list[tuple[str | None, tuple[str, ...], tuple[str, ...]]]


def by_md5(containers: list[StoredContainer]) -> Held:
    """(title, creators, file MD5s) per container: a renaming server keeps no name."""
    out = [
        (
            c.dc.get("title", [None])[0],
            tuple(c.dc.get("creator", [])),
            tuple(sorted(f.md5 for f in c.files)),
        )
        for c in containers
    ]
    return sorted(out, key=repr)


def expected_by_md5(model: SourceModel) -> Held:
    out = [
        (e.title, tuple(e.creators), tuple(sorted(e.files.values())))
        for e in model.expected().values()
    ]
    return sorted(out, key=repr)


def fill_empty_files(model: SourceModel) -> None:
    """The reference server refuses empty files (tested on its own below): give them bytes."""
    for key, item in list(model.items.items()):
        for f in list(item.files):
            if not f.content:
                model.replace_file(key, f.name, f"was empty: {f.name}\n".encode())


def pipeline(tmp_path: Path, source: str, sword: SwordServer, state: Path) -> Path:
    path = tmp_path / "reference.toml"
    path.write_text(
        f'source = "{source}"\nstate = "{state}"\n[destination]\n'
        f'service_document = "{sword.sd_iri}"\ncollection = "{sword.col_iri("default")}"\n'
        'username = "sword"\npassword_env = "SWORD_PASSWORD"\n[options]\n' + OPTIONS,
        encoding="utf-8",
    )
    return path


def replay_until_clean(cli: Cli) -> int:
    for n in range(1, MAX_REPLAYS + 1):
        result = cli("replay", "--state", str(cli.state))
        assert result.returncode in (0, 1), result.output
        assert "Traceback" not in result.output
        if result.returncode == 0:
            return n
    raise AssertionError(f"replay did not converge in {MAX_REPLAYS} runs:\n{result.output}")


def status(cli: Cli) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(cli("status", "--state", str(cli.state), "--json").stdout)
    return data


def test_lost_answers_on_a_renaming_server_leave_no_duplicate_and_audit_clean(
    tmp_path: Path, cli: Cli, source_factory
) -> None:
    model = SourceModel.generate(40, seed=81)
    fill_empty_files(model)
    src = source_factory(model)
    lost = FaultPolicy(rate=0.25, kinds=(LOST,), seed=8, only_methods=("POST",))
    sword = SwordServer(
        tmp_path / "reference", password=PASSWORD, reference=True, faults=lost
    ).start()
    try:
        pipe = pipeline(tmp_path, src.base_url + "/", sword, cli.state)
        # -- baseline under lost answers (creates, file uploads, completions), then replay
        first = cli("run", str(pipe))
        assert first.returncode in (0, 1), first.output
        assert "Traceback" not in first.output
        replay_until_clean(cli)
        held = sword.store.containers()
        assert len(held) == 40
        assert by_md5(held) == expected_by_md5(model)
        # the server really renamed every file
        assert all(f.name.endswith('"') and '_"' in f.name for c in held for f in c.files)

        # -- files added, replaced and removed, items created and deleted; same faults
        mutate(model)
        fill_empty_files(model)
        second = cli("run", str(pipe))
        assert second.returncode in (0, 1), second.output
        assert "Traceback" not in second.output
        replay_until_clean(cli)
        held = sword.store.containers()
        assert len(held) == 50  # 40 - 10 deleted + 20 created, none twice
        assert by_md5(held) == expected_by_md5(model)
        assert lost.served[LOST] >= 20, lost.served  # the faults were real

        # with the faults gone, audit finds source, state and destination in agreement
        sword.faults = FaultPolicy()
        audit = cli("audit", "--state", str(cli.state))
        assert audit.returncode == 0, audit.output
        assert status(cli)["not_synced"] == []
    finally:
        sword.stop()


@pytest.mark.parametrize("layout", ["single", "index"])
def test_resync_style_change_lists_apply_every_change(
    cli: Cli, sword, source_factory, layout: str
) -> None:
    """Change lists as ``resync`` 2.0.1 writes them: no ``rs:md datetime``, no from / until,
    and every ``lastmod`` older than the last sync. One incremental applies them all (a
    single change list, or the members of a change list index)."""
    model = SourceModel.generate(80, seed=82)
    src = source_factory(model, changelist_style="resync", changelists=layout)
    assert cli.baseline(src.base_url + "/", sword).returncode == 0
    counts = mutate(model)
    result = cli("incremental", "--state", str(cli.state))
    assert result.returncode == 0, result.output
    held = sword.store.containers()
    assert by_md5(held) == expected_by_md5(model)
    assert len(held) == 90  # 80 - 10 deleted + 20 created
    runs = json.loads(cli("runs", "--state", str(cli.state), "--json").stdout)
    assert runs[-1]["created"] == counts["created"]
    assert runs[-1]["deleted"] == counts["deleted"]
    assert runs[-1]["updated"] == counts["updated"]

    # the same document again: its entries were applied; they are counted and said, not
    # dropped silently, and nothing changes at the destination
    sword.reset_stats()
    again = cli("incremental", "--state", str(cli.state))
    assert again.returncode == 0, again.output
    assert "change entries not applied" in again.output
    assert "in change lists already read unchanged" in again.output
    assert sword.stats.get("POST", 0) + sword.stats.get("PUT", 0) == 0
    runs = json.loads(cli("runs", "--state", str(cli.state), "--json").stdout)
    assert "not applied" in (runs[-1]["message"] or "")

    # the publisher rewrites the document: one more change, read as a new document
    key = next(k for k, it in model.items.items() if it.style == "recipe" and it.files)
    model.replace_file(key, 0, b"restored from a backup with its old mtime\n")
    third = cli("incremental", "--state", str(cli.state))
    assert third.returncode == 0, third.output
    assert by_md5(sword.store.containers()) == expected_by_md5(model)


def test_empty_file_refused_keeps_one_container_and_says_why(
    tmp_path: Path, cli: Cli, source_factory
) -> None:
    model = SourceModel.generate(14, seed=83, styles=("recipe",))
    empty = [(k, f.name) for k, it in model.items.items() for f in it.files if not f.content]
    assert empty, "the fixture has empty files"
    src = source_factory(model)
    sword = SwordServer(tmp_path / "reference", password=PASSWORD, reference=True).start()
    try:
        pipe = pipeline(tmp_path, src.base_url + "/", sword, cli.state)
        first = cli("run", str(pipe))
        assert first.returncode == 1, first.output
        assert "refuses empty files" in first.output
        data = status(cli)
        failing = {f["code"] for f in data["not_synced"]}
        assert failing == {"deposit-empty-file"}
        assert all("refuses empty files" in f["error"] for f in data["not_synced"])
        shown = cli("status", "--state", str(cli.state))
        assert "refuses empty files" in shown.stdout
        assert len(sword.store.containers()) == 14
        # replay while the file is still empty: the same containers, no second one
        again = cli("replay", "--state", str(cli.state))
        assert again.returncode == 1
        assert len(sword.store.containers()) == 14
        # the source gives the file content: replay finishes it in the container it has
        for key, name in empty:
            model.replace_file(key, name, b"now with content\n")
        fixed = cli("replay", "--state", str(cli.state))
        assert fixed.returncode == 0, fixed.output
        held = sword.store.containers()
        assert len(held) == 14
        assert by_md5(held) == expected_by_md5(model)
    finally:
        sword.stop()


@pytest.mark.parametrize("at", [5, 9, 13, 17, 21, 25, 29, 33])
def test_kill_on_a_renaming_server_then_replay(tmp_path: Path, at: int, source_factory) -> None:
    """kill -9 while the server carries a request out (it lands, the answer is never
    recorded), on a server that ignores Slug, renames files and lists no checksums."""
    model = SourceModel.generate(12, seed=84)
    fill_empty_files(model)
    src = source_factory(model)
    sword = SwordServer(tmp_path / "reference", password=PASSWORD, reference=True).start()
    try:
        cli = Cli(tmp_path, tmp_path / "state.sqlite")
        args = cli.baseline_args(src.base_url + "/", sword)
        assert _run_killed(cli, sword, at, False, *args), "kill point not reached"
        replay = cli("replay", "--state", str(cli.state))
        assert replay.returncode == 0, replay.output
        held = sword.store.containers()
        assert len(held) == 12
        assert by_md5(held) == expected_by_md5(model)  # no file twice, none lost
        assert cli("audit", "--state", str(cli.state)).returncode == 0
    finally:
        sword.stop()


def test_audit_on_a_renaming_server_is_clean_and_still_finds_real_differences(
    tmp_path: Path, cli: Cli, source_factory
) -> None:
    model = SourceModel.generate(10, seed=85, styles=("recipe",))
    fill_empty_files(model)
    src = source_factory(model)
    sword = SwordServer(tmp_path / "reference", password=PASSWORD, reference=True).start()
    try:
        assert cli.baseline(src.base_url + "/", sword).returncode == 0
        clean = cli("audit", "--state", str(cli.state))
        assert clean.returncode == 0, clean.output

        # someone adds a file to one container and removes one from another, by hand
        first, second = [c for c in sword.store.containers() if c.files][:2]
        extra = requests.post(
            sword.em_iri(first.id),
            data=b"added by hand\n",
            headers={
                "Content-Disposition": 'attachment; filename="extra.txt"',
                "Content-Type": "text/plain",
                "Packaging": "http://purl.org/net/sword/package/Binary",
            },
            auth=("sword", PASSWORD),
            timeout=10,
        )
        assert extra.status_code == 201
        gone = second.files[0]
        sword.delete_files(second.id, gone.id)  # the server itself (405 over HTTP)
        report = cli("audit", "--state", str(cli.state))
        assert report.returncode == 1, report.output
        assert "not recorded by the state DB" in report.stdout and "extra.txt" in report.stdout
        assert "missing at the destination" in report.stdout and gone.iri in report.stdout
    finally:
        sword.stop()
