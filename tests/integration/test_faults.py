"""Reliability (#4): faults on both sides, failures that outlast the retries, politeness.

Every test runs the real CLI against the local servers. Faults are injected by the servers
(``FaultPolicy``): HTTP 500 and 503, connection resets, stalls longer than the client's read
timeout, and bodies cut off half-way (after the server acted: the hard case for a POST).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import PASSWORD, Cli, expected_snapshot, snapshot
from tests.integration.scenario import mutate
from tests.servers.base import FAULT_KINDS, FaultPolicy
from tests.servers.fixtures import SourceModel
from tests.servers.sword_server import StoredContainer, SwordServer

# short timeouts and backoff so that a faulty run stays quick; enough attempts that a request
# failing every time is rare (0.1 ** 5), and replay takes care of the rest
FAST_RETRIES = (
    "read_timeout = 1.0\nconnect_timeout = 2.0\nbackoff_initial = 0.05\n"
    "attempts = 5\nmax_retry_seconds = 20\n"
)
MAX_REPLAYS = 5


def _pipeline(
    tmp_path: Path, name: str, source: str, sword: SwordServer, state: Path, options: str
) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'source = "{source}"\n'
        f'state = "{state}"\n'
        "[destination]\n"
        f'service_document = "{sword.sd_iri}"\n'
        f'collection = "{sword.col_iri("default")}"\n'
        'username = "sword"\n'
        'password_env = "SWORD_PASSWORD"\n'
        "[options]\n" + options,
        encoding="utf-8",
    )
    return path


def _full(containers: list[StoredContainer]) -> list[tuple[str, str, tuple[str, ...]]]:
    """Everything a container holds: its DC (all terms) and its files with their bytes' md5."""
    out = []
    for c in containers:
        dc = json.dumps(
            {k: sorted(v) for k, v in c.dc.items() if k != "identifier"}, sort_keys=True
        )
        files = tuple(sorted(f"{f.name}:{f.md5}:{f.size}" for f in c.files))
        out.append((c.state, dc, files))
    return sorted(out)


def _replay_until_clean(cli: Cli, state: Path) -> int:
    """Replay until exit 0 (at most MAX_REPLAYS times); returns how many were needed."""
    for n in range(1, MAX_REPLAYS + 1):
        result = cli("replay", "--state", str(state))
        assert result.returncode in (0, 1), result.output
        if result.returncode == 0:
            return n
    raise AssertionError(f"replay did not converge in {MAX_REPLAYS} runs:\n{result.output}")


def test_500_items_baseline_and_incremental_under_faults_on_both_sides(
    tmp_path: Path, source_factory
) -> None:
    """10% of all requests to the source and to the SWORD server fail (every fault kind).

    Faults stay ON during `replay`: real servers do not heal because we retry, and replay must
    converge under the same conditions (it only retries what is unfinished, so each replay has
    less to do). The result must equal a run of the same scenario without faults, with no
    duplicate container.
    """
    seed = 41
    clean_model = SourceModel.generate(500, seed=seed)
    faulty_model = SourceModel.generate(500, seed=seed)
    src_faults = FaultPolicy(rate=0.1, kinds=FAULT_KINDS, seed=3, stall_seconds=1.5)
    sword_faults = FaultPolicy(rate=0.1, kinds=FAULT_KINDS, seed=4, stall_seconds=1.5)
    clean_src = source_factory(clean_model)
    faulty_src = source_factory(faulty_model, faults=src_faults)
    clean_sword = SwordServer(tmp_path / "clean-sword", password=PASSWORD).start()
    faulty_sword = SwordServer(
        tmp_path / "faulty-sword", password=PASSWORD, faults=sword_faults
    ).start()
    try:
        opts = "workers = 8\nper_host_rate = 0\n" + FAST_RETRIES
        clean_cli = Cli(tmp_path, tmp_path / "clean.sqlite")
        faulty_cli = Cli(tmp_path, tmp_path / "faulty.sqlite")
        clean_pipe = _pipeline(
            tmp_path, "clean", clean_src.base_url + "/", clean_sword, clean_cli.state, opts
        )
        faulty_pipe = _pipeline(
            tmp_path, "faulty", faulty_src.base_url + "/", faulty_sword, faulty_cli.state, opts
        )

        # -- baseline
        assert clean_cli("run", str(clean_pipe)).returncode == 0
        first = faulty_cli("run", str(faulty_pipe))
        assert first.returncode in (0, 1), first.output
        assert "Traceback" not in first.output and "internal error" not in first.output
        assert faulty_sword.stats["total"] > 0 and faulty_src.stats["total"] > 0
        if first.returncode == 1:
            _replay_until_clean(faulty_cli, faulty_cli.state)
        held = faulty_sword.store.containers()
        assert len(held) == 500  # no duplicates
        assert snapshot(held) == expected_snapshot(faulty_model)
        assert _full(held) == _full(clean_sword.store.containers())

        # -- a day of changes, then the incremental run, still under faults
        mutate(clean_model)
        mutate(faulty_model)
        assert clean_cli("run", str(clean_pipe)).returncode == 0
        second = faulty_cli("run", str(faulty_pipe))
        assert second.returncode in (0, 1), second.output
        assert "Traceback" not in second.output and "internal error" not in second.output
        runs = json.loads(faulty_cli("runs", "--state", str(faulty_cli.state), "--json").stdout)
        assert runs[-1]["kind"] == "incremental"
        if second.returncode == 1:
            _replay_until_clean(faulty_cli, faulty_cli.state)
        held = faulty_sword.store.containers()
        assert len(held) == 510  # 500 - 10 deleted + 20 created, none twice
        assert snapshot(held) == expected_snapshot(faulty_model)
        assert _full(held) == _full(clean_sword.store.containers())
        # nothing left over in the destination: deleted items are gone, not lingering
        kept = {c.slug for c in faulty_sword.store.containers()}
        assert len(kept) == len(held)

        # the faults were real: every kind was served, on both sides
        assert set(src_faults.served) == set(FAULT_KINDS), src_faults.served
        assert set(sword_faults.served) == set(FAULT_KINDS), sword_faults.served
        assert sum(sword_faults.served.values()) > 100
        status = json.loads(faulty_cli("status", "--state", str(faulty_cli.state), "--json").stdout)
        assert status["items"].get("complete") == 510
        assert status["not_synced"] == []

        # with the faults gone, an audit finds source, state and destination in agreement
        faulty_sword.faults = FaultPolicy()
        assert faulty_src.httpd is not None
        faulty_src.httpd.faults = FaultPolicy()
        audit = faulty_cli("audit", "--state", str(faulty_cli.state))
        assert audit.returncode == 0, audit.output
    finally:
        clean_sword.stop()
        faulty_sword.stop()


def test_a_failure_that_outlasts_the_retries_fails_that_item_only(
    cli: Cli, sword: SwordServer, source_factory
) -> None:
    model = SourceModel.generate(12, seed=21, styles=("recipe",))
    src = source_factory(model)
    victim = next(it for it in model.items.values() if it.files)
    bad_path = f"/files/{victim.number}/"
    bad_loc = next(
        e.loc for e in model.resource_entries() if e.loc.startswith(src.base_url + bad_path)
    )
    src.set_override(bad_loc, 500, b"internal server error\n", {"Content-Type": "text/plain"})
    pipe = _pipeline(
        cli.cwd,
        "p",
        src.base_url + "/",
        sword,
        cli.state,
        "workers = 4\nper_host_rate = 0\n"
        "read_timeout = 5.0\nbackoff_initial = 0.01\nattempts = 3\nmax_retry_seconds = 5\n",
    )
    src.reset_stats()
    result = cli("run", str(pipe))
    assert result.returncode == 1, result.output
    assert bad_loc in result.stderr and "500" in result.stderr
    assert src.stats["GET"] >= 3  # the bad resource was tried `attempts` times (and more)
    held = sword.store.containers()
    assert len(held) == 11
    assert victim.title not in {c.dc.get("title", [None])[0] for c in held}

    status = json.loads(cli("status", "--state", str(cli.state), "--json").stdout)
    assert status["items"] == {"complete": 11, "failed": 1}
    [failing] = status["not_synced"]
    assert failing["status"] == "failed" and failing["code"] == "fetch"
    assert bad_loc in failing["error"] and "HTTP 500" in failing["error"]
    assert status["runs"][-1]["failed"] == 1 and status["runs"][-1]["status"] == "partial"

    # while the fault lasts, replay fails the same way (exit 1) and deposits nothing
    again = cli("replay", "--state", str(cli.state))
    assert again.returncode == 1
    assert len(sword.store.containers()) == 11

    # the fault is gone: replay deposits the item, nothing else changes
    src.clear_overrides()
    sword.reset_stats()
    fixed = cli("replay", "--state", str(cli.state))
    assert fixed.returncode == 0, fixed.output
    assert sword.stats.get("DELETE", 0) == 0
    assert snapshot(sword.store.containers()) == expected_snapshot(model)
    status = json.loads(cli("status", "--state", str(cli.state), "--json").stdout)
    assert status["items"] == {"complete": 12} and status["not_synced"] == []


def test_retry_after_is_honoured(cli: Cli, sword: SwordServer, source_factory) -> None:
    """A 503 with Retry-After is retried (how long it waits is checked in the unit tests with
    an injected sleep: tests/unit/test_http.py), and the run ends complete."""
    model = SourceModel.generate(3, seed=22, styles=("plain",))
    src = source_factory(model)
    loc = model.resource_entries()[0].loc
    hits: list[str] = []
    assert src.httpd is not None

    def hook(method: str, path: str, n: int) -> str | None:
        if loc.endswith(path):
            hits.append(method)
            if len(hits) == 2:
                src.clear_overrides()
        return None

    src.set_override(loc, 503, b"busy\n", {"Retry-After": "1"})
    src.httpd.on_request = hook
    pipe = _pipeline(
        cli.cwd,
        "p",
        src.base_url + "/",
        sword,
        cli.state,
        "workers = 2\nper_host_rate = 0\nbackoff_initial = 0.01\nattempts = 3\n",
    )
    result = cli("run", str(pipe))
    src.httpd.on_request = None
    assert result.returncode == 0, result.output
    assert len(hits) >= 2  # hit 1 got the 503, hit 2 the file
    assert snapshot(sword.store.containers()) == expected_snapshot(model)


def test_limit_syncs_at_most_n_items_and_the_next_run_continues(
    cli: Cli, sword: SwordServer, source_factory
) -> None:
    model = SourceModel.generate(12, seed=23)
    src = source_factory(model)
    first = cli.baseline(src.base_url + "/", sword, "--limit", "5")
    # a run stopped at --limit did what was asked (exit 0, status "limited", no cursor):
    # the rest is left for the next run
    assert first.returncode == 0, first.output
    assert "--limit 5" in first.stderr
    assert len(sword.store.containers()) == 5
    runs = json.loads(cli("runs", "--state", str(cli.state), "--json").stdout)
    assert runs[-1]["status"] == "limited" and runs[-1]["created"] == 5

    second = cli.baseline(src.base_url + "/", sword, "--limit", "5")
    assert second.returncode == 0, second.output
    assert len(sword.store.containers()) == 10
    third = cli.baseline(src.base_url + "/", sword, "--limit", "5")
    assert third.returncode == 0, third.output
    held = sword.store.containers()
    assert snapshot(held) == expected_snapshot(model)  # 12, none twice
    runs = json.loads(cli("runs", "--state", str(cli.state), "--json").stdout)
    assert [r["created"] for r in runs] == [5, 5, 2]
    assert [r["status"] for r in runs] == ["limited", "limited", "ok"]


def test_replay_finishes_a_limited_run(cli: Cli, sword: SwordServer, source_factory) -> None:
    model = SourceModel.generate(9, seed=25)
    src = source_factory(model)
    assert cli.baseline(src.base_url + "/", sword, "--limit", "4").returncode == 0
    replay = cli("replay", "--state", str(cli.state))
    assert replay.returncode == 0, replay.output
    assert snapshot(sword.store.containers()) == expected_snapshot(model)


def test_per_host_concurrency_is_bounded_at_the_servers(
    cli: Cli, sword: SwordServer, source_factory
) -> None:
    model = SourceModel.generate(30, seed=24)
    src = source_factory(model, latency=0.03)
    sword.latency = 0.03
    result = cli.baseline(
        src.base_url + "/", sword, "--workers", "8", "--per-host-concurrency", "2"
    )
    assert result.returncode == 0, result.output
    assert snapshot(sword.store.containers()) == expected_snapshot(model)
    assert src.httpd is not None
    # never more than 2 requests in flight at either host, and the bound was actually reached
    assert src.httpd.max_in_flight == 2
    assert sword.httpd.max_in_flight == 2

    # the same without the bound: the 8 workers do overlap (the measurement can see it)
    model2 = SourceModel.generate(30, seed=25)
    src2 = source_factory(model2, latency=0.03)
    other = Cli(cli.cwd, cli.cwd / "state" / "other.sqlite")
    result = other.baseline(src2.base_url + "/", sword, "--workers", "8")
    assert result.returncode == 0, result.output
    assert src2.httpd is not None and src2.httpd.max_in_flight > 2
