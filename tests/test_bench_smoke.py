"""The benchmark (tools/bench.py) at tiny sizes, so that it cannot rot. No timing assertions:
it must run to the end and print its table."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def test_bench_quick_runs_and_prints_the_table() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-m", "tools.bench", "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    out = proc.stdout
    assert "measurement" in out and "target" in out and "result" in out
    for row in (
        "1 speed-up",
        "1 resync-sword / limit",
        "2 incremental HTTP requests",
        "3a peak RSS",
        "3a list reading vs resync 2.0.1",
        "3b peak RSS",
        "3c plain ListRecords loop",
        "3c peak RSS, harvest into state",
        "3c harvest / plain loop (time)",
        "3c same, CLI baseline --limit 1",
        "4 SAF writing / copying",  # its batch was checked file by file (MD5) against the export
        "5 defaults: CLI vs sequential",
        "5 capacity 4, 100 ms: refused",
    ):
        assert row in out, out
