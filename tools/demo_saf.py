"""The SAF part of ``make demo``, with the real CLI: the demo's ResourceSync source mirrored into
a DSpace Simple Archive Format batch (``resync-sword baseline SOURCE --saf OUT_DIR``), the
batch imported with its ``IMPORT.sh`` by the tests' ``dspace import`` stand-in, and the batch
read back as a SAF source into the local SWORD server (``resync-sword baseline PATH``).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.saf_support import Importer, item_dc  # noqa: E402
from tools.demo_common import cli, fresh_state  # noqa: E402

OUT = ROOT / "state" / "demo-saf"
REPO = ROOT / "state" / "demo-saf-dspace"
COLLECTION = "123456789/2"


def main(source_url: str, sd_iri: str, col_iri: str) -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    shutil.rmtree(REPO, ignore_errors=True)
    for name in ("demo-saf", "demo-saf-back"):
        fresh_state(ROOT / "state" / f"{name}.sqlite")
    print(f"\n== SAF: mirroring {source_url} into {OUT.relative_to(ROOT)}/")
    code = cli(
        "-q",
        "baseline",
        source_url,
        "--saf",
        str(OUT.relative_to(ROOT)),
        "--saf-collection",
        COLLECTION,
        "--state",
        "state/demo-saf.sqlite",
        "--name",
        "demo-saf",
        "--comment",
        "demo: ResourceSync -> SAF",
    )
    batch = OUT / "run-0001"
    items = sorted((batch / "add").iterdir())
    print(f"{len(items)} item folders in {batch.relative_to(ROOT)}/add/, for example:")
    example = max(items, key=lambda p: (len(list(p.iterdir())), p.name))
    for path in sorted(example.iterdir()):
        print(f"    {example.name}/{path.name}  ({path.stat().st_size} B)")
    print(f"\n{batch.relative_to(ROOT)}/IMPORT.sh:")
    print("    " + (batch / "IMPORT.sh").read_text("utf-8").replace("\n", "\n    ").rstrip())
    code = max(code, cli("status", "--state", "state/demo-saf.sqlite"))
    importer = Importer(OUT, REPO)
    done = importer.run("run-0001")
    print(f"\nimported with the dspace import stand-in: exit {done.returncode}")
    repo = importer.repo
    for handle, item in sorted(repo.items.items())[:3]:
        print(f"    {handle}  {item_dc(item).title}  ({len(item['bitstreams'])} files)")
    print(f"    ... {len(repo.items)} items in the imported repository")
    print("\n== SAF as a source: the batch mirrored into the local SWORD server")
    code = max(
        code,
        cli(
            "-q",
            "baseline",
            str((batch / "add").relative_to(ROOT)),
            "--collection",
            col_iri,
            "--service-document",
            sd_iri,
            "--username",
            "sword",
            "--state",
            "state/demo-saf-back.sqlite",
            "--name",
            "demo-saf-back",
            "--comment",
            "demo: SAF -> SWORD",
        ),
    )
    return max(code, done.returncode)
