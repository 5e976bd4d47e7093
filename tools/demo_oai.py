"""The OAI-PMH half of `make demo`: start the local DSpace-like OAI-PMH provider and SWORD v2
server, mirror one into the other, change the source, run again, show `status`, stop.

Runs the real CLI on ``pipelines/demo-oai.toml``; needs the OAI-PMH source wired into the
registry and pipeline config (issue #10).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers.fixtures import SourceModel  # noqa: E402
from tests.servers.oai_provider import OaiProvider  # noqa: E402
from tests.servers.sword_server import SwordServer  # noqa: E402
from tools.demo_common import PASSWORD, cli, fresh_state  # noqa: E402

PIPELINE = ROOT / "pipelines" / "demo-oai.toml"
STATE = ROOT / "state" / "demo-oai.sqlite"
SWORD_ROOT = ROOT / "state" / "demo-oai-sword"


def main() -> int:
    fresh_state(STATE)
    shutil.rmtree(SWORD_ROOT, ignore_errors=True)
    model = SourceModel.generate(30, seed=2026, styles=("dspace",))
    provider = OaiProvider(model, port=18083, page_size=10).start()
    sword = SwordServer(SWORD_ROOT, port=18082, password=PASSWORD).start()
    pipeline = str(PIPELINE.relative_to(ROOT))
    try:
        print(f"local OAI-PMH provider: {provider.base_url}?verb=Identify")
        print(f"local SWORD v2 server:  {sword.sd_iri}")
        code = cli("run", pipeline, "--comment", "demo baseline (OAI-PMH)")
        # the source changes: a new item, a changed title, a withdrawn item
        model.create_item("dspace", title="A new thesis harvested over OAI-PMH")
        keys = sorted(model.items)
        model.update_metadata(keys[0], title="A corrected title")
        model.delete_item(keys[1])
        code = max(code, cli("run", pipeline, "--comment", "daily run (OAI-PMH)"))
        code = max(code, cli("status", "--state", str(STATE.relative_to(ROOT))))
        held = sword.store.containers()
        print(f"\n{len(held)} containers at the destination for {len(model.items)} items")
        return code
    finally:
        provider.stop()
        sword.stop()


if __name__ == "__main__":
    sys.exit(main())
