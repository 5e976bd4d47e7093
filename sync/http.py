"""HTTP transport: pooled sessions, per-host politeness, retries, host allow-list, streaming.

Every request of resync-sword goes through ``Http``: it bounds concurrent requests and the
request rate per host (scheme, host, port), retries transient failures with exponential backoff
and jitter (tenacity; ``Retry-After`` honoured), refuses URLs and redirects outside the allowed
hosts, and streams bodies to disk so no file is ever held whole in memory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import urljoin, urlsplit

from . import __version__
from .errors import FetchError, OutsideSourceError, SyncError, redact
from .filenames import filename_from_disposition
from .pacing import AdaptiveLimit, PacingPolicy, Signal
from .retrying import (
    POST_RETRY_STATUS,
    RETRY_STATUS,
    RetryableError,
    exception_signal,
    load_signal,
    retry_after_seconds,
)
from .transport import (
    DEFAULT_HEADERS,
    Connections,
    ReadTimeoutError,
    RequestError,
    Response,
    TlsError,
    TransportError,
    basic_auth,
)

log = logging.getLogger(__name__)

CHUNK = 1 << 16
T = TypeVar("T")


@dataclass
class HttpOptions:
    """What users set (``[options]`` of a pipeline declares these fields by inheriting them):
    timeouts, retries and politeness; defaults are conservative for other people's servers."""

    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    attempts: int = 5
    max_retry_seconds: float = 300.0
    backoff_initial: float = 1.0
    # Politeness. Neither set (or a rate of 0): adaptive per-host concurrency (sync.pacing),
    # between 1 and ``concurrency_cap``. Either set: fixed, as given (an explicit choice wins).
    per_host_concurrency: int | None = None
    per_host_rate: float | None = None  # requests per second per host; 0 = unbounded


@dataclass
class HttpSettings(HttpOptions):
    """The options plus what the run derives (the worker count, TLS, pool sizes)."""

    backoff_max: float = 60.0
    concurrency_cap: int = 16  # the adaptive limit never exceeds it (the worker count)
    verify: bool | str = True  # False only with an explicit flag; a path = CA bundle
    pool_size: int = 16
    user_agent: str = f"resync-sword/{__version__}"


# scheme://authority of a plain http(s) URL: no user info, white space or backslash (those go
# the whole way through urlsplit); the authority ends where urlsplit ends it, at / ? or #
_PLAIN_ORIGIN = re.compile(r"(https?://[^/?#@\\\s]+)(?:[/?#]|\Z)")


def host_key(url: str) -> str:
    """(scheme, host, port) as one string: the unit of politeness and of the allow-list.

    Called several times per request and once per list entry: plain URLs are read by one
    regular expression and their origin's key is cached; others are parsed whole."""
    m = _PLAIN_ORIGIN.match(url)
    return _origin_key(m.group(1)) if m else _parse_host_key(url)


@lru_cache(maxsize=4096)
def _origin_key(origin: str) -> str:
    return _parse_host_key(origin)


def _parse_host_key(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


class HostGate:
    """Concurrency slots plus a minimum spacing between request starts, for one host.

    With ``pacing`` the number of slots follows ``AdaptiveLimit`` (what the host's answers
    allow); without it, it is the fixed ``concurrency``."""

    def __init__(
        self,
        concurrency: int,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        pacing: AdaptiveLimit | None = None,
    ) -> None:
        self._fixed = max(1, concurrency)
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._cond = threading.Condition(threading.Lock())
        self._in_flight = 0
        self._clock = clock
        self._sleep = sleep
        self.pacing = pacing

    @property
    def limit(self) -> int:
        return self.pacing.allowed if self.pacing is not None else self._fixed

    def acquire(self) -> Permit:
        """Take a slot (waiting for the rate bound too); the permit releases it."""
        with self._cond:
            while self._in_flight >= self.limit:
                self._cond.wait()
            self._in_flight += 1
            epoch = self.pacing.epoch if self.pacing is not None else 0
            start = now = 0.0
            if self._interval:
                now = self._clock()
                start = max(now, self._next)
                self._next = start + self._interval
        if start > now:
            self._sleep(start - now)
        return Permit(self, epoch)

    def _report(self, signal: Signal, latency: float | None, epoch: int) -> None:
        if self.pacing is None:
            return
        with self._cond:
            before = self.pacing.allowed
            self.pacing.record(signal, latency, epoch)
            if self.pacing.allowed > before:
                self._cond.notify(self.pacing.allowed - before)

    def _release(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._cond.notify()

    @contextmanager
    def slot(self) -> Iterator[None]:
        permit = self.acquire()
        try:
            yield
        finally:
            permit()


class Permit:
    """One request's slot at a host: report what the answer said once, release once."""

    __slots__ = ("_epoch", "_gate", "_released", "_reported")

    def __init__(self, gate: HostGate, epoch: int) -> None:
        self._gate = gate
        self._epoch = epoch
        self._released = False
        self._reported = False

    def report(self, signal: Signal, latency: float | None = None) -> None:
        if not self._reported:
            self._reported = True
            self._gate._report(signal, latency, self._epoch)

    def __call__(self) -> None:
        """Release the slot (idempotent)."""
        if not self._released:
            self._released = True
            self._gate._release()


@dataclass
class Download:
    """A resource streamed to a temporary file, with the digests computed on the way (MD5
    always: deposits send it; SHA-1 / SHA-256 only when asked for, to check a source's)."""

    url: str
    path: Path
    size: int
    md5: str
    sha1: str | None
    sha256: str | None
    content_type: str | None
    filename: str | None  # from Content-Disposition, decoded

    def digest(self, algorithm: str) -> str | None:
        return {"md5": self.md5, "sha-1": self.sha1, "sha-256": self.sha256}.get(algorithm)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass
class Http:
    """The one HTTP client. Thread-safe; share one per run."""

    settings: HttpSettings = field(default_factory=HttpSettings)
    allowed_hosts: set[str] | None = None  # host keys; None = any host
    host_limits: dict[str, tuple[int, float]] = field(default_factory=dict)
    auth: dict[str, tuple[str, str]] = field(default_factory=dict)  # host key -> basic auth
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self._local = threading.local()
        self._gates: dict[str, HostGate] = {}
        self._gates_lock = threading.Lock()
        self.requests_sent = 0
        self._count_lock = threading.Lock()
        s = self.settings
        self._connections = Connections(s.connect_timeout, s.read_timeout, s.verify)
        self._base_headers = {"User-Agent": s.user_agent, **DEFAULT_HEADERS}

    # -- configuration ---------------------------------------------------------------------
    def allow(self, url: str) -> None:
        if self.allowed_hosts is not None:
            self.allowed_hosts.add(host_key(url))

    def set_auth(self, url: str, username: str, password: str) -> None:
        self.auth[host_key(url)] = (username, password)

    def check_allowed(self, url: str, *, what: str = "URL") -> None:
        if _PLAIN_ORIGIN.match(url) is None and urlsplit(url).scheme not in ("http", "https"):
            raise OutsideSourceError(f"{what} is not http(s)", resource=url)
        if self.allowed_hosts is not None and host_key(url) not in self.allowed_hosts:
            raise OutsideSourceError(
                f"{what} is outside the source's hosts",
                resource=url,
                hint="allow-list the host in the pipeline (allowed_hosts) if it is trusted",
            )

    # -- internals -------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        data: Any,
        auth: tuple[str, str] | None,
    ) -> Response:
        """One request on this thread's kept-alive connection to the host (sync.transport)."""
        merged = dict(self._base_headers)
        for name, value in headers.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        if auth is not None:
            merged["Authorization"] = basic_auth(*auth)
        return self._connections.send(method, url, merged, data)

    def _gate(self, url: str) -> HostGate:
        key = host_key(url)
        with self._gates_lock:
            gate = self._gates.get(key)
            if gate is None:
                gate = self._gates[key] = self._new_gate(key)
            return gate

    def _new_gate(self, key: str) -> HostGate:
        """Fixed limits where configured (per host or for all), adaptive ones otherwise."""
        s = self.settings
        cap = max(1, s.concurrency_cap)
        if key in self.host_limits:
            conc, rate = self.host_limits[key]
            return HostGate(conc, rate)
        if s.per_host_concurrency is not None or (s.per_host_rate or 0) > 0:
            return HostGate(s.per_host_concurrency or cap, s.per_host_rate or 0.0)
        policy = PacingPolicy(initial=min(2, cap), cap=cap)
        return HostGate(cap, 0.0, pacing=AdaptiveLimit(policy))

    def close(self) -> None:
        """Close the kept-alive connections (a run is over)."""
        self._connections.close()

    def limit_of(self, url: str) -> int:
        """Requests the host of ``url`` may have in flight now (for logs and tests)."""
        return self._gate(url).limit

    def _retry(self, fn: Callable[[], T]) -> T:
        """Run ``fn``; while it raises ``RetryableError``, try again (tenacity), within the
        attempt and time bounds. The first try runs outside tenacity: most calls succeed, and
        building a retry loop for each of them costs CPU the workers need. After a failure,
        tenacity takes over with that failure as its first attempt."""
        started = time.monotonic()
        try:
            return fn()
        except RetryableError as first:
            if self.settings.attempts <= 1:
                raise first.error from None
            failure: RetryableError | None = first
        # tenacity is loaded only now: most runs never retry, and every run pays its import
        from tenacity import (
            Retrying,
            retry_if_exception_type,
            stop_after_attempt,
            stop_after_delay,
        )

        from .backoff import backoff_wait

        s = self.settings
        left = s.max_retry_seconds - (time.monotonic() - started)
        retrying = Retrying(
            retry=retry_if_exception_type(RetryableError),
            stop=stop_after_attempt(s.attempts) | stop_after_delay(max(0.0, left)),
            wait=backoff_wait(s.backoff_initial, s.backoff_max),
            sleep=self.sleep,
            reraise=True,
        )

        def again() -> T:
            nonlocal failure
            if failure is not None:  # the try already made: tenacity counts and waits for it
                pending, failure = failure, None
                raise pending
            return fn()

        try:
            for attempt in retrying:
                with attempt:
                    return again()
        except RetryableError as exc:
            raise exc.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _send_once(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Callable[[], Any] | None,
        stream: bool,
        retry_status: frozenset[int],
        safe_to_retry_after_send: bool,
    ) -> Response:
        """One attempt, following redirects by hand so each hop is checked against the list."""
        current = url
        for _hop in range(6):
            self.check_allowed(
                current, what=f"redirect target of {url}" if current != url else "URL"
            )
            auth = self.auth.get(host_key(current))
            data = body() if body else None
            try:
                # the slot is held until the body is read: a streamed response releases it
                # when closed, so large downloads count against the per-host bound too
                permit = self._gate(current).acquire()
                try:
                    with self._count_lock:
                        self.requests_sent += 1
                    started = time.monotonic()
                    resp = self._send(method, current, headers, data, auth)
                    # latency to the answer's headers, only where no upload is timed with it
                    latency = time.monotonic() - started if data is None else None
                    permit.report(load_signal(resp.status_code, resp.headers), latency)
                except BaseException as exc:
                    permit.report(exception_signal(exc))
                    permit()
                    raise
                if stream:
                    resp.on_close(permit)
                else:
                    resp.content  # noqa: B018 - read whole now: the slot is freed with it
                    resp.close()
                    permit()
            except TlsError as exc:
                # a certificate that does not verify will not verify on the next try either
                raise FetchError(
                    f"{method} failed: {_short(exc)}",
                    resource=current,
                    hint="--ca-bundle FILE for a private CA; --insecure only if you must",
                ) from None
            except RequestError as exc:
                raise FetchError(f"{method} not sent: {_short(exc)}", resource=url) from None
            except TransportError as exc:
                what = "timed out" if isinstance(exc, ReadTimeoutError) else "failed"
                err = FetchError(f"{method} {what}: {_short(exc)}", resource=url, transient=True)
                if not exc.sent or safe_to_retry_after_send:
                    raise RetryableError(err) from None
                raise err from None
            finally:
                if data is not None and hasattr(data, "close"):
                    data.close()
            if resp.status_code in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                resp.close()
                current = urljoin(current, resp.headers["Location"])
                if resp.status_code == 303:
                    method, body = "GET", None
                continue
            if resp.status_code in retry_status:
                retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
                resp.close()
                raise RetryableError(
                    FetchError(
                        f"{method} answered HTTP {resp.status_code}",
                        resource=url,
                        transient=True,
                        status=resp.status_code,
                    ),
                    retry_after,
                )
            return resp
        raise FetchError("too many redirects", resource=url)

    # -- public API ------------------------------------------------------------------------
    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: Callable[[], Any] | None = None,
        stream: bool = False,
        idempotent: bool | None = None,
    ) -> Response:
        """Send with retries. ``body`` is a factory (a file is reopened for each attempt).

        Non-idempotent requests (POST) are retried only when the server certainly did not act
        (connection refused, 429, 503); otherwise the caller finds out what happened.
        A final transient failure raises ``FetchError(transient=True)``.
        """
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")
        retry_status = RETRY_STATUS if idempotent else POST_RETRY_STATUS
        return self._retry(
            lambda: self._send_once(
                method, url, dict(headers or {}), body, stream, retry_status, idempotent
            )
        )

    def exchange(
        self,
        method: str,
        url: str,
        *,
        max_bytes: int,
        headers: dict[str, str] | None = None,
        body: Callable[[], Any] | None = None,
        idempotent: bool | None = None,
    ) -> tuple[Response, bytes]:
        """Send and read the whole (small) answer, whatever its status, bounded in size.

        An answer that breaks off mid-body is asked for again when the request is safe to
        repeat; otherwise it is reported as a transient ``FetchError`` for the caller to find
        out what happened.
        """
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")

        def attempt() -> tuple[Response, bytes]:
            resp = self.request(
                method, url, headers=headers, body=body, stream=True, idempotent=idempotent
            )
            with resp:
                chunks: list[bytes] = []
                size = 0
                try:
                    for chunk in resp.iter_content(CHUNK):
                        size += len(chunk)
                        if size > max_bytes:
                            raise FetchError(
                                f"answer larger than {max_bytes} bytes",
                                resource=url,
                                status=resp.status_code,
                            )
                        chunks.append(chunk)
                except TransportError as exc:
                    err = _truncated(url, exc)
                    err.status = resp.status_code
                    if idempotent:
                        raise RetryableError(err) from None
                    raise err from None
                return resp, b"".join(chunks)

        return self._retry(attempt)

    def get_bytes(self, url: str, *, max_bytes: int, accept: str | None = None) -> bytes:
        """GET a small document whole, bounded in size; an error status raises."""
        resp, data = self.exchange(
            "GET", url, max_bytes=max_bytes, headers={"Accept": accept} if accept else None
        )
        _raise_for_status(resp, url)
        return data

    def download(
        self,
        url: str,
        *,
        max_bytes: int | None = None,
        directory: str | None = None,
        digests: Collection[str] = (),
    ) -> Download:
        """Stream ``url`` into a temporary file, hashing on the way (MD5, and ``digests``:
        "sha-1", "sha-256"); retried as a whole."""
        want_sha1, want_sha256 = "sha-1" in digests, "sha-256" in digests

        def attempt() -> Download:
            resp = self.request("GET", url, stream=True)
            with resp:
                _raise_for_status(resp, url)
                declared = resp.headers.get("Content-Length")
                if max_bytes is not None and declared and int(declared) > max_bytes:
                    raise FetchError(
                        f"resource is {declared} bytes, over the maximum of {max_bytes}",
                        resource=url,
                        hint="raise max_file_size in the pipeline if this file is expected",
                    )
                md5 = hashlib.md5()
                sha1 = hashlib.sha1() if want_sha1 else None
                sha256 = hashlib.sha256() if want_sha256 else None
                fd, name = tempfile.mkstemp(prefix="rsw-", suffix=".part", dir=directory)
                size = 0
                try:
                    with os.fdopen(fd, "wb") as out:
                        try:
                            for chunk in resp.iter_content(CHUNK):
                                size += len(chunk)
                                if max_bytes is not None and size > max_bytes:
                                    raise FetchError(
                                        f"resource exceeds the maximum of {max_bytes} bytes",
                                        resource=url,
                                    )
                                md5.update(chunk)
                                if sha1 is not None:
                                    sha1.update(chunk)
                                if sha256 is not None:
                                    sha256.update(chunk)
                                out.write(chunk)
                        except TransportError as exc:
                            raise RetryableError(_truncated(url, exc)) from None
                except BaseException:
                    os.unlink(name)
                    raise
                return Download(
                    url=url,
                    path=Path(name),
                    size=size,
                    md5=md5.hexdigest(),
                    sha1=None if sha1 is None else sha1.hexdigest(),
                    sha256=None if sha256 is None else sha256.hexdigest(),
                    content_type=resp.headers.get("Content-Type"),
                    filename=filename_from_disposition(resp.headers.get("Content-Disposition")),
                )

        return self._retry(attempt)


def _raise_for_status(resp: Response, url: str) -> None:
    if resp.status_code >= 400:
        raise FetchError(
            f"GET answered HTTP {resp.status_code} {resp.reason or ''}".strip(),
            resource=url,
            status=resp.status_code,
            transient=resp.status_code >= 500 or resp.status_code == 429,
        )


def _truncated(url: str, exc: BaseException) -> FetchError:
    return FetchError(f"body broke off ({_short(exc)})", resource=url, transient=True)


def _short(exc: BaseException) -> str:
    text = redact(str(exc))
    return text if len(text) < 200 else text[:197] + "..."


def open_body(path: Path) -> Callable[[], IO[bytes]]:
    """A body factory streaming ``path`` from disk, reopened for each attempt."""
    return lambda: path.open("rb")


__all__ = [
    "Download",
    "Http",
    "HttpSettings",
    "SyncError",
    "host_key",
    "open_body",
]
