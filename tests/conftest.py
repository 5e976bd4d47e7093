"""Shared fixtures: local servers on 127.0.0.1 and a runner for the real CLI.

Integration tests run the installed command (``python -m sync``) in a subprocess, against the
project's own ResourceSync source and SWORD v2 server, and then assert what the destination
holds (SwordStore reads the server's files).
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers.base import FaultPolicy
from tests.servers.fixtures import SourceModel
from tests.servers.rs_source import ResourceSyncSource
from tests.servers.sword_server import StoredContainer, SwordServer

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "s3cret-Pa55word"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process code may only connect to loopback (pip's approach)."""
    real = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else address
        if (
            isinstance(host, str)
            and host not in ("127.0.0.1", "localhost", "::1")
            and (self.family in (socket.AF_INET, socket.AF_INET6))
        ):
            raise OSError(f"test tried to reach {host}: only loopback is allowed")
        return real(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Cli:
    """Runs ``resync-sword`` as a user would, with the password in the environment only."""

    def __init__(self, cwd: Path, state: Path) -> None:
        self.cwd = cwd
        self.state = state
        self.env = dict(os.environ, SWORD_PASSWORD=PASSWORD, PYTHONPATH=str(ROOT))
        self.env.pop("HTTP_PROXY", None)
        self.env.pop("http_proxy", None)
        self.log: list[CliResult] = []

    def __call__(
        self,
        *args: str,
        timeout: float = 600,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "sync", *args],
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )
        result = CliResult(proc.returncode, proc.stdout, proc.stderr)
        self.log.append(result)
        return result

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "sync", *args],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def baseline_args(
        self, source: str, sword: SwordServer, *extra: str, collection: str = "default"
    ) -> tuple[str, ...]:
        """The arguments of a test baseline: fast (no rate bound, 4 workers)."""
        return (
            "baseline",
            source,
            "--collection",
            sword.col_iri(collection),
            "--service-document",
            sword.sd_iri,
            "--username",
            "sword",
            "--state",
            str(self.state),
            "--rate",
            "0",
            "--workers",
            "4",
            *extra,
        )

    def baseline(
        self, source: str, sword: SwordServer, *extra: str, collection: str = "default"
    ) -> CliResult:
        return self(*self.baseline_args(source, sword, *extra, collection=collection))


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path, tmp_path / "state" / "test.sqlite")


@pytest.fixture
def sword(tmp_path: Path) -> Iterator[SwordServer]:
    server = SwordServer(tmp_path / "sword", password=PASSWORD).start()
    yield server
    server.stop()


def make_source(model: SourceModel, **kw: object) -> ResourceSyncSource:
    return ResourceSyncSource(model, **kw).start()  # type: ignore[arg-type]


@pytest.fixture
def source_factory() -> Iterator[object]:
    started: list[ResourceSyncSource] = []

    def factory(model: SourceModel, **kw: object) -> ResourceSyncSource:
        src = make_source(model, **kw)
        started.append(src)
        return src

    yield factory
    for src in started:
        src.stop()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def snapshot(
    containers: list[StoredContainer],
) -> list[tuple[str | None, tuple[str, ...], tuple[tuple[str, str], ...]]]:
    """What a destination holds, order-free: (title, creators, (file name, md5)...)."""
    out = []
    for c in containers:
        files = tuple(
            sorted((f.name, hashlib.md5(f.path.read_bytes()).hexdigest()) for f in c.files)
        )
        out.append((c.dc.get("title", [None])[0], tuple(c.dc.get("creator", [])), files))
    return sorted(out, key=repr)


def expected_snapshot(
    model: SourceModel,
) -> list[tuple[str | None, tuple[str, ...], tuple[tuple[str, str], ...]]]:
    out = []
    for e in model.expected().values():
        out.append((e.title, tuple(e.creators), tuple(sorted(e.files.items()))))
    return sorted(out, key=repr)


__all__ = ["PASSWORD", "Cli", "FaultPolicy", "expected_snapshot", "md5", "snapshot"]
