"""The per-session token buckets (components.ratelimit), on an injected clock."""

from __future__ import annotations

import pytest

from components import ratelimit
from components.ratelimit import CallBuckets, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate() -> None:
    clock = Clock()
    buckets = CallBuckets(rate=10, burst=5, clock=clock)
    assert [buckets.take(1) for _ in range(5)] == [0.0] * 5, "a full bucket: the burst at once"
    assert buckets.take(1) == pytest.approx(0.1), "empty: one call comes back in 1/rate s"
    clock.now += 0.05
    assert buckets.take(1) == pytest.approx(0.05), "half way: a refused call takes nothing"
    clock.now += 0.05
    assert buckets.take(1) == 0.0
    assert buckets.take(1) == pytest.approx(0.1)
    clock.now += 10
    assert [buckets.take(1) for _ in range(6)][-1] > 0, "refilled to the burst, never past it"


def test_sessions_have_buckets_of_their_own() -> None:
    clock = Clock()
    buckets = CallBuckets(rate=1, burst=2, clock=clock)
    assert buckets.take("a") == buckets.take("a") == 0.0 and buckets.take("a") > 0
    assert buckets.take("b") == 0.0, "another session is not affected"
    buckets.forget("a")
    assert buckets.take("a") == 0.0, "a session that left starts afresh (its id is never reused anyway)"


def test_a_clock_going_back_never_adds_calls() -> None:
    bucket = TokenBucket(rate=1, burst=1, tokens=0, stamp=10)
    assert bucket.take(5) == pytest.approx(1.0)
    assert bucket.level(10) == 0


def test_full_buckets_are_forgotten_so_the_table_stays_small(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "SWEEP_AT", 8)
    clock = Clock()
    buckets = CallBuckets(rate=100, burst=3, clock=clock)
    for session in range(8):
        buckets.take(session)
    clock.now += 1  # all full again
    busy = 100
    for _ in range(3):
        buckets.take(busy)
    assert len(buckets) <= 2, "the idle ones went, the busy one stayed"
    for session in range(1000):
        buckets.take(1000 + session)
        clock.now += 1
    assert len(buckets) <= 16


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        CallBuckets(rate=0, burst=1)
    with pytest.raises(ValueError):
        CallBuckets(rate=1, burst=0)
