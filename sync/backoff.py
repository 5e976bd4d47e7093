"""How long to wait before the next try, from tenacity's parts: exponential with jitter (half
fixed, half random, from ``backoff_initial``, at most ``backoff_max``), or the server's
``Retry-After`` when that is longer (capped by ``backoff_max`` as well).

A module of its own so that tenacity is imported only when a request is retried.
"""

from __future__ import annotations

from typing import Any

from tenacity import RetryCallState, wait_exponential, wait_random_exponential
from tenacity.wait import wait_base

from .retrying import RetryableError


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
