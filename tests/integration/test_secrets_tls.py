"""Secrets and TLS (#4): the password never comes from the command line and never leaks into
anything a run writes; TLS is verified unless --insecure says otherwise (with a warning)."""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, Cli, expected_snapshot, snapshot
from tests.servers.base import FaultPolicy
from tests.servers.fixtures import SourceModel
from tests.servers.sword_server import SwordServer

WRONG = "wr0ng-Passw0rd-xyz"


def _pipeline(cli: Cli, source: str, sword: SwordServer, extra: str = "") -> Path:
    path = cli.cwd / "p.toml"
    path.write_text(
        f'source = "{source}"\nstate = "{cli.state}"\n[destination]\n'
        f'service_document = "{sword.sd_iri}"\ncollection = "{sword.col_iri("default")}"\n'
        'username = "sword"\n' + extra + "[options]\nworkers = 4\nper_host_rate = 0\n"
        "read_timeout = 2.0\nbackoff_initial = 0.01\nattempts = 3\n",
        encoding="utf-8",
    )
    return path


# -- secrets -------------------------------------------------------------------------------
def test_password_is_never_a_command_line_argument(cli: Cli, sword: SwordServer) -> None:
    result = cli(
        "baseline",
        "http://127.0.0.1:9/",
        "--collection",
        sword.col_iri("default"),
        "--username",
        "sword",
        "--password",
        PASSWORD,
    )
    assert result.returncode == 2
    assert "--password" in result.output and "No such option" in result.output
    assert sword.stats["total"] == 0


def test_password_file_must_be_owner_only_and_files_must_not_hold_it(
    cli: Cli, sword: SwordServer, source_factory
) -> None:
    model = SourceModel.generate(3, seed=61)
    src = source_factory(model)
    secret = cli.cwd / "sword.pw"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    secret.chmod(0o644)
    extra = f'password_env = "RSW_TEST_UNSET"\npassword_file = "{secret}"\n'
    pipe = _pipeline(cli, src.base_url + "/", sword, extra)
    refused = cli("run", str(pipe))
    assert refused.returncode == 2, refused.output
    assert "readable by others" in refused.stderr and str(secret) in refused.stderr
    assert "chmod 600" in refused.stderr
    assert sword.store.containers() == []

    secret.chmod(0o600)
    ok = cli("run", str(pipe), env={"SWORD_PASSWORD": ""})
    assert ok.returncode == 0, ok.output
    assert snapshot(sword.store.containers()) == expected_snapshot(model)

    in_file = _pipeline(cli, src.base_url + "/", sword, f'password = "{PASSWORD}"\n')
    result = cli("run", str(in_file))
    assert result.returncode == 2 and "must not hold the password" in result.stderr
    assert PASSWORD not in result.output


def test_secrets_never_reach_output_state_logs_or_temp_files(
    tmp_path: Path, cli: Cli, source_factory
) -> None:
    model = SourceModel.generate(20, seed=62)
    src = source_factory(model)
    sword = SwordServer(
        tmp_path / "sword",
        password=PASSWORD,
        faults=FaultPolicy(rate=0.25, kinds=("500", "503", "reset", "truncate"), seed=9),
    ).start()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"TMPDIR": str(tmp)}
    # one resource that answers 500 for good: the runs surely go through failure paths
    # (the random faults alone are mostly absorbed by retries)
    broken = next(e.loc for e in model.resource_entries() if "/plain/" in e.loc)
    src.set_override(broken, 500, b"internal error\n")
    try:
        pipe = _pipeline(cli, src.base_url + "/", sword)
        # a wrong password: 401 on every request
        wrong = cli("--debug", "run", str(pipe), env={**env, "SWORD_PASSWORD": WRONG})
        assert wrong.returncode == 1, wrong.output
        assert "401" in wrong.stderr
        # the right one, through 5xx, resets and cut-off answers; then replays
        cli("--debug", "run", str(pipe), env=env)
        for _ in range(5):
            if cli("--debug", "replay", "--state", str(cli.state), env=env).returncode == 0:
                break
        cli("status", "--state", str(cli.state), "--json", env=env)
        cli("runs", "--state", str(cli.state), env=env)
        cli("--debug", "audit", "--state", str(cli.state), env=env)
    finally:
        sword.stop()
    assert any(r.returncode == 1 for r in cli.log[1:])  # the faults did fail something

    needles = []
    for pw in (PASSWORD, WRONG):
        needles += [pw, base64.b64encode(f"sword:{pw}".encode()).decode()]
    written = [r.stdout + r.stderr for r in cli.log]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.endswith("-wal") or p.suffix == ".sqlite" for p in files)
    for needle in needles:
        for text in written:
            assert needle not in text, needle
        for p in files:
            assert needle.encode() not in p.read_bytes(), (needle, p)


# -- TLS -----------------------------------------------------------------------------------
def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, Path]:
    """A private CA and a certificate for 127.0.0.1 signed by it (openssl command line)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    d = tmp_path / "tls"
    d.mkdir()
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=resync-sword test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip
    _openssl(
        "req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1",
        cwd=d,
    )  # fmt: skip
    (d / "ext.cnf").write_text(
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf",
        cwd=d,
    )  # fmt: skip
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}


def test_tls_is_verified_unless_insecure(
    tmp_path: Path, cli: Cli, sword: SwordServer, source_factory, tls_files: dict[str, Path]
) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tls_files["cert"], tls_files["key"])
    model = SourceModel.generate(6, seed=63)
    src = source_factory(model, ssl_context=ctx)
    assert src.base_url.startswith("https://")

    # verification is on by default: a certificate from an unknown CA is refused
    refused = cli.baseline(src.base_url + "/", sword)
    assert refused.returncode == 1, refused.output
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr or "certificate" in refused.stderr
    assert src.base_url in refused.stderr
    assert sword.store.containers() == []

    # the private CA given with --ca-bundle: verified and accepted
    ok = cli.baseline(src.base_url + "/", sword, "--ca-bundle", str(tls_files["ca"]))
    assert ok.returncode == 0, ok.output
    assert snapshot(sword.store.containers()) == expected_snapshot(model)
    assert "verification is OFF" not in ok.stderr

    # --insecure turns verification off for that run only, with a warning
    other = Cli(tmp_path, tmp_path / "insecure.sqlite")
    sword2 = SwordServer(tmp_path / "sword2", password=PASSWORD).start()
    try:
        insecure = other.baseline(src.base_url + "/", sword2, "--insecure")
        assert insecure.returncode == 0, insecure.output
        assert "TLS certificate verification is OFF" in insecure.stderr
        assert snapshot(sword2.store.containers()) == expected_snapshot(model)
        # the next run does not inherit --insecure from the state DB
        model.update_metadata(next(iter(model.items)), title="Changed later")
        later = other("incremental", "--state", str(other.state))
        assert later.returncode == 1, later.output
        assert "certificate" in later.stderr.lower()
        state = json.loads(other("status", "--state", str(other.state), "--json").stdout)
        assert state["runs"][-1]["status"] == "failed"
    finally:
        sword2.stop()

    # and a pipeline file cannot turn verification off
    pipe = _pipeline(cli, src.base_url + "/", sword)
    pipe.write_text(pipe.read_text() + "verify_tls = false\n", encoding="utf-8")
    result = cli("run", str(pipe))
    assert result.returncode == 2 and "--insecure" in result.stderr
