"""Pure parsing of OAI-PMH pages, ORE resource maps and METS file sections."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from defusedxml.ElementTree import fromstring

from sync.errors import DocumentError
from sync.sources.oai_pmh.files import FileDesc, select_bundles
from sync.sources.oai_pmh.mets import last_modified, parse_mets
from sync.sources.oai_pmh.ore import parse_resource_map, updated
from sync.sources.oai_pmh.protocol import (
    Identify,
    ListingLoopError,
    OaiError,
    _next_token,
    _Page,
)
from sync.sources.oai_pmh.source import handle_of

BASE = "https://repo.example.org/server/oai/request"
ORE = b"""<atom:entry xmlns:atom="http://www.w3.org/2005/Atom"
  xmlns:oreatom="http://www.openarchives.org/ore/atom/"
  xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:dcterms="http://purl.org/dc/terms/">
 <atom:link rel="alternate" href="https://repo.example.org/handle/123456789/45"/>
 <atom:updated>2024-03-01T10:11:12.345Z</atom:updated>
 <atom:link rel="http://www.openarchives.org/ore/terms/aggregates"
   href="https://repo.example.org/server/api/core/bitstreams/aaa/content"
   title="Caf\xc3\xa9 paper.pdf" type="application/pdf" length="12345"/>
 <atom:link rel="http://www.openarchives.org/ore/terms/aggregates"
   href="https://repo.example.org/server/api/core/bitstreams/bbb/content"
   title="Caf\xc3\xa9 paper.pdf.txt" type="text/plain" length="99"/>
 <atom:link rel="http://www.openarchives.org/ore/terms/aggregates" href="/relative/ccc"/>
 <oreatom:triples>
  <rdf:Description rdf:about="https://repo.example.org/server/api/core/bitstreams/aaa/content">
   <dcterms:description>ORIGINAL</dcterms:description></rdf:Description>
  <rdf:Description rdf:about="https://repo.example.org/server/api/core/bitstreams/bbb/content">
   <dcterms:description>TEXT</dcterms:description></rdf:Description>
 </oreatom:triples>
</atom:entry>"""
METS = b"""<mets xmlns="http://www.loc.gov/METS/" xmlns:xlink="http://www.w3.org/1999/xlink"
  OBJID="hdl:123456789/45">
 <metsHdr CREATEDATE="2024-01-01T00:00:00Z" LASTMODDATE="2024-03-01T10:11:12Z"/>
 <fileSec>
  <fileGrp USE="ORIGINAL">
   <file MIMETYPE="application/pdf" SIZE="12345" CHECKSUM="0123456789ABCDEF0123456789abcdef"
     CHECKSUMTYPE="MD5">
     <FLocat xlink:href="https://repo.example.org/b/1" xlink:title="a.pdf"/></file>
  </fileGrp>
  <fileGrp USE="THUMBNAIL">
   <file MIMETYPE="image/jpeg" SIZE="10" CHECKSUM="ab" CHECKSUMTYPE="SHA-1">
     <FLocat xlink:href="https://repo.example.org/b/2"/></file>
  </fileGrp>
 </fileSec>
</mets>"""


def test_ore_links_give_href_title_type_length_and_bundle() -> None:
    where = BASE + "?verb=GetRecord"
    files = parse_resource_map(fromstring(ORE), where=where)
    assert files[0] == FileDesc(
        href="https://repo.example.org/server/api/core/bitstreams/aaa/content",
        name="Café paper.pdf",
        type="application/pdf",
        length=12345,
        bundle="ORIGINAL",
    )
    assert files[1].bundle == "TEXT"
    assert files[2].href == "https://repo.example.org/relative/ccc" and files[2].bundle is None
    assert [f.name for f in select_bundles(files, ("ORIGINAL",))] == ["Café paper.pdf", None]
    root = fromstring(ORE)
    assert updated(root) == "2024-03-01T10:11:12.345Z"


def test_ore_refuses_what_is_not_a_resource_map_and_bad_lengths() -> None:
    with pytest.raises(DocumentError, match="not an ORE"):
        parse_resource_map(fromstring(METS), where=BASE)
    bad = ORE.replace(b'length="12345"', b'length="12 kB"')
    with pytest.raises(DocumentError, match="bad file length"):
        parse_resource_map(fromstring(bad), where=BASE)


def test_mets_filesec_gives_groups_checksums_and_sizes() -> None:
    root = fromstring(METS)
    files = parse_mets(root, where=BASE)
    assert files[0] == FileDesc(
        href="https://repo.example.org/b/1",
        name="a.pdf",
        type="application/pdf",
        length=12345,
        md5="0123456789abcdef0123456789abcdef",
        bundle="ORIGINAL",
    )
    assert files[1].bundle == "THUMBNAIL" and files[1].md5 is None  # SHA-1 is not read
    assert select_bundles(files, ("original",)) == files[:1]
    assert last_modified(root) == "2024-03-01T10:11:12Z"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (b'CHECKSUM="0123456789ABCDEF0123456789abcdef"', b'CHECKSUM="xyz"', "bad MD5"),
        (b'SIZE="12345"', b'SIZE="-1"', "negative file length"),
        (b'xlink:href="https://repo.example.org/b/1"', b"", "no FLocat href"),
    ],
)
def test_mets_refuses_bad_checksums_sizes_and_missing_locations(
    old: bytes, new: bytes, message: str
) -> None:
    with pytest.raises(DocumentError, match=message):
        parse_mets(fromstring(METS.replace(old, new)), where=BASE)


def _page(tmp_path: Path, body: bytes, verb: str = "ListRecords") -> _Page:
    path = tmp_path / "page.xml"
    path.write_bytes(body)
    return _Page(path, BASE, verb)


OAI_HEAD = (
    b'<?xml version="1.0"?><OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
    b"<responseDate>2024-05-01T12:00:00Z</responseDate><request>x</request>"
)


def test_a_page_yields_records_then_knows_its_token_and_date(tmp_path: Path) -> None:
    body = OAI_HEAD + (
        b"<ListRecords><record><header><identifier>oai:x:1/2</identifier>"
        b"<datestamp>2024-01-01</datestamp><setSpec>col_1_2</setSpec></header></record>"
        b'<record><header status="deleted"><identifier>oai:x:1/3</identifier>'
        b"<datestamp>2024-01-02</datestamp></header></record>"
        b'<resumptionToken completeListSize="9" cursor="0">t1</resumptionToken>'
        b"</ListRecords></OAI-PMH>"
    )
    page = _page(tmp_path, body)
    tags = [el.tag.split("}")[1] for el in page.items()]
    assert tags == ["record", "record"]
    assert page.token == "t1" and page.complete_size == 9
    assert page.response_date == "2024-05-01T12:00:00Z"
    assert page.raise_errors() is False


def test_no_records_match_is_empty_and_other_errors_raise_with_code_and_text(
    tmp_path: Path,
) -> None:
    empty = _page(tmp_path, OAI_HEAD + b'<error code="noRecordsMatch">none</error></OAI-PMH>')
    assert list(empty.items()) == [] and empty.raise_errors() is True
    bad = _page(tmp_path, OAI_HEAD + b'<error code="badArgument">bad from</error></OAI-PMH>')
    list(bad.items())
    with pytest.raises(OaiError, match="badArgument: bad from"):
        bad.raise_errors()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>', "DTDs"),
        (b'<?xml version="1.0"?><rss/>', "not an OAI-PMH response"),
        (OAI_HEAD + b"<ListRecords><record>", "not well-formed"),
        (OAI_HEAD + b"<ListSets/></OAI-PMH>", "not a ListRecords response"),
    ],
)
def test_hostile_or_wrong_pages_are_refused(tmp_path: Path, body: bytes, message: str) -> None:
    with pytest.raises(DocumentError, match=message):
        list(_page(tmp_path, body).items())


def test_a_token_seen_twice_is_a_loop(tmp_path: Path) -> None:
    page = _page(tmp_path, b"")
    page.token = "same"
    seen: set[str] = set()
    assert _next_token(page, seen) == "same"
    with pytest.raises(ListingLoopError):
        _next_token(page, seen)


def test_from_is_written_in_the_repository_granularity() -> None:
    when = datetime(2024, 3, 1, 23, 59, 58, 123, tzinfo=UTC)
    day = Identify(BASE, "r", "day", None, "persistent")
    seconds = Identify(BASE, "r", "seconds", None, "persistent")
    assert day.format_from(when) == "2024-03-01"
    assert seconds.format_from(when) == "2024-03-01T23:59:58Z"


@pytest.mark.parametrize(
    ("identifier", "handle"),
    [
        ("oai:repo.example.org:123456789/45", "123456789/45"),
        ("oai:eprints.example.org:1234", None),
        ("oai:zenodo.org:record/77", None),
        ("oai:repo:10.5072/abc", "10.5072/abc"),
    ],
)
def test_handles_are_recognised_in_oai_identifiers(identifier: str, handle: str | None) -> None:
    assert handle_of(identifier) == handle
