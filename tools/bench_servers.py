"""Launch one local server (ResourceSync source, SWORD v2 or OAI-PMH) for the benchmark, in its
own process.

``python -m tools.bench_servers source [--items N ...]``, ``... sword --root DIR`` or ``... oai
--records N`` (tools/bench_oai.py). The server
prints one JSON line ``{"base_url": ...}`` and then obeys JSON commands on stdin, one per line,
answering each with one JSON line on stdout (commands travel outside HTTP, so they are neither
counted in the stats nor delayed by the artificial latency):

- ``{"cmd": "stats"}``: the request counters (by method, ``total``; the source also counts
  ``documents``: discovery and list documents it served)
- ``{"cmd": "reset"}``: clear the counters
- ``{"cmd": "latency", "value": 0.02}``: change the per-request latency at run time
- ``{"cmd": "capacity", "value": 4}``: above 4 requests in flight answer 503 + Retry-After
  (0: unbounded); ``stats`` then counts the refused ones under ``refused``
- ``{"cmd": "mutate", "share": 0.01, "seed": 1}`` (source): change a share of the items, half
  metadata updates, half file replacements, all reported in the change list
- ``{"cmd": "quit"}``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.servers import rs_source
from tests.servers.base import LocalHTTPServer
from tests.servers.fixtures import SourceModel, xesc
from tests.servers.rs_source import ResourceSyncSource
from tests.servers.sword_server import SwordServer
from tools.bench_oai_server import add_oai_parser, start_oai

BIG_LIST_PATH = "/bigfile/resourcelist.xml"
BIG_FILE_PATH = "/plain/big-file.bin"

_orig_document = rs_source._SourceHandler._document


def _counted_document(self: Any, path: str) -> Any:
    doc = _orig_document(self, path)
    if doc is not None:
        with self.server.stats_lock:
            self.server.stats["documents"] += 1
    return doc


rs_source._SourceHandler._document = _counted_document  # type: ignore[method-assign]


def write_big_file(path: Path, mib: int) -> tuple[str, str]:
    """A ``mib`` MiB file of incompressible bytes, written in 1 MiB blocks: (md5, sha256)."""
    rng = random.Random(42)
    md5, sha = hashlib.md5(), hashlib.sha256()
    block = rng.randbytes(1 << 20)
    with path.open("wb") as out:
        for i in range(mib):
            data = i.to_bytes(8, "big") + block[8:]
            md5.update(data)
            sha.update(data)
            out.write(data)
    return md5.hexdigest(), sha.hexdigest()


def serve_big_file(src: ResourceSyncSource, mib: int, directory: Path) -> None:
    """A one-entry resource list at BIG_LIST_PATH naming a ``mib`` MiB file served from disk."""
    path = directory / "big-file.bin"
    md5, sha = write_big_file(path, mib)
    loc = src.base_url + BIG_FILE_PATH
    doc = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<urlset xmlns="{rs_source.SITEMAP_NS}" xmlns:rs="{rs_source.RS_NS}">\n'
        '<rs:md capability="resourcelist" at="2024-01-01T00:00:00Z"/>\n'
        f"<url><loc>{xesc(loc)}</loc><lastmod>2024-01-01T00:00:00Z</lastmod>"
        f'<rs:md hash="md5:{md5} sha-256:{sha}" length="{mib << 20}"'
        ' type="application/octet-stream"/></url>\n</urlset>\n'
    )
    src.set_override(BIG_LIST_PATH, 200, doc.encode(), {"Content-Type": "application/xml"})
    src.set_override(BIG_FILE_PATH, 200, path, {"Content-Type": "application/octet-stream"})


def mutate(model: SourceModel, share: float, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    with model.lock:
        keys = sorted(model.items)
        n = max(1, round(len(keys) * share)) if keys else 0
        chosen = rng.sample(keys, n)
        done = {"metadata": 0, "file": 0}
        for i, key in enumerate(chosen):
            item = model.items[key]
            if i % 2 == 0 and item.style != "plain":
                model.update_metadata(key, title=f"{item.title} (revised {seed})")
                done["metadata"] += 1
            elif item.files:
                new = rng.randbytes(max(1, model.file_size))
                model.replace_file(key, 0, new)
                done["file"] += 1
            else:
                model.update_metadata(key, title=f"{item.title} (revised {seed})")
                done["metadata"] += 1
    return {"changes": len(chosen), **done}


def _answer(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def serve(httpd: LocalHTTPServer, model: SourceModel | None) -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            cmd = json.loads(line)
            name = cmd.get("cmd")
            if name == "stats":
                with httpd.stats_lock:
                    _answer({"stats": dict(httpd.stats)})
            elif name == "reset":
                httpd.reset_stats()
                _answer({"ok": True})
            elif name == "latency":
                httpd.latency = float(cmd["value"])
                _answer({"ok": True})
            elif name == "capacity":
                httpd.capacity = int(cmd["value"])
                httpd.retry_after = str(cmd.get("retry_after", "1"))
                _answer({"ok": True})
            elif name == "mutate" and model is not None:
                _answer(mutate(model, float(cmd["share"]), int(cmd.get("seed", 1))))
            elif name == "quit":
                _answer({"ok": True})
                return
            else:
                _answer({"error": f"unknown command {name!r}"})
        except Exception as exc:  # the bench must see the failure, not hang
            _answer({"error": repr(exc)})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="kind", required=True)
    s = sub.add_parser("source")
    s.add_argument("--items", type=int, default=0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--styles", default="recipe")
    s.add_argument("--files-per-item", type=int, default=2)
    s.add_argument("--file-size", type=int, default=2048)
    s.add_argument("--latency", type=float, default=0.0)
    s.add_argument("--synthetic", type=int, default=0)
    s.add_argument("--changelists", default="single")
    s.add_argument("--big-file-mib", type=int, default=0)
    w = sub.add_parser("sword")
    w.add_argument("--root", type=Path, required=True)
    w.add_argument("--latency", type=float, default=0.0)
    add_oai_parser(sub)
    args = parser.parse_args(argv)

    if args.kind == "oai":
        oai = start_oai(args)
        _answer({"base_url": oai.base_url})
        try:
            serve(oai.httpd, None)  # type: ignore[arg-type]
        finally:
            oai.stop()
        return 0
    if args.kind == "sword":
        sword = SwordServer(
            args.root,
            password=os.environ.get("SWORD_PASSWORD", "secret"),
            collections=("default", "articles", "theses"),
            latency=args.latency,
        ).start()
        _answer({"base_url": sword.base_url, "sd_iri": sword.sd_iri})
        try:
            serve(sword.httpd, None)
        finally:
            sword.stop()
        return 0

    model = SourceModel.generate(
        args.items,
        seed=args.seed,
        styles=tuple(args.styles.split(",")),
        max_files=max(3, args.files_per_item),
        file_size=args.file_size,
        files_per_item=args.files_per_item,
    )
    src = ResourceSyncSource(
        model,
        changelists=args.changelists,
        latency=args.latency,
        synthetic_entries=args.synthetic,
    ).start()
    with tempfile.TemporaryDirectory(prefix="bench-src-") as tmp:
        if args.big_file_mib:
            serve_big_file(src, args.big_file_mib, Path(tmp))
        if args.items:
            with model.lock:  # build the resource index once, before anything is timed
                model.resource_entries()
        _answer({"base_url": src.base_url})
        try:
            serve(src.httpd, model)  # type: ignore[arg-type]
        finally:
            src.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
