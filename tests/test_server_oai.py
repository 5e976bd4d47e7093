"""Smoke tests of the local OAI-PMH provider (tests/servers/oai_provider.py), read with plain
``requests`` + ElementTree so the provider is checked independently of our reader."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from urllib.parse import unquote

import pytest
import requests

from tests.servers.fixtures import SourceModel
from tests.servers.oai_documents import bitstreams
from tests.servers.oai_provider import OaiProvider

OAI = "{http://www.openarchives.org/OAI/2.0/}"
METS = "{http://www.loc.gov/METS/}"
XLINK = "{http://www.w3.org/1999/xlink}"


@pytest.fixture
def model() -> SourceModel:
    return SourceModel.generate(9, seed=2, styles=("dspace",))


@pytest.fixture
def provider(model: SourceModel) -> Iterator[OaiProvider]:
    with OaiProvider(model, page_size=4) as p:
        yield p


def get(p: OaiProvider, **args: str) -> ET.Element:
    r = requests.get(p.base_url, params=args, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/xml")
    return ET.fromstring(r.content)


def test_identify_formats_and_sets(provider: OaiProvider) -> None:
    ident = get(provider, verb="Identify").find(f"{OAI}Identify")
    assert ident is not None
    assert ident.findtext(f"{OAI}granularity") == "YYYY-MM-DDThh:mm:ssZ"
    assert ident.findtext(f"{OAI}deletedRecord") == "persistent"
    formats = get(provider, verb="ListMetadataFormats").iter(f"{OAI}metadataPrefix")
    assert {f.text for f in formats} == {"oai_dc", "qdc", "dim", "mets", "ore"}
    sets = {s.text for s in get(provider, verb="ListSets").iter(f"{OAI}setSpec")}
    assert sets == {"com_123456789_1", "col_123456789_2", "col_123456789_3"}


def test_list_records_pages_with_tokens_to_every_item(
    provider: OaiProvider, model: SourceModel
) -> None:
    seen: list[str] = []
    doc = get(provider, verb="ListIdentifiers", metadataPrefix="oai_dc")
    while True:
        seen += [h.text or "" for h in doc.iter(f"{OAI}identifier")]
        token = doc.find(f".//{OAI}resumptionToken")
        if token is None or not token.text:
            break
        doc = get(provider, verb="ListIdentifiers", resumptionToken=token.text)
    assert sorted(seen) == sorted(f"oai:dspace.test:{k}" for k in model.items)
    bad = get(provider, verb="ListIdentifiers", resumptionToken="nope")
    assert bad.find(f"{OAI}error").get("code") == "badResumptionToken"  # type: ignore[union-attr]


def test_mets_files_are_served_with_their_name_and_checksum(
    provider: OaiProvider, model: SourceModel
) -> None:
    item = next(it for it in model.items.values() if len(it.files) >= 2)
    doc = get(
        provider, verb="GetRecord", metadataPrefix="mets", identifier=f"oai:dspace.test:{item.key}"
    )
    groups = {g.get("USE"): g for g in doc.iter(f"{METS}fileGrp")}
    assert set(groups) >= {"ORIGINAL", "TEXT", "LICENSE"}
    assert len(groups["ORIGINAL"]) == len(item.files)
    for f in groups["ORIGINAL"]:
        loc = f.find(f"{METS}FLocat")
        assert loc is not None
        r = requests.get(loc.get(f"{XLINK}href") or "", timeout=10)
        assert r.status_code == 200 and "/server/api/core/bitstreams/" in r.url
        assert hashlib.md5(r.content).hexdigest() == f.get("CHECKSUM")
        assert int(f.get("SIZE") or -1) == len(r.content)
        name = unquote(r.headers["Content-Disposition"].split("filename*=UTF-8''")[1])
        assert name == loc.get(f"{XLINK}title")
    assert {b.name for b in bitstreams(item) if b.bundle == "ORIGINAL"} == {
        f.name for f in item.files
    }


def test_deleted_records_day_granularity_and_flow_control(model: SourceModel) -> None:
    gone = sorted(model.items)[0]
    model.delete_item(gone)
    with OaiProvider(model, granularity="day") as p:
        headers = get(p, verb="ListIdentifiers", metadataPrefix="oai_dc").iter(f"{OAI}header")
        deleted = [h for h in headers if h.get("status") == "deleted"]
        assert [h.findtext(f"{OAI}identifier") for h in deleted] == [f"oai:dspace.test:{gone}"]
        assert len(deleted[0].findtext(f"{OAI}datestamp") or "") == 10
        fine = get(
            p, verb="ListIdentifiers", metadataPrefix="oai_dc", **{"from": "2024-01-01T00:00:00Z"}
        )
        assert fine.find(f"{OAI}error").get("code") == "badArgument"  # type: ignore[union-attr]
        p.busy = 1
        r = requests.get(
            p.base_url, params={"verb": "ListRecords", "metadataPrefix": "ore"}, timeout=10
        )
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        r = requests.get(
            p.base_url, params={"verb": "ListRecords", "metadataPrefix": "ore"}, timeout=10
        )
        assert r.status_code == 200
    with OaiProvider(model, deleted_record="no") as p:
        ids = [
            h.text
            for h in get(p, verb="ListIdentifiers", metadataPrefix="oai_dc").iter(
                f"{OAI}identifier"
            )
        ]
        assert f"oai:dspace.test:{gone}" not in ids
