"""Shared HTTP plumbing for the local test servers.

Why not plain ``http.server``: it writes headers and body in separate segments, and on a
kept-alive connection Nagle's algorithm against delayed ACKs stalls each response by ~40 ms;
we set TCP_NODELAY. Latency and fault injection live here so that both servers (source and
destination) can stand in for slow or broken real servers in tests and the benchmark.
"""

from __future__ import annotations

import random
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO, Self

FAULT_KINDS = ("500", "503", "reset", "stall", "truncate")
# "lost": the request is carried out, then the connection is dropped without any answer (a
# server that acted and crashed, or a network cut after it acted); not among the random kinds
LOST = "lost"


@dataclass
class FaultPolicy:
    """Answer a share of requests badly.

    ``rate`` is the probability that a request gets a fault; ``kinds`` which faults may be
    chosen. ``stall_seconds`` is how long a stalled request hangs before the connection is
    closed (tests set the client's read timeout below it). ``after`` faults (truncate) happen
    after the request was processed, so the server's side effect has happened but the client
    never sees a whole answer: the hardest case for a non-idempotent POST. ``lost`` (opt-in)
    carries the request out and drops the connection before any byte of the answer.
    """

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 1
    stall_seconds: float = 3.0
    only_methods: tuple[str, ...] = ()
    # the faults served, by kind (a test proves it exercised what it meant to)
    served: Counter[str] = field(default_factory=Counter, init=False)
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def draw(self, method: str) -> str | None:
        if self.rate <= 0:
            return None
        if self.only_methods and method not in self.only_methods:
            return None
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            fault = self._rng.choice(self.kinds)
            self.served[fault] += 1
            return fault


class LocalHTTPServer(ThreadingHTTPServer):
    """Threaded server bound to 127.0.0.1 with stats, latency and faults."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        port: int = 0,
        latency: float = 0.0,
        faults: FaultPolicy | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(("127.0.0.1", port), handler)
        self.latency = latency
        self.faults = faults or FaultPolicy()
        self.stats: Counter[str] = Counter()
        self.stats_lock = threading.Lock()
        # requests being processed now (from dispatch until the answer starts) and the most
        # seen at once: tests check per-host concurrency bounds with these
        self.in_flight = 0
        self.max_in_flight = 0
        # capacity mode, like a small real server: above ``capacity`` requests in flight (0:
        # unbounded) it answers 503 with Retry-After at once; stats["refused"] counts them
        self.capacity = 0
        self.retry_after = "1"
        self.ssl_context = ssl_context
        if ssl_context is not None:
            # handshake in the handler thread, not in the accept loop
            self.socket = ssl_context.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )
        # tests: called as on_request(method, path, n) before a request is handled; it may
        # return "drop" to reset the connection without handling the request
        self.on_request: Callable[[str, str, int], str | None] | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host}:{port}"

    def start(self) -> LocalHTTPServer:
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def count(self, key: str) -> None:
        with self.stats_lock:
            self.stats[key] += 1
            self.stats["total"] += 1

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients dropping connections is normal here (tests kill them); stay quiet."""
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError)):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]

    def reset_stats(self) -> None:
        with self.stats_lock:
            self.stats.clear()
            self.max_in_flight = 0

    def _enter(self) -> bool:
        """Count a request in flight; False (not counted) when it is over capacity."""
        with self.stats_lock:
            if self.capacity and self.in_flight >= self.capacity:
                self.stats["refused"] += 1
                return False
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return True

    def _leave(self) -> None:
        with self.stats_lock:
            self.in_flight -= 1


class Handler(BaseHTTPRequestHandler):
    """Base handler: subclasses implement ``route(method)`` and answer with ``reply``."""

    protocol_version = "HTTP/1.1"
    server: LocalHTTPServer
    _fault_after: str | None = None
    _counted = False

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        pass

    # -- dispatch -------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        self.server.count(method)
        hook = self.server.on_request
        if hook is not None and hook(method, self.path, self.server.stats["total"]) == "drop":
            self._reset()
            return
        # in flight until the answer starts: the client holds its per-host slot at least that
        # long, so max_in_flight never exceeds the client's bound (no race on the last bytes)
        if not self.server._enter():
            self._fault_after = None
            self.discard_body()
            headers = {"Retry-After": self.server.retry_after}
            self.reply(503, b"over capacity, try again later\n", "text/plain", headers)
            return
        self._counted = True
        try:
            self._handle(method)
        finally:
            self._left()

    def _left(self) -> None:
        if self._counted:
            self._counted = False
            self.server._leave()

    def _handle(self, method: str) -> None:
        if self.server.latency:
            time.sleep(self.server.latency)
        fault = self.server.faults.draw(method)
        self._fault_after = None
        if fault in ("500", "503"):
            self.discard_body()
            headers = {"Retry-After": "0"} if fault == "503" else {}
            self.reply(int(fault), b"injected fault\n", "text/plain", headers)
            return
        if fault == "reset":
            self._reset()
            return
        if fault == "stall":
            time.sleep(self.server.faults.stall_seconds)
            self._reset()
            return
        if fault in ("truncate", LOST):
            self._fault_after = fault
        try:
            self.route(method)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def route(self, method: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- request body -----------------------------------------------------------------------
    def iter_body(self, chunk: int = 1 << 16) -> Iterable[bytes]:
        """Yield the request body in chunks (Content-Length or chunked transfer coding)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                remaining = size
                while remaining:
                    data = self.rfile.read(min(chunk, remaining))
                    if not data:
                        raise ConnectionResetError("client closed mid-body")
                    remaining -= len(data)
                    yield data
                self.rfile.readline(3)
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining > 0:
                data = self.rfile.read(min(chunk, remaining))
                if not data:
                    raise ConnectionResetError("client closed mid-body")
                remaining -= len(data)
                yield data

    def read_body(self, limit: int = 64 << 20) -> bytes:
        parts: list[bytes] = []
        size = 0
        for data in self.iter_body():
            size += len(data)
            if size > limit:
                raise ValueError("request body too large")
            parts.append(data)
        return b"".join(parts)

    def discard_body(self) -> None:
        for _ in self.iter_body():
            pass

    # -- responses --------------------------------------------------------------------------
    def reply(
        self,
        status: int,
        body: bytes | Path | BinaryIO = b"",
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Send a whole response; a file body is streamed. Applies an ``after`` fault."""
        if isinstance(body, Path):
            length = body.stat().st_size
            stream: BinaryIO | None = body.open("rb")
            data = b""
        elif isinstance(body, bytes):
            length, stream, data = len(body), None, body
        else:
            stream = body
            stream.seek(0, 2)
            length = stream.tell()
            stream.seek(0)
            data = b""
        self._left()
        if self._fault_after == LOST:
            if stream is not None:
                stream.close()
            self._reset()
            return
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        truncate = self._fault_after == "truncate"
        limit = length // 2 if truncate else length
        try:
            if self.command != "HEAD":
                if stream is None:
                    self.wfile.write(data[:limit])
                else:
                    sent = 0
                    while sent < limit:
                        buf = stream.read(min(1 << 16, limit - sent))
                        if not buf:
                            break
                        self.wfile.write(buf)
                        sent += len(buf)
            if truncate:
                self.wfile.flush()
                self._reset()
        finally:
            if stream is not None:
                stream.close()

    def _reset(self) -> None:
        """Drop the connection abruptly (RST), as a crashed or overloaded server would."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def serve_until_signal(
    start: Callable[[], object], stop: Callable[[], None], banner: Callable[[], str]
) -> int:
    """Foreground mode of a test server: print where it listens, serve until SIGINT/SIGTERM."""
    import signal

    done = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    start()
    print(banner(), flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        stop()
    return 0


class ModelServer:
    """A local server that serves a fixture model through a handler class, started on demand
    (``with`` or ``start()``): what the ResourceSync source and the OAI-PMH provider share.

    Subclasses set ``port``, ``latency``, ``faults`` and ``model`` and implement ``handler()``
    (the handler class bound to them); ``path`` is appended to the server's URL in
    ``base_url``; ``cleanup()`` runs after the server stopped."""

    path = ""
    port: int
    latency: float
    faults: FaultPolicy | None
    model: Any
    ssl_context: ssl.SSLContext | None = None
    httpd: LocalHTTPServer | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> Self:
        self.httpd = LocalHTTPServer(
            self.handler(), self.port, self.latency, self.faults, ssl_context=self.ssl_context
        )
        self.model.base_url = self.httpd.base_url
        self.httpd.start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.stop()
            self.httpd = None
        self.cleanup()

    def cleanup(self) -> None:
        return None

    def __enter__(self) -> Self:
        return self.start() if self.httpd is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self.httpd is None:
            raise RuntimeError("server not started")
        return self.httpd.base_url + self.path

    @property
    def stats(self) -> Counter[str]:
        if self.httpd is None:
            raise RuntimeError("server not started")
        return self.httpd.stats
