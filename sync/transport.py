"""The wire under ``sync.http.Http``: HTTP/1.1 on ``http.client``, keep-alive connections
kept per thread and origin, bodies streamed both ways, gzip/deflate answers decoded.

Why not requests/urllib3 here: a mirror run is a long series of small requests from many
threads, and with two cores its speed is its CPU per request. requests + urllib3 spent about
1.5 ms of CPU on a small keep-alive GET that ``http.client`` sends in 0.37 ms (measured on the
same local server); their extras (proxies from the environment, cookie jars, hooks, URL
re-quoting, retry objects) are things ``Http`` does not use or does itself (redirects checked
hop by hop, retries, politeness). What is kept of requests' behaviour: the same default
headers (User-Agent, ``Accept: */*``, ``Accept-Encoding: gzip, deflate``), a
``Content-Length`` for every body (never chunked uploads: SWORD servers may refuse them),
bodies decoded the way ``iter_content`` decoded them, and a stale kept-alive connection
dropped before it is used (as urllib3 does). ``tests/unit/test_transport.py`` compares what
goes on the wire with what requests sends.
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import select
import socket
import ssl
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import quote, urlsplit

CHUNK = 1 << 16
DEFAULT_HEADERS = {"Accept-Encoding": "gzip, deflate", "Accept": "*/*"}
_MAX_IDLE = 4  # kept-alive connections per thread and origin
_MAX_LINE, _MAX_HEADERS = 65536, 100  # http.client's bounds on an answer's header section
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class TransportError(Exception):
    """The exchange failed below HTTP. ``sent`` is False only when the request certainly did
    not reach the server (so it did not act on it, and even a POST may be sent again)."""

    sent = True


class ConnectError(TransportError):
    """No connection: refused, unreachable, unknown host, connect timeout."""

    sent = False

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


class TlsError(TransportError):
    """The TLS handshake failed (a certificate that does not verify, say): never retried."""

    sent = False


class RequestError(TransportError):
    """The request cannot be written (a header holding a line break): never sent, and never
    retried."""

    sent = False


class ReadTimeoutError(TransportError):
    """No answer (or no more of it) within the read timeout, after the request was sent."""


class DisconnectedError(TransportError):
    """The connection broke after the request was (perhaps) sent, or mid-answer."""


@dataclass(frozen=True)
class Target:
    """Where a URL's request goes: the origin (scheme, host, port) and the request target."""

    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def of(cls, url: str) -> Target:
        m = _PLAIN_URL.match(url)
        if m is not None:  # the usual case: nothing to quote, no fragment
            scheme, host, port = m.group(1), m.group(2), m.group(3)
            return cls(scheme, host, int(port) if port else _PORTS[scheme], m.group(4) or "/")
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in _PORTS or not parts.hostname:
            raise RequestError(f"not an http(s) URL: {url}")
        try:
            port = parts.port or _PORTS[scheme]
        except ValueError:
            raise RequestError(f"bad port in {url}") from None
        # what requests did (requote_uri): spaces, non-ASCII and other unsafe characters are
        # percent-encoded (UTF-8), existing escapes kept, the fragment never sent
        path = quote(parts.path or "/", safe=_SAFE_IN_PATH)
        if parts.query:
            path += "?" + quote(parts.query, safe=_SAFE_IN_PATH)
        return cls(scheme, parts.hostname, port, path)

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    @property
    def host_header(self) -> str:
        host = self.host if self.host.isascii() else self.host.encode("idna").decode("ascii")
        if ":" in host:
            host = f"[{host}]"  # IPv6
        return host if self.port == _PORTS[self.scheme] else f"{host}:{self.port}"


_PORTS = {"http": 80, "https": 443}
_SAFE_IN_PATH = "!#$%&'()*+,/:;=?@[]~"
# scheme, lower-case host, port, path (and query) of characters that need no quoting
_PLAIN_URL = re.compile(
    r"(https?)://([a-z0-9][a-z0-9.\-]*)(?::([0-9]{1,5}))?(/[A-Za-z0-9\-._~/!$&'()*+,;=:@%?]*)?\Z"
)


def basic_auth(username: str, password: str) -> str:
    """The ``Authorization`` value for HTTP Basic (latin-1 as requests did, else UTF-8)."""
    raw = f"{username}:{password}"
    try:
        data = raw.encode("latin-1")
    except UnicodeEncodeError:
        data = raw.encode("utf-8")
    return "Basic " + base64.b64encode(data).decode("ascii")


def tls_context(verify: bool | str) -> ssl.SSLContext:
    """Verification as requests did it: certifi's bundle by default, a CA bundle path, or
    (``--insecure`` only) none."""
    if verify is False:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if isinstance(verify, str):
        return ssl.create_default_context(
            cafile=verify if os.path.isfile(verify) else None,
            capath=verify if os.path.isdir(verify) else None,
        )
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with requests
        return ssl.create_default_context()


class Headers(Mapping[str, str]):
    """An answer's header fields: names case-insensitive, a repeated field's values joined
    with ", " (as requests gave them; the email parser behind ``http.client`` kept only the
    first, and cost about ten times the CPU)."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, tuple[str, str]]) -> None:
        self._fields = fields  # lower-case name -> (name as sent, value)

    @classmethod
    def read(cls, fp: IO[bytes]) -> Headers:
        """The header section of an answer from ``fp``, up to and including its blank line."""
        fields: dict[str, tuple[str, str]] = {}
        last: str | None = None
        for count in range(_MAX_HEADERS + 1):
            line = fp.readline(_MAX_LINE + 1)
            if len(line) > _MAX_LINE:
                raise http.client.LineTooLong("header line")
            if line in (b"\r\n", b"\n", b""):
                return cls(fields)
            if count == _MAX_HEADERS:
                break
            text = line.decode("iso-8859-1")
            if text[:1] in (" ", "\t") and last is not None:  # obs-fold: continues the last
                name, value = fields[last]
                fields[last] = (name, f"{value} {text.strip()}")
                continue
            name, sep, value = text.partition(":")
            if not sep:
                continue  # not a header field: ignored, as the email parser did
            name = name.strip()
            last = name.lower()
            value = value.strip()
            if last in fields:
                value = f"{fields[last][1]}, {value}"
            fields[last] = (name, value)
        raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()][1]

    def get(self, name: str, default: Any = None) -> Any:
        """One look-up (``Mapping.get`` goes through ``__getitem__`` and an exception for
        every header an answer lacks; about seven calls per request)."""
        field = self._fields.get(name.lower())
        return default if field is None else field[1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._fields.values())

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class _Answer(http.client.HTTPResponse):
    """``http.client``'s response with the header section read by ``Headers``: the same
    status line, framing and keep-alive rules as ``HTTPResponse.begin``."""

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()
            if status != http.client.CONTINUE:
                break
            Headers.read(self.fp)  # an interim 100 answer's headers: skipped
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        headers = Headers.read(self.fp)
        self.headers = self.msg = headers
        encoding = headers.get("transfer-encoding")
        self.chunked = bool(encoding and encoding.lower() == "chunked")
        self.chunk_left = None
        self.will_close = self._check_close()
        self.length = None
        length = headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if status in (204, 304) or 100 <= status < 200 or self._method == "HEAD":
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


class Response:
    """One answer. Read it whole or stream it, then close it (a context manager): a fully
    read answer gives its connection back for the next request of this thread."""

    def __init__(
        self, raw: http.client.HTTPResponse, release: Callable[[bool], None] | None
    ) -> None:
        self._raw = raw
        self._release = release  # called with the connection's reusability, once
        self.status_code: int = raw.status
        self.reason: str = raw.reason or ""
        self.headers: Headers = raw.msg  # type: ignore[assignment]  # set by _Answer
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        self._decoder: Any = None
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = _Deflate()
        self._done = False
        self._on_close: list[Callable[[], None]] = []
        self._content: bytes | None = None

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read1(self, size: int) -> bytes:
        try:
            return self._raw.read1(size)
        except TimeoutError as exc:
            self._abandon()
            raise ReadTimeoutError(f"read timed out ({exc})") from None
        except (http.client.HTTPException, OSError) as exc:
            self._abandon()
            raise DisconnectedError(f"body broke off ({type(exc).__name__}: {exc})") from None

    def iter_content(self, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """The (decoded) body in pieces of about ``chunk_size`` bytes; a body that ends before
        its ``Content-Length`` raises ``DisconnectedError``."""
        while not self._done:
            data = self._read1(chunk_size)
            left = self._raw.length
            if not data and left:
                self._abandon()
                raise DisconnectedError(f"body broke off with {left} bytes still to come")
            end = not data or left == 0
            out = data
            if self._decoder is not None:
                try:
                    out = self._decoder.decompress(data) if data else b""
                    if end:
                        out += self._decoder.flush()
                except zlib.error as exc:
                    self._abandon()
                    raise DisconnectedError(f"body does not decode ({exc})") from None
            if end:
                self._finish()
            if out:
                yield out

    @property
    def content(self) -> bytes:
        """The whole (decoded) body, read once (for small answers only)."""
        if self._content is None:
            self._content = b"".join(self.iter_content(CHUNK))
        return self._content

    def read(self, limit: int) -> bytes:
        """At most ``limit`` bytes of the (decoded) body: a peek, not the whole of a big one."""
        out = bytearray()
        for chunk in self.iter_content(CHUNK):
            out += chunk
            if len(out) >= limit:
                break
        return bytes(out[:limit])

    def _finish(self) -> None:
        self._done = True
        self._raw.close()  # the answer, not the socket: the connection may serve the next
        self._give_back(reuse=not self._raw.will_close)

    def _abandon(self) -> None:
        self._done = True
        self._raw.close()
        self._give_back(reuse=False)

    def _give_back(self, *, reuse: bool) -> None:
        release, self._release = self._release, None
        if release is not None:
            release(reuse)

    def on_close(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` once when this answer is closed (``Http`` frees its per-host slot)."""
        self._on_close.append(fn)

    def close(self) -> None:
        """Done with it: an answer not read to its end closes its connection."""
        if not self._done:
            if self._raw.length == 0 or self._raw.isclosed():
                self._finish()  # nothing left unread (an empty body)
            else:
                self._abandon()
        hooks, self._on_close = self._on_close, []
        for fn in hooks:
            fn()


class _Deflate:
    """``Content-Encoding: deflate`` is zlib-wrapped by the RFC, raw deflate by some servers."""

    def __init__(self) -> None:
        self._obj = zlib.decompressobj()
        self._first = True

    def decompress(self, data: bytes) -> bytes:
        if self._first:
            self._first = False
            try:
                return self._obj.decompress(data)
            except zlib.error:
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._obj.decompress(data)

    def flush(self) -> bytes:
        return self._obj.flush()


class Connections:
    """Kept-alive connections of each thread, per origin: a thread never waits for another's
    connection, and a connection is never used by two requests at once.

    The request head is written here in one piece (``http.client``'s request building checked
    and encoded each header on its own, a seventh of the CPU of a small request); the answer
    is read by ``http.client``'s ``HTTPResponse`` (as ``_Answer``)."""

    def __init__(self, connect_timeout: float, read_timeout: float, verify: bool | str) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._verify = verify
        self._tls: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._pools: list[dict[tuple[str, str, int], list[socket.socket]]] = []

    def _idle(self) -> dict[tuple[str, str, int], list[socket.socket]]:
        idle: dict[tuple[str, str, int], list[socket.socket]] | None
        idle = getattr(self._local, "idle", None)
        if idle is None:
            idle = self._local.idle = {}
            with self._lock:
                self._pools.append(idle)
        return idle

    def close(self) -> None:
        """Close every kept-alive connection (of every thread): the end of a run."""
        with self._lock:
            pools, self._pools = self._pools, []
        for idle in pools:
            for socks in list(idle.values()):
                for sock in socks:
                    sock.close()
            idle.clear()

    def _context(self) -> ssl.SSLContext:
        with self._lock:
            if self._tls is None:
                self._tls = tls_context(self._verify)
            return self._tls

    def take(self, target: Target) -> tuple[socket.socket, bool]:
        """An idle connection to the origin that the server has not closed (and True), or a
        new one (and False)."""
        pool = self._idle().get(target.origin)
        while pool:
            sock = pool.pop()
            if not _dropped(sock):
                return sock, True
            sock.close()
        return self._connect(target), False

    def give_back(self, target: Target, sock: socket.socket) -> None:
        pool = self._idle().setdefault(target.origin, [])
        if len(pool) < _MAX_IDLE:
            pool.append(sock)
        else:
            sock.close()

    def _connect(self, target: Target) -> socket.socket:
        try:
            sock = socket.create_connection(
                (target.host, target.port), timeout=self.connect_timeout
            )
        except TimeoutError as exc:
            raise ConnectError(f"connect timed out ({exc})", timeout=True) from None
        except OSError as exc:  # refused, unreachable, unknown host
            raise ConnectError(f"cannot connect ({type(exc).__name__}: {exc})") from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if target.scheme == "https":
                sock = self._context().wrap_socket(sock, server_hostname=target.host)
        except ssl.SSLError as exc:
            sock.close()
            raise TlsError(f"TLS error: {exc}") from None
        except OSError as exc:
            sock.close()
            raise ConnectError(f"TLS handshake failed ({type(exc).__name__}: {exc})") from None
        sock.settimeout(self.read_timeout)
        return sock

    def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | IO[bytes] | None
    ) -> Response:
        """Send one request and read the answer's head; the body is left to the caller."""
        target = Target.of(url)
        hdrs = dict(headers)
        if body is None:
            if method not in ("GET", "HEAD"):
                hdrs["Content-Length"] = "0"
        elif "Content-Length" not in hdrs:
            hdrs["Content-Length"] = str(_length(body))
        head = _request_head(method, target, hdrs)
        sock, reused = self.take(target)
        try:
            try:
                raw = _exchange(sock, method, head, body)
            except _STALE as exc:
                # a kept-alive connection the server closed as we sent: browsers and urllib3
                # send a safe request again at once on a new connection; others are reported
                sock.close()
                if not (reused and method in _SAFE and not hasattr(body, "read")):
                    raise exc from None
                sock = self._connect(target)
                raw = _exchange(sock, method, head, body)
        except TimeoutError as exc:
            sock.close()
            raise ReadTimeoutError(f"no answer within {self.read_timeout:g} s ({exc})") from None
        except ssl.SSLError as exc:
            sock.close()
            raise TlsError(f"TLS error: {exc}") from None
        except (http.client.HTTPException, OSError) as exc:
            sock.close()
            raise DisconnectedError(f"connection broke ({type(exc).__name__}: {exc})") from None

        def release(reuse: bool) -> None:
            if reuse:
                self.give_back(target, sock)
            else:
                sock.close()

        return Response(raw, release)


def _exchange(
    sock: socket.socket, method: str, head: bytes, body: bytes | IO[bytes] | None
) -> _Answer:
    """Write the request (a small body goes in the same write as the head) and read the
    answer's head."""
    if body is None or isinstance(body, bytes):
        sock.sendall(head + body if body else head)
    else:
        sock.sendall(head)
        while chunk := body.read(CHUNK):
            sock.sendall(chunk)
    raw = _Answer(sock, method=method)
    try:
        raw.begin()
    except BaseException:
        raw.close()
        raise
    return raw


def _request_head(method: str, target: Target, headers: Mapping[str, str]) -> bytes:
    """The request line and header section, refusing what would split a header (CR, LF)."""
    lines = [f"{method} {target.path} HTTP/1.1", f"Host: {target.host_header}"]
    for name, value in headers.items():
        if name.lower() == "host":
            lines[1] = f"Host: {value}"
            continue
        lines.append(f"{name}: {value}")
    text = "\r\n".join(lines)
    breaks = len(lines) - 1
    if text.count("\n") != breaks or text.count("\r") != breaks or "\x00" in text:
        raise RequestError(f"a header of the request to {target.host} holds a line break")
    try:
        return (text + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise RequestError(
            f"a header of the request to {target.host} is not Latin-1 text"
        ) from None


def _length(body: bytes | IO[bytes]) -> int:
    if isinstance(body, (bytes, bytearray, memoryview)):
        return len(body)
    try:
        return os.fstat(body.fileno()).st_size - body.tell()
    except (AttributeError, OSError, ValueError):
        data = body.read()  # an in-memory stream: measured by reading it (small by nature)
        body.seek(0)
        return len(data)


def _dropped(sock: socket.socket) -> bool:
    """A kept-alive socket with something to read before we asked is closed (or broken)."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True
