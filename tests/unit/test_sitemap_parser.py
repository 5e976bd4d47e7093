"""The expat sitemap reader gives the same entries however the bytes are cut: text split by
reads, by expat's buffer or by entity and character references is joined whole."""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element

import pytest
from defusedxml.ElementTree import fromstring

from sync.sources.resourcesync import sitemap_parser
from sync.sources.resourcesync.sitemap_parser import iter_raw_entries

SM = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
RS = "{http://www.openarchives.org/rs/terms/}"

LONG = "x" * 20_000  # longer than expat's 8 KiB text buffer
DOC = f"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:rs="http://www.openarchives.org/rs/terms/"
        xmlns:other="urn:other">
<rs:md capability="resourcelist"/>
<url><loc>http://s.example/a?x=1&amp;y=2&#x263A;</loc><lastmod>2024-05-01T12:00:00Z</lastmod>
  <rs:md hash="md5:00" length="3"/><rs:ln rel="describedby" href="http://s.example/m"/></url>
<url>
  <loc>  http://s.example/<![CDATA[b&c]]><!-- a comment -->/d  </loc>
  <other:loc>http://elsewhere.example/not-this</other:loc>
  <other:wrap><loc>http://elsewhere.example/nor-this</loc></other:wrap>
</url>
<url><loc>http://s.example/{LONG}</loc></url>
<url><lastmod>2024-05-01T12:00:00Z</lastmod></url>
</urlset>
""".encode()


def expected() -> list[tuple[str | None, str | None, int]]:
    """(loc, lastmod, number of rs:ln) per entry, as ElementTree (defused) reads them."""
    root: Element = fromstring(DOC, forbid_dtd=True)
    out = []
    for url in root.findall(f"{SM}url"):
        loc, lastmod = url.find(f"{SM}loc"), url.find(f"{SM}lastmod")
        out.append(
            (
                None if loc is None else (loc.text or ""),
                None if lastmod is None else lastmod.text,
                len(url.findall(f"{RS}ln")),
            )
        )
    return out


@pytest.mark.parametrize("chunk", [1, 7, 4096, sitemap_parser.CHUNK])
def test_entries_are_the_same_whatever_the_chunk_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(sitemap_parser, "CHUNK", chunk)
    path = tmp_path / "list.xml"
    path.write_bytes(DOC)
    raws = list(iter_raw_entries(path, "http://s.example/list.xml", 10))
    assert [(loc, lastmod, len(lns)) for loc, lastmod, _, lns in raws] == expected()
    assert raws[0][0] == "http://s.example/a?x=1&y=2\u263a"
    assert raws[1][0] == "  http://s.example/b&c/d  "  # stripped later, by build_entry
    assert raws[2][0] == f"http://s.example/{LONG}"
    assert raws[0][2] == {"hash": "md5:00", "length": "3"}
