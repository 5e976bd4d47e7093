"""`make demo`: start the local ResourceSync source and SWORD v2 server, mirror, show, stop.

The source is a generated repository in the three publisher layouts the tool is built for
(DSpace 7 ResourceSync module, the classic ResourceSync+SWORD recipe, plain resources).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers.fixtures import SourceModel  # noqa: E402
from tests.servers.rs_source import ResourceSyncSource  # noqa: E402
from tests.servers.sword_server import SwordServer  # noqa: E402
from tools import demo_saf  # noqa: E402
from tools.demo_common import PASSWORD, cli, fresh_state  # noqa: E402

PIPELINE = ROOT / "pipelines" / "demo.toml"
STATE = ROOT / "state" / "demo.sqlite"
SWORD_ROOT = ROOT / "state" / "demo-sword"


def main() -> int:
    fresh_state(STATE)
    shutil.rmtree(SWORD_ROOT, ignore_errors=True)
    model = SourceModel.generate(40, seed=2026)
    source = ResourceSyncSource(model, port=18081).start()
    sword = SwordServer(SWORD_ROOT, port=18082, password=PASSWORD).start()
    try:
        print(f"local ResourceSync source: {source.base_url}/.well-known/resourcesync")
        print(f"local SWORD v2 server:     {sword.sd_iri}")
        code = cli("run", str(PIPELINE.relative_to(ROOT)), "--comment", "demo baseline")
        # the source changes: a new item, a changed title, a withdrawn item
        model.create_item("dspace", title="A new thesis & its data")
        first = sorted(k for k, it in model.items.items() if it.style == "recipe")[0]
        model.update_metadata(first, title="A corrected title")
        model.delete_item(sorted(k for k, it in model.items.items() if it.style == "plain")[0])
        code = max(code, cli("run", str(PIPELINE.relative_to(ROOT)), "--comment", "daily run"))
        code = max(code, cli("status", "--state", str(STATE.relative_to(ROOT))))
        held = sword.store.containers()
        print("\nWhat the destination holds (a few containers of each collection):")
        for collection in sorted({c.collection for c in held}):
            mine = [c for c in held if c.collection == collection]
            mine.sort(key=lambda c: (-len(c.dc.get("creator", [])), -len(c.files)))
            print(f"  collection {collection!r}: {len(mine)} containers")
            for c in mine[:4]:
                title = (c.dc.get("title") or ["?"])[0]
                creators = "; ".join(c.dc.get("creator", [])) or "no creators"
                files = ", ".join(f"{f.name} ({f.size} B)" for f in c.files) or "no files"
                print(f"    [{c.state}] {title}  ({creators})\n        {files}")
        print(f"  {len(held)} containers in all, for {len(model.items)} items at the source")
        return max(
            code, demo_saf.main(source.base_url + "/", sword.sd_iri, sword.col_iri("default"))
        )
    finally:
        source.stop()
        sword.stop()


if __name__ == "__main__":
    sys.exit(main())
