"""Crash safety: kill the real CLI at many points; `replay` must end where an uninterrupted
run ends: every item exactly once, complete, byte for byte."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, Cli, expected_snapshot, snapshot
from tests.integration.scenario import mutate
from tests.servers.fixtures import SourceModel
from tests.servers.sword_server import SwordServer

# SWORD request numbers at which the client is killed: spread over discovery, creates,
# uploads and completes of a 12-item baseline (about 45 SWORD requests)
BASELINE_KILL_POINTS = [2, 4, 7, 10, 14, 18, 22, 26, 30, 34, 38]


def _killer(proc_box: dict[str, int], at: int, drop: bool, fired: threading.Event):
    def hook(method: str, path: str, n: int) -> str | None:
        if n == at and "pid" in proc_box and not fired.is_set():
            fired.set()
            os.kill(proc_box["pid"], signal.SIGKILL)
            return "drop" if drop else None  # drop: never lands; else: lands unseen
        return None

    return hook


def _run_killed(cli: Cli, sword: SwordServer, at: int, drop: bool, *args: str) -> bool:
    box: dict[str, int] = {}
    fired = threading.Event()
    sword.httpd.on_request = _killer(box, at, drop, fired)
    proc = cli.popen(*args)
    box["pid"] = proc.pid
    proc.communicate(timeout=300)
    sword.httpd.on_request = None
    return fired.is_set()


@pytest.mark.parametrize("at", BASELINE_KILL_POINTS)
def test_kill_during_baseline_then_replay(tmp_path: Path, at: int, source_factory) -> None:
    model = SourceModel.generate(12, seed=31)
    src = source_factory(model)
    sword = SwordServer(tmp_path / "sword", password=PASSWORD).start()
    try:
        cli = Cli(tmp_path, tmp_path / "state.sqlite")
        args = cli.baseline_args(src.base_url + "/", sword)
        assert _run_killed(cli, sword, at, at % 2 == 1, *args), "kill point not reached"
        replay = cli("replay", "--state", str(cli.state))
        assert replay.returncode == 0, replay.output
        held = sword.store.containers()
        assert snapshot(held) == expected_snapshot(model)  # no duplicates, nothing lost
        assert {c.state for c in held} == {"archived"}
        status = json.loads(cli("status", "--state", str(cli.state), "--json").stdout)
        assert status["items"] == {"complete": 12}
        assert any(r["status"] == "interrupted" for r in status["runs"])
    finally:
        sword.stop()


@pytest.mark.parametrize("at", [3, 9, 15, 21])
def test_kill_during_incremental_then_replay(tmp_path: Path, at: int, source_factory) -> None:
    model = SourceModel.generate(40, seed=32)
    src = source_factory(model)
    sword = SwordServer(tmp_path / "sword", password=PASSWORD).start()
    try:
        cli = Cli(tmp_path, tmp_path / "state.sqlite")
        assert cli.baseline(src.base_url + "/", sword).returncode == 0
        mutate(model, seed=at)
        sword.reset_stats()
        args = ("incremental", "--state", str(cli.state), "--rate", "0", "--workers", "4")
        assert _run_killed(cli, sword, at, at % 2 == 0, *args), "kill point not reached"
        replay = cli("replay", "--state", str(cli.state))
        assert replay.returncode == 0, replay.output
        assert snapshot(sword.store.containers()) == expected_snapshot(model)
    finally:
        sword.stop()


@pytest.mark.parametrize("at", [3, 6, 10, 14, 20, 26])
def test_kill_on_a_server_that_ignores_slug_and_lists_only_titles(
    tmp_path: Path, at: int, source_factory
) -> None:
    """Like DSpace: no Slug, a collection listing with titles and edit links only. A create
    whose answer was lost is found by its title and the source URL in its receipt."""
    model = SourceModel.generate(12, seed=33)
    src = source_factory(model)
    sword = SwordServer(
        tmp_path / "sword", password=PASSWORD, honour_slug=False, listing="titles"
    ).start()
    try:
        cli = Cli(tmp_path, tmp_path / "state.sqlite")
        args = cli.baseline_args(src.base_url + "/", sword)
        assert _run_killed(cli, sword, at, False, *args), "kill point not reached"
        replay = cli("replay", "--state", str(cli.state))
        assert replay.returncode == 0, replay.output
        assert snapshot(sword.store.containers()) == expected_snapshot(model)
    finally:
        sword.stop()
