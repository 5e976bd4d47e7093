"""Adaptive per-host concurrency (sync.pacing), driven by a simulated host and a fake clock."""

from __future__ import annotations

import pytest

from sync.pacing import AdaptiveLimit, PacingPolicy, Signal


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def simulate(
    limit: AdaptiveLimit, capacity: int, rounds: int, clock: Clock, rtt: float = 0.1
) -> tuple[int, int]:
    """A host that refuses (503) every request above ``capacity`` in flight: each round sends
    ``limit.allowed`` requests at once. Returns (served, refused)."""
    served = refused = 0
    for _ in range(rounds):
        n = limit.allowed
        epoch = limit.epoch
        clock.now += rtt
        for i in range(n):
            if i < capacity:
                served += 1
                limit.record(Signal.OK, rtt, epoch)
            else:
                refused += 1
                limit.record(Signal.OVERLOAD, None, epoch)
    return served, refused


def test_slow_start_grows_to_the_cap_on_a_fast_flat_host() -> None:
    clock = Clock()
    limit = AdaptiveLimit(PacingPolicy(initial=2, cap=16), clock=clock)
    _served, refused = simulate(limit, capacity=100, rounds=6, clock=clock)
    assert limit.allowed == 16
    assert refused == 0
    simulate(limit, capacity=100, rounds=50, clock=clock)
    assert limit.allowed == 16, "never above the cap"


def test_overload_halves_at_most_once_per_window() -> None:
    clock = Clock()
    limit = AdaptiveLimit(PacingPolicy(initial=10, cap=10, decrease=0.5), clock=clock)
    epoch = limit.epoch
    for _ in range(10):  # ten requests started together all answer 503
        limit.record(Signal.OVERLOAD, None, epoch)
    assert limit.allowed == 5, "one decrease for one window, not ten"
    limit.record(Signal.OVERLOAD, None, limit.epoch)  # a request started after it: again
    assert limit.allowed == 2
    for _ in range(5):
        limit.record(Signal.OVERLOAD, None, limit.epoch)
    assert limit.allowed == 1, "never below one"


def test_additive_increase_after_the_first_overload() -> None:
    clock = Clock()
    limit = AdaptiveLimit(PacingPolicy(initial=8, cap=32, decrease=0.5), clock=clock)
    limit.record(Signal.OVERLOAD, None, limit.epoch)
    assert limit.allowed == 4
    limit.ceiling = None  # look at plain additive increase, not the probe near the ceiling
    for _ in range(4):  # one window of successes: +1
        limit.record(Signal.OK, None, limit.epoch)
    assert limit.allowed == 5
    for _ in range(4):
        limit.record(Signal.OK, None, limit.epoch)
    assert limit.allowed == 5, "less than a window of 5 more: still 5"


def test_capacity_limited_host_sees_few_refusals_and_stays_busy() -> None:
    """K=4 at 100 ms: at most 2% refused, at least 0.8 x K requests per round trip served."""
    clock = Clock()
    limit = AdaptiveLimit(PacingPolicy(initial=2, cap=16), clock=clock)
    simulate(limit, capacity=4, rounds=20, clock=clock)  # learn the host
    rounds = 1000
    served, refused = simulate(limit, capacity=4, rounds=rounds, clock=clock)
    assert refused / (served + refused) < 0.02, (served, refused)
    assert served / rounds >= 0.8 * 4, served / rounds


def test_rising_latency_shrinks_the_limit() -> None:
    clock = Clock()
    limit = AdaptiveLimit(PacingPolicy(initial=8, cap=8), clock=clock)
    for _ in range(20):
        clock.now += 0.1
        limit.record(Signal.OK, 0.020, limit.epoch)
    assert limit.allowed == 8
    for _ in range(20):  # the host starts queueing: 20 ms -> 200 ms
        clock.now += 0.1
        limit.record(Signal.OK, 0.200, limit.epoch)
    assert limit.allowed < 8
    assert limit.decreases >= 1


def test_latency_jitter_below_the_slack_is_not_overload() -> None:
    clock = Clock()
    limit = AdaptiveLimit(PacingPolicy(initial=4, cap=4), clock=clock)
    for i in range(200):
        clock.now += 0.01
        limit.record(Signal.OK, 0.001 + (i % 3) * 0.002, limit.epoch)  # 1-5 ms on loopback
    assert limit.decreases == 0
    assert limit.allowed == 4


def test_the_host_may_take_more_later() -> None:
    """After pushing back at 4, a host that now takes 12 is found again (slowly, then fast)."""
    clock = Clock()
    limit = AdaptiveLimit(PacingPolicy(initial=2, cap=16), clock=clock)
    simulate(limit, capacity=4, rounds=50, clock=clock)
    assert limit.allowed <= 5
    simulate(limit, capacity=12, rounds=2000, clock=clock)
    assert limit.allowed >= 10


def test_neutral_signals_change_nothing() -> None:
    limit = AdaptiveLimit(PacingPolicy(initial=3, cap=8), clock=Clock())
    limit.record(Signal.NEUTRAL, None, 0)
    assert limit.allowed == 3 and limit.decreases == 0


@pytest.mark.parametrize("kw", [{"cap": 0}, {"decrease": 1.0}, {"decrease": 0.0}])
def test_bad_policy_is_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PacingPolicy(**kw)  # type: ignore[arg-type]


def test_what_counts_as_overload() -> None:
    from sync.retrying import exception_signal, load_signal
    from sync.transport import ConnectError, DisconnectedError, ReadTimeoutError, TlsError

    assert load_signal(503, {}) is Signal.OVERLOAD
    assert load_signal(429, {}) is Signal.OVERLOAD
    assert load_signal(200, {"Retry-After": "5"}) is Signal.OVERLOAD
    assert load_signal(200, {}) is Signal.OK
    assert load_signal(404, {}) is Signal.OK
    assert exception_signal(ReadTimeoutError("slow")) is Signal.OVERLOAD
    assert exception_signal(ConnectError("refused")) is Signal.OVERLOAD
    assert exception_signal(ConnectError("connect timed out", timeout=True)) is Signal.OVERLOAD
    assert exception_signal(DisconnectedError("reset")) is Signal.NEUTRAL
    assert exception_signal(TlsError("bad certificate")) is Signal.NEUTRAL
