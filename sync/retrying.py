"""Which HTTP failures are transient and what they say about the server's load: from status
codes and the transport's error types, not from error text.

- A request that never reached the server (connection refused, unknown host, connect timeout:
  ``sync.transport.ConnectError``, whose ``sent`` is False) is safe to send again even when it
  is a POST.
- The wait before the next try is ``sync.backoff``'s (loaded on the first retry only).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from .errors import FetchError
from .pacing import Signal
from .transport import ConnectError, ReadTimeoutError, TlsError

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
# A POST is not idempotent: only retried when the server said it did not act on it.
POST_RETRY_STATUS = frozenset({429, 503})
OVERLOAD_STATUS = frozenset({429, 503})


class RetryableError(Exception):
    """A transient failure tenacity may retry; carries the server's Retry-After seconds."""

    def __init__(self, error: FetchError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def exception_signal(exc: BaseException) -> Signal:
    """Timeouts and refused connections say the host may be overloaded. A connection reset is
    not counted: a kept-alive connection the server closed while idle is common and benign."""
    if isinstance(exc, TlsError):
        return Signal.NEUTRAL
    if isinstance(exc, ReadTimeoutError | ConnectError):
        return Signal.OVERLOAD
    return Signal.NEUTRAL


def load_signal(status: int, headers: Mapping[str, str]) -> Signal:
    """429 / 503, or any answer asking to come back later, means: fewer at once."""
    if status in OVERLOAD_STATUS or "Retry-After" in headers:
        return Signal.OVERLOAD
    return Signal.OK


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or an HTTP date); None if absent."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
