"""Smoke tests of the local ResourceSync source (tests/servers/rs_source.py)."""

from __future__ import annotations

import hashlib
import itertools
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime
from urllib.parse import unquote

import pytest
import requests

from tests.servers.fixtures import SourceModel
from tests.servers.rs_source import ResourceSyncSource

SM = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
RS = "{http://www.openarchives.org/rs/terms/}"


def get_xml(url: str) -> ET.Element:
    r = requests.get(url, timeout=10)
    assert r.status_code == 200, url
    assert r.headers["Content-Type"] == "application/xml"
    return ET.fromstring(r.content)


def md(el: ET.Element) -> dict[str, str]:
    node = el.find(f"{RS}md")
    assert node is not None
    return dict(node.attrib)


def urls(doc: ET.Element) -> list[ET.Element]:
    return doc.findall(f"{SM}url")


def loc(el: ET.Element) -> str:
    return el.findtext(f"{SM}loc") or ""


def links(el: ET.Element) -> list[dict[str, str]]:
    return [dict(ln.attrib) for ln in el.findall(f"{RS}ln")]


@pytest.fixture()
def model() -> SourceModel:
    return SourceModel.generate(30, seed=3)


@pytest.fixture()
def source(model: SourceModel) -> Iterator[ResourceSyncSource]:
    src = ResourceSyncSource(model).start()
    try:
        yield src
    finally:
        src.stop()


def discover(base: str) -> ET.Element:
    desc = get_xml(f"{base}/.well-known/resourcesync")
    assert md(desc)["capability"] == "description"
    (cap_url,) = urls(desc)
    assert md(cap_url)["capability"] == "capabilitylist"
    return get_xml(loc(cap_url))


def test_discovery_and_resource_list_downloads(source: ResourceSyncSource) -> None:
    base = source.base_url
    caps = discover(base)
    assert md(caps)["capability"] == "capabilitylist"
    assert {"rel": "up", "href": f"{base}/.well-known/resourcesync"} in links(caps)
    by_cap = {md(u)["capability"]: loc(u) for u in urls(caps)}
    assert by_cap == {
        "resourcelist": f"{base}/resourcelist.xml",
        "changelist": f"{base}/changelist.xml",
    }
    rl = get_xml(by_cap["resourcelist"])
    assert rl.tag == f"{SM}urlset"
    meta = md(rl)
    assert meta["capability"] == "resourcelist" and meta["at"].endswith("Z")
    entries = urls(rl)
    assert len(entries) == len(source.model.resource_entries())
    seen_empty = seen_sha = False
    with requests.Session() as s:
        for u in entries:
            attrs = md(u)
            hashes = dict(h.split(":", 1) for h in attrs["hash"].split())
            r = s.get(loc(u), timeout=10)
            assert r.status_code == 200, loc(u)
            assert hashlib.md5(r.content).hexdigest() == hashes["md5"]
            assert len(r.content) == int(attrs["length"])
            assert r.headers["Content-Type"] == attrs["type"]
            if "sha-256" in hashes:
                seen_sha = True
                assert hashlib.sha256(r.content).hexdigest() == hashes["sha-256"]
            seen_empty |= r.content == b""
            assert s.head(loc(u), timeout=10).headers["Content-Length"] == attrs["length"]
    assert seen_empty and seen_sha


def test_publisher_layouts(source: ResourceSyncSource) -> None:
    base = source.base_url
    rl = get_xml(f"{base}/resourcelist.xml")
    by_loc = {loc(u): u for u in urls(rl)}
    dspace = [u for u in by_loc if u.startswith(f"{base}/resource/")]
    assert {u.rsplit("/", 1)[1] for u in dspace} == {"oai_dc", "qdc", "dim"}
    u = next(x for x in dspace if x.endswith("/oai_dc") and "describes" in str(links(by_loc[x])))
    lk = links(by_loc[u])
    rels = [x["rel"] for x in lk]
    assert {"rel": "profile", "href": "http://www.openarchives.org/OAI/2.0/oai_dc/"} in lk
    assert rels.count("alternate") == 2 and rels.count("collection") == 1
    assert all(x.get("type") == "application/xml" for x in lk if x["rel"] == "alternate")
    doc = ET.fromstring(requests.get(u, timeout=10).content)
    assert doc.tag == "{http://www.openarchives.org/OAI/2.0/oai_dc/}dc"
    bit = next(x["href"] for x in lk if x["rel"] == "describes")
    assert "sha-256" not in md(by_loc[bit])["hash"]
    assert sorted(x["rel"] for x in links(by_loc[bit])) == ["collection"] + ["describedby"] * 3
    r = requests.get(bit, timeout=10)
    assert "filename*=UTF-8''" in r.headers["Content-Disposition"]
    r.headers["Content-Disposition"].encode("ascii")
    # recipe
    rec = next(x for x in by_loc if x.startswith(f"{base}/records/"))
    assert {"rel": "describedBy", "href": "http://purl.org/dc/terms/"} in links(by_loc[rec])
    doc = ET.fromstring(requests.get(rec, timeout=10).content)
    assert doc.find("{http://purl.org/dc/terms/}title") is not None
    # plain: no links; names with spaces and non-ASCII are percent-encoded
    plain = [x for x in by_loc if x.startswith(f"{base}/plain/")]
    assert plain and all(links(by_loc[x]) == [] for x in plain)
    assert any(unquote(x) != x for x in plain)
    # titles with & and < survive the XML round trip
    titles = {e.title for e in source.model.expected().values()}
    assert any("&" in t for t in titles) and any("<" in t for t in titles)
    assert any("Łódź" in t for t in titles)
    # handle pages and 404
    item = next(i for i in source.model.items.values() if i.style == "dspace")
    assert requests.get(f"{base}/handle/{item.key}", timeout=10).status_code == 200
    assert requests.get(f"{base}/nope", timeout=10).status_code == 404


def test_resource_list_index(model: SourceModel) -> None:
    with ResourceSyncSource(model, page_size=10) as src:
        idx = get_xml(f"{src.base_url}/resourcelist.xml")
        assert idx.tag == f"{SM}sitemapindex"
        assert md(idx)["capability"] == "resourcelist" and "at" in md(idx)
        pages = [loc(s) for s in idx.findall(f"{SM}sitemap")]
        total = 0
        for p in pages:
            doc = get_xml(p)
            assert doc.tag == f"{SM}urlset"
            assert {x["rel"] for x in links(doc)} == {"up", "index"}
            assert 0 < len(urls(doc)) <= 10
            total += len(urls(doc))
        assert total == len(model.resource_entries())
        assert requests.get(f"{src.base_url}/resourcelist/99.xml", timeout=10).status_code == 404


def test_change_list_dspace_quirks(source: ResourceSyncSource) -> None:
    m, base = source.model, source.base_url
    empty = get_xml(f"{base}/changelist.xml")
    assert md(empty)["capability"] == "changelist" and "until" not in md(empty)
    assert urls(empty) == []
    new = m.create_item("dspace", title="New & <shiny>")
    m.add_file(new.key, "Łódź café.pdf", b"%PDF-1.4 hello", "application/pdf")
    m.update_metadata(new.key, title="Renamed")
    rec = next(i for i in m.items.values() if i.style == "recipe")
    m.create_item("recipe", files=[])
    victim = next(i for i in m.items.values() if i.style == "dspace" and i.files)
    gone = victim.files[0]
    m.remove_file(victim.key, gone.name)
    m.delete_item(victim.key)
    m.delete_item(rec.key)

    cl = get_xml(f"{base}/changelist.xml")
    assert md(cl)["from"].endswith("Z")
    evs = urls(cl)
    assert len(evs) == len(m.change_events())
    times = [datetime.fromisoformat(md(u)["datetime"]) for u in evs]
    assert times == sorted(times) and len(set(times)) == len(times)
    dspace_evs = [u for u in evs if "/bitstreams/" in loc(u) or "123456789" in loc(u)]
    assert all(md(u)["change"] in ("updated", "deleted") for u in dspace_evs)
    created = [loc(u) for u in evs if md(u)["change"] == "created"]
    assert created and all("/records/" in x or "/files/" in x for x in created)
    deleted = [u for u in evs if md(u)["change"] == "deleted"]
    assert all(links(u) == [] and "hash" not in md(u) for u in deleted)
    dlocs = {loc(u) for u in deleted}
    for p in ("oai_dc", "qdc", "dim"):
        assert f"{base}/{victim.key}/{p}" in dlocs
    assert f"{base}/bitstreams/{gone.fid}" in dlocs
    assert f"{base}/records/{rec.number}.xml" in dlocs
    # the renamed title is what the latest metadata says
    assert "Renamed" in requests.get(f"{base}/resource/{new.key}/oai_dc", timeout=10).text
    assert victim.key not in m.expected() and new.key in m.expected()
    assert m.expected()[new.key].title == "Renamed"
    files = m.expected()[new.key].files
    assert files["Łódź café.pdf"] == hashlib.md5(b"%PDF-1.4 hello").hexdigest()


@pytest.mark.parametrize("mode", ["index", "archive", "none"])
def test_change_list_modes(model: SourceModel, mode: str) -> None:
    for _ in range(5):  # 5 x (3 metadata + files) events -> several lists of 10
        model.create_item("dspace")
    n_events = len(model.change_events())
    with ResourceSyncSource(model, changelists=mode) as src:
        caps = {md(u)["capability"]: loc(u) for u in urls(discover(src.base_url))}
        if mode == "none":
            assert "changelist" not in caps
            return
        top = get_xml(caps["changelist"])
        if mode == "index":
            assert top.tag == f"{SM}sitemapindex" and md(top)["capability"] == "changelist"
            lists = [loc(s) for s in top.findall(f"{SM}sitemap")]
        else:
            arch = get_xml(caps["changelist-archive"])
            assert md(arch)["capability"] == "changelist-archive"
            assert all("until" in md(u) for u in urls(arch))
            lists = [loc(u) for u in urls(arch)] + [caps["changelist"]]
        docs = [get_xml(x) for x in lists]
        assert all("until" in md(d) for d in docs[:-1]) and "until" not in md(docs[-1])
        for a, b in itertools.pairwise(docs):
            assert md(a)["until"] == md(b)["from"]
        assert sum(len(urls(d)) for d in docs) == n_events


def test_tamper_and_overrides(source: ResourceSyncSource) -> None:
    m, base = source.model, source.base_url
    entry = next(e for e in m.resource_entries() if "/bitstreams/" in e.loc and e.length)
    m.tamper(entry.loc)
    r = requests.get(entry.loc, timeout=10)
    assert len(r.content) == entry.length
    assert hashlib.md5(r.content).hexdigest() != entry.md5
    empty = next(e for e in m.resource_entries() if e.length == 0)
    m.tamper(empty.loc)
    assert requests.get(empty.loc, timeout=10).content == b"x"
    source.set_override("/resourcelist.xml", 200, b"<urlset><unclosed>", {"Content-Type": "a/b"})
    r = requests.get(f"{base}/resourcelist.xml", timeout=10)
    assert r.content == b"<urlset><unclosed>" and r.headers["Content-Type"] == "a/b"
    source.clear_overrides()
    assert get_xml(f"{base}/resourcelist.xml").tag == f"{SM}urlset"


def test_generate_is_deterministic_and_expected_consistent() -> None:
    a, b = SourceModel.generate(12, seed=7), SourceModel.generate(12, seed=7)
    assert a.expected() == b.expected()
    exp = a.expected()
    assert {e.style for e in exp.values()} == {"dspace", "recipe", "plain"}
    for key, e in exp.items():
        item = a.items[key]
        assert e.files == {f.name: hashlib.md5(f.content).hexdigest() for f in item.files}
        if item.style == "plain":
            assert e.title == item.files[0].name and len(e.files) == 1
    pngs = [f for i in a.items.values() for f in i.files if f.mime == "image/png" and f.content]
    assert pngs and all(f.content.startswith(b"\x89PNG\r\n\x1a\n") for f in pngs)


def test_synthetic_big_list() -> None:
    with ResourceSyncSource(SourceModel.generate(1), synthetic_entries=50_001) as src:
        idx = get_xml(f"{src.base_url}/big/resourcelist.xml")
        pages = [loc(s) for s in idx.findall(f"{SM}sitemap")]
        assert len(pages) == 2
        last = get_xml(pages[1])
        (u,) = urls(last)
        assert loc(u) == f"{src.base_url}/big/r/50000" and md(u)["length"] == "1000"
