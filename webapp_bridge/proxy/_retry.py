"""Retrying a request while the gateway is away: exponential backoff with full jitter.

Each attempt of one call sends the same idempotency id(s), so a retry after
a timeout (the gateway may have accepted the first) is never a second event.
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
    failure (a timeout, a connection lost after sending).
    """

    def __init__(self, reason: str, maybe_accepted: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.maybe_accepted = maybe_accepted


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
            wait = backoff.delay(retry)
            log.warning("%s: attempt %d of %d failed (%s); retrying in %.2f s", what, retry + 1,
                        backoff.retries + 1, exc.reason, wait)
            sleep(wait)
    raise AssertionError("unreachable: the last attempt returns or raises")
