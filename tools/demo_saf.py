"""The SAF part of ``make demo``: the demo's ResourceSync source mirrored into a DSpace Simple
Archive Format batch, imported with its ``IMPORT.sh`` by the tests' ``dspace import``
stand-in, and the batch read back by the SAF source.

It drives the SAF adapters through the contracts directly (as the tests do); once the engine
and the CLI know the ``saf`` type this becomes ``resync-sword baseline SOURCE --saf OUT_DIR``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sync.destinations.saf import SafDestination  # noqa: E402
from sync.sources.saf import SafSource  # noqa: E402
from tests.saf_support import Importer, MiniSync, ResourceSyncTestSource, item_dc  # noqa: E402

OUT = ROOT / "state" / "demo-saf"
REPO = ROOT / "state" / "demo-saf-dspace"
COLLECTION = "123456789/2"


def main(source_url: str) -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    shutil.rmtree(REPO, ignore_errors=True)
    print(f"\n== SAF: mirroring {source_url} into {OUT.relative_to(ROOT)}/")
    sync = MiniSync(SafDestination(OUT, collection=COLLECTION), COLLECTION)
    errors = sync.run(ResourceSyncTestSource(source_url), 1)
    batch = OUT / "run-0001"
    items = sorted((batch / "add").iterdir())
    print(f"{len(items)} item folders in {batch.relative_to(ROOT)}/add/, for example:")
    example = max(items, key=lambda p: (len(list(p.iterdir())), p.name))
    for path in sorted(example.iterdir()):
        print(f"    {example.name}/{path.name}  ({path.stat().st_size} B)")
    print(f"\n{batch.relative_to(ROOT)}/IMPORT.sh:")
    print("    " + (batch / "IMPORT.sh").read_text("utf-8").replace("\n", "\n    ").rstrip())
    importer = Importer(OUT, REPO)
    done = importer.run("run-0001")
    print(f"imported with the dspace import stand-in: exit {done.returncode}")
    repo = importer.repo
    for handle, item in sorted(repo.items.items())[:3]:
        print(f"    {handle}  {item_dc(item).title}  ({len(item['bitstreams'])} files)")
    print(f"    ... {len(repo.items)} items; waiting batches now: {sync.dest.waiting() or 'none'}")
    back = SafSource(batch / "add")
    entries = list(back.listing())
    print(f"the batch read back as a SAF source: {len(entries)} entries")
    back.close()
    return 1 if errors or done.returncode else 0
