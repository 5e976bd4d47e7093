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
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
)

from . import __version__
from .errors import FetchError, OutsideSourceError, SyncError, redact
from .filenames import filename_from_disposition

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
# A POST is not idempotent: only retried when the server said it did not act on it.
POST_RETRY_STATUS = frozenset({429, 503})
CHUNK = 1 << 16
T = TypeVar("T")


@dataclass
class HttpSettings:
    """Timeouts, retries and politeness; defaults are conservative for other people's servers."""

    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    attempts: int = 5
    max_retry_seconds: float = 300.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    per_host_concurrency: int = 4
    per_host_rate: float = 10.0  # requests per second per host; 0 = unbounded
    verify: bool | str = True  # False only with an explicit flag; a path = CA bundle
    pool_size: int = 16
    user_agent: str = f"resync-sword/{__version__}"


def host_key(url: str) -> str:
    """(scheme, host, port) as one string: the unit of politeness and of the allow-list."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


class HostGate:
    """Concurrency slots plus a minimum spacing between request starts, for one host."""

    def __init__(
        self,
        concurrency: int,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._slots = threading.BoundedSemaphore(max(1, concurrency))
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> Callable[[], None]:
        """Take a slot (waiting for the rate bound too); returns its idempotent release."""
        self._slots.acquire()
        if self._interval:
            with self._lock:
                now = self._clock()
                start = max(now, self._next)
                self._next = start + self._interval
            if start > now:
                self._sleep(start - now)
        done = threading.Event()

        def release() -> None:
            if not done.is_set():
                done.set()
                self._slots.release()

        return release

    @contextmanager
    def slot(self) -> Iterator[None]:
        release = self.acquire()
        try:
            yield
        finally:
            release()


@dataclass
class Download:
    """A resource streamed to a temporary file, with the digests computed on the way."""

    url: str
    path: Path
    size: int
    md5: str
    sha1: str
    sha256: str
    content_type: str | None
    filename: str | None  # from Content-Disposition, decoded

    def digest(self, algorithm: str) -> str | None:
        return {"md5": self.md5, "sha-1": self.sha1, "sha-256": self.sha256}.get(algorithm)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class _RetryableError(Exception):
    """Internal: a transient failure tenacity may retry; carries Retry-After seconds."""

    def __init__(self, error: FetchError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


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

    # -- configuration ---------------------------------------------------------------------
    def allow(self, url: str) -> None:
        if self.allowed_hosts is not None:
            self.allowed_hosts.add(host_key(url))

    def set_auth(self, url: str, username: str, password: str) -> None:
        self.auth[host_key(url)] = (username, password)

    def check_allowed(self, url: str, *, what: str = "URL") -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise OutsideSourceError(f"{what} is not http(s)", resource=url)
        if self.allowed_hosts is not None and host_key(url) not in self.allowed_hosts:
            raise OutsideSourceError(
                f"{what} is outside the source's hosts",
                resource=url,
                hint="allow-list the host in the pipeline (allowed_hosts) if it is trusted",
            )

    # -- internals -------------------------------------------------------------------------
    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(
                pool_connections=4, pool_maxsize=self.settings.pool_size, max_retries=0
            )
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = self.settings.user_agent
            session.verify = self.settings.verify
            session.trust_env = False
            self._local.session = session
        return session

    def _send_prepared(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        data: Any,
        auth: tuple[str, str] | None,
        stream: bool,
    ) -> requests.Response:
        """``Session.request`` without its per-call merging of settings that never change here
        (no proxies, no environment, no session params or auth): the request is prepared
        once, with the session's headers and cookies, and sent. Same wire result, about a
        fifth less CPU per request, which is what bounds a many-worker run on few cores."""
        session = self._session()
        merged = CaseInsensitiveDict(session.headers)
        for name, value in headers.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        prep = requests.PreparedRequest()
        prep.prepare(
            method=method.upper(),
            url=url,
            headers=merged,
            data=data or {},
            params={},
            auth=auth,
            cookies=session.cookies,
        )
        return session.send(
            prep,
            stream=stream,
            timeout=(self.settings.connect_timeout, self.settings.read_timeout),
            allow_redirects=False,
            proxies={},
            verify=session.verify,
            cert=None,
        )

    def _gate(self, url: str) -> HostGate:
        key = host_key(url)
        with self._gates_lock:
            gate = self._gates.get(key)
            if gate is None:
                conc, rate = self.host_limits.get(
                    key, (self.settings.per_host_concurrency, self.settings.per_host_rate)
                )
                gate = self._gates[key] = HostGate(conc, rate)
            return gate

    def _backoff(self, n: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter before try ``n + 1``; ``Retry-After`` wins if longer."""
        s = self.settings
        backoff = min(s.backoff_max, s.backoff_initial * (2 ** (n - 1)))
        backoff = backoff / 2 + (backoff / 2) * (os.urandom(1)[0] / 255)
        if retry_after is not None:
            backoff = max(backoff, min(retry_after, s.backoff_max))
        return float(backoff)

    def _retry(self, fn: Callable[[], T]) -> T:
        """Run ``fn``; while it raises ``_RetryableError``, try again (tenacity), within the
        attempt and time bounds. The first try runs outside tenacity: most calls succeed, and
        building a retry loop for each of them costs CPU the workers need."""
        started = time.monotonic()
        try:
            return fn()
        except _RetryableError as exc:
            if self.settings.attempts <= 1:
                raise exc.error from None
            self.sleep(self._backoff(1, exc.retry_after))

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            after = exc.retry_after if isinstance(exc, _RetryableError) else None
            return self._backoff(state.attempt_number + 1, after)

        left = self.settings.max_retry_seconds - (time.monotonic() - started)
        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, _RetryableError)),
            stop=stop_after_attempt(self.settings.attempts - 1) | stop_after_delay(max(0, left)),
            wait=wait,
            sleep=self.sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return fn()
        except _RetryableError as exc:
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
    ) -> requests.Response:
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
                release = self._gate(current).acquire()
                try:
                    with self._count_lock:
                        self.requests_sent += 1
                    resp = self._send_prepared(method, current, headers, data, auth, stream)
                except BaseException:
                    release()
                    raise
                if stream:
                    _release_on_close(resp, release)
                else:
                    release()
            except requests.exceptions.SSLError as exc:
                # a certificate that does not verify will not verify on the next try either
                raise FetchError(
                    f"{method} failed: TLS error ({_short(exc)})",
                    resource=current,
                    hint="--ca-bundle FILE for a private CA; --insecure only if you must",
                ) from None
            except requests.exceptions.ConnectionError as exc:
                sent = not isinstance(exc, requests.exceptions.ConnectTimeout) and (
                    "NewConnectionError" not in repr(exc)
                )
                err = FetchError(
                    f"{method} failed: connection error ({_short(exc)})",
                    resource=url,
                    transient=True,
                )
                if not sent or safe_to_retry_after_send:
                    raise _RetryableError(err) from None
                raise err from None
            except requests.exceptions.Timeout as exc:
                err = FetchError(
                    f"{method} timed out ({_short(exc)})", resource=url, transient=True
                )
                if safe_to_retry_after_send:
                    raise _RetryableError(err) from None
                raise err from None
            except requests.exceptions.RequestException as exc:
                raise FetchError(f"{method} failed: {_short(exc)}", resource=url) from None
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
                retry_after = _retry_after(resp.headers.get("Retry-After"))
                resp.close()
                raise _RetryableError(
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
    ) -> requests.Response:
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
    ) -> tuple[requests.Response, bytes]:
        """Send and read the whole (small) answer, whatever its status, bounded in size.

        An answer that breaks off mid-body is asked for again when the request is safe to
        repeat; otherwise it is reported as a transient ``FetchError`` for the caller to find
        out what happened.
        """
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")

        def attempt() -> tuple[requests.Response, bytes]:
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
                except requests.exceptions.RequestException as exc:
                    err = _truncated(url, exc)
                    err.status = resp.status_code
                    if idempotent:
                        raise _RetryableError(err) from None
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
        self, url: str, *, max_bytes: int | None = None, directory: str | None = None
    ) -> Download:
        """Stream ``url`` into a temporary file, hashing on the way; retried as a whole."""

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
                md5, sha1, sha256 = hashlib.md5(), hashlib.sha1(), hashlib.sha256()
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
                                sha1.update(chunk)
                                sha256.update(chunk)
                                out.write(chunk)
                        except requests.exceptions.RequestException as exc:
                            raise _RetryableError(_truncated(url, exc)) from None
                    if declared is not None and int(declared) != size:
                        raise _RetryableError(
                            FetchError(
                                f"truncated body: got {size} of {declared} bytes",
                                resource=url,
                                transient=True,
                            )
                        )
                except BaseException:
                    os.unlink(name)
                    raise
                return Download(
                    url=url,
                    path=Path(name),
                    size=size,
                    md5=md5.hexdigest(),
                    sha1=sha1.hexdigest(),
                    sha256=sha256.hexdigest(),
                    content_type=resp.headers.get("Content-Type"),
                    filename=filename_from_disposition(resp.headers.get("Content-Disposition")),
                )

        return self._retry(attempt)


def _release_on_close(resp: requests.Response, release: Callable[[], None]) -> None:
    close = resp.close

    def closing() -> None:
        try:
            close()
        finally:
            release()

    resp.close = closing  # type: ignore[method-assign]


def _raise_for_status(resp: requests.Response, url: str) -> None:
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


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


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
