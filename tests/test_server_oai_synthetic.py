"""The benchmark's OAI-PMH provider (tests/servers/oai_synthetic.py): DSpace 7 records made on
demand, and what resync-sword's source reads from it (every record, no request per record,
no page asked for twice or ahead of the end)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sync.fetcher import Fetcher
from sync.http import Http, HttpSettings, host_key
from sync.sources.oai_pmh.source import OaiPmhSource
from tests.servers.oai_synthetic import SyntheticOaiProvider, SyntheticRecords

N = 250


@pytest.fixture
def provider() -> Iterator[SyntheticOaiProvider]:
    p = SyntheticOaiProvider(N).start()
    yield p
    p.stop()


def test_records_are_made_on_demand_whatever_their_number() -> None:
    many = SyntheticRecords(10**9)
    assert len(many) == 10**9
    last = many[-1]
    assert last.identifier == f"oai:dspace.test:123456789/{10**9 + 9}"
    assert many.index_of(last.identifier) == 10**9 - 1
    assert [r.identifier for r in many[3:5]] == [many[3].identifier, many[4].identifier]
    assert many.record(7) == many.record(7)  # the same record every time


def test_pages_of_100_with_tokens_getrecord_and_bitstreams(
    provider: SyntheticOaiProvider,
) -> None:
    s = requests.Session()
    s.trust_env = False
    params: dict[str, str] = {"verb": "ListRecords", "metadataPrefix": "mets"}
    ids: list[str] = []
    pages = 0
    body = ""
    while True:
        body = s.get(provider.base_url, params=params).text
        pages += 1
        ids += re.findall(r"<identifier>([^<]+)</identifier>", body)
        m = re.search(r"<resumptionToken[^>]*>([^<]+)</resumptionToken>", body)
        if m is None:
            break
        params = {"verb": "ListRecords", "resumptionToken": m.group(1)}
    assert pages == 3 and len(ids) == N == len(set(ids))
    # the last page's files: each ORIGINAL bitstream is served with the MD5 METS announces
    files = re.findall(r'<fileGrp USE="ORIGINAL">(.*?)</fileGrp>', body, flags=re.DOTALL)
    checked = 0
    for group in files[:3]:
        for md5, href in re.findall(r'CHECKSUM="([0-9a-f]+)".*?xlink:href="([^"]+)"', group):
            got = s.get(href)
            assert got.status_code == 200 and "filename" in got.headers["Content-Disposition"]
            assert hashlib.md5(got.content).hexdigest() == md5
            checked += 1
    assert checked == 6
    one = s.get(
        provider.base_url,
        params={"verb": "GetRecord", "metadataPrefix": "dim", "identifier": ids[123]},
    ).text
    assert f"<identifier>{ids[123]}</identifier>" in one and "dim:field" in one
    missing = s.get(
        provider.base_url,
        params={"verb": "GetRecord", "metadataPrefix": "dim", "identifier": "oai:x:1/2"},
    ).text
    assert 'code="idDoesNotExist"' in missing


def test_the_source_lists_every_record_with_one_request_per_page(
    provider: SyntheticOaiProvider, tmp_path: Path
) -> None:
    http = Http(settings=HttpSettings(), allowed_hosts={host_key(provider.base_url)})
    fetcher = Fetcher(http, max_file_size=1 << 20, tmpdir=str(tmp_path))
    src = OaiPmhSource(provider.base_url, http=http, fetcher=fetcher, tmpdir=str(tmp_path))
    listing = src.listing()
    entries = list(listing)
    assert listing.complete and not listing.errors
    metas = [e for e in entries if "verb=GetRecord" in e.loc]
    files = [e for e in entries if "verb=GetRecord" not in e.loc]
    assert len(metas) == N and len(files) == 2 * N  # the two ORIGINAL files of each record
    assert all(f.hash("md5") and f.length is not None for f in files)
    lists = [r for r in provider.requests if "verb=ListRecords" in r]
    assert len(lists) == 3  # each page once: none read ahead past the end, none per record
    assert all("GetRecord" not in r for r in provider.requests)
    assert not list(tmp_path.glob("rsw-*"))  # every page's temporary file was removed
