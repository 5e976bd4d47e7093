"""``parse_untrusted`` builds documents with the C parser behind defusedxml's checks: the same
elements ``defusedxml.ElementTree.fromstring(forbid_dtd=True)`` built (the reference), and
every document it refused is refused, as the caller's error naming the document."""

from __future__ import annotations

from xml.etree.ElementTree import Element, tostring

import pytest
from defusedxml.ElementTree import fromstring as defused_fromstring
from hypothesis import given
from hypothesis import strategies as st

from sync.errors import MetadataError
from sync.safexml import escape, parse_untrusted, quoteattr

RECEIPT = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<!-- receipt --><?pi x?>\n'
    b'<entry xmlns="http://www.w3.org/2005/Atom" xmlns:dcterms="http://purl.org/dc/terms/">'
    b"<title>Caf\xc3\xa9 &amp; &lt;tea&gt; &#233;</title>"
    b'<link rel="edit" href="http://h/edit/1?a=1&amp;b=2"/>'
    b"<dcterms:identifier>x</dcterms:identifier><![CDATA[<raw>]]></entry>"
)


def _parse(data: bytes) -> Element:
    return parse_untrusted(data, what="receipt", url="http://h/col", error=MetadataError)


def test_the_c_parser_builds_what_defusedxml_built() -> None:
    ours, theirs = _parse(RECEIPT), defused_fromstring(RECEIPT, forbid_dtd=True)
    assert tostring(ours) == tostring(theirs)
    assert ours.find("{http://www.w3.org/2005/Atom}title").text == "Café & <tea> é"  # type: ignore[union-attr]


def test_another_encoding_is_read_as_declared() -> None:
    doc = '<?xml version="1.0" encoding="ISO-8859-1"?><t>caf\xe9</t>'.encode("latin-1")
    assert _parse(doc).text == "café"
    assert _parse("<t>ünï</t>".encode("utf-16")).text == "ünï"


@given(st.text(alphabet="ab&<>\"'é \n;#x0123"))
def test_any_text_round_trips_as_in_defusedxml(text: str) -> None:
    doc = f"<r a={quoteattr(text)}>{escape(text)}</r>".encode()
    ours, theirs = _parse(doc), defused_fromstring(doc, forbid_dtd=True)
    assert (ours.text, ours.attrib) == (theirs.text, theirs.attrib)


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>',
        b'<?xml version="1.0"?><!-- first --><!DOCTYPE x SYSTEM "file:///etc/passwd"><x/>',
        b"<!DOCTYPE x [" + b"<!-- padding -->" * 4000 + b"]><x/>",
        b'<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><x>&b;</x>',
        b'<!DOCTYPE x [<!ENTITY % p SYSTEM "http://evil/p.dtd"> %p;]><x/>',
    ],
)
def test_a_dtd_is_refused_naming_the_document(body: bytes) -> None:
    with pytest.raises(MetadataError, match="receipt was refused: it uses DTDForbidden") as exc:
        _parse(body)
    assert exc.value.resource == "http://h/col"


@pytest.mark.parametrize(
    "body",
    [
        b"<x>&xxe;</x>",  # an entity nobody declared
        b"<x><y></x>",
        b"<x/><!DOCTYPE x []>",  # a DTD after the root is not well-formed
        b"<?xml version='1.0'?><!-- unterminated",
        b"\xff\xfe<",
    ],
)
def test_what_is_not_well_formed_is_refused(body: bytes) -> None:
    with pytest.raises(MetadataError, match="receipt is not well-formed XML"):
        _parse(body)


@pytest.mark.parametrize("body", [b"", b"  \n"])
def test_an_empty_document_is_refused(body: bytes) -> None:
    with pytest.raises(MetadataError, match="receipt is empty"):
        _parse(body)
