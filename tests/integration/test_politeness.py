"""Politeness by default: a source that refuses work above its capacity (503 + Retry-After) gets
few refusals from the adaptive per-host concurrency of ``Http``, and everything downloads
intact. No timing assertions: counts of what the server answered and bytes by MD5."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sync.http import Http, HttpSettings
from tests.servers.fixtures import SourceModel
from tests.servers.rs_source import ResourceSyncSource

CAPACITY = 2


@pytest.fixture
def small_source() -> Iterator[ResourceSyncSource]:
    model = SourceModel.generate(60, seed=3, styles=("plain",), file_size=512, files_per_item=1)
    src = ResourceSyncSource(model, latency=0.03).start()
    assert src.httpd is not None
    src.httpd.capacity = CAPACITY
    src.httpd.retry_after = "0"  # still a Retry-After: the client must slow down
    yield src
    src.stop()


def _download_all(http: Http, src: ResourceSyncSource, tmp: Path, workers: int) -> int:
    """Every resource of the source, from ``workers`` threads; checks each by MD5."""
    entries = [e for e in src.model.resource_entries() if e.md5]
    assert len(entries) >= 60

    def one(loc: str, md5: str | None) -> None:
        dl = http.download(loc, directory=str(tmp))
        try:
            assert hashlib.md5(dl.path.read_bytes()).hexdigest() == md5 == dl.md5
        finally:
            dl.discard()

    with ThreadPoolExecutor(workers) as pool:
        for f in [pool.submit(one, e.loc, e.md5) for e in entries]:
            f.result()
    return len(entries)


def test_capacity_limited_source_sees_few_503s_by_default(
    small_source: ResourceSyncSource, tmp_path: Path
) -> None:
    httpd = small_source.httpd
    assert httpd is not None
    http = Http(HttpSettings(concurrency_cap=16, backoff_initial=0.01, backoff_max=0.2, attempts=8))
    downloaded = _download_all(http, small_source, tmp_path, workers=16)
    refused = httpd.stats["refused"]
    answered = httpd.stats["total"]  # refused ones included
    assert httpd.max_in_flight <= CAPACITY
    assert refused <= 0.1 * answered, (refused, answered)
    assert http.limit_of(small_source.base_url) <= CAPACITY + 1
    assert list(tmp_path.iterdir()) == []
    assert downloaded >= 60


def test_a_fixed_concurrency_overruns_the_same_source(
    small_source: ResourceSyncSource, tmp_path: Path
) -> None:
    """The contrast that shows the test above can fail: 16 at once, as configured."""
    httpd = small_source.httpd
    assert httpd is not None
    http = Http(
        HttpSettings(
            per_host_concurrency=16,
            per_host_rate=0,
            backoff_initial=0.01,
            backoff_max=0.2,
            attempts=30,
        )
    )
    _download_all(http, small_source, tmp_path, workers=16)
    refused = httpd.stats["refused"]
    assert refused > 0.1 * httpd.stats["total"], refused
