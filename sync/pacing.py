"""Adaptive per-host concurrency: how many requests one host gets at once, learnt from its answers.

Why: a fixed request rate is either too slow for a fast server (20 requests/s made a run on a
fast network slower than one request at a time) or too fast for a small one. Like TCP's
congestion control, the limit grows while the host answers promptly and shrinks as soon as it
says it is overloaded:

- **slow start**: +1 per success until the first sign of overload (doubles per round trip);
- **additive increase**: then +1 per window of ``limit`` successes while latency stays flat;
- **multiplicative decrease**: x ``decrease`` on 429 / 503 / ``Retry-After`` / timeouts, or
  when latency rises above ``latency_tolerance`` x the lowest seen; at most once per window
  (the requests already in flight when it shrank do not shrink it again);
- near the limit where the host last pushed back (its *ceiling*) the probe above it is slow
  (one step per ``probe_windows`` windows), so a server with a hard capacity sees few refusals.

Never below 1 nor above ``cap`` (the worker count or a configured cap). Pure: no threads, no
I/O; the clock is only used to age the latency baseline, and is injected.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class Signal(StrEnum):
    """What one answer says about the host's load."""

    OK = "ok"  # answered, not refused
    OVERLOAD = "overload"  # 429, 503, a Retry-After, a timeout or a refused connection
    NEUTRAL = "neutral"  # says nothing about load (e.g. a request that never reached it)


@dataclass
class PacingPolicy:
    """Tuning of ``AdaptiveLimit``; the defaults suit both a fast LAN and a small server."""

    initial: int = 2
    cap: int = 16
    decrease: float = 0.7  # multiplicative decrease factor
    latency_tolerance: float = 3.0  # latency above this x the baseline counts as overload
    latency_slack: float = 0.025  # seconds: jitter below this is never "rising latency"
    latency_alpha: float = 0.1  # weight of a new sample in the smoothed latency
    min_samples: int = 8  # latency samples before latency may shrink the limit
    probe_windows: int = 50  # windows of successes per step above the last ceiling
    baseline_age: float = 60.0  # seconds after which the lowest latency is forgotten

    def __post_init__(self) -> None:
        if self.cap < 1:
            raise ValueError("cap must be at least 1")
        if not 0 < self.decrease < 1:
            raise ValueError("decrease must be between 0 and 1")


@dataclass
class AdaptiveLimit:
    """The current concurrency limit of one host and the evidence it rests on."""

    policy: PacingPolicy = field(default_factory=PacingPolicy)
    clock: Callable[[], float] = time.monotonic
    limit: float = field(init=False)
    ceiling: float | None = field(init=False, default=None)
    slow_start: bool = field(init=False, default=True)
    epoch: int = field(init=False, default=0)  # bumped on every decrease
    smoothed: float | None = field(init=False, default=None)
    baseline: float | None = field(init=False, default=None)
    samples: int = field(init=False, default=0)
    decreases: int = field(init=False, default=0)
    _baseline_at: float = field(init=False, default=0.0)
    _credit: int = field(init=False, default=0)  # successes towards the next step up

    def __post_init__(self) -> None:
        self.limit = float(max(1, min(self.policy.initial, self.policy.cap)))

    @property
    def allowed(self) -> int:
        """Requests that may be in flight now."""
        return max(1, min(self.policy.cap, int(self.limit)))

    def record(self, signal: Signal, latency: float | None = None, started_epoch: int = 0) -> None:
        """Take one answer into account. ``started_epoch`` is ``epoch`` when the request
        started: an overload from before the last decrease is already accounted for."""
        if signal is Signal.NEUTRAL:
            return
        if signal is Signal.OVERLOAD:
            self._decrease(started_epoch)
            return
        if latency is not None and self._latency_rises(latency):
            self._decrease(started_epoch)
            return
        self._increase()

    # -- internals -----------------------------------------------------------------------------
    def _increase(self) -> None:
        p = self.policy
        if self.slow_start:
            needed = 1
        elif self.ceiling is not None and self.limit + 1 >= self.ceiling:
            needed = int(self.limit) * p.probe_windows
        else:
            needed = int(self.limit)
        self._credit += 1
        if self._credit < needed:
            return
        self._credit = 0
        self.limit = min(float(p.cap), self.limit + 1)
        if self.ceiling is not None and self.limit >= self.ceiling + 1:
            self.ceiling = None  # the host now takes more than where it last pushed back

    def _decrease(self, started_epoch: int) -> None:
        if started_epoch < self.epoch:
            return  # in flight before the last decrease: that one covered it
        self.ceiling = max(1.0, float(int(self.limit)))
        self.limit = max(1.0, float(int(self.limit * self.policy.decrease)))
        self.slow_start = False
        self._credit = 0
        self.epoch += 1
        self.decreases += 1

    def _latency_rises(self, latency: float) -> bool:
        p = self.policy
        now = self.clock()
        if (
            self.baseline is None
            or latency <= self.baseline
            or now - self._baseline_at > (p.baseline_age)
        ):
            self.baseline, self._baseline_at = latency, now
        self.samples += 1
        if self.smoothed is None:
            self.smoothed = latency
        else:
            self.smoothed += p.latency_alpha * (latency - self.smoothed)
        if self.samples < p.min_samples:
            return False
        rising = self.smoothed > self.baseline * p.latency_tolerance + p.latency_slack
        if rising:
            # start afresh after shrinking, so one slow spell causes one decrease
            self.smoothed = self.baseline
        return rising
