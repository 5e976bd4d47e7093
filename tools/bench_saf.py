"""Part 4 of the benchmark (issue #12 target 4): writing a SAF archive against copying its bytes.

What is measured, and why this way:

- **The source is a ``dspace export`` folder** read by resync-sword's SAF source, on the same
  disk: no HTTP server shares the two cores and no network latency hides the writing, so what
  differs from a plain copy is what resync-sword does on the way (listing and hashing, fetch
  and verify, staging, metadata, state DB, fsyncs). It is also a real use: moving items from
  one DSpace instance to another (export, then import into the other one's collection).
- Each item holds a PDF-like file of 256 KiB to 3 MiB (sizes spread log-uniformly, about
  1.1 MiB on average: 2,000 items are about 2.2 GiB) and a 1 to 4 KiB text file, both in the
  ORIGINAL bundle, plus ``dublin_core.xml``, ``handle`` and ``contents``. Content is
  deterministic (seeded) and incompressible.
- **resync-sword** runs as users run it, ``resync-sword baseline EXPORT --saf OUT
  --saf-collection 123456789/2`` (default options) in a subprocess: wall time, CPU, peak RSS.
  Its batch is then checked: every file of the export is in it, byte for byte (MD5).
- **The reference** copies the same export tree with ``cp -r`` on the same disk in the same
  run (same items, same file count and sizes as the batch ends up holding, give or take the
  one-line ``handle`` / ``collections`` files), then fsyncs every copied file (8 at a time,
  as many as resync-sword's workers): resync-sword's batch is on disk when its run ends (each
  item folder is fsynced before it enters the batch), so the target compares like with like.
  The copy left in the page cache is printed too: it bounds what any tool can do that reads
  every byte through MD5 (here MD5 runs at about half the speed of a kernel copy).
- Both start with the export in the page cache and nothing dirty (it is fsynced first), so
  neither pays for the other's writeback; the copy is deleted after resync-sword's run, not
  before it, so neither pays for the other's deletes either (ext4 without a journal skips
  recently freed inodes on every create).

Target: resync-sword's MiB/s at least 0.8 x the durable copy's.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sync.destinations.saf_files import fsync_path

if TYPE_CHECKING:
    from tools.bench import Bench, CliRun, Row

KIB = 1 << 10
MIB = 1 << 20
COLLECTION = "123456789/2"
PDF_NAME = "article.pdf"
TEXT_NAME = "abstract.txt"
MIN_PDF = 256 * KIB
MAX_PDF = 3 * MIB
TARGET = 0.8
GOLDEN = 0.6180339887498949


def pdf_size(i: int) -> int:
    """Item ``i``'s PDF size: log-uniform between MIN_PDF and MAX_PDF (golden-ratio spread, so
    any run of consecutive items covers the range)."""
    frac = (i * GOLDEN) % 1.0
    return int(MIN_PDF * math.exp(frac * math.log(MAX_PDF / MIN_PDF)))


def text_size(i: int) -> int:
    return KIB + (i * 733) % (3 * KIB)


@dataclass(frozen=True)
class Export:
    """A generated export: where it is, and what the files of its items hash to."""

    root: Path
    items: int
    files: int  # every file of the tree (metadata files too)
    bytes: int  # every byte of the tree
    md5s: dict[str, int]  # MD5 of each ORIGINAL file -> how many files have it


def _dublin_core(i: int) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<dublin_core schema="dc">\n'
        f'  <dcvalue element="title" qualifier="none">Benchmark article {i}</dcvalue>\n'
        f'  <dcvalue element="contributor" qualifier="author">Author {i % 97}, A.</dcvalue>\n'
        f'  <dcvalue element="date" qualifier="issued">{2000 + i % 25}-01-01</dcvalue>\n'
        f'  <dcvalue element="description" qualifier="abstract">Abstract of article {i}: '
        f"{'lorem ipsum ' * 20}</dcvalue>\n"
        f'  <dcvalue element="identifier" qualifier="uri">'
        f"https://hdl.handle.net/123456789/{1000 + i}</dcvalue>\n"
        "</dublin_core>\n"
    ).encode()


def write_export(root: Path, items: int, *, seed: int = 4) -> Export:
    """A ``dspace export`` folder of ``items`` items (see the module docstring), fsynced."""
    block = random.Random(seed).randbytes(MAX_PDF + MIB)
    words = b"repository mirror archive metadata item collection bitstream handle "
    md5s: dict[str, int] = {}
    files = total = 0
    for i in range(items):
        folder = root / f"item_{i:05d}"
        folder.mkdir(parents=True)
        header = f"%PDF-1.5\n%item {i}\n".encode()
        size = pdf_size(i)
        offset = (i * 104_729) % (len(block) - size)
        pdf = header + block[offset : offset + size - len(header)]
        text = (words * (text_size(i) // len(words) + 1))[: text_size(i)]
        parts = {
            "dublin_core.xml": _dublin_core(i),
            "handle": f"123456789/{1000 + i}\n".encode(),
            "contents": f"{PDF_NAME}\tbundle:ORIGINAL\n{TEXT_NAME}\tbundle:ORIGINAL\n".encode(),
            PDF_NAME: pdf,
            TEXT_NAME: text,
        }
        for name, data in parts.items():
            (folder / name).write_bytes(data)
            files += 1
            total += len(data)
        for data in (pdf, text):
            digest = hashlib.md5(data).hexdigest()
            md5s[digest] = md5s.get(digest, 0) + 1
    fsync_tree(root)
    return Export(root, items, files, total, md5s)


def fsync_tree(root: Path, *, threads: int = 8) -> None:
    """Every file, then every folder, under ``root`` on disk, ``threads`` fsyncs at a time (as
    many as resync-sword's default workers, so the disk sees the same queue depth)."""
    files: list[str] = []
    folders: list[str] = []
    for folder, _dirs, names in os.walk(root):
        files += [os.path.join(folder, name) for name in names]
        folders.append(folder)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fsync_path, files))
        list(pool.map(fsync_path, folders))


def tree_size(root: Path) -> tuple[int, int]:
    """(files, bytes) under ``root``."""
    files = total = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            files += 1
            total += os.path.getsize(os.path.join(folder, name))
    return files, total


def check_batch(out: Path, export: Export) -> tuple[int, int]:
    """The batch resync-sword wrote holds every file of the export, byte for byte (by MD5),
    in one item folder per item; returns its (files, bytes). Raises on any difference."""
    adds = sorted(out.glob("run-*/add"))
    if len(adds) != 1:
        raise RuntimeError(f"expected one batch with an add/ folder under {out}, found {adds}")
    items = [p for p in adds[0].iterdir() if p.is_dir()]
    if len(items) != export.items:
        raise RuntimeError(f"the batch holds {len(items)} items, the export {export.items}")
    found: dict[str, int] = {}
    for item in items:
        for line in (item / "contents").read_text(encoding="utf-8").splitlines():
            name = line.split("\t")[0]
            digest = hashlib.md5((item / name).read_bytes()).hexdigest()
            found[digest] = found.get(digest, 0) + 1
    if found != export.md5s:
        missing = len(export.md5s.keys() - found.keys())
        raise RuntimeError(f"the batch's files differ from the export's ({missing} missing)")
    return tree_size(adds[0])


def saf_writing(bench: Bench) -> list[Row]:
    """Part 4: rows for the SAF batch written by the CLI and its copy reference."""
    from tools.bench import Row, run_argv

    n = bench.saf_items
    work = bench.tmp / "saf"
    bench.say(f"4. SAF: writing a {n}-item archive against copying the same bytes")
    start = time.perf_counter()
    export = write_export(work / "export", n)
    mib = export.bytes / MIB
    bench.say(
        f"   export: {export.files} files, {mib:.0f} MiB, written in "
        f"{time.perf_counter() - start:.1f} s"
    )
    copy = run_argv(
        ["cp", "-r", str(export.root), str(work / "copy")],
        cwd=bench.tmp,
        env=bench.env,
        timeout=bench.timeout,
    ).check()
    start = time.perf_counter()
    fsync_tree(work / "copy")
    synced = time.perf_counter() - start
    copied_files, copied_bytes = tree_size(work / "copy")
    out = work / "out"
    run = cli_baseline(bench, export.root, out, work / "saf.sqlite")
    batch_files, batch_bytes = check_batch(out, export)
    # removed only now: on ext4 without a journal, every create skips the inodes freed in the
    # last minutes, so deleting 10,000 files just before a run would slow that run down
    shutil.rmtree(work / "copy")
    copy_rate = copied_bytes / MIB / copy.seconds
    durable_rate = copied_bytes / MIB / (copy.seconds + synced)
    rate = batch_bytes / MIB / run.seconds
    ratio = rate / durable_rate
    bench.say(
        f"   cp -r: {copied_files} files, {copied_bytes / MIB:.0f} MiB in {copy.seconds:.1f} s "
        f"({copy.cpu_seconds:.1f} s CPU): {copy_rate:.0f} MiB/s; then fsync {synced:.1f} s"
    )
    bench.say(
        f"   resync-sword: {batch_files} files, {batch_bytes / MIB:.0f} MiB in "
        f"{run.seconds:.1f} s ({run.cpu_seconds:.1f} s CPU, peak RSS {run.max_rss_mib:.0f} MiB):"
        f" {rate:.0f} MiB/s"
    )
    shutil.rmtree(work, ignore_errors=True)
    return [
        Row(
            f"4 SAF batch, {n} items ({mib:.0f} MiB)",
            f"{rate:.0f} MiB/s ({run.seconds:.1f} s, {run.cpu_seconds:.1f} s CPU, "
            f"{run.max_rss_mib:.0f} MiB RSS)",
            "",
            None,
        ),
        Row(
            "4 same bytes, cp -r + fsync (on disk)",
            f"{durable_rate:.0f} MiB/s ({copy.seconds + synced:.1f} s)",
            "",
            None,
        ),
        Row(
            "4 same bytes, cp -r (page cache)",
            f"{copy_rate:.0f} MiB/s ({copy.seconds:.1f} s, {copy.cpu_seconds:.1f} s CPU)",
            "",
            None,
        ),
        Row("4 SAF writing / copying", f"{ratio:.2f}", f">= {TARGET:.2f}", ratio >= TARGET),
        Row("4 SAF writing / cp -r (page cache)", f"{rate / copy_rate:.2f}", "", None),
    ]


def cli_baseline(bench: Bench, export: Path, out: Path, state: Path) -> CliRun:
    """``resync-sword baseline EXPORT --saf OUT --saf-collection C``, default options."""
    args = ["--quiet", "baseline", str(export), "--saf", str(out)]
    args += ["--saf-collection", COLLECTION, "--state", str(state)]
    return bench.cli(args).check()
