"""The harvest's fast paths (issue #12 target 3) give what the slow ones gave and refuse what
they refused: the C parser behind defusedxml's checks, the page read ahead, file URLs and
GetRecord locs written without urllib, the interpreter tuned while pages are read."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from urllib.parse import urlencode, urljoin
from xml.etree.ElementTree import ParseError, tostring

import pytest
from defusedxml import DTDForbidden
from defusedxml.ElementTree import iterparse as defused_iterparse

from sync.http import Download
from sync.safexml import iterparse
from sync.sources.oai_pmh.prefetch import PagePrefetch, peek_token
from sync.sources.oai_pmh.source import _identifier_query
from sync.sources.oai_pmh.tuning import reading_pages
from sync.urls import join_url as resolve

OAI = b'<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
PAGE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<!-- a comment --><?pi x?>\n'
    + OAI
    + b"<ListRecords><record><header><identifier>oai:x:1/2</identifier></header><metadata>"
    b'<mets xmlns="http://www.loc.gov/METS/" xmlns:xlink="http://www.w3.org/1999/xlink">'
    b'<file CHECKSUM="ab"><FLocat xlink:href="http://h/b?a=1&amp;c=%20"/>caf\xc3\xa9</file>'
    b"</mets></metadata></record>"
    b'<resumptionToken completeListSize="9" cursor="0">mets////2&amp;x</resumptionToken>'
    b"</ListRecords></OAI-PMH>\n"
)


def _write(tmp_path: Path, body: bytes) -> Path:
    path = tmp_path / "page.xml"
    path.write_bytes(body)
    return path


def test_the_c_parser_gives_the_events_and_elements_defusedxml_gave(tmp_path: Path) -> None:
    path = _write(tmp_path, PAGE)
    ours = [(ev, el.tag, el.text, dict(el.attrib)) for ev, el in iterparse(path)]
    theirs = [
        (ev, el.tag, el.text, dict(el.attrib))
        for ev, el in defused_iterparse(str(path), events=("start", "end"), forbid_dtd=True)
    ]
    assert len(ours) == 2 * 10
    assert ours == theirs
    root = [el for ev, el in iterparse(path) if ev == "end"][-1]
    assert b"caf\xc3\xa9" in tostring(root, encoding="utf-8")


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>',
        b'<?xml version="1.0"?><!-- first --><!DOCTYPE x SYSTEM "file:///etc/passwd"><x/>',
        b"<!DOCTYPE x [" + b"<!-- padding -->" * 4000 + b"]><x/>",  # past the first chunk
        b'<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><x>&b;</x>',
    ],
)
def test_a_dtd_is_refused_before_anything_is_read(tmp_path: Path, body: bytes) -> None:
    with pytest.raises(DTDForbidden):
        list(iterparse(_write(tmp_path, body)))


def test_an_undeclared_entity_is_not_well_formed(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="undefined entity"):
        list(iterparse(_write(tmp_path, b"<x>&xxe;</x>")))


def test_events_before_a_fault_come_first_then_the_fault(tmp_path: Path) -> None:
    seen: list[str] = []
    with pytest.raises(ParseError):
        for ev, el in iterparse(_write(tmp_path, OAI + b"<ListRecords><a/><b></ListRecords>")):
            seen.append(f"{ev}:{el.tag.rsplit('}', 1)[-1]}")
    assert seen[:4] == ["start:OAI-PMH", "start:ListRecords", "start:a", "end:a"]


def test_the_token_is_read_from_the_page_tail_as_a_hint(tmp_path: Path) -> None:
    assert peek_token(_write(tmp_path, PAGE)) == "mets////2&x"
    last = OAI + b'<ListRecords><resumptionToken completeListSize="9" cursor="8"/>'
    assert peek_token(_write(tmp_path, last + b"</ListRecords></OAI-PMH>")) is None
    prefixed = b"<oai:resumptionToken>t-1</oai:resumptionToken></oai:ListRecords>"
    assert peek_token(_write(tmp_path, prefixed)) == "t-1"
    assert peek_token(_write(tmp_path, b"")) is None


class _Downloads:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.urls: list[str] = []

    def __call__(self, url: str) -> Download:
        self.urls.append(url)
        path = self.tmp_path / f"dl-{len(self.urls)}"
        path.write_text(url)
        return Download(url, path, len(url), "", "", "", "text/xml", None)


def test_a_page_read_ahead_is_used_once_and_a_wrong_guess_is_thrown_away(
    tmp_path: Path,
) -> None:
    downloads = _Downloads(tmp_path)
    fetch = PagePrefetch(downloads)
    first = fetch.take("u1")
    assert first.path.read_text() == "u1"
    fetch.start("u2")
    assert fetch.take("u2").path.read_text() == "u2"
    fetch.start("u3-guess")
    assert fetch.take("u3").path.read_text() == "u3"  # the guess was wrong: downloaded again
    fetch.start("u4")
    fetch.close()
    # the guess and u4 may have been cancelled before they started: either way not kept
    assert [u for u in downloads.urls if u not in ("u3-guess", "u4")] == ["u1", "u2", "u3"]
    left = {p.read_text() for p in tmp_path.glob("dl-*")}
    assert left == {"u1", "u2", "u3"}  # the unused pages were removed; the taken are the caller's


def test_errors_of_a_page_read_ahead_come_when_it_is_taken(tmp_path: Path) -> None:
    def fail(url: str) -> Download:
        raise RuntimeError(f"boom {url}")

    fetch = PagePrefetch(fail)
    fetch.start("u1")
    with pytest.raises(RuntimeError, match="boom u1"):
        fetch.take("u1")
    fetch.start("u2")
    fetch.close()  # a failed page nobody asked for is not an error


@pytest.mark.parametrize(
    "href",
    [
        "http://127.0.0.1:8080/server/api/core/bitstreams/0a-1/content",
        "https://repo.example.org/bitstream/handle/1/2/a%20b.pdf?sequence=1&isAllowed=y",
        "https://repo.example.org",
        "https://repo.example.org/a/./b/../c",
        "HTTPS://Repo.example.org/x",
        "/relative/path.pdf",
        "file.pdf",
        "https://repo.example.org/a;params",
        "https://repo.example.org/a?",
        "https://repo.example.org/a#frag",
        "https://user@repo.example.org/a",
        "ftp://repo.example.org/a",
        "https://repo.example.org/a b",
        "//other.example.org/a",
    ],
)
def test_file_urls_resolve_as_urljoin_resolves_them(href: str) -> None:
    for base in ("https://repo.example.org/server/oai/request?verb=x", "http://127.0.0.1:1/o"):
        assert resolve(base, href) == urljoin(base, href)


def test_the_interpreter_is_tuned_while_pages_are_read_and_restored_after() -> None:
    before, switch = gc.get_threshold(), sys.getswitchinterval()
    with reading_pages(threshold=before[0] + 1000, switch_interval=switch / 2):
        assert gc.get_threshold()[0] == before[0] + 1000
        assert sys.getswitchinterval() == pytest.approx(switch / 2)
    assert gc.get_threshold() == before and sys.getswitchinterval() == switch
    with reading_pages(threshold=1, switch_interval=switch * 2):  # never the other way
        assert gc.get_threshold() == before and sys.getswitchinterval() == switch


@pytest.mark.parametrize(
    "identifier",
    [
        "oai:dspace.test:123456789/45",
        "oai:repo.example.org:10.5072/abc-def_1~2",
        "oai:x:a b&c=d",
        "oai:x:Łódź/é",
        "oai:x:100%",
        "",
    ],
)
def test_getrecord_locs_are_written_as_urlencode_writes_them(identifier: str) -> None:
    assert _identifier_query(identifier) == urlencode({"identifier": identifier})
