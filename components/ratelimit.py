"""How often a client session may call: a token bucket per session.

Pure: the clock is injected. Each session's bucket holds at most ``burst`` calls and refills at
``rate`` calls a second; a call takes one, and when none is left the answer is how long until
one is. A bucket is made full on a session's first call, so a bucket that is full again is the
same as none: such buckets are forgotten now and then, and the table stays as small as the
number of sessions calling hard right now (``forget`` drops a session that left at once).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

#: Sweep full buckets once the table has this many entries (then twice what is left, at least this).
SWEEP_AT = 1024
_EPSILON = 1e-9


@dataclass
class TokenBucket:
    """``tokens`` calls available at ``stamp``; refills at ``rate`` a second up to ``burst``."""

    rate: float
    burst: float
    tokens: float
    stamp: float

    def level(self, now: float) -> float:
        """The calls available at ``now``."""
        return min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)

    def take(self, now: float) -> float:
        """Take one call: 0.0 if there was one, else the seconds until there is (nothing is taken then)."""
        available = self.level(now)
        self.stamp = max(now, self.stamp)
        if available >= 1.0 - _EPSILON:  # a call due now is not refused for a rounding error
            self.tokens = max(0.0, available - 1.0)
            return 0.0
        self.tokens = available
        return (1.0 - available) / self.rate


class CallBuckets:
    """One token bucket per key (a WAMP session id), made full on first use."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a call rate must be above 0 and a burst at least 1, not {rate} and {burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[Hashable, TokenBucket] = {}
        self._sweep_at = SWEEP_AT

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: Hashable) -> float:
        """0.0: the call may go ahead; else it may not, and this is how many seconds until one may."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._sweep_at:
                self._sweep(now)
            bucket = self._buckets[key] = TokenBucket(self.rate, float(self.burst), float(self.burst), now)
        return bucket.take(now)

    def forget(self, key: Hashable) -> None:
        """The session left: its bucket goes."""
        self._buckets.pop(key, None)

    def _sweep(self, now: float) -> None:
        """Forget the buckets that are full again (no different from a new one)."""
        full = [key for key, bucket in self._buckets.items() if bucket.level(now) >= bucket.burst]
        for key in full:
            del self._buckets[key]
        self._sweep_at = max(SWEEP_AT, 2 * len(self._buckets))
