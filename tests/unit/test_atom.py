"""SWORD Atom documents: the entry we build and the documents we parse."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from sync.crosswalk import DCRecord
from sync.destinations.sword.atom import (
    ATOM,
    build_entry,
    container_id,
    feed_next_link,
    parse_collection_feed,
    parse_error,
    parse_receipt,
    parse_service_document,
    parse_statement,
)
from sync.errors import DepositError

DCT = "http://purl.org/dc/terms/"
A = f"{{{ATOM}}}"
D = f"{{{DCT}}}"


def _record(**terms: list[str]) -> DCRecord:
    rec = DCRecord()
    for name, values in terms.items():
        for v in values:
            rec.add(name, v)
    return rec


def test_build_entry_utf8_and_escaping() -> None:
    rec = _record(
        title=["Łódź & café <1>"],
        creator=["Müller, Jörg", "Dupont"],
        description=["Über"],
        subject=["a", "b"],
        identifier=["http://src/item/1"],
    )
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    data = build_entry(
        rec,
        title="Łódź & café <1>",
        source_ids=["http://src/item/1", "http://src/m/2"],
        updated=when,
    )
    assert data.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    assert "Łódź &amp; café &lt;1&gt;".encode() in data
    assert b'xmlns="http://www.w3.org/2005/Atom"' in data
    assert b'xmlns:dcterms="http://purl.org/dc/terms/"' in data
    root = ET.fromstring(data)
    assert root.tag == A + "entry"
    assert root.findtext(A + "title") == "Łódź & café <1>"
    assert root.findtext(A + "id") == container_id("http://src/item/1")
    assert root.findtext(A + "updated") == "2024-01-02T03:04:05Z"
    assert [a.findtext(A + "name") for a in root.findall(A + "author")] == [
        "Müller, Jörg",
        "Dupont",
    ]
    assert root.findtext(A + "summary") == "Über"
    assert [e.text for e in root.findall(D + "creator")] == ["Müller, Jörg", "Dupont"]
    assert [e.text for e in root.findall(D + "subject")] == ["a", "b"]
    assert [e.text for e in root.findall(D + "identifier")] == [
        "http://src/item/1",
        "http://src/m/2",
    ]
    assert root.findtext(D + "title") == "Łódź & café <1>"


def test_build_entry_defaults() -> None:
    data = build_entry(DCRecord(), title="Fallback\x01 title", source_ids=["u"])
    root = ET.fromstring(data)  # control characters are dropped: still well-formed
    assert root.findtext(A + "title") == "Fallback title"
    assert [a.findtext(A + "name") for a in root.findall(A + "author")] == ["resync-sword"]
    assert root.find(A + "summary") is None
    assert root.findtext(D + "title") == "Fallback title"
    assert root.findtext(D + "identifier") == "u"


def test_container_id_is_deterministic() -> None:
    assert container_id("http://x/1") == container_id("http://x/1")
    assert container_id("http://x/1") != container_id("http://x/2")
    assert container_id("http://x/1").startswith("urn:uuid:")


SERVICE = b"""<?xml version="1.0"?>
<service xmlns="http://www.w3.org/2007/app" xmlns:atom="http://www.w3.org/2005/Atom"
         xmlns:sword="http://purl.org/net/sword/terms/">
  <sword:version>2.0</sword:version>
  <sword:maxUploadSize>16384</sword:maxUploadSize>
  <workspace>
    <atom:title>Repo</atom:title>
    <collection href="http://dest/swordv2/collection/123/2">
      <atom:title>Theses</atom:title>
      <accept>*/*</accept>
      <accept alternate="multipart-related">*/*</accept>
      <sword:acceptPackaging>http://purl.org/net/sword/package/Binary</sword:acceptPackaging>
      <sword:acceptPackaging>http://purl.org/net/sword/package/SimpleZip</sword:acceptPackaging>
      <sword:mediation>true</sword:mediation>
    </collection>
    <collection href="/swordv2/collection/123/3"><atom:title>Data</atom:title></collection>
  </workspace>
</service>"""


def test_service_document() -> None:
    doc = parse_service_document(SERVICE, url="http://dest/swordv2/servicedocument")
    assert doc.version == "2.0"
    assert doc.max_upload_kb == 16384
    theses = doc.collections["http://dest/swordv2/collection/123/2"]
    assert theses.title == "Theses"
    assert theses.accept == ["*/*", "*/*"]
    assert theses.accept_packaging[0] == "http://purl.org/net/sword/package/Binary"
    assert theses.mediation is True
    data = doc.collections["http://dest/swordv2/collection/123/3"]
    assert data.mediation is None
    assert doc.find("data") is data
    assert doc.find("http://dest/swordv2/collection/123/2") is theses
    assert doc.find("nope") is None


def test_service_document_wrong_root() -> None:
    with pytest.raises(DepositError):
        parse_service_document(b"<feed xmlns='http://www.w3.org/2005/Atom'/>")


RECEIPT = b"""<entry xmlns="http://www.w3.org/2005/Atom" xmlns:sword="http://purl.org/net/sword/terms/">
  <title>T</title>
  <content type="application/zip" src="http://dest/cont/1"/>
  <link rel="edit-media" type="application/zip" href="http://dest/em/1.zip"/>
  <link rel="edit-media" href="http://dest/em/1"/>
  <link rel="edit" href="http://dest/edit/1"/>
  <link rel="http://purl.org/net/sword/terms/add" href="http://dest/se/1"/>
  <link rel="http://purl.org/net/sword/terms/statement" type="application/rdf+xml"
        href="http://dest/st/1.rdf"/>
  <link rel="http://purl.org/net/sword/terms/statement" type="application/atom+xml;type=feed"
        href="http://dest/st/1.atom"/>
  <sword:treatment>stored</sword:treatment>
</entry>"""


def test_receipt() -> None:
    r = parse_receipt(RECEIPT, None)
    assert r.edit_iri == "http://dest/edit/1"
    assert r.em_iri == "http://dest/em/1"
    assert r.se_iri == "http://dest/se/1"
    assert r.statement_atom == "http://dest/st/1.atom"
    assert r.statement_ore == "http://dest/st/1.rdf"
    assert r.content_src == "http://dest/cont/1"
    assert r.treatment == "stored"


def test_receipt_fallbacks() -> None:
    data = b"""<entry xmlns="http://www.w3.org/2005/Atom">
      <link rel="edit-media" type="application/zip" href="em.zip"/></entry>"""
    r = parse_receipt(data, "http://dest/edit/9")
    assert r.edit_iri == "http://dest/edit/9"
    assert r.se_iri == "http://dest/edit/9"
    assert r.em_iri == "http://dest/edit/em.zip"
    assert r.statement_atom is None


@pytest.mark.parametrize("data", [b"", b"<html><body>oops", b"<feed xmlns='x'/>"])
def test_receipt_bad(data: bytes) -> None:
    with pytest.raises(DepositError):
        parse_receipt(data, "http://dest/edit/1")


STATEMENT = b"""<feed xmlns="http://www.w3.org/2005/Atom" xmlns:sword="http://purl.org/net/sword/terms/">
  <sword:state href="http://dspace.org/state/archived">
    <sword:stateDescription>The item is in the archive</sword:stateDescription>
  </sword:state>
  <entry>
    <title>report.pdf</title>
    <content type="application/pdf" src="http://dest/bitstream/1/report.pdf"/>
    <sword:depositedOn>2024-01-01T00:00:00Z</sword:depositedOn>
  </entry>
  <entry>
    <content type="text/plain" src="http://dest/bitstream/2/%C5%81%C3%B3d%C5%BA.txt"/>
  </entry>
  <entry><title>no content</title></entry>
</feed>"""


def test_statement_atom() -> None:
    st = parse_statement(STATEMENT, url="http://dest/st/1.atom")
    assert st.state == "archived"
    assert st.state_description == "The item is in the archive"
    assert [(f.iri, f.name, f.content_type) for f in st.files] == [
        ("http://dest/bitstream/1/report.pdf", "report.pdf", "application/pdf"),
        ("http://dest/bitstream/2/%C5%81%C3%B3d%C5%BA.txt", "Łódź.txt", "text/plain"),
    ]
    assert st.files[0].md5 is None


ORE = b"""<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
  xmlns:ore="http://www.openarchives.org/ore/terms/" xmlns:sword="http://purl.org/net/sword/terms/"
  xmlns:dcterms="http://purl.org/dc/terms/">
  <rdf:Description rdf:about="http://dest/edit/1">
    <ore:describes rdf:resource="http://dest/agg/1"/>
  </rdf:Description>
  <rdf:Description rdf:about="http://dest/agg/1">
    <ore:aggregates rdf:resource="http://dest/file/a.pdf"/>
    <ore:aggregates rdf:resource="http://dest/file/b.txt"/>
    <sword:state rdf:resource="http://purl.org/net/sword/state/in-progress"/>
  </rdf:Description>
  <rdf:Description rdf:about="http://dest/file/a.pdf">
    <dcterms:format>application/pdf</dcterms:format>
  </rdf:Description>
</rdf:RDF>"""


def test_statement_ore() -> None:
    st = parse_statement(ORE)
    assert st.state == "in-progress"
    assert [(f.name, f.content_type) for f in st.files] == [
        ("a.pdf", "application/pdf"),
        ("b.txt", None),
    ]


def test_statement_refuses_entities() -> None:
    bomb = b'<!DOCTYPE f [<!ENTITY a "aaaa">]><feed xmlns="http://www.w3.org/2005/Atom">&a;</feed>'
    with pytest.raises(DepositError):
        parse_statement(bomb)


FEED = b"""<feed xmlns="http://www.w3.org/2005/Atom" xmlns:sword="http://purl.org/net/sword/terms/"
   xmlns:dcterms="http://purl.org/dc/terms/">
  <link rel="next" href="?page=2"/>
  <entry>
    <title>One</title>
    <link rel="edit" href="http://dest/edit/1"/>
    <sword:slug>item-1</sword:slug>
    <dcterms:identifier>http://src/1</dcterms:identifier>
    <dcterms:identifier>hdl:1/1</dcterms:identifier>
  </entry>
  <entry><title>no edit link</title></entry>
  <entry><link rel="edit" href="/edit/2"/></entry>
</feed>"""


def test_collection_feed() -> None:
    entries = parse_collection_feed(FEED, url="http://dest/col/1")
    assert len(entries) == 2
    first, second = entries
    assert first.edit_iri == "http://dest/edit/1"
    assert first.slug == "item-1"
    assert first.identifiers == ["http://src/1", "hdl:1/1"]
    assert first.title == "One"
    assert second.edit_iri == "http://dest/edit/2"
    assert second.slug is None and second.identifiers == [] and second.title is None
    assert feed_next_link(FEED, url="http://dest/col/1") == "http://dest/col/1?page=2"


ERROR = b"""<sword:error xmlns="http://www.w3.org/2005/Atom" xmlns:sword="http://purl.org/net/sword/terms/"
    href="http://purl.org/net/sword/error/ErrorChecksumMismatch">
  <title>ERROR</title>
  <summary>Checksum mismatch</summary>
  <sword:verboseDescription>expected abc got def</sword:verboseDescription>
</sword:error>"""


def test_parse_error_sword() -> None:
    href, msg = parse_error(412, ERROR, "application/xml")
    assert href == "http://purl.org/net/sword/error/ErrorChecksumMismatch"
    assert msg == "Checksum mismatch: expected abc got def"
    only_title = (
        b'<e:error xmlns:e="http://purl.org/net/sword/terms/" href="h">'
        b'<t:title xmlns:t="http://www.w3.org/2005/Atom">Oops</t:title></e:error>'
    )
    assert parse_error(400, only_title, None) == ("h", "Oops")
    bare = b'<e:error xmlns:e="http://purl.org/net/sword/terms/" href="http://x/err/Name"/>'
    assert parse_error(400, bare, None) == ("http://x/err/Name", "Name")


def test_parse_error_plain_and_html() -> None:
    assert parse_error(500, b"x" * 500, "text/plain") == (None, "x" * 197 + "...")
    assert parse_error(502, b"<html><body><h1>Bad  Gateway</h1></body></html>", "text/html") == (
        None,
        "Bad Gateway",
    )
    assert parse_error(500, b"", None) == (None, "HTTP 500")
    assert parse_error(400, b"<broken", "application/xml")[0] is None
    bomb = b'<!DOCTYPE e [<!ENTITY a "a">]><e>&a;</e>'
    assert parse_error(400, bomb, "application/xml")[0] is None
    assert parse_error(400, "caf\xe9".encode("latin-1"), "text/plain") == (None, "caf\ufffd")
