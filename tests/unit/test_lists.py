"""Reading ResourceSync documents: parsing, hostile XML, limits, index walking."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sync.errors import DocumentError, OutsideSourceError
from sync.http import Http, HttpSettings, host_key
from sync.model import Link
from sync.sources.resourcesync.lists import ListReader, parse_datetime, parse_hashes, read_header

NS = (
    'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
    'xmlns:rs="http://www.openarchives.org/rs/terms/"'
)
MD5 = "0cc175b9c0f1b6a831c399e269772661"
SHA256 = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"


def urlset(
    body: str, md: str = '<rs:md capability="resourcelist" at="2024-05-01T12:00:00Z"/>'
) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset {NS}>{md}{body}</urlset>'


def index(members: list[str], capability: str = "resourcelist") -> str:
    body = "".join(f"<sitemap><loc>{m}</loc></sitemap>" for m in members)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex {NS}>'
        f'<rs:md capability="{capability}" at="2024-05-01T12:00:00Z"/>{body}</sitemapindex>'
    )


def write(tmp_path: Path, text: str, name: str = "doc.xml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


class _Files(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FileHandler)
        self.files: dict[str, bytes] = {}
        self.hits: list[str] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _FileHandler(BaseHTTPRequestHandler):
    server: _Files

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        body = self.server.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def files() -> Iterator[_Files]:
    server = _Files()
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def reader(files: _Files, tmp_path: Path, **kw: int) -> ListReader:
    http = Http(HttpSettings(attempts=1, per_host_rate=0), allowed_hosts={host_key(files.base)})
    return ListReader(http, tmpdir=str(tmp_path), **kw)


# -- parsing ---------------------------------------------------------------------------------


def test_read_header_and_entries_of_a_resource_list(tmp_path: Path, files: _Files) -> None:
    doc = urlset(
        f"""<url><loc> https://src.example/a.pdf </loc><lastmod>2024-04-30T10:00:00+02:00</lastmod>
          <rs:md hash="MD5:{MD5.upper()} sha-256:{SHA256}" length="1" type="application/pdf"/>
          <rs:ln rel="describedBy" href="https://src.example/md/a" type="application/xml"
                 pri="1"/>
          <rs:ln rel="collection" href="https://src.example/handle/1/2"/>
          <rs:ln href="https://src.example/no-rel"/>
        </url>
        <url><loc>https://src.example/b</loc></url>""",
        md='<rs:md capability="resourcelist" at="2024-05-01T12:00:00Z"'
        ' completed="2024-05-01T12:05:00Z"/><rs:ln rel="up" href="https://src.example/cl.xml"/>',
    )
    files.files["/rl.xml"] = doc.encode()
    rd = reader(files, tmp_path)
    listed = rd.fetch(files.base + "/rl.xml")
    assert listed.info.url == files.base + "/rl.xml"
    assert listed.info.capability == "resourcelist"
    assert not listed.info.is_index
    assert listed.info.at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert listed.info.completed == datetime(2024, 5, 1, 12, 5, tzinfo=UTC)
    assert listed.links == (Link("up", "https://src.example/cl.xml"),)
    entries = list(listed.entries())
    assert not listed.path.exists(), "the temporary file is removed after reading"
    a, b = entries
    assert a.loc == "https://src.example/a.pdf"
    assert a.lastmod == datetime(2024, 4, 30, 8, 0, tzinfo=UTC)
    assert a.hashes == (("md5", MD5), ("sha-256", SHA256))
    assert a.fingerprint == f"sha-256:{SHA256}"
    assert a.length == 1
    assert a.type == "application/pdf"
    assert a.links[0] == Link(
        "describedby", "https://src.example/md/a", "application/xml", (("pri", "1"),)
    )
    assert a.links_with("collection")[0].href == "https://src.example/handle/1/2"
    assert len(a.links) == 2, "a link without rel is dropped"
    assert b.loc == "https://src.example/b"
    assert (b.lastmod, b.hashes, b.length, b.links) == (None, (), None, ())
    assert rd.documents_read == 1


def test_change_list_header_and_change_entries(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        urlset(
            '<url><loc>https://s/x</loc><rs:md change="deleted" datetime="2024-05-02T00:00:00Z"/>'
            "</url>",
            md='<rs:md capability="changelist" from="2024-05-01T00:00:00Z"'
            ' until="2024-05-03T00:00:00Z"/>',
        ),
    )
    info, links = read_header(path, "https://s/cl")
    assert info.capability == "changelist"
    assert info.from_ == datetime(2024, 5, 1, tzinfo=UTC)
    assert info.until == datetime(2024, 5, 3, tzinfo=UTC)
    assert info.at is None
    assert links == ()


def test_sitemapindex_header(tmp_path: Path) -> None:
    info, _ = read_header(write(tmp_path, index(["https://s/1.xml"])), "https://s/i")
    assert info.is_index
    assert info.capability == "resourcelist"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("md5:ABCDEF", (("md5", "abcdef"),)),
        ("sha-256:00ff md5:11", (("sha-256", "00ff"), ("md5", "11"))),
        ("sha256:aa sha1:bb", (("sha-256", "aa"), ("sha-1", "bb"))),
        ("", ()),
        (None, ()),
    ],
)
def test_parse_hashes(value: str | None, expected: tuple[tuple[str, str], ...]) -> None:
    assert parse_hashes(value, where="https://s/x") == expected


@pytest.mark.parametrize("value", ["crc32:abcd", "md5", "md5:", "sha-512:aa"])
def test_parse_hashes_refuses_unknown_or_malformed(value: str) -> None:
    with pytest.raises(DocumentError) as info:
        parse_hashes(value, where="https://s/x")
    assert info.value.resource == "https://s/x"


def test_unknown_hash_in_a_document_names_the_entry(tmp_path: Path, files: _Files) -> None:
    files.files["/rl.xml"] = urlset(
        '<url><loc>https://s/x</loc><rs:md hash="crc32:1234"/></url>'
    ).encode()
    doc = reader(files, tmp_path).fetch(files.base + "/rl.xml")
    with pytest.raises(DocumentError) as info:
        list(doc.entries())
    assert info.value.resource == "https://s/x"
    assert "crc32" in str(info.value)


@pytest.mark.parametrize(
    "md",
    ['length="-1"', 'length="12kB"', 'change="moved"', 'datetime="yesterday"'],
)
def test_bad_entry_metadata_is_refused(tmp_path: Path, files: _Files, md: str) -> None:
    files.files["/rl.xml"] = urlset(f"<url><loc>https://s/x</loc><rs:md {md}/></url>").encode()
    doc = reader(files, tmp_path).fetch(files.base + "/rl.xml")
    with pytest.raises(DocumentError):
        list(doc.entries())


def test_entry_without_loc_is_refused(tmp_path: Path, files: _Files) -> None:
    files.files["/rl.xml"] = urlset("<url><lastmod>2024-01-01</lastmod></url>").encode()
    doc = reader(files, tmp_path).fetch(files.base + "/rl.xml")
    with pytest.raises(DocumentError) as info:
        list(doc.entries())
    assert info.value.resource == files.base + "/rl.xml"


def test_parse_datetime_variants() -> None:
    assert parse_datetime("2024-05-01", where="x") == datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_datetime("2024-05-01T14:00:00+02:00", where="x") == datetime(
        2024, 5, 1, 12, tzinfo=UTC
    )
    assert parse_datetime("2024-05-01T12:00:00.5Z", where="x") == datetime(
        2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC
    )
    assert parse_datetime(None, where="x") is None
    assert parse_datetime("2024-05-01T10:30-01:30", where="x") == datetime(
        2024, 5, 1, 12, 0, tzinfo=UTC
    )
    assert parse_datetime("2024", where="x") == datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    ["2024-13-45", "2024-05-01T12:00:00", "2024-05-01 12:00:00Z", "2024-05-01T12:00+25:00", "x"],
)
def test_parse_datetime_refuses_bad_values(value: str) -> None:
    with pytest.raises(DocumentError):
        parse_datetime(value, where="https://s/x")


# -- hostile and malformed documents ---------------------------------------------------------


def test_malformed_xml_names_the_url(tmp_path: Path) -> None:
    path = write(tmp_path, f'<urlset {NS}><rs:md capability="resourcelist" </urlset>')
    with pytest.raises(DocumentError) as info:
        read_header(path, "https://s/broken.xml")
    assert info.value.resource == "https://s/broken.xml"


def test_malformed_xml_in_the_entries_names_the_url(tmp_path: Path, files: _Files) -> None:
    files.files["/rl.xml"] = urlset(
        "<url><loc>https://s/x</loc></url><url><loc>oops</url>"
    ).encode()
    doc = reader(files, tmp_path).fetch(files.base + "/rl.xml")
    with pytest.raises(DocumentError) as info:
        list(doc.entries())
    assert info.value.resource == files.base + "/rl.xml"
    assert "well-formed" in str(info.value)


def test_empty_document_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DocumentError):
        read_header(write(tmp_path, ""), "https://s/empty.xml")


BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:rs="http://www.openarchives.org/rs/terms/">
<rs:md capability="resourcelist" at="2024-05-01T12:00:00Z"/>
<url><loc>https://s/&lol9;</loc></url>
</urlset>"""


def test_billion_laughs_is_refused(tmp_path: Path, files: _Files) -> None:
    files.files["/bomb.xml"] = BOMB.encode()
    with pytest.raises(DocumentError) as info:
        reader(files, tmp_path).fetch(files.base + "/bomb.xml")
    assert info.value.resource == files.base + "/bomb.xml"
    assert list(tmp_path.glob("rsw-*")) == [], "the refused download is discarded"


def _xxe(target: str) -> str:
    return f"""<?xml version="1.0"?>
<!DOCTYPE urlset [<!ENTITY xxe SYSTEM "{target}">]>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:rs="http://www.openarchives.org/rs/terms/">
<rs:md capability="resourcelist" at="2024-05-01T12:00:00Z"/>
<url><loc>https://s/&xxe;</loc></url>
</urlset>"""


@pytest.mark.parametrize("target", ["file:///etc/passwd", "LOCAL"])
def test_external_entity_is_refused_and_not_read(tmp_path: Path, target: str) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER")
    if target == "LOCAL":
        target = secret.as_uri()
    path = write(tmp_path, _xxe(target))
    with pytest.raises(DocumentError) as info:
        read_header(path, "https://s/xxe.xml")
    assert "TOP-SECRET-MARKER" not in str(info.value)
    assert "root:" not in str(info.value)
    # the entries path refuses it too
    from sync.sources.resourcesync.lists import _iter_entries

    with pytest.raises(DocumentError):
        list(_iter_entries(path, "https://s/xxe.xml", 10))


@pytest.mark.parametrize(
    "text",
    [
        "<html><head><title>Login</title></head><body>please log in</body></html>",
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"/>',
        "<urlset><url><loc>https://s/x</loc></url></urlset>",  # no sitemap namespace
    ],
)
def test_non_sitemap_root_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(DocumentError) as info:
        read_header(write(tmp_path, text), "https://s/x.xml")
    assert "root element" in str(info.value)
    assert info.value.resource == "https://s/x.xml"


def test_more_than_max_entries_is_refused(tmp_path: Path, files: _Files) -> None:
    files.files["/rl.xml"] = urlset(
        "".join(f"<url><loc>https://s/{i}</loc></url>" for i in range(6))
    ).encode()
    rd = reader(files, tmp_path, max_entries=5)
    got = []
    with pytest.raises(DocumentError) as info:
        for e in rd.fetch(files.base + "/rl.xml").entries():
            got.append(e.loc)
    assert len(got) == 5
    assert "more than 5" in str(info.value)
    # exactly the maximum is fine
    files.files["/ok.xml"] = urlset(
        "".join(f"<url><loc>https://s/{i}</loc></url>" for i in range(5))
    ).encode()
    assert len(list(rd.fetch(files.base + "/ok.xml").entries())) == 5


def test_document_over_max_bytes_is_refused(tmp_path: Path, files: _Files) -> None:
    files.files["/big.xml"] = urlset("<url><loc>https://s/x</loc></url>" * 100).encode()
    rd = ListReader(
        Http(HttpSettings(attempts=1, per_host_rate=0)), max_bytes=1000, tmpdir=str(tmp_path)
    )
    with pytest.raises(Exception) as info:
        rd.fetch(files.base + "/big.xml")
    assert "1000" in str(info.value)
    assert list(tmp_path.glob("rsw-*")) == []


# -- walking indexes -------------------------------------------------------------------------


def test_walk_an_index_down_to_its_lists(tmp_path: Path, files: _Files) -> None:
    b = files.base
    files.files["/idx.xml"] = index([f"{b}/rl1.xml", f"{b}/rl2.xml"]).encode()
    files.files["/rl1.xml"] = urlset("<url><loc>https://s/1</loc></url>").encode()
    files.files["/rl2.xml"] = urlset("<url><loc>https://s/2</loc></url>").encode()
    out = [
        (info.url, [e.loc for e in entries])
        for info, entries in reader(files, tmp_path).walk(f"{b}/idx.xml", expect="resourcelist")
    ]
    assert out == [(f"{b}/rl1.xml", ["https://s/1"]), (f"{b}/rl2.xml", ["https://s/2"])]


def test_index_loop_is_refused(tmp_path: Path, files: _Files) -> None:
    b = files.base
    files.files["/a.xml"] = index([f"{b}/b.xml"]).encode()
    files.files["/b.xml"] = index([f"{b}/a.xml"]).encode()
    with pytest.raises(DocumentError) as info:
        for _info, entries in reader(files, tmp_path).walk(f"{b}/a.xml"):
            list(entries)
    assert "loops" in str(info.value)
    assert info.value.resource == f"{b}/a.xml"
    assert files.hits.count("/a.xml") == 1


def test_index_listing_itself_is_refused(tmp_path: Path, files: _Files) -> None:
    b = files.base
    files.files["/self.xml"] = index([f"{b}/self.xml"]).encode()
    with pytest.raises(DocumentError):
        list(reader(files, tmp_path).walk(f"{b}/self.xml"))


def test_too_deep_nesting_is_refused(tmp_path: Path, files: _Files) -> None:
    b = files.base
    for i in range(5):
        files.files[f"/i{i}.xml"] = index([f"{b}/i{i + 1}.xml"]).encode()
    files.files["/i5.xml"] = urlset("<url><loc>https://s/deep</loc></url>").encode()
    with pytest.raises(DocumentError) as info:
        list(reader(files, tmp_path, max_depth=2).walk(f"{b}/i0.xml"))
    assert "deeper than 2" in str(info.value)
    assert "/i4.xml" not in files.hits
    # deep enough is fine
    got = [
        [e.loc for e in ents]
        for _i, ents in reader(files, tmp_path, max_depth=5).walk(f"{b}/i0.xml")
    ]
    assert got == [["https://s/deep"]]


def test_empty_index_is_refused(tmp_path: Path, files: _Files) -> None:
    files.files["/empty.xml"] = index([]).encode()
    with pytest.raises(DocumentError):
        list(reader(files, tmp_path).walk(files.base + "/empty.xml"))


def test_wrong_capability_is_refused(tmp_path: Path, files: _Files) -> None:
    files.files["/cl.xml"] = urlset(
        "", md='<rs:md capability="changelist" from="2024-01-01T00:00:00Z"/>'
    ).encode()
    with pytest.raises(DocumentError) as info:
        list(reader(files, tmp_path).walk(files.base + "/cl.xml", expect="resourcelist"))
    assert "expected a resourcelist" in str(info.value)


def test_index_member_outside_the_source_is_refused(tmp_path: Path, files: _Files) -> None:
    files.files["/idx.xml"] = index(["https://evil.example/rl.xml"]).encode()
    with pytest.raises(OutsideSourceError):
        list(reader(files, tmp_path).walk(files.base + "/idx.xml"))


def test_relative_locs_and_link_hrefs_are_read_against_the_document(tmp_path) -> None:
    from sync.sources.resourcesync.lists import _iter_entries

    doc = tmp_path / "rl.xml"
    doc.write_text(
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:rs="http://www.openarchives.org/rs/terms/">'
        '<rs:md capability="resourcelist" at="2024-01-01T00:00:00Z"/>'
        "<url><loc>records/1.xml</loc>"
        '<rs:ln rel="describes" href="../files/1/a.pdf"/>'
        '<rs:ln rel="describedby" href="http://purl.org/dc/terms/"/></url></urlset>',
        encoding="utf-8",
    )
    (entry,) = list(_iter_entries(doc, "http://src.example/rs/resourcelist.xml", 10))
    assert entry.loc == "http://src.example/rs/records/1.xml"
    assert [ln.href for ln in entry.links] == [
        "http://src.example/rs/files/1/a.pdf",
        "http://purl.org/dc/terms/",
    ]
