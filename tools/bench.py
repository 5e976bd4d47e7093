"""Benchmark resync-sword against local servers with an artificial network latency (#5, #12).

``python -m tools.bench [--latency 0.02] [--workers 16] [--items 2000] [--only 1,2,...]``

The local servers run as subprocesses (``tools.bench_servers``), each answering every request
after ``--latency`` seconds; resync-sword runs the way users run it, ``python -m sync ...`` in
a subprocess, byte-compiled. Each measurement is printed beside its reference from the same
run (README "Benchmark" says what each part measures and its target):

1. baseline at 300 and ``--items`` items: resync-sword, the limit row (the same requests from
   plain ``http.client`` threads) and the sequential approach;
2. an incremental run after 1% of a ``--mirror``-item mirror changed;
3. 3a list reading against ``resync`` 2.0.1, 3b one big file, 3c an OAI-PMH harvest
   (``tools/bench_oai.py``);
4. writing a SAF batch against copying the same bytes (``tools/bench_saf.py``);
5. politeness: default options, and a source of capacity K.

Not a test (CI does not run it); ``--quick`` (tiny sizes) runs in tests/test_bench_smoke.py.
Exit status 0 when every run completed (targets missed or not); ``--strict``: 1 on a miss.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

from tools.bench_items import PlainClient, SyncClient, read_items, run_items
from tools.bench_oai import harvest as oai_harvest

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-Pa55word"
USER = "sword"
ATOM = "http://www.w3.org/2005/Atom"
SWORD_ADD = "http://purl.org/net/sword/terms/add"
BINARY = "http://purl.org/net/sword/package/Binary"
MIB = 1 << 20


# -- servers ------------------------------------------------------------------------------------
class Server:
    """A server subprocess (tools.bench_servers) driven by JSON lines on its stdin."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tools.bench_servers", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.info = self._read()
        self.base_url: str = self.info["base_url"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"bench server exited ({self.proc.wait()})")
        data: dict[str, Any] = json.loads(line)
        if "error" in data:
            raise RuntimeError(f"bench server: {data['error']}")
        return data

    def cmd(self, name: str, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": name, **kw}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def stats(self) -> dict[str, int]:
        return dict(self.cmd("stats")["stats"])

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.cmd("quit")
                self.proc.wait(timeout=10)
            except (OSError, RuntimeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


# -- the CLI ------------------------------------------------------------------------------------
@dataclass
class CliRun:
    args: list[str]
    returncode: int
    seconds: float
    max_rss_mib: float
    cpu_seconds: float
    stdout: str
    stderr: str

    def check(self) -> CliRun:
        if self.returncode != 0:
            raise RuntimeError(
                f"{' '.join(self.args[:2])} exited {self.returncode}:\n"
                f"{self.stdout}\n{self.stderr[-3000:]}"
            )
        return self

    def count(self, what: str) -> int:
        m = re.search(rf"\b{what} (\d+)", self.stdout)
        return int(m.group(1)) if m else 0


def run_cli(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> CliRun:
    """Run ``python -m sync ARGS``; its own peak RSS comes from wait4 (exact, this child only)."""
    return run_module("sync", args, cwd=cwd, env=env, timeout=timeout)


def run_module(
    module: str, args: list[str], *, cwd: Path, env: dict[str, str], timeout: float
) -> CliRun:
    """Run ``python -m MODULE ARGS`` with its peak RSS and CPU time (wait4: this child only)."""
    return run_argv([sys.executable, "-m", module, *args], cwd=cwd, env=env, timeout=timeout)


def run_argv(argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> CliRun:
    """Run ``argv`` with its peak RSS and CPU time (wait4: this child only)."""
    args = argv[3:] if argv[1:2] == ["-m"] else argv
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        # ru_maxrss is in KiB on Linux
        cpu = usage.ru_utime + usage.ru_stime
        return CliRun(
            args, proc.returncode, seconds, usage.ru_maxrss / 1024, cpu, out.read(), err.read()
        )


def sync_args(
    cmd: str, source: str | None, collection: str | None, sd: str | None, state: Path, workers: int
) -> list[str]:
    args = ["--quiet", cmd]
    if source is not None:
        args.append(source)
    if collection is not None:
        args += ["--collection", collection, "--username", USER]
    if sd is not None:
        args += ["--service-document", sd]
    args += ["--state", str(state), "--rate", "0", "--workers", str(workers)]
    args += ["--per-host-concurrency", str(workers)]
    return args


# -- the sequential approach --------------------------------------------------------------------
class _SessionClient:
    """``tools.bench_items.Client`` over one requests session (the sequential approach)."""

    def __init__(self, session: requests.Session) -> None:
        self.session = session

    def call(
        self, method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        resp = self.session.request(method, url, data=body or None, headers=headers)
        return resp.status_code, resp.content


def _atom_entry(title: str, identifier: str) -> bytes:
    def esc(s: str) -> str:
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<entry xmlns="{ATOM}" xmlns:dcterms="http://purl.org/dc/terms/">'
        f"<title>{esc(title)}</title><author><name>bench</name></author>"
        f"<dcterms:title>{esc(title)}</dcterms:title>"
        f"<dcterms:identifier>{esc(identifier)}</dcterms:identifier></entry>"
    ).encode()


def sequential(resource_list: str, col_iri: str, limit: int, tmp: Path) -> tuple[int, float]:
    """One request at a time: for each item, GET its record and its files (verifying md5),
    then create the container, add each file, complete. Returns (items, seconds)."""
    start = time.perf_counter()
    s = requests.Session()
    s.trust_env = False
    auth = (USER, PASSWORD)
    items = read_items(_SessionClient(s), resource_list)
    done = 0
    for item in items[:limit]:
        rec_loc, files = item.record, item.files
        meta = s.get(rec_loc)
        meta.raise_for_status()
        title = next(
            (
                el.text or ""
                for el in ET.fromstring(meta.content).iter()
                if el.tag.endswith("title")
            ),
            rec_loc,
        )
        got: list[tuple[Path, str, str]] = []
        for href in files:
            resp = s.get(href, stream=True)
            resp.raise_for_status()
            digest = hashlib.md5()
            path = tmp / f"seq-{len(got)}"
            with path.open("wb") as fh:
                for chunk in resp.iter_content(1 << 16):
                    digest.update(chunk)
                    fh.write(chunk)
            if item.md5.get(href) not in (None, digest.hexdigest()):
                raise RuntimeError(f"md5 mismatch for {href}")
            name = href.rsplit("/", 1)[-1] or "file"
            got.append((path, name, digest.hexdigest()))
        receipt = s.post(
            col_iri,
            data=_atom_entry(title, rec_loc),
            auth=auth,
            headers={"Content-Type": "application/atom+xml;type=entry", "In-Progress": "true"},
        )
        receipt.raise_for_status()
        links = ET.fromstring(receipt.content).findall(f"{{{ATOM}}}link")
        em = next(
            ln.get("href") for ln in links if ln.get("rel") == "edit-media" and not ln.get("type")
        )
        edit = next(ln.get("href") for ln in links if ln.get("rel") == "edit")
        se = next((ln.get("href") for ln in links if ln.get("rel") == SWORD_ADD), edit)
        for path, name, md5 in got:
            with path.open("rb") as fh:
                r = s.post(
                    str(em),
                    data=fh,
                    auth=auth,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Disposition": f'attachment; filename="{name}"',
                        "Content-MD5": md5,
                        "Packaging": BINARY,
                        "In-Progress": "true",
                    },
                )
            r.raise_for_status()
        r = s.post(str(se), auth=auth, headers={"In-Progress": "false", "Content-Length": "0"})
        r.raise_for_status()
        done += 1
    return done, time.perf_counter() - start


# -- the benchmark ------------------------------------------------------------------------------
@dataclass
class Row:
    name: str
    measured: str
    target: str
    ok: bool | None  # None: informational


@dataclass
class Bench:
    latency: float
    workers: int
    items: int
    mirror: int
    entries: int
    big_file_mib: int
    sequential_items: int
    tmp: Path
    timeout: float = 3600.0
    only: frozenset[str] = frozenset({"1", "2", "3a", "3b", "3c", "4", "5"})
    polite_items: int = 300
    small_items: int = 300  # part 1 runs at this size too (start-up weighs more)
    saf_items: int = 2000
    oai_records: int = 100_000
    capacity: int = 4
    capacity_latency: float = 0.1
    seq_rate: float | None = None  # sequential items/s measured in part 1, reused by part 5
    rows: list[Row] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    log: IO[str] = sys.stderr

    def __post_init__(self) -> None:
        env = dict(os.environ, SWORD_PASSWORD=PASSWORD, PYTHONPATH=str(ROOT))
        for k in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
            env.pop(k, None)
        # as installed by pip: byte-compiled once, not compiled from source at every start
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        compileall.compile_dir(ROOT / "sync", quiet=1)
        self.env = env

    def say(self, text: str) -> None:
        print(f"[bench] {text}", file=self.log, flush=True)

    def source(self, *args: str) -> Server:
        return Server("source", *args, env=self.env)

    def cli(self, args: list[str]) -> CliRun:
        return run_cli(args, cwd=self.tmp, env=self.env, timeout=self.timeout)

    def run(self) -> list[Row]:
        sword = Server("sword", "--root", str(self.tmp / "sword"), env=self.env)
        sd = str(sword.info["sd_iri"])

        def col(name: str) -> str:
            return f"{sword.base_url}/col/{name}"

        try:
            rpi = self.throughput(sword, sd, col) if "1" in self.only else 8.0
            if "2" in self.only:
                self.incremental(sword, sd, col, rpi)
            if "3a" in self.only:
                self.list_memory(sword, sd, col)
            if "3b" in self.only:
                self.big_file(sword, sd, col)
            if "3c" in self.only:
                oai_harvest(self, Server, sword, sd, col)
            if "4" in self.only:
                from tools.bench_saf import saf_writing

                self.rows += saf_writing(self)
            if "5" in self.only:
                self.politeness(sword, sd, col)
        finally:
            sword.close()
        return self.rows

    # 1 ------------------------------------------------------------------------------------------
    def throughput(self, sword: Server, sd: str, col: Any) -> float:
        """Part 1 at each size (300 items, where start-up and discovery weigh, and ``--items``):
        resync-sword, the limit row and their ratio; the sequential approach once, at
        ``--sequential-items``, for the speed-up. Returns requests per item."""
        sizes = sorted({min(self.small_items, self.items), self.items})
        rpi = 8.0
        for n in sizes:
            rpi = self._throughput_at(n, sword, sd, col)
        return rpi

    def _throughput_at(self, n: int, sword: Server, sd: str, col: Any) -> float:
        latency = str(self.latency)
        self.say(f"1. {n} items x 2 files, latency {self.latency * 1000:.0f} ms")
        src = self.source("--items", str(n), "--latency", latency)
        try:
            sword.cmd("latency", value=self.latency)
            sword.cmd("reset")
            args = sync_args(
                "baseline",
                src.base_url + "/",
                col("default"),
                sd,
                self.tmp / f"s1-{n}.sqlite",
                self.workers,
            )
            run = self.cli(args).check()
            requests_ = sum(s.stats()["total"] for s in (src, sword))
            rate = n / run.seconds
            cpu_ms = 1000 * run.cpu_seconds / n
            self.say(
                f"   resync-sword {run.seconds:.1f} s ({run.cpu_seconds:.1f} s CPU, "
                f"{cpu_ms:.1f} ms per item), {requests_} requests: {rate:.1f} items/s"
            )
            lim_done, lim_seconds = run_items(
                PlainClient,
                src.base_url + "/resourcelist.xml",
                col("articles"),
                user=USER,
                password=PASSWORD,
                workers=self.workers,
            )
            lim_rate = lim_done / lim_seconds
            self.say(f"   limit ({self.workers} plain threads): {lim_rate:.1f} items/s")
            if self.seq_rate is None:
                k = min(self.sequential_items, n)
                work = self.tmp / "seq"
                work.mkdir(exist_ok=True)
                done, seconds = sequential(
                    src.base_url + "/resourcelist.xml", col("articles"), k, work
                )
                self.seq_rate = done / seconds
                self.rows.append(
                    Row(
                        "1 baseline sequential",
                        f"{self.seq_rate:.2f} items/s ({done} items)",
                        "",
                        None,
                    )
                )
                self.say(
                    f"   sequential {done} items in {seconds:.1f} s: {self.seq_rate:.2f} items/s"
                )
        finally:
            src.close()
        ratio = rate / self.seq_rate
        target = 0.7 * self.workers
        self.rows += [
            Row(
                f"1 baseline resync-sword, {n} items",
                f"{rate:.1f} items/s ({run.seconds:.1f} s, {cpu_ms:.1f} ms CPU/item)",
                "",
                None,
            ),
            Row(
                f"1 limit: {self.workers} plain threads, {n} items",
                f"{lim_rate:.1f} items/s ({lim_seconds:.1f} s)",
                "",
                None,
            ),
            Row(
                f"1 resync-sword / limit, {n} items",
                f"{rate / lim_rate:.2f}",
                ">= 0.90",
                rate / lim_rate >= 0.9,
            ),
            Row(
                f"1 speed-up ({self.workers} workers), {n} items",
                f"{ratio:.1f}x",
                f">= {target:.1f}x",
                ratio >= target,
            ),
        ]
        return requests_ / n

    # 2 ------------------------------------------------------------------------------------------
    def incremental(self, sword: Server, sd: str, col: Any, rpi: float) -> None:
        self.say(f"2. building a {self.mirror}-item mirror (no latency)")
        src = self.source("--items", str(self.mirror), "--seed", "2")
        try:
            sword.cmd("latency", value=0.0)
            state = self.tmp / "s2.sqlite"
            build = self.cli(
                sync_args("baseline", src.base_url + "/", col("theses"), sd, state, self.workers)
            ).check()
            self.say(f"   mirror built in {build.seconds:.1f} s")
            for s in (src, sword):
                s.cmd("latency", value=self.latency)
                s.cmd("reset")
            changed = src.cmd("mutate", share=0.01, seed=5)
            changes = int(changed["changes"])
            src.cmd("reset")
            run = self.cli(sync_args("incremental", None, None, None, state, self.workers)).check()
            s_stats, w_stats = src.stats(), sword.stats()
        finally:
            src.close()
        total = s_stats["total"] + w_stats["total"]
        docs = s_stats.get("documents", 0)
        bound = math.ceil(changes * rpi) + docs
        updated = run.count("updated")
        self.say(
            f"   incremental: {changes} changes, {updated} items updated, {total} requests "
            f"({s_stats['total']} source, {docs} of them list documents; {w_stats['total']} "
            f"SWORD) in {run.seconds:.2f} s"
        )
        self.rows += [
            Row(
                f"2 incremental, {changes} changes of {self.mirror}",
                f"{run.seconds:.2f} s, {updated} items updated",
                f"{changes} items updated",
                updated == changes,
            ),
            Row(
                "2 incremental HTTP requests",
                f"{total}",
                f"<= {changes} x {rpi:.2f} + {docs} = {bound}",
                total <= bound,
            ),
        ]

    # 3 ------------------------------------------------------------------------------------------
    def list_memory(self, sword: Server, sd: str, col: Any) -> None:
        pages = math.ceil(self.entries / 50_000)
        self.say(f"3a. reading a {self.entries}-entry resource list ({pages} sitemaps) into state")
        src = self.source("--synthetic", str(self.entries), "--latency", str(self.latency))
        url = src.base_url + "/big/resourcelist.xml"
        try:
            sword.cmd("latency", value=self.latency)
            # the list-reading stage alone (discover + resource lists into the state DB)
            lists = run_module(
                "tools.bench_readlists",
                [url, col("default"), str(self.tmp / "s3a.sqlite")],
                cwd=self.tmp,
                env=self.env,
                timeout=self.timeout,
            ).check()
            # the resync 2.0.1 client reading the same index (audit against an empty directory)
            resync_dst = self.tmp / "resync-dst"
            resync_dst.mkdir(exist_ok=True)
            resync = run_argv(
                [
                    sys.executable,
                    str(Path(sys.executable).parent / "resync-sync"),
                    "--audit",
                    "--sitemap",
                    url,
                    f"{src.base_url}/big/={resync_dst}",
                ],
                cwd=self.tmp,
                env=self.env,
                timeout=self.timeout,
            )
            # and the way a user runs it: a whole baseline, limited to one deposit
            args = sync_args(
                "baseline", url, col("default"), sd, self.tmp / "s3b.sqlite", self.workers
            )
            run = self.cli([*args, "--limit", "1"])
        finally:
            src.close()
        # --limit leaves work for later: exit 1 ("partial") is expected, anything else is not
        if run.returncode not in (0, 1) or "partial" not in run.stdout + run.stderr:
            run.check()
        m = re.search(r"to create=(\d+)", resync.stdout + resync.stderr)  # it logs to stderr
        resync_read = int(m.group(1)) if m else 0
        if resync_read != self.entries:
            raise RuntimeError(f"resync read {resync_read} entries: {resync.stderr[-2000:]}")
        speedup = resync.seconds / lists.seconds
        self.say(f"   lists only: peak RSS {lists.max_rss_mib:.1f} MiB, {lists.seconds:.1f} s")
        self.say(
            f"   resync 2.0.1 --audit: peak RSS {resync.max_rss_mib:.1f} MiB, "
            f"{resync.seconds:.1f} s ({speedup:.1f}x slower)"
        )
        self.say(
            f"   CLI baseline --limit 1: peak RSS {run.max_rss_mib:.1f} MiB, {run.seconds:.1f} s"
        )
        self.rows += [
            Row(
                f"3a peak RSS, {self.entries}-entry list into state",
                f"{lists.max_rss_mib:.1f} MiB ({lists.seconds:.1f} s, "
                f"{lists.cpu_seconds:.1f} s CPU)",
                "< 100 MiB",
                lists.max_rss_mib < 100,
            ),
            Row(
                "3a same list, resync 2.0.1 --audit",
                f"{resync.max_rss_mib:.1f} MiB ({resync.seconds:.1f} s, "
                f"{resync.cpu_seconds:.1f} s CPU)",
                "",
                None,
            ),
            Row(
                "3a list reading vs resync 2.0.1",
                f"{speedup:.1f}x faster "
                f"({resync.cpu_seconds / max(0.01, lists.cpu_seconds):.1f}x less CPU)",
                ">= 3.0x",
                speedup >= 3.0,
            ),
            Row(
                "3a same, CLI baseline --limit 1",
                f"{run.max_rss_mib:.1f} MiB ({run.seconds:.1f} s)",
                "< 150 MiB",
                run.max_rss_mib < 150,
            ),
        ]

    def big_file(self, sword: Server, sd: str, col: Any) -> None:
        self.say(f"3b. syncing one {self.big_file_mib} MiB file")
        src = self.source("--big-file-mib", str(self.big_file_mib), "--latency", str(self.latency))
        try:
            args = sync_args(
                "baseline",
                src.base_url + "/bigfile/resourcelist.xml",
                col("default"),
                sd,
                self.tmp / "s4.sqlite",
                self.workers,
            )
            run = self.cli(args).check()
        finally:
            src.close()
        self.say(f"   peak RSS {run.max_rss_mib:.1f} MiB, {run.seconds:.1f} s")
        self.rows.append(
            Row(
                f"3b peak RSS, one {self.big_file_mib} MiB file",
                f"{run.max_rss_mib:.1f} MiB ({run.seconds:.1f} s)",
                "< 100 MiB",
                run.max_rss_mib < 100,
            )
        )

    # 5 ------------------------------------------------------------------------------------------
    def politeness(self, sword: Server, sd: str, col: Any) -> None:
        """Default options (no --rate, --per-host-concurrency or --workers) against the fast
        servers, and resync-sword's transport against a source of capacity K."""
        n = self.polite_items
        self.say(f"5. politeness: {n} items, default options, latency {self.latency * 1000:.0f} ms")
        src = self.source("--items", str(n), "--latency", str(self.latency))
        try:
            sword.cmd("latency", value=self.latency)
            if self.seq_rate is None:
                work = self.tmp / "seq5"
                work.mkdir(exist_ok=True)
                done, seconds = sequential(
                    src.base_url + "/resourcelist.xml", col("articles"), n, work
                )
                self.seq_rate = done / seconds
            args = ["--quiet", "baseline", src.base_url + "/", "--collection", col("default")]
            args += ["--username", USER, "--service-document", sd]
            run = self.cli([*args, "--state", str(self.tmp / "s5.sqlite")]).check()
            cli_rate = n / run.seconds
            done, seconds = run_items(
                lambda: SyncClient(self.workers),
                src.base_url + "/resourcelist.xml",
                col("theses"),
                user=USER,
                password=PASSWORD,
                workers=self.workers,
            )
            http_rate = done / seconds
        finally:
            src.close()
        seq = self.seq_rate
        self.say(
            f"   CLI defaults {cli_rate:.1f} items/s, transport defaults ({self.workers} "
            f"threads) {http_rate:.1f} items/s, sequential {seq:.2f} items/s"
        )
        k, lat = self.capacity, self.capacity_latency
        self.say(f"   a source of capacity {k} at {lat * 1000:.0f} ms per request")
        src = self.source("--items", str(n), "--latency", str(lat))
        try:
            src.cmd("capacity", value=k, retry_after="1")
            src.cmd("reset")
            done, seconds = run_items(
                lambda: SyncClient(self.workers),
                src.base_url + "/resourcelist.xml",
                col("theses"),
                user=USER,
                password=PASSWORD,
                workers=self.workers,
            )
            stats = src.stats()
        finally:
            src.close()
        refused = stats.get("refused", 0)
        share = refused / max(1, stats["total"])
        served = (stats["total"] - refused) / seconds
        floor = 0.8 * k / lat
        self.say(
            f"   {done} items in {seconds:.1f} s: {stats['total']} requests, {refused} refused, "
            f"{served:.1f} served/s"
        )
        self.rows += [
            Row(
                "5 defaults: CLI vs sequential",
                f"{cli_rate / seq:.1f}x ({cli_rate:.1f} items/s)",
                ">= 4.0x",
                cli_rate / seq >= 4.0,
            ),
            Row(
                f"5 defaults: transport, {self.workers} threads",
                f"{http_rate / seq:.1f}x ({http_rate:.1f} items/s)",
                ">= 4.0x",
                http_rate / seq >= 4.0,
            ),
            Row(
                f"5 capacity {k}, {lat * 1000:.0f} ms: refused",
                f"{100 * share:.1f}% ({refused} of {stats['total']})",
                "< 2%",
                share < 0.02,
            ),
            Row(
                f"5 capacity {k}, {lat * 1000:.0f} ms: served",
                f"{served:.1f} requests/s",
                f">= {floor:.1f}/s",
                served >= floor,
            ),
        ]


def table(rows: Sequence[Row]) -> str:
    head = ("measurement", "measured", "target", "result")
    cells = [
        (r.name, r.measured, r.target or "-", "-" if r.ok is None else ("PASS" if r.ok else "FAIL"))
        for r in rows
    ]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(4)]

    def line(c: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(head), sep, *(line(c) for c in cells)])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Benchmark resync-sword against the local servers.")
    p.add_argument("--latency", type=float, default=0.02, help="seconds per request (0.02)")
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--items", type=int, default=2000)
    p.add_argument(
        "--sequential-items", type=int, default=300, help="items of the sequential run (300)"
    )
    p.add_argument(
        "--small-items", type=int, default=300, help="part 1 also runs at this size (300)"
    )
    p.add_argument("--mirror", type=int, default=20000)
    p.add_argument("--entries", type=int, default=200_000)
    p.add_argument("--big-file-mib", type=int, default=500)
    p.add_argument("--quick", action="store_true", help="tiny sizes (the smoke test)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--polite-items", type=int, default=300, help="items of part 5 (300)")
    p.add_argument("--saf-items", type=int, default=2000, help="items of part 4 (2000)")
    p.add_argument("--oai-records", type=int, default=100_000, help="records of part 3c")
    p.add_argument("--only", default="1,2,3a,3b,3c,4,5", help="parts to run (1,2,3a,3b,3c,4,5)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    a = p.parse_args(argv)
    if a.quick:
        a.items, a.mirror, a.entries, a.big_file_mib = 30, 200, 2000, 4
        a.small_items, a.sequential_items = 10, 10
        a.polite_items = 20
        a.saf_items = 20
        a.oai_records = 500
        a.latency = min(a.latency, 0.005)
        a.workers = min(a.workers, 8)
    tmp = Path(tempfile.mkdtemp(prefix="rsw-bench-"))
    bench = Bench(
        latency=a.latency,
        workers=a.workers,
        items=a.items,
        mirror=a.mirror,
        entries=a.entries,
        big_file_mib=a.big_file_mib,
        sequential_items=a.sequential_items,
        small_items=a.small_items,
        tmp=tmp,
        only=frozenset(a.only.split(",")),
        polite_items=a.polite_items,
        saf_items=a.saf_items,
        oai_records=a.oai_records,
    )
    try:
        rows = bench.run()
    finally:
        if not a.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"resync-sword benchmark: latency {a.latency * 1000:.0f} ms per request, "
        f"{a.workers} workers, {os.cpu_count()} CPUs"
    )
    print(table(rows))
    missed = [r for r in rows if r.ok is False]
    return 1 if (a.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
