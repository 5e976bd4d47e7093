"""HTTP transport against tiny in-test servers on 127.0.0.1: retries, allow-list, politeness."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sync.errors import FetchError, OutsideSourceError
from sync.filenames import filename_from_disposition
from sync.http import Http, HttpSettings, host_key, open_body

Route = Callable[["_Handler", int], None]


class Fake(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Route] = {}
        self.hits: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Fake

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        with self.server.lock:
            self.server.hits[(self.command, self.path)] += 1
            n = self.server.hits[(self.command, self.path)]
        route = self.server.routes.get(self.path)
        if route is None:
            send(self, 404)
        else:
            route(self, n)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: object) -> None:
        pass


def send(
    h: _Handler, status: int, body: bytes = b"", headers: dict[str, str] | None = None
) -> None:
    h.send_response(status)
    hdrs = {"Content-Length": str(len(body)), **(headers or {})}
    for k, v in hdrs.items():
        h.send_header(k, v)
    h.end_headers()
    if body:
        h.wfile.write(body)


def ok(body: bytes = b"hello", headers: dict[str, str] | None = None) -> Route:
    return lambda h, n: send(h, 200, body, headers)


def serve() -> Iterator[Fake]:
    server = Fake()
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake() -> Iterator[Fake]:
    yield from serve()


@pytest.fixture
def other() -> Iterator[Fake]:
    yield from serve()


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def make_http(sleep: Sleeps | None = None, allowed: set[str] | None = None, **kw: object) -> Http:
    settings = HttpSettings(backoff_initial=0.01, attempts=3, per_host_rate=0, **kw)  # type: ignore[arg-type]
    return Http(settings, allowed_hosts=allowed, sleep=sleep or Sleeps())


# -- retries ---------------------------------------------------------------------------------


def test_retry_on_503_honours_retry_after_then_gives_up(fake: Fake) -> None:
    fake.routes["/busy"] = lambda h, n: send(h, 503, b"busy", {"Retry-After": "7"})
    sleeps = Sleeps()
    http = make_http(sleeps)
    with pytest.raises(FetchError) as info:
        http.get_bytes(fake.base + "/busy", max_bytes=100)
    assert fake.hits[("GET", "/busy")] == 3
    assert info.value.transient
    assert info.value.status == 503
    assert info.value.resource == fake.base + "/busy"
    assert len(sleeps.calls) == 2
    assert all(s >= 7 for s in sleeps.calls), sleeps.calls  # Retry-After honoured
    assert http.requests_sent == 3


def test_retry_on_503_then_success(fake: Fake) -> None:
    fake.routes["/flaky"] = lambda h, n: send(h, 503) if n < 3 else send(h, 200, b"finally")
    sleeps = Sleeps()
    assert make_http(sleeps).get_bytes(fake.base + "/flaky", max_bytes=100) == b"finally"
    assert fake.hits[("GET", "/flaky")] == 3
    assert len(sleeps.calls) == 2
    assert all(s < 1 for s in sleeps.calls)  # exponential backoff from 0.01 s


def test_retry_after_is_capped_by_backoff_max(fake: Fake) -> None:
    fake.routes["/slow"] = lambda h, n: send(h, 429, headers={"Retry-After": "86400"})
    sleeps = Sleeps()
    http = make_http(sleeps, backoff_max=2.0)
    with pytest.raises(FetchError):
        http.get_bytes(fake.base + "/slow", max_bytes=10)
    assert sleeps.calls and max(sleeps.calls) <= 2.0


def test_no_retry_on_404(fake: Fake) -> None:
    sleeps = Sleeps()
    with pytest.raises(FetchError) as info:
        make_http(sleeps).get_bytes(fake.base + "/missing", max_bytes=100)
    assert fake.hits[("GET", "/missing")] == 1
    assert info.value.status == 404
    assert not info.value.transient
    assert sleeps.calls == []
    resp = make_http().request("GET", fake.base + "/missing")
    assert resp.status_code == 404
    assert fake.hits[("GET", "/missing")] == 2


def test_post_not_retried_on_500(fake: Fake) -> None:
    fake.routes["/col"] = lambda h, n: send(h, 500, b"oops")
    resp = make_http().request("POST", fake.base + "/col", body=lambda: b"x")
    assert resp.status_code == 500
    assert fake.hits[("POST", "/col")] == 1


def test_post_retried_on_503(fake: Fake, tmp_path: Path) -> None:
    seen: list[bytes] = []

    def route(h: _Handler, n: int) -> None:
        seen.append(h.body)
        send(h, 503) if n < 3 else send(h, 201, b"created", {"Location": "/edit/1"})

    fake.routes["/col"] = route
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"the body")
    resp = make_http().request("POST", fake.base + "/col", body=open_body(payload))
    assert resp.status_code == 201
    assert fake.hits[("POST", "/col")] == 3
    assert seen == [b"the body"] * 3  # the body is re-sent whole on each attempt


def test_put_retried_on_500(fake: Fake) -> None:
    fake.routes["/edit"] = lambda h, n: send(h, 500) if n == 1 else send(h, 204)
    assert make_http().request("PUT", fake.base + "/edit", body=lambda: b"x").status_code == 204
    assert fake.hits[("PUT", "/edit")] == 2


def test_truncated_body_is_retried_then_succeeds(fake: Fake, tmp_path: Path) -> None:
    full = b"0123456789" * 100

    def route(h: _Handler, n: int) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(full)))
        h.end_headers()
        h.wfile.write(full if n > 1 else full[:300])
        h.close_connection = True

    fake.routes["/file"] = route
    dl = make_http().download(fake.base + "/file", directory=str(tmp_path))
    assert fake.hits[("GET", "/file")] == 2
    assert dl.path.read_bytes() == full
    assert dl.size == len(full)
    assert list(tmp_path.glob("rsw-*")) == [dl.path], "the broken attempt left no file"
    dl.discard()
    assert not dl.path.exists()
    # get_bytes too
    fake.routes["/doc"] = route
    assert make_http().get_bytes(fake.base + "/doc", max_bytes=10_000) == full
    assert fake.hits[("GET", "/doc")] == 2


def test_always_truncated_body_fails_transient(fake: Fake, tmp_path: Path) -> None:
    def route(h: _Handler, n: int) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "100")
        h.end_headers()
        h.wfile.write(b"x" * 10)
        h.close_connection = True

    fake.routes["/file"] = route
    with pytest.raises(FetchError) as info:
        make_http().download(fake.base + "/file", directory=str(tmp_path))
    assert info.value.transient
    assert fake.hits[("GET", "/file")] == 3
    assert list(tmp_path.glob("rsw-*")) == []


def test_download_digests_and_headers(fake: Fake, tmp_path: Path) -> None:
    fake.routes["/a"] = ok(
        b"a",
        {
            "Content-Type": "application/pdf",
            "Content-Disposition": "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf",
        },
    )
    plain = make_http().download(fake.base + "/a", directory=str(tmp_path))
    assert plain.md5 == "0cc175b9c0f1b6a831c399e269772661"
    assert plain.sha1 is None and plain.sha256 is None  # only asked-for digests are computed
    dl = make_http().download(
        fake.base + "/a", directory=str(tmp_path), digests=("sha-1", "sha-256")
    )
    assert dl.md5 == "0cc175b9c0f1b6a831c399e269772661"
    assert dl.digest("sha-256") == (
        "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
    )
    assert dl.digest("sha-1") == "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8"
    assert dl.digest("crc32") is None
    assert dl.content_type == "application/pdf"
    assert dl.filename == "résumé.pdf"
    dl.discard()


def test_download_max_bytes_declared_and_streamed(fake: Fake, tmp_path: Path) -> None:
    fake.routes["/big"] = ok(b"x" * 5000)

    def chunked(h: _Handler, n: int) -> None:  # no Content-Length: only the stream tells
        h.send_response(200)
        h.end_headers()
        h.wfile.write(b"y" * 5000)
        h.close_connection = True

    fake.routes["/chunk"] = chunked
    http = make_http()
    with pytest.raises(FetchError) as info:
        http.download(fake.base + "/big", max_bytes=1000, directory=str(tmp_path))
    assert "5000" in str(info.value)
    assert fake.hits[("GET", "/big")] == 1, "an oversize resource is not retried"
    with pytest.raises(FetchError):
        http.download(fake.base + "/chunk", max_bytes=1000, directory=str(tmp_path))
    assert fake.hits[("GET", "/chunk")] == 1
    assert list(tmp_path.glob("rsw-*")) == []
    with pytest.raises(FetchError):
        http.get_bytes(fake.base + "/big", max_bytes=1000)


def test_connection_refused_is_transient_and_retried() -> None:
    server = Fake()
    url = server.base + "/x"
    server.server_close()  # nothing listens there any more
    sleeps = Sleeps()
    with pytest.raises(FetchError) as info:
        make_http(sleeps).get_bytes(url, max_bytes=10)
    assert info.value.transient
    assert len(sleeps.calls) == 2


# -- allow-list ------------------------------------------------------------------------------


def test_allow_list_refuses_other_hosts(fake: Fake, other: Fake) -> None:
    other.routes["/x"] = ok()
    http = make_http(allowed={host_key(fake.base)})
    with pytest.raises(OutsideSourceError):
        http.request("GET", other.base + "/x")
    assert other.hits == Counter()
    with pytest.raises(OutsideSourceError):
        http.get_bytes("file:///etc/passwd", max_bytes=10)
    with pytest.raises(OutsideSourceError):
        http.check_allowed("ftp://127.0.0.1/x")
    http.allow(other.base)
    assert http.request("GET", other.base + "/x").status_code == 200


def test_redirect_to_another_host_is_refused(fake: Fake, other: Fake) -> None:
    other.routes["/secret"] = ok(b"leak")
    fake.routes["/r"] = lambda h, n: send(h, 302, headers={"Location": other.base + "/secret"})
    fake.routes["/local"] = lambda h, n: send(h, 301, headers={"Location": "/final"})
    fake.routes["/final"] = ok(b"final")
    http = make_http(allowed={host_key(fake.base)})
    with pytest.raises(OutsideSourceError) as info:
        http.get_bytes(fake.base + "/r", max_bytes=100)
    assert "redirect" in str(info.value)
    assert other.hits == Counter(), "the other host was never contacted"
    assert fake.hits[("GET", "/r")] == 1, "not retried"
    assert http.get_bytes(fake.base + "/local", max_bytes=100) == b"final"


def test_redirect_loop_gives_up(fake: Fake) -> None:
    fake.routes["/loop"] = lambda h, n: send(h, 302, headers={"Location": "/loop"})
    with pytest.raises(FetchError) as info:
        make_http().get_bytes(fake.base + "/loop", max_bytes=10)
    assert "redirects" in str(info.value)


def test_host_key_normalises() -> None:
    assert host_key("HTTP://Example.ORG/x") == "http://example.org:80"
    assert host_key("https://example.org/x") == "https://example.org:443"
    assert host_key("http://example.org:8080/") == "http://example.org:8080"


# -- politeness ------------------------------------------------------------------------------


def _slow(h: _Handler, n: int, *, headers_first: bool = False) -> None:
    srv = h.server
    with srv.lock:
        srv.in_flight += 1
        srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
    try:
        if headers_first:
            h.send_response(200)
            h.send_header("Content-Length", "4")
            h.end_headers()
            h.wfile.flush()
            time.sleep(0.15)
            h.wfile.write(b"body")
        else:
            time.sleep(0.15)
            send(h, 200, b"body")
    finally:
        with srv.lock:
            srv.in_flight -= 1


def _parallel(n: int, fn: Callable[[], object]) -> list[BaseException]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return errors


def test_per_host_concurrency_bound(fake: Fake) -> None:
    fake.routes["/slow"] = _slow
    http = make_http(per_host_concurrency=2)
    assert _parallel(6, lambda: http.get_bytes(fake.base + "/slow", max_bytes=10)) == []
    assert fake.hits[("GET", "/slow")] == 6
    assert fake.max_in_flight == 2


def test_host_limits_override(fake: Fake) -> None:
    fake.routes["/slow"] = _slow
    http = make_http(per_host_concurrency=4)
    http.host_limits[host_key(fake.base)] = (1, 0.0)
    assert _parallel(3, lambda: http.request("GET", fake.base + "/slow")) == []
    assert fake.max_in_flight == 1


def test_per_host_concurrency_covers_streamed_bodies(fake: Fake, tmp_path: Path) -> None:
    fake.routes["/slow"] = lambda h, n: _slow(h, n, headers_first=True)
    http = make_http(per_host_concurrency=1)
    assert _parallel(3, lambda: http.download(fake.base + "/slow", directory=str(tmp_path))) == []
    assert fake.max_in_flight == 1


def test_rate_spacing() -> None:
    """20 requests/s: request starts are spaced 50 ms apart (a fake clock, no timing)."""
    from sync.http import HostGate

    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    gate = HostGate(concurrency=4, rate=20, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        gate.acquire()()
    assert slept == [0.05, 0.05, 0.05]
    now[0] += 1.0  # an idle second: the next request goes at once
    gate.acquire()()
    assert slept == [0.05, 0.05, 0.05]


def test_basic_auth_only_to_its_host(fake: Fake, other: Fake) -> None:
    got: dict[str, str | None] = {}

    def record(name: str) -> Route:
        def route(h: _Handler, n: int) -> None:
            got[name] = h.headers.get("Authorization")
            send(h, 200)

        return route

    fake.routes["/a"] = record("fake")
    other.routes["/a"] = record("other")
    http = make_http()
    http.set_auth(fake.base, "user", "pw-abc-123")
    http.request("GET", fake.base + "/a")
    http.request("GET", other.base + "/a")
    assert got["fake"] is not None and got["fake"].startswith("Basic ")
    assert got["other"] is None


# -- Content-Disposition ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('attachment; filename="report.pdf"', "report.pdf"),
        ("attachment; filename=report.pdf", "report.pdf"),
        ('attachment; filename="a \\"quoted\\" name.txt"', 'a "quoted" name.txt'),
        (
            "attachment; filename=\"Lodz.pdf\"; filename*=UTF-8''%C5%81%C3%B3d%C5%BA.pdf",
            "Łódź.pdf",
        ),
        ("attachment; filename*=utf-8'en'caf%C3%A9%20menu.txt", "café menu.txt"),
        ("attachment; filename*=iso-8859-1''caf%E9.txt", "café.txt"),
        ("attachment; filename=\"plain.txt\"; filename*=bogus-charset''x%FF.txt", "plain.txt"),
        ("attachment; filename=\"fb.txt\"; filename*=UTF-8''%FF%FE.txt", "fb.txt"),
        ("inline", None),
        ("", None),
        (None, None),
    ],
)
def test_filename_from_disposition(value: str | None, expected: str | None) -> None:
    assert filename_from_disposition(value) == expected


# -- adaptive politeness (sync.pacing) --------------------------------------------------------


def test_default_is_adaptive_and_503_shrinks_the_host_limit(fake: Fake) -> None:
    fake.routes["/ok"] = ok()
    fake.routes["/busy"] = lambda h, n: send(h, 503, b"busy", {"Retry-After": "1"})
    http = Http(HttpSettings(concurrency_cap=8, attempts=1), sleep=Sleeps())
    for _ in range(20):  # prompt answers: grows, never above the cap
        http.get_bytes(fake.base + "/ok", max_bytes=10)
    assert http.limit_of(fake.base) == 8
    with pytest.raises(FetchError):
        http.get_bytes(fake.base + "/busy", max_bytes=10)
    assert http.limit_of(fake.base) < 8


def test_explicit_concurrency_or_rate_is_fixed(fake: Fake) -> None:
    fake.routes["/busy"] = lambda h, n: send(h, 503, b"busy")
    for settings in (
        HttpSettings(per_host_concurrency=3, attempts=1),
        HttpSettings(per_host_rate=1000.0, concurrency_cap=5, attempts=1),
    ):
        http = Http(settings, sleep=Sleeps())
        before = http.limit_of(fake.base)
        with pytest.raises(FetchError):
            http.get_bytes(fake.base + "/busy", max_bytes=10)
        assert http.limit_of(fake.base) == before


def test_adaptive_limit_never_exceeded_in_flight(fake: Fake) -> None:
    fake.routes["/slow"] = _slow
    http = Http(HttpSettings(concurrency_cap=3, per_host_rate=0), sleep=Sleeps())
    assert _parallel(9, lambda: http.get_bytes(fake.base + "/slow", max_bytes=10)) == []
    assert fake.hits[("GET", "/slow")] == 9
    assert fake.max_in_flight <= 3


def test_connect_failure_is_told_from_a_failure_after_sending() -> None:
    """A refused connection never reached the server; a connection dropped after the request
    was read did (a POST must not be sent again blindly)."""
    import socket as so

    from sync.transport import ConnectError, Connections, DisconnectedError

    conns = Connections(2.0, 2.0, True)
    closed = so.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    with pytest.raises(ConnectError) as refused:
        conns.send("POST", f"http://127.0.0.1:{port}/x", {}, b"data")
    assert refused.value.sent is False

    listener = so.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def drop() -> None:
        peer, _ = listener.accept()
        peer.recv(65536)  # the request arrives...
        peer.close()  # ...and no answer comes

    t = threading.Thread(target=drop)
    t.start()
    with pytest.raises(DisconnectedError) as dropped:
        conns.send("POST", f"http://127.0.0.1:{listener.getsockname()[1]}/x", {}, b"data")
    t.join()
    listener.close()
    assert dropped.value.sent is True


@pytest.mark.parametrize(
    "url",
    [
        "http://Example.ORG/x",
        "https://example.org",
        "http://example.org:8080/?q",
        "http://u:p@h.org/",
        "http://h.org\\@evil.org/",
        "http://h.org\t.evil/",
        "HTTP://A.b/",
        "http://[::1]:90/x",
        "http://h.org#f",
        "http://h.org?x=@evil.org",
        " http://h.org/",
    ],
)
def test_host_key_fast_path_agrees_with_urlsplit(url: str) -> None:
    from sync.http import _parse_host_key

    assert host_key(url) == _parse_host_key(url)
