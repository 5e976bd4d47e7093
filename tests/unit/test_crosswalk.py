"""Metadata crosswalk: oai_dc, qdc, dim, dcterms -> DCRecord; hostile and unknown records."""

from __future__ import annotations

import pytest

from sync.crosswalk import (
    FORMATS,
    DCRecord,
    choose_primary,
    format_hint,
    read_metadata,
)
from sync.errors import MetadataError
from sync.model import Entry, Link

URL = "http://src.test/resource/123456789/1/oai_dc"

OAI_DC = """<?xml version="1.0" encoding="UTF-8"?>
<oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/"
           xmlns:dc="http://purl.org/dc/elements/1.1/">
  <dc:title>Floods &amp; droughts in Łódź: 1 &lt; 2</dc:title>
  <dc:creator>Müller, Jörg</dc:creator>
  <dc:creator> Müller, Jörg </dc:creator>
  <dc:creator>Dupont, Café</dc:creator>
  <dc:date>2020-01-02</dc:date>
  <dc:identifier>http://hdl.handle.net/123456789/1</dc:identifier>
  <dc:description>About  water.</dc:description>
  <dc:subject>hydrology</dc:subject>
  <dc:subject></dc:subject>
  <dc:language>pl</dc:language>
</oai_dc:dc>
""".encode()

QDC = """<?xml version="1.0" encoding="UTF-8"?>
<qdc:qualifieddc xmlns:qdc="http://epubs.cclrc.ac.uk/xmlns/qdc/"
    xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/">
  <dc:title>Café culture</dc:title>
  <dc:creator>Jörg Müller</dc:creator>
  <dcterms:abstract>An abstract.</dcterms:abstract>
  <dcterms:issued>2021</dcterms:issued>
  <dc:rights>CC-BY</dc:rights>
</qdc:qualifieddc>
""".encode()

DIM = """<?xml version="1.0" encoding="UTF-8"?>
<dim:dim xmlns:dim="http://www.dspace.org/xmlns/dspace/dim">
  <dim:field mdschema="dc" element="contributor" qualifier="author">Kowalski, Jan</dim:field>
  <dim:field mdschema="dc" element="contributor" qualifier="advisor">Nowak, Anna</dim:field>
  <dim:field mdschema="dc" element="date" qualifier="accessioned">2022-05-01T10:00:00Z</dim:field>
  <dim:field mdschema="dc" element="date" qualifier="issued">2019</dim:field>
  <dim:field mdschema="dc" element="identifier" qualifier="uri">http://hdl.handle.net/1/2</dim:field>
  <dim:field mdschema="dc" element="description" qualifier="abstract">Über Łódź.</dim:field>
  <dim:field mdschema="dc" element="description" qualifier="provenance">Submitted by x@y</dim:field>
  <dim:field mdschema="dc" element="title" lang="en">A &amp; B &lt;C&gt;</dim:field>
  <dim:field mdschema="dc" element="title" qualifier="alternative">Alt</dim:field>
  <dim:field mdschema="dc" element="subject">rivers</dim:field>
  <dim:field mdschema="dc" element="type">Article</dim:field>
  <dim:field mdschema="local" element="secret">internal</dim:field>
  <dim:field mdschema="dc" element="publisher"> </dim:field>
</dim:dim>
""".encode()

DCTERMS = b"""<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns:dcterms="http://purl.org/dc/terms/" xmlns:dc="http://purl.org/dc/elements/1.1/">
  <dcterms:title>Plain</dcterms:title>
  <dcterms:creator>Someone</dcterms:creator>
  <dcterms:created>2018-03-04</dcterms:created>
  <dcterms:dateAccepted>2018-04-04</dcterms:dateAccepted>
  <dc:publisher>Pub</dc:publisher>
  <!-- a comment -->
</metadata>
"""


def test_oai_dc() -> None:
    fmt, rec = read_metadata(OAI_DC, url=URL)
    assert fmt == "oai_dc"
    assert rec.title == "Floods & droughts in Łódź: 1 < 2"
    assert rec.terms["creator"] == ["Müller, Jörg", "Dupont, Café"]
    assert rec.terms["date"] == ["2020-01-02"]
    assert rec.terms["subject"] == ["hydrology"]
    assert rec.terms["description"] == ["About  water."]
    assert rec.terms["language"] == ["pl"]


def test_qdc() -> None:
    fmt, rec = read_metadata(QDC, url=URL)
    assert fmt == "qdc"
    assert rec.title == "Café culture"
    assert rec.terms["abstract"] == ["An abstract."]
    assert rec.terms["description"] == ["An abstract."]
    assert rec.terms["issued"] == ["2021"]
    assert rec.terms["date"] == ["2021"]
    assert rec.terms["rights"] == ["CC-BY"]


def test_dim() -> None:
    fmt, rec = read_metadata(DIM, url=URL)
    assert fmt == "dim"
    assert rec.title == "A & B <C>"
    assert rec.terms["alternative"] == ["Alt"]
    assert rec.terms["creator"] == ["Kowalski, Jan"]
    assert rec.terms["contributor"] == ["Nowak, Anna"]
    assert rec.terms["date"] == ["2019"]  # accession time does not masquerade as the date
    assert rec.terms["issued"] == ["2019"]
    assert rec.terms["dateAccepted"] == ["2022-05-01T10:00:00Z"]
    assert rec.terms["identifier"] == ["http://hdl.handle.net/1/2"]
    assert rec.terms["description"] == ["Über Łódź."]
    assert rec.terms["abstract"] == ["Über Łódź."]
    assert rec.terms["subject"] == ["rivers"]
    assert rec.terms["type"] == ["Article"]
    assert "publisher" not in rec.terms
    assert "secret" not in rec.terms
    assert all("x@y" not in v for vs in rec.terms.values() for v in vs)  # provenance dropped


def test_dcterms_any_root() -> None:
    fmt, rec = read_metadata(DCTERMS, url=URL)
    assert fmt == "dcterms"
    assert rec.title == "Plain"
    assert rec.terms["date"] == ["2018-03-04", "2018-04-04"]
    assert rec.terms["created"] == ["2018-03-04"]
    assert rec.terms["publisher"] == ["Pub"]


def test_missing_title() -> None:
    data = (
        b'<oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" '
        b'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>X</dc:creator>'
        b"<dc:title>   </dc:title></oai_dc:dc>"
    )
    fmt, rec = read_metadata(data, url=URL)
    assert fmt == "oai_dc"
    assert rec.title is None


def test_title_whitespace_is_collapsed() -> None:
    data = (
        b'<m xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>\n  Two\n  lines\n'
        b"</dc:title></m>"
    )
    assert read_metadata(data, url=URL)[1].title == "Two lines"


@pytest.mark.parametrize(
    "data",
    [
        b"<oai_dc:dc xmlns:oai_dc='http://www.openarchives.org/OAI/2.0/oai_dc/'><unclosed>",
        b"not xml at all",
        b"",
        b"   ",
        "<?xml version='1.0' encoding='utf-8'?><a>\udcff</a>".encode("utf-8", "surrogateescape"),
    ],
)
def test_malformed_is_metadata_error(data: bytes) -> None:
    with pytest.raises(MetadataError) as info:
        read_metadata(data, url=URL)
    assert info.value.resource == URL


def test_billion_laughs_is_refused() -> None:
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<m xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>&lol3;</dc:title></m>"""
    with pytest.raises(MetadataError) as info:
        read_metadata(bomb, url=URL)
    assert "refused" in info.value.message


def test_external_entity_is_refused() -> None:
    xxe = b"""<?xml version="1.0"?>
<!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<m xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>&x;</dc:title></m>"""
    with pytest.raises(MetadataError):
        read_metadata(xxe, url=URL)


def test_unknown_root_names_the_root() -> None:
    data = b'<mods xmlns="http://www.loc.gov/mods/v3"><titleInfo/></mods>'
    with pytest.raises(MetadataError) as info:
        read_metadata(data, url=URL)
    assert "{http://www.loc.gov/mods/v3}mods" in info.value.message
    assert info.value.resource == URL


def test_record_add_dedup_and_order() -> None:
    rec = DCRecord()
    rec.add("subject", " b ")
    rec.add("subject", "a")
    rec.add("subject", "b")
    rec.add("subject", "")
    rec.add("subject", None)
    assert rec.terms == {"subject": ["b", "a"]}
    assert rec.title is None


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            Entry(
                loc="http://s/resource/1/2/x",
                links=(Link("profile", "http://www.openarchives.org/OAI/2.0/oai_dc/"),),
            ),
            "oai_dc",
        ),
        (
            Entry(
                loc="http://s/x", links=(Link("profile", "http://epubs.cclrc.ac.uk/xmlns/qdc/"),)
            ),
            "qdc",
        ),
        (
            Entry(
                loc="http://s/x",
                links=(Link("profile", "http://www.dspace.org/xmlns/dspace/dim"),),
            ),
            "dim",
        ),
        (Entry(loc="http://s/x", links=(Link("profile", "http://purl.org/dc/terms/"),)), "dcterms"),
        (Entry(loc="http://s/resource/123/4/qdc"), "qdc"),
        (Entry(loc="http://s/resource/123/4/dim"), "dim"),
        (Entry(loc="http://s/123/4?format=oai_dc"), "oai_dc"),
        (Entry(loc="http://s/123/4/mets"), None),
        (Entry(loc="http://s/"), None),
    ],
)
def test_format_hint(entry: Entry, expected: str | None) -> None:
    assert format_hint(entry) == expected


def test_choose_primary() -> None:
    candidates = ["oai_dc", None, "dim", "qdc", "mets", "qdc"]
    assert choose_primary(candidates, FORMATS) == [3, 5, 0, 2, 1, 4]
    assert choose_primary(candidates, ["dim"]) == [2, 0, 1, 3, 4, 5]
    assert choose_primary([], FORMATS) == []
