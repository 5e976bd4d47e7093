"""`audit` compares source, state DB and destination, changes nothing, exits 0 only in sync."""

from __future__ import annotations

import requests

from tests.conftest import PASSWORD, Cli
from tests.servers.fixtures import SourceModel
from tests.servers.sword_server import SwordServer


def test_audit_reports_differences_and_changes_nothing(
    cli: Cli, sword: SwordServer, source_factory
) -> None:
    model = SourceModel.generate(15, seed=13)
    src = source_factory(model)
    assert cli.baseline(src.base_url + "/", sword).returncode == 0
    clean = cli("audit", "--state", str(cli.state))
    assert clean.returncode == 0, clean.output
    assert "0 differences" in clean.stdout

    # someone removes a file at the destination, and the source changes an item
    victim = next(c for c in sword.store.containers() if c.files)
    gone = victim.files[0]
    r = requests.delete(gone.iri, auth=("sword", PASSWORD), timeout=10)
    assert r.status_code == 204
    key = next(k for k, it in model.items.items() if it.style == "recipe")
    model.update_metadata(key, title="Changed at the source")

    sword.reset_stats()
    report = cli("audit", "--state", str(cli.state))
    assert report.returncode == 1
    assert gone.name in report.stdout
    assert "changed at the source" in report.stdout
    assert (
        sword.stats.get("POST", 0) + sword.stats.get("PUT", 0) + sword.stats.get("DELETE", 0) == 0
    )
    runs = cli("runs", "--state", str(cli.state), "--json")
    assert '"kind": "baseline"' in runs.stdout and "audit" not in runs.stdout
