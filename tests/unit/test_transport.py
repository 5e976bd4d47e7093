"""The wire layer (sync.transport) against requests as the reference: the same request on the
wire, the same decoded body, and keep-alive connections reused only while they are sound."""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from sync.http import Http, HttpSettings
from sync.transport import Connections, DisconnectedError

Answer = Callable[[bytes], bytes]  # raw request -> raw response


def _ok(body: bytes, *headers: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class RawServer:
    """Records each raw request and each connection; answers with ``answer``."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.close_after_each = False
        self.drop_next = False  # close the connection instead of answering, once
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buf += data
                head, _, rest = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(rest) < length:
                    rest += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + rest[:length])
                buf = rest[length:]
                if self.drop_next:
                    self.drop_next = False
                    return
                conn.sendall(self.answer(self.requests[-1]))
                if self.close_after_each:
                    return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server() -> Iterator[RawServer]:
    srv = RawServer(lambda req: _ok(b"hello"))
    yield srv
    srv.close()


def _parsed(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers, body


def _requests_session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.headers["User-Agent"] = HttpSettings().user_agent
    return s


@pytest.mark.parametrize(
    ("method", "path", "headers", "body"),
    [
        ("GET", "/rs/resourcelist.xml", {}, None),
        ("GET", "/x?verb=ListRecords&resumptionToken=a%2Fb", {"Accept": "text/xml"}, None),
        ("GET", "/bitstream/a b/é (1).pdf?q=x y#frag", {}, None),
        ("GET", "/x/(1)/it's;v=1,2*+$!~@:", {}, None),
        (
            "POST",
            "/col/a",
            {"In-Progress": "true", "Content-Type": "application/atom+xml"},
            b"<e/>",
        ),
        ("POST", "/edit/1", {"In-Progress": "false"}, None),
        ("DELETE", "/em/1/file.pdf", {}, None),
        ("PUT", "/em/1", {"Content-Disposition": 'attachment; filename="a b.pdf"'}, "file"),
    ],
)
def test_same_request_on_the_wire_as_requests(
    server: RawServer,
    tmp_path: Path,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | str | None,
) -> None:
    payload = tmp_path / "payload.bin"
    payload.write_bytes(bytes(range(256)) * 300)

    def make_body() -> object:
        return payload.open("rb") if body == "file" else body

    http = Http(HttpSettings(attempts=1, per_host_rate=0))
    http.set_auth(server.url, "depositor", "s3cret-pässword")
    with http.request(method, server.url + path, headers=headers, body=make_body, stream=True):
        pass
    ours = server.requests[-1]
    s = _requests_session()
    resp = s.request(
        method,
        server.url + path,
        headers=headers,
        data=make_body(),
        auth=("depositor", "s3cret-pässword"),
    )
    assert resp.status_code == 200
    theirs = server.requests[-1]
    line_o, head_o, body_o = _parsed(ours)
    line_t, head_t, body_t = _parsed(theirs)
    assert line_o == line_t
    head_t.pop("connection", None)  # requests says keep-alive, which HTTP/1.1 means anyway
    assert head_o == head_t
    assert body_o == body_t
    assert "transfer-encoding" not in head_o  # every body has a Content-Length


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda b: (gzip.compress(b), "gzip"), id="gzip"),
        pytest.param(lambda b: (zlib.compress(b), "deflate"), id="deflate-zlib"),
        pytest.param(lambda b: (zlib.compress(b)[2:-4], "deflate"), id="deflate-raw"),
        pytest.param(lambda b: (b, ""), id="identity"),
    ],
)
def test_bodies_decode_as_requests_decodes_them(
    encode: Callable[[bytes], tuple[bytes, str]],
) -> None:
    text = b"<urlset>" + b"<url><loc>http://example.org/x</loc></url>" * 5000 + b"</urlset>"
    data, name = encode(text)
    extra = (f"Content-Encoding: {name}",) if name else ()
    srv = RawServer(lambda req: _ok(data, *extra))
    try:
        http = Http(HttpSettings(attempts=1, per_host_rate=0))
        assert http.get_bytes(srv.url + "/list.xml", max_bytes=1 << 20) == text
        assert _requests_session().get(srv.url + "/list.xml").content == text
        dl = http.download(srv.url + "/list.xml")
        assert dl.path.read_bytes() == text
        dl.discard()
    finally:
        srv.close()


def test_chunked_answers_are_read_whole() -> None:
    def chunked(req: bytes) -> bytes:
        parts = [b"abc", b"defgh" * 1000, b"z"]
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body

    srv = RawServer(chunked)
    try:
        http = Http(HttpSettings(attempts=1, per_host_rate=0))
        for _ in range(3):
            assert (
                http.get_bytes(srv.url + "/c", max_bytes=1 << 20) == b"abc" + b"defgh" * 1000 + b"z"
            )
        assert srv.connections == 1  # kept alive across chunked answers
    finally:
        srv.close()


def test_keep_alive_reuses_one_connection_and_drops_a_closed_one(server: RawServer) -> None:
    conns = Connections(2.0, 2.0, True)
    for _ in range(5):
        with conns.send("GET", server.url + "/a", {}, None) as resp:
            assert resp.content == b"hello"
    assert server.connections == 1
    server.close_after_each = True  # the server closes each connection after its answer
    for _ in range(3):
        with conns.send("POST", server.url + "/a", {}, b"x") as resp:
            assert resp.content == b"hello"
        time.sleep(0.2)  # the server's close reaches us while the connection is idle
    # the first of these reused the kept-alive connection, which the server then closed;
    # each later request saw that and connected anew instead of failing
    assert server.connections == 3
    assert len(server.requests) == 8


def test_a_safe_request_on_a_connection_closed_as_it_was_sent_goes_again(
    server: RawServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race of keep-alive: the server closes an idle connection just as a request goes
    out on it (it reads the request and answers nothing). A GET goes again at once on a new
    connection; a POST is not sent twice (the caller finds out what happened)."""
    conns = Connections(2.0, 2.0, True)
    monkeypatch.setattr("sync.transport._dropped", lambda sock: False)  # not seen in time
    with conns.send("GET", server.url + "/a", {}, None) as resp:
        assert resp.content == b"hello"
    server.drop_next = True
    with conns.send("GET", server.url + "/b", {}, None) as resp:
        assert resp.content == b"hello"
    assert server.connections == 2
    assert [r.split(b" ")[1] for r in server.requests] == [b"/a", b"/b", b"/b"]
    server.drop_next = True
    with pytest.raises(DisconnectedError):
        conns.send("POST", server.url + "/d", {}, b"x")
    assert [r.split(b" ")[1] for r in server.requests][-1] == b"/d"
    assert sum(r.startswith(b"POST") for r in server.requests) == 1


def test_a_body_cut_short_is_an_error_not_a_short_file() -> None:
    def cut(req: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10

    srv = RawServer(cut)
    srv.close_after_each = True
    try:
        conns = Connections(2.0, 2.0, True)
        resp = conns.send("GET", srv.url + "/f", {}, None)
        with pytest.raises(DisconnectedError, match="990 bytes"):
            resp.content  # noqa: B018
        resp.close()
    finally:
        srv.close()


def test_an_answer_left_unread_closes_its_connection(server: RawServer) -> None:
    big = b"y" * 500_000
    server.answer = lambda req: _ok(big)
    conns = Connections(2.0, 2.0, True)
    with conns.send("GET", server.url + "/big", {}, None) as resp:
        assert resp.read(10) == b"y" * 10
    with conns.send("GET", server.url + "/big", {}, None) as resp:
        assert resp.content == big  # not the rest of the first answer
    assert server.connections == 2


def test_answer_headers_read_as_requests_reads_them() -> None:
    """Case-insensitive names, repeated fields joined with ", " (two Link headers: both
    links seen), folded lines continued, an interim 100 answer skipped."""

    def answer(req: bytes) -> bytes:
        return (
            b"HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n"
            b"HTTP/1.1 200 OK\r\n"
            b'Link: <http://a.example/rs.xml>; rel="resourcesync"\r\n'
            b'link: <http://a.example/up>; rel="up"\r\n'
            b"X-Folded: one\r\n two\r\n"
            b"Content-Type: text/html; charset=utf-8\r\n"
            b"Content-Length: 2\r\n\r\nok"
        )

    srv = RawServer(answer)
    try:
        with Connections(2.0, 2.0, True).send("GET", srv.url + "/", {}, None) as resp:
            ours = resp.headers
            assert resp.status_code == 200 and resp.content == b"ok"
        theirs = _requests_session().get(srv.url + "/").headers
        for name in ("LINK", "x-folded", "Content-Type", "content-length"):
            assert ours[name] == theirs[name]
        assert ours["link"].count("rel=") == 2
        assert "x-interim" not in ours and "X-Interim" not in theirs
        assert "Location" not in ours and ours.get("Location") is None
        assert ours.get("location", "none") == "none"
        for name in ("LINK", "x-folded", "Content-Type", "content-length"):
            assert ours.get(name) == theirs.get(name) == ours[name]
    finally:
        srv.close()


def test_an_answer_with_endless_headers_is_refused(server: RawServer) -> None:
    server.answer = lambda req: b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 500 + b"\r\n"
    with pytest.raises(DisconnectedError, match="more than 100 headers"):
        Connections(2.0, 2.0, True).send("GET", server.url + "/", {}, None)


def test_a_header_that_would_split_the_request_is_refused_unsent(server: RawServer) -> None:
    from sync.errors import FetchError

    http = Http(HttpSettings(attempts=3, per_host_rate=0))
    for value in ("x\r\nX-Injected: 1", "x\nY: 2", "x\rZ"):
        with pytest.raises(FetchError, match="line break"):
            http.request("POST", server.url + "/col", headers={"Slug": value}, body=lambda: b"")
    assert server.requests == []


def test_close_ends_every_threads_kept_alive_connections(server: RawServer) -> None:
    conns = Connections(2.0, 2.0, True)

    def fetch() -> None:
        with conns.send("GET", server.url + "/a", {}, None) as resp:
            assert resp.content == b"hello"

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fetch()
    idle = [s for pool in conns._pools for socks in pool.values() for s in socks]
    assert len(idle) == 4 and all(s.fileno() != -1 for s in idle)
    conns.close()
    assert all(s.fileno() == -1 for s in idle)
