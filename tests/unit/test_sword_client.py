"""SwordClient against a tiny in-process SWORD fake (http.server on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import requests

from sync.crosswalk import DCRecord
from sync.destinations.sword.atom import build_entry
from sync.destinations.sword.client import PACKAGING_BINARY, ListingUnsupportedError, SwordClient
from sync.errors import ConfigError, ConflictError, DepositError, FetchError, register_secret
from sync.http import Http, HttpSettings


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class FakeSword(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[Seen] = []
        self.routes: dict[tuple[str, str], list[Answer]] = {}
        self.lock = threading.Lock()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def on(self, method: str, path: str, *answers: Answer) -> None:
        self.routes[(method, path)] = list(answers)

    def answer(self, method: str, path: str) -> Answer:
        with self.lock:
            queue = self.routes.get((method, path))
            if not queue:
                return Answer(404, b"not here", {"Content-Type": "text/plain"})
            return queue.pop(0) if len(queue) > 1 else queue[0]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeSword

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            self.server.seen.append(
                Seen(self.command, self.path, {k: v for k, v in self.headers.items()}, body)
            )
        ans = self.server.answer(self.command, self.path)
        self.send_response(ans.status)
        for name, value in ans.headers.items():
            self.send_header(name, value.replace("{base}", self.server.base))
        payload = ans.body.replace(b"{base}", self.server.base.encode())
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815 (http.server's names)


@pytest.fixture
def fake() -> Iterator[FakeSword]:
    server = FakeSword()
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class SpyHttp(Http):
    """Records what each body factory produced (to prove files are streamed, not read)."""

    bodies: list[object]

    def request(self, method: str, url: str, **kw: Any) -> requests.Response:
        factory: Callable[[], Any] | None = kw.get("body")
        if factory is not None:
            produced = factory()
            self.bodies.append(produced)
            if hasattr(produced, "close"):
                produced.close()
        return super().request(method, url, **kw)


def make_client(fake: FakeSword, **kw: Any) -> tuple[SwordClient, SpyHttp]:
    http = SpyHttp(
        settings=HttpSettings(attempts=1, per_host_rate=0, read_timeout=5), sleep=lambda s: None
    )
    http.bodies = []
    http.set_auth(fake.base, "depositor", "pa55-secret-word")
    register_secret("pa55-secret-word")
    return SwordClient(http, **kw), http


RECEIPT = b"""<entry xmlns="http://www.w3.org/2005/Atom">
  <link rel="edit" href="{base}/edit/1"/>
  <link rel="edit-media" href="{base}/em/1"/>
  <link rel="http://purl.org/net/sword/terms/add" href="{base}/se/1"/>
  <link rel="http://purl.org/net/sword/terms/statement" type="application/atom+xml;type=feed"
        href="{base}/st/1"/>
</entry>"""

SERVICE = b"""<service xmlns="http://www.w3.org/2007/app" xmlns:atom="http://www.w3.org/2005/Atom"
  xmlns:sword="http://purl.org/net/sword/terms/"><sword:version>2.0</sword:version>
  <sword:maxUploadSize>1</sword:maxUploadSize>
  <workspace><collection href="{base}/col/1"><atom:title>C</atom:title></collection></workspace>
</service>"""


def sword_error(name: str, summary: str) -> bytes:
    return (
        '<sword:error xmlns="http://www.w3.org/2005/Atom" '
        'xmlns:sword="http://purl.org/net/sword/terms/" '
        f'href="http://purl.org/net/sword/error/{name}"><title>ERROR</title>'
        f"<summary>{summary}</summary></sword:error>"
    ).encode()


def _entry() -> bytes:
    rec = DCRecord()
    rec.add("title", "Łódź café")
    rec.add("creator", "Müller, Jörg")
    return build_entry(rec, title="Łódź café", source_ids=["http://src/1"])


def test_create_sends_utf8_entry_and_headers(fake: FakeSword) -> None:
    fake.on("POST", "/col/1", Answer(201, RECEIPT, {"Location": "{base}/edit/1"}))
    client, _ = make_client(fake, on_behalf_of="jorg@example.org")
    entry = _entry()
    receipt = client.create(fake.base + "/col/1", entry, slug="item 1/Łódź")
    assert receipt.edit_iri == fake.base + "/edit/1"
    assert receipt.em_iri == fake.base + "/em/1"
    assert receipt.se_iri == fake.base + "/se/1"
    assert receipt.statement_atom == fake.base + "/st/1"
    (req,) = fake.seen
    assert req.headers["Content-Type"] == "application/atom+xml;type=entry;charset=utf-8"
    assert req.headers["In-Progress"] == "true"
    assert req.headers["Slug"] == "item 1/%C5%81%C3%B3d%C5%BA"
    assert req.headers["On-Behalf-Of"] == "jorg@example.org"
    assert req.headers["Authorization"].startswith("Basic ")
    assert req.body == entry
    assert "Łódź café".encode() in req.body


def test_create_without_receipt_body_fetches_location(fake: FakeSword) -> None:
    fake.on("POST", "/col/1", Answer(201, b"", {"Location": "/edit/1"}))
    fake.on("GET", "/edit/1", Answer(200, RECEIPT, {"Content-Type": "application/atom+xml"}))
    client, _ = make_client(fake)
    receipt = client.create(fake.base + "/col/1", _entry(), in_progress=False)
    assert receipt.em_iri == fake.base + "/em/1"
    assert [(s.method, s.path) for s in fake.seen] == [("POST", "/col/1"), ("GET", "/edit/1")]
    assert fake.seen[0].headers["In-Progress"] == "false"
    assert "Slug" not in fake.seen[0].headers
    assert "On-Behalf-Of" not in fake.seen[0].headers


def test_create_without_receipt_or_location(fake: FakeSword) -> None:
    fake.on("POST", "/col/1", Answer(201, b""))
    client, _ = make_client(fake)
    with pytest.raises(DepositError) as info:
        client.create(fake.base + "/col/1", _entry())
    assert "check the collection" in (info.value.hint or "")


def test_add_file_streams_with_headers(fake: FakeSword, tmp_path: Path) -> None:
    content = b"%PDF-1.4 " + bytes(range(256)) * 64
    path = tmp_path / "upload.bin"
    path.write_bytes(content)
    md5 = hashlib.md5(content).hexdigest()
    fake.on("POST", "/em/1", Answer(201, b"", {"Location": "{base}/file/9"}))
    client, http = make_client(fake, on_behalf_of="obo")
    iri = client.add_file(
        fake.base + "/em/1", path, filename="Łódź café.pdf", md5=md5, content_type="application/pdf"
    )
    assert iri == fake.base + "/file/9"
    (req,) = fake.seen
    assert req.body == content
    assert req.headers["Content-Length"] == str(len(content))
    assert "Transfer-Encoding" not in req.headers
    assert req.headers["Content-MD5"] == md5
    assert req.headers["Packaging"] == PACKAGING_BINARY
    assert req.headers["In-Progress"] == "true"
    assert req.headers["Content-Type"] == "application/pdf"
    assert req.headers["On-Behalf-Of"] == "obo"
    disp = req.headers["Content-Disposition"]
    assert disp.isascii()
    assert 'filename="_odz cafe.pdf"' in disp
    assert unquote(disp.split("filename*=UTF-8''")[1]) == "Łódź café.pdf"
    # streamed: the body factory opened the file, it did not hand over bytes
    assert len(http.bodies) == 1
    assert isinstance(http.bodies[0], io.BufferedReader)


def test_add_file_without_location(fake: FakeSword, tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"x")
    fake.on("POST", "/em/1", Answer(204))
    client, _ = make_client(fake)
    assert (
        client.add_file(fake.base + "/em/1", path, filename="a.txt", md5="0" * 32, content_type="")
        is None
    )
    assert fake.seen[0].headers["Content-Type"] == "application/octet-stream"


def test_checksum_mismatch_is_transient(fake: FakeSword, tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"x")
    fake.on("POST", "/em/1", Answer(412, sword_error("ErrorChecksumMismatch", "bad md5")))
    client, _ = make_client(fake)
    with pytest.raises(DepositError) as info:
        client.add_file(
            fake.base + "/em/1", path, filename="a.txt", md5="0" * 32, content_type="text/plain"
        )
    err = info.value
    assert type(err) is DepositError
    assert err.transient is True
    assert err.status == 412
    assert err.sword_error == "http://purl.org/net/sword/error/ErrorChecksumMismatch"
    assert "bad md5" in err.message
    assert err.resource == fake.base + "/em/1"


def test_mediation_not_allowed_412_is_not_transient(fake: FakeSword) -> None:
    fake.on("POST", "/col/1", Answer(412, sword_error("MediationNotAllowed", "no mediation")))
    client, _ = make_client(fake, on_behalf_of="x")
    with pytest.raises(DepositError) as info:
        client.create(fake.base + "/col/1", _entry())
    assert info.value.transient is False
    assert info.value.sword_error == "http://purl.org/net/sword/error/MediationNotAllowed"


@pytest.mark.parametrize("status", [403, 405])
def test_refused_change_is_conflict(fake: FakeSword, status: int) -> None:
    fake.on("PUT", "/edit/1", Answer(status, sword_error("MethodNotAllowed", "item archived")))
    client, _ = make_client(fake)
    with pytest.raises(ConflictError) as info:
        client.replace_metadata(fake.base + "/edit/1", _entry(), in_progress=False)
    assert info.value.status == status
    assert "item archived" in info.value.message
    assert "on_archived" in (info.value.hint or "")
    assert fake.seen[0].headers["In-Progress"] == "false"
    assert fake.seen[0].method == "PUT"


def test_405_on_create_is_not_a_conflict(fake: FakeSword) -> None:
    fake.on("POST", "/col/1", Answer(405, b"Method Not Allowed", {"Content-Type": "text/plain"}))
    client, _ = make_client(fake)
    with pytest.raises(DepositError) as info:
        client.create(fake.base + "/col/1", _entry())
    assert not isinstance(info.value, ConflictError)
    assert "Method Not Allowed" in info.value.message


def test_401_does_not_leak_credentials(fake: FakeSword) -> None:
    fake.on("GET", "/sd", Answer(401, b"bad pa55-secret-word", {"WWW-Authenticate": "Basic"}))
    client, _ = make_client(fake)
    with pytest.raises(DepositError) as info:
        client.service_document(fake.base + "/sd")
    err = info.value
    assert err.status == 401
    assert err.message == "the SWORD server refused the credentials (HTTP 401)"
    assert err.hint == "check username and the password variable"
    assert "pa55" not in str(err) and "Basic" not in str(err)


def test_413_names_the_limit(fake: FakeSword, tmp_path: Path) -> None:
    fake.on("GET", "/sd", Answer(200, SERVICE, {"Content-Type": "application/atomsvc+xml"}))
    fake.on("PUT", "/em/1", Answer(413, sword_error("MaxUploadSizeExceeded", "too big")))
    client, _ = make_client(fake)
    doc = client.service_document(fake.base + "/sd")
    assert client.max_upload_kb == doc.max_upload_kb == 1
    small = tmp_path / "s.bin"
    small.write_bytes(b"x" * 10)
    with pytest.raises(DepositError) as info:
        client.replace_media(
            fake.base + "/em/1", small, filename="s.bin", md5="0" * 32, content_type="x/y"
        )
    assert info.value.status == 413
    # what the server advertised and how it was read, so the user can tell which is wrong
    assert "advertises maxUploadSize 1, read as kB per SWORD 2.0 = 1 KiB" in info.value.message
    assert "this upload is 10 bytes" in info.value.message and "too big" in info.value.message
    assert "In-Progress" not in fake.seen[-1].headers
    # a file over the announced limit is refused by the depositor before anything is sent:
    # tests/unit/test_depositor_limits.py


def test_service_document_is_cached(fake: FakeSword) -> None:
    fake.on("GET", "/sd", Answer(200, SERVICE, {"Content-Type": "application/atomsvc+xml"}))
    client, _ = make_client(fake, on_behalf_of="someone")
    first = client.service_document(fake.base + "/sd")
    second = client.service_document(fake.base + "/sd")
    assert first is second
    assert len(fake.seen) == 1
    assert fake.seen[0].headers["On-Behalf-Of"] == "someone"
    assert list(first.collections) == [fake.base + "/col/1"]


def test_server_error_on_post_is_transient(fake: FakeSword) -> None:
    fake.on("POST", "/col/1", Answer(500, b"<html><body>Internal error</body></html>"))
    client, _ = make_client(fake)
    with pytest.raises(DepositError) as info:
        client.create(fake.base + "/col/1", _entry())
    assert info.value.transient is True
    assert info.value.status == 500
    assert "Internal error" in info.value.message


def test_fetch_error_passes_through(fake: FakeSword) -> None:
    fake.on("PUT", "/edit/1", Answer(503, b"busy"))
    client, _ = make_client(fake)
    with pytest.raises(FetchError) as info:
        client.replace_metadata(fake.base + "/edit/1", _entry(), in_progress=True)
    assert info.value.transient is True


def test_other_4xx_is_permanent(fake: FakeSword) -> None:
    fake.on("POST", "/col/1", Answer(400, sword_error("ErrorBadRequest", "bad entry")))
    client, _ = make_client(fake)
    with pytest.raises(DepositError) as info:
        client.create(fake.base + "/col/1", _entry())
    assert info.value.transient is False
    assert info.value.sword_error == "http://purl.org/net/sword/error/ErrorBadRequest"


def test_deletes_treat_gone_as_done(fake: FakeSword) -> None:
    fake.on("DELETE", "/file/1", Answer(204))
    fake.on("DELETE", "/em/1", Answer(410))
    # /edit/1 unrouted: the fake answers 404
    client, _ = make_client(fake, on_behalf_of="obo")
    client.delete_file(fake.base + "/file/1")
    client.delete_media(fake.base + "/em/1")
    client.delete_container(fake.base + "/edit/1")
    assert [(s.method, s.path) for s in fake.seen] == [
        ("DELETE", "/file/1"),
        ("DELETE", "/em/1"),
        ("DELETE", "/edit/1"),
    ]
    assert all(s.headers["On-Behalf-Of"] == "obo" for s in fake.seen)
    fake.on("DELETE", "/edit/2", Answer(405, sword_error("MethodNotAllowed", "archived")))
    with pytest.raises(ConflictError):
        client.delete_container(fake.base + "/edit/2")


def test_complete(fake: FakeSword) -> None:
    fake.on("POST", "/se/1", Answer(200, RECEIPT))
    client, _ = make_client(fake)
    client.complete(fake.base + "/se/1")
    (req,) = fake.seen
    assert req.headers["In-Progress"] == "false"
    assert req.headers["Content-Length"] == "0"
    assert req.body == b""


def test_receipt_and_statement(fake: FakeSword) -> None:
    statement = b"""<feed xmlns="http://www.w3.org/2005/Atom"
      xmlns:sword="http://purl.org/net/sword/terms/">
      <sword:state href="http://dspace.org/state/inworkflow"/>
      <entry><title>a.pdf</title><content type="application/pdf" src="/bits/1"/></entry>
    </feed>"""
    fake.on("GET", "/edit/1", Answer(200, RECEIPT))
    fake.on("GET", "/st/1", Answer(200, statement))
    client, _ = make_client(fake)
    receipt = client.receipt(fake.base + "/edit/1")
    assert receipt.statement_atom == fake.base + "/st/1"
    st = client.statement(receipt.statement_atom)
    assert st.state == "inworkflow"
    assert [(f.iri, f.name) for f in st.files] == [(fake.base + "/bits/1", "a.pdf")]


def test_bad_receipt_xml_is_deposit_error(fake: FakeSword) -> None:
    bomb = b'<!DOCTYPE e [<!ENTITY a "a">]><entry xmlns="http://www.w3.org/2005/Atom">&a;</entry>'
    fake.on("GET", "/edit/1", Answer(200, bomb))
    client, _ = make_client(fake)
    with pytest.raises(DepositError):
        client.receipt(fake.base + "/edit/1")


def test_oversized_answer_is_refused(fake: FakeSword) -> None:
    fake.on("GET", "/edit/1", Answer(200, b"<entry>" + b" " * 5000 + b"</entry>"))
    client, _ = make_client(fake, max_doc_bytes=1000)
    with pytest.raises(FetchError) as info:
        client.receipt(fake.base + "/edit/1")
    assert "larger than 1000 bytes" in info.value.message
    assert not info.value.transient


def test_list_collection_follows_pages(fake: FakeSword) -> None:
    page1 = b"""<feed xmlns="http://www.w3.org/2005/Atom" xmlns:dcterms="http://purl.org/dc/terms/">
      <link rel="next" href="/col/1?page=2"/>
      <entry><link rel="edit" href="/edit/1"/><dcterms:identifier>http://src/1</dcterms:identifier>
      </entry></feed>"""
    page2 = b"""<feed xmlns="http://www.w3.org/2005/Atom">
      <link rel="next" href="/col/1"/>
      <entry><link rel="edit" href="/edit/2"/></entry></feed>"""
    fake.on("GET", "/col/1", Answer(200, page1))
    fake.on("GET", "/col/1?page=2", Answer(200, page2))
    client, _ = make_client(fake)
    entries = client.list_collection(fake.base + "/col/1")
    assert [e.edit_iri for e in entries] == [fake.base + "/edit/1", fake.base + "/edit/2"]
    assert entries[0].identifiers == ["http://src/1"]
    assert len(fake.seen) == 2  # the loop back to page 1 is not followed


@pytest.mark.parametrize(
    "answer",
    [Answer(405, b"no"), Answer(501, b"no"), Answer(200, b"<html><body>hi</body></html>")],
)
def test_list_collection_unsupported(fake: FakeSword, answer: Answer) -> None:
    fake.on("GET", "/col/1", answer)
    client, _ = make_client(fake)
    with pytest.raises(ListingUnsupportedError) as info:
        client.list_collection(fake.base + "/col/1")
    assert isinstance(info.value, DepositError)
    assert info.value.resource == fake.base + "/col/1"


@pytest.mark.parametrize("obo", ["jörg", "a\r\nX-Evil: 1", ""])
def test_on_behalf_of_must_be_a_plain_header(obo: str) -> None:
    with pytest.raises(ConfigError):
        SwordClient(Http(), on_behalf_of=obo)


def test_a_broken_off_answer_is_asked_again_only_when_safe(tmp_path) -> None:
    """A GET (or complete) whose answer breaks off is repeated; a create POST is not: the
    caller must first find out whether it landed."""
    from sync.destinations.sword.client import SwordClient
    from sync.http import Http, HttpSettings
    from tests.servers.base import FaultPolicy
    from tests.servers.sword_server import SwordServer

    server = SwordServer(tmp_path / "sword", password="pw").start()
    try:
        http = Http(
            HttpSettings(attempts=3, backoff_initial=0.001, per_host_rate=0), sleep=lambda s: None
        )
        http.set_auth(server.base_url, "sword", "pw")
        client = SwordClient(http)
        faults = {"left": 1}

        def hook(method: str, path: str, n: int) -> None:
            if faults["left"]:
                faults["left"] -= 1
                server.httpd.faults = FaultPolicy(rate=1.0, kinds=("truncate",))
            else:
                server.httpd.faults = FaultPolicy()

        server.httpd.on_request = hook
        sd = client.service_document(server.sd_iri)  # first answer cut off, asked again
        assert server.col_iri("default") in sd.collections

        faults["left"] = 1
        entry = b'<entry xmlns="http://www.w3.org/2005/Atom"><title>x</title></entry>'
        with pytest.raises(FetchError) as info:
            client.create(server.col_iri("default"), entry, slug="s1")
        assert info.value.transient and "broke off" in info.value.message
        assert len(server.store.containers()) == 1  # it landed: the caller must look
    finally:
        server.stop()
