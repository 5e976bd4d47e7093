"""Which HTTP failures are transient, what they say about the server's load, and how long to
wait before the next try: built from tenacity's and urllib3's own parts, not from error text.

- A request that never reached the server (connection refused: urllib3's
  ``NewConnectionError``; a connect timeout) is safe to send again even when it is a POST.
- The wait before try ``n + 1`` is exponential with jitter (half fixed, half random, from
  ``backoff_initial``, at most ``backoff_max``); a ``Retry-After`` the server sent wins when it
  is longer (capped by ``backoff_max`` as well).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from tenacity import RetryCallState, wait_exponential, wait_random_exponential
from tenacity.wait import wait_base
from urllib3.exceptions import NewConnectionError

from .errors import FetchError
from .pacing import Signal

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


def never_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the request certainly did not reach the server (so it did not act on it).

    requests wraps urllib3's ``MaxRetryError`` whose ``reason`` tells connect failures
    (``NewConnectionError``: refused, unresolvable) from failures after sending."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    cause = exc.args[0] if exc.args else None
    reason = getattr(cause, "reason", cause)
    return isinstance(reason, NewConnectionError)


def exception_signal(exc: BaseException) -> Signal:
    """Timeouts and refused connections say the host may be overloaded. A connection reset is
    not counted: a kept-alive connection the server closed while idle is common and benign."""
    if isinstance(exc, requests.exceptions.SSLError):
        return Signal.NEUTRAL
    if isinstance(exc, requests.exceptions.Timeout):
        return Signal.OVERLOAD
    if isinstance(exc, requests.exceptions.ConnectionError) and never_sent(exc):
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


class wait_retry_after(wait_base):  # noqa: N801 - named like tenacity's own strategies
    """The ``Retry-After`` of the failed try, at most ``cap`` seconds; 0 when it had none."""

    def __init__(self, cap: float) -> None:
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        after = exc.retry_after if isinstance(exc, RetryableError) else None
        return 0.0 if after is None else min(after, self.cap)


class wait_longest(wait_base):  # noqa: N801 - named like tenacity's own strategies
    """The longest of several waits (tenacity's ``+`` adds them up instead)."""

    def __init__(self, *strategies: Any) -> None:
        self.strategies = strategies

    def __call__(self, retry_state: RetryCallState) -> float:
        return max(float(w(retry_state)) for w in self.strategies)


def backoff_wait(initial: float, maximum: float) -> wait_base:
    """Exponential backoff with jitter (b/2 + uniform(0, b/2), b = initial x 2^(n-1), at most
    ``maximum``), or the server's ``Retry-After`` when that is longer."""
    half, half_max = initial / 2, maximum / 2
    jittered = wait_exponential(multiplier=half, max=half_max) + wait_random_exponential(
        multiplier=half, max=half_max
    )
    return wait_longest(jittered, wait_retry_after(maximum))
