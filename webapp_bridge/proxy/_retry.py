"""Retrying a request while the gateway is away: exponential backoff with full jitter.

Each attempt of one call sends the same idempotency id(s), so a retry after
a timeout (the gateway may have accepted the first) is never a second event.

When the gateway says how long to wait (``Retry-After`` on a 503 ``overloaded``
or a 429 ``rate_limited``), the proxy waits that long (and up to half as long
again, so that the clients it refused together do not all come back in the
same instant), never more than ``proxy.max_backoff``: a gateway asking for a
longer wait than that ends the retries at once, saying so.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from webapp_bridge.proxy._errors import GatewayUnavailable

log = logging.getLogger("webapp_bridge.proxy")
T = TypeVar("T")


class Transient(Exception):
    """One attempt failed in a way another attempt may not: the gateway or broker away, a timeout, a 503.

    ``maybe_accepted``: the request may have reached the gateway before the
    failure (a timeout, a connection lost after sending). ``retry_after``: the
    seconds the gateway asked to wait before the next attempt, if it said.
    """

    def __init__(self, reason: str, maybe_accepted: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.maybe_accepted = maybe_accepted
        self.retry_after = retry_after


@dataclass(frozen=True)
class Backoff:
    """proxy.retries, proxy.backoff and proxy.max_backoff."""

    retries: int
    first: float
    longest: float

    def ceiling(self, retry: int) -> float:
        """The most to wait before retry number ``retry`` (0 for the first): first * 2**retry, capped."""
        return min(self.longest, self.first * 2.0 ** min(retry, 64))

    def delay(self, retry: int, rng: Callable[[], float] = random.random) -> float:
        """A wait drawn evenly from [0, ceiling) ("full jitter": many web-app processes do not retry in step)."""
        return self.ceiling(retry) * rng()

    def honouring(self, retry_after: float, rng: Callable[[], float] = random.random) -> float | None:
        """The wait for a gateway that asked for ``retry_after`` seconds: drawn from [retry_after,
        1.5 × retry_after), at most ``longest``; None when it asked for more than ``longest``."""
        if retry_after > self.longest:
            return None
        return min(self.longest, retry_after * (1.0 + 0.5 * rng()))


def with_retries(attempt: Callable[[], T], backoff: Backoff, what: str, ids: list[str] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """``attempt()`` until it returns, retrying Transient failures up to ``backoff.retries`` times.

    Anything else ``attempt`` raises (a refusal, a config error) goes to the
    caller at once. After the last failure: GatewayUnavailable.
    """
    maybe_accepted = False
    for retry in range(backoff.retries + 1):
        try:
            return attempt()
        except Transient as exc:
            maybe_accepted = maybe_accepted or exc.maybe_accepted
            if retry == backoff.retries:
                raise GatewayUnavailable(what, retry + 1, exc.reason, maybe_accepted, ids) from None
            wait = backoff.delay(retry) if exc.retry_after is None else backoff.honouring(exc.retry_after)
            if wait is None:
                raise GatewayUnavailable(what, retry + 1, f"{exc.reason} (it asks to retry in {exc.retry_after:g} s, "
                                         f"longer than proxy.max_backoff: {backoff.longest:g} s)", maybe_accepted,
                                         ids) from None
            log.warning("%s: attempt %d of %d failed (%s); retrying in %.2f s", what, retry + 1,
                        backoff.retries + 1, exc.reason, wait)
            sleep(wait)
    raise AssertionError("unreachable: the last attempt returns or raises")
