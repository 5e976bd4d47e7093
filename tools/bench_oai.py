"""Part 3c of the benchmark (issue #12 target 3): harvesting an OAI-PMH repository into state.

The provider (``python -m tools.bench_servers oai``) serves ``--oai-records`` synthetic DSpace 7
records in pages of 100 at ``--latency`` per request. On it, in one run:

- the reference: a plain sequential ListRecords loop (``requests`` with keep-alive, one page
  at a time, the resumption token found by a regex, nothing parsed or stored), run as
  ``python -m tools.bench_oai loop BASE_URL PREFIX`` in a subprocess, before and after the
  harvest (the machine's load drifts: the harvest is compared with the mean of the two);
- resync-sword's list-reading stage alone (tools/bench_readlists.py: the source's
  ``listing()`` stored by ``upsert_entries``, nothing deposited), in a subprocess: peak RSS,
  wall and CPU time, and its ratio to the loop's time (target <= 1.5x, < 100 MiB);
- the CLI, ``baseline --limit 1`` (the whole listing, then one item deposited): peak RSS,
  with row 3a's target for the CLI (< 150 MiB: the engine links and plans after listing).

Both harvest the same pages: ``ListRecords`` with ``metadataPrefix=mets`` (METS carries the
DIM metadata and the file list with MD5s; it is what the source lists when it is offered), so
the loop downloads exactly the bytes the source reads. The source makes no per-record request
while listing (metadata comes per item with GetRecord at deposit time).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

if TYPE_CHECKING:
    from tools.bench import Bench, Server

LISTED_PREFIX = "mets"  # what OaiPmhSource.listing() harvests from a DSpace 7 provider
_TOKEN = re.compile(rb"<resumptionToken[^>]*>([^<]+)</resumptionToken>")


def plain_loop(base_url: str, prefix: str = LISTED_PREFIX) -> dict[str, int]:
    """Download every ListRecords page, one at a time on one keep-alive connection, following
    the resumption token: the least a harvester must do. Returns pages, records and bytes."""
    session = requests.Session()
    session.trust_env = False
    url = f"{base_url}?verb=ListRecords&metadataPrefix={prefix}"
    pages = records = size = 0
    while True:
        resp = session.get(url)
        resp.raise_for_status()
        body = resp.content
        pages += 1
        size += len(body)
        records += body.count(b"<record>")
        m = _TOKEN.search(body)
        if m is None:
            return {"pages": pages, "records": records, "bytes": size}
        token = quote(m.group(1).decode(), safe="")
        url = f"{base_url}?verb=ListRecords&resumptionToken={token}"


def harvest(bench: Bench, server_cls: type[Server], sword: Server, sd: str, col: Any) -> None:
    """Run part 3c and append its rows to ``bench.rows``."""
    from tools.bench import Row, run_module, sync_args

    n = bench.oai_records
    bench.say(f"3c. harvesting {n} OAI-PMH records (pages of 100) into state")
    oai = server_cls("oai", "--records", str(n), "--latency", str(bench.latency), env=bench.env)
    try:
        sword.cmd("latency", value=bench.latency)

        def module(name: str, args: list[str]) -> Any:
            return run_module(name, args, cwd=bench.tmp, env=bench.env, timeout=bench.timeout)

        # the loop before and after the harvest: on a shared machine the load drifts, the
        # harvest is compared with the mean of the two loops that bracket it
        before = module("tools.bench_oai", ["loop", oai.base_url]).check()
        oai.cmd("reset")
        ours = module(
            "tools.bench_readlists",
            [oai.base_url, col("default"), str(bench.tmp / "s3c.sqlite")],
        ).check()
        stats = oai.stats()
        after = module("tools.bench_oai", ["loop", oai.base_url]).check()
        args = sync_args(
            "baseline",
            oai.base_url,
            col("default"),
            sd,
            bench.tmp / "s3c-cli.sqlite",
            bench.workers,
        )
        cli = bench.cli([*args, "--limit", "1"]).check()
    finally:
        oai.close()
    got = json.loads(before.stdout)
    for loop in (before, after):
        if json.loads(loop.stdout)["records"] != n:
            raise RuntimeError(f"the plain loop read not {n} records: {loop.stdout}")
    resources = json.loads(ours.stdout)["resources"]
    if resources != 3 * n:  # each record: its metadata and its two ORIGINAL files
        raise RuntimeError(f"the harvest stored {resources} resources, not {3 * n}")
    if cli.count("created") != 1:
        raise RuntimeError(f"baseline --limit 1 did not create one item: {cli.stdout}")
    loop_seconds = (before.seconds + after.seconds) / 2
    loop_cpu = (before.cpu_seconds + after.cpu_seconds) / 2
    ratio = ours.seconds / loop_seconds
    mib = got["bytes"] / (1 << 20)
    bench.say(
        f"   plain loop: {got['pages']} pages, {mib:.0f} MiB in {before.seconds:.1f} s before "
        f"and {after.seconds:.1f} s after the harvest ({loop_cpu:.1f} s CPU)"
    )
    bench.say(
        f"   resync-sword: {resources} resources, {stats['total']} requests, peak RSS "
        f"{ours.max_rss_mib:.1f} MiB, {ours.seconds:.1f} s ({ours.cpu_seconds:.1f} s CPU)"
    )
    bench.say(f"   CLI baseline --limit 1: peak RSS {cli.max_rss_mib:.1f} MiB, {cli.seconds:.1f} s")
    bench.rows += [
        Row(
            f"3c plain ListRecords loop, {n} records",
            f"{loop_seconds:.1f} s ({before.seconds:.1f} s before, {after.seconds:.1f} s after; "
            f"{got['pages']} pages, {mib:.0f} MiB, {loop_cpu:.1f} s CPU)",
            "",
            None,
        ),
        Row(
            "3c peak RSS, harvest into state",
            f"{ours.max_rss_mib:.1f} MiB ({ours.seconds:.1f} s, {ours.cpu_seconds:.1f} s CPU, "
            f"{stats['total']} requests)",
            "< 100 MiB",
            ours.max_rss_mib < 100,
        ),
        Row(
            "3c harvest / plain loop (time)",
            f"{ratio:.2f}x",
            "<= 1.50x",
            ratio <= 1.5,
        ),
        Row(
            "3c same, CLI baseline --limit 1",
            f"{cli.max_rss_mib:.1f} MiB ({cli.seconds:.1f} s)",
            "< 150 MiB",  # as row 3a's CLI: the engine links and plans after the harvest
            cli.max_rss_mib < 150,
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    if len(args) not in (2, 3) or args[0] != "loop":
        print("usage: python -m tools.bench_oai loop BASE_URL [PREFIX]", file=sys.stderr)
        return 2
    start = time.perf_counter()
    out = plain_loop(*args[1:])
    print(json.dumps({**out, "seconds": time.perf_counter() - start}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
