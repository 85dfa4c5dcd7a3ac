"""How much a bridge takes on at once, pure: its in-flight limit and each API key's rate.

- ``InFlight`` counts what this bridge process holds in flight (events and other requests handed to
  our components, from web-apps or from RabbitMQ, not yet answered) against ``bridge.max_in_flight``.
  A request that would go past it is answered at once, 503 ``overloaded`` with ``Retry-After``,
  instead of joining a queue whose wait nobody bounds; RabbitMQ ingest waits for room instead
  (``when_room``), leaving the messages in the broker.
- ``KeyRates``: a token bucket per API key that has a ``rate`` (``bridge.api_keys``), in events a
  second; past it, 429 ``rate_limited`` with ``Retry-After``, naming the key's name and its limit.
- ``Admission``: both, as the HTTP adapter asks them: once when a request's headers are in (``at_start``,
  which takes nothing, so that a refused body is never read), then once its body says how many
  events it holds (``admit``, which takes them). And the node leaving (``draining``: ``POST
  /admin/drain``, which ``gateway run`` sends on SIGTERM): from then on every request carrying events
  is refused, 503 ``draining`` (go to another node), before the rate and the room; what was admitted
  before goes on to its answer, and ``in_flight`` says when nothing is left.

The unit is the event: a request counts one per event it publishes (a batch of 100 counts 100), and
one when it publishes none (a ticket, a subscription). Both limits are per bridge process: each
container worker runs a bridge on the shared port (``components.nodeconfig.COMPONENT_CONTAINERS``:
two), most connections are served by the one beside the active dispatcher (``handoff``) and the others
when it is full, and sharing a count between them would cost a round trip per request. So a node holds
up to twice ``max_in_flight``, and a key whose connections are served by both bridges may reach twice its
rate; a key using one keep-alive connection gets its full rate from one bridge, never half of it.

``open_file_limit``: the descriptors a bridge process needs for ``bridge.max_connections`` connections.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from components.ratelimit import TokenBucket
from webapp_bridge.server import xmlrpc
from webapp_bridge.server.api import Answer, error

#: What a 503 ``overloaded`` asks: come back in a second. Requests in flight are answered within
#: about a second at the rates this machine reaches (bench/README.md, ``overload.py``).
OVERLOADED_RETRY_AFTER = 1
#: What a 503 ``draining`` asks: come back in a second, which a load balancer or the proxy sends to another
#: node (this one stops within ``bridge.drain_timeout``).
DRAINING_RETRY_AFTER = 1


@dataclass(frozen=True)
class KeyLimit:
    """One API key's rate limit: ``rate`` events a second, ``burst`` at once."""

    name: str
    rate: float
    burst: int


class InFlight:
    """What this bridge holds in flight, at most ``limit``."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"an in-flight limit must be at least 1, not {limit}")
        self.limit = limit
        self.count = 0
        self._waiting: list[Callable[[], None]] = []

    @property
    def room(self) -> int:
        return self.limit - self.count

    @property
    def full(self) -> bool:
        return self.count >= self.limit

    def take(self, n: int) -> bool:
        """Take ``n`` places if there is room for all of them; False (nothing taken) if not."""
        if n > self.room:
            return False
        self.count += n
        return True

    def release(self, n: int) -> None:
        """Give back ``n`` places; whoever waits for room (``when_room``) is told."""
        if n > self.count:
            raise ValueError(f"releasing {n} places of {self.count} taken")
        self.count -= n
        if self._waiting and self.room > 0:
            waiting, self._waiting = self._waiting, []
            for callback in waiting:
                callback()

    def when_room(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once there is room: now if there is, else on the release that makes it."""
        if self.room > 0:
            callback()
        else:
            self._waiting.append(callback)


class KeyRates:
    """A token bucket per rate-limited API key, on an injected clock (``time.monotonic``).

    A request may go when its key's bucket holds at least one token, and takes one per event. A
    batch may take more than there are (the bucket goes into debt): the rate holds over time, and
    a batch larger than the burst is slowed down, never refused for ever.
    """

    def __init__(self, limits: Iterable[KeyLimit], clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.limits = {limit.name: limit for limit in limits}
        now = clock()
        self._buckets = {limit.name: TokenBucket(limit.rate, float(limit.burst), float(limit.burst), now)
                         for limit in self.limits.values()}

    def wait(self, key: str) -> float:
        """Seconds until ``key`` may send again (0.0: now); takes nothing."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        available = bucket.level(self._clock())
        return 0.0 if available >= 1.0 else (1.0 - available) / bucket.rate

    def take(self, key: str, events: int) -> float:
        """Take ``events`` tokens of ``key``'s bucket (0.0), or the seconds until it may send (nothing taken)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        wait = bucket.take(self._clock())
        if wait == 0.0:
            bucket.tokens -= events - 1  # the rest of a batch: into debt, paid back at the rate
        return wait


class Admission:
    """The in-flight limit and the keys' rates, as the HTTP adapter asks them."""

    def __init__(self, in_flight: InFlight, rates: KeyRates) -> None:
        self.in_flight = in_flight
        self.rates = rates
        #: The node is leaving: no new event is admitted (``ingest`` requests), for good (the node stops).
        self.draining = False

    def at_start(self, key: str, ingest: bool = False) -> Answer | None:
        """The refusal of a request whose headers are in (its key known), or None to read its body. Takes nothing.
        ``ingest``: the request carries events (refused while draining; tickets and subscriptions are not)."""
        if ingest and self.draining:
            return draining()
        wait = self.rates.wait(key)
        if wait > 0:
            return self._rate_limited(key, wait)
        if self.in_flight.full:
            return overloaded(self.in_flight.limit)
        return None

    def admit(self, key: str, events: int, ingest: bool = False) -> Answer | None:
        """Take ``events`` places and tokens for a request (None), or its refusal (nothing taken).

        ``release(events)`` once it is answered. ``ingest``: as ``at_start``'s. A request whose headers came
        before the drain began is refused here, once its body is in: nothing is admitted after it began.
        """
        if ingest and self.draining:
            return draining()
        wait = self.rates.wait(key)
        if wait > 0:
            return self._rate_limited(key, wait)
        if not self.in_flight.take(events):
            return overloaded(self.in_flight.limit)
        self.rates.take(key, events)
        return None

    def release(self, events: int) -> None:
        self.in_flight.release(events)

    def _rate_limited(self, key: str, wait: float) -> Answer:
        limit = self.rates.limits[key]
        return rate_limited(limit, wait)


def overloaded(limit: int) -> Answer:
    """503: this bridge holds its limit; nothing of the request was accepted."""
    return error(503, "overloaded", f"the gateway is at its limit of {limit} events in flight (bridge.max_in_flight) "
                 f"and accepted nothing of this request: retry in {OVERLOADED_RETRY_AFTER} s",
                 headers=(("Retry-After", str(OVERLOADED_RETRY_AFTER)),))


def draining() -> Answer:
    """503: the node is leaving (stopped, or ``POST /admin/drain``); nothing of the request was accepted."""
    return error(503, "draining", "this gateway node is leaving (it is being stopped) and takes no new events; "
                 f"nothing of this request was accepted: send it to another node (retry in {DRAINING_RETRY_AFTER} s "
                 "through the load balancer)", headers=(("Retry-After", str(DRAINING_RETRY_AFTER)),))


def drain_report(process: str, in_flight: int, amqp: str) -> dict[str, Any]:
    """What one bridge answers ``gateway.internal.drain.<session>``: its process, the events (and other
    requests) it still holds in flight, and its RabbitMQ consumer's state (``draining`` while the batch it
    holds is handed over and acked, ``drained`` once its consumer is cancelled; ``off``: none)."""
    return {"process": process, "in_flight": in_flight, "amqp": amqp}


def drain_answer(reports: Sequence[Mapping[str, Any]], failures: Sequence[Mapping[str, str]]) -> Answer:
    """``POST /admin/drain``'s answer: every bridge of the node drains from now on; ``in_flight``: what they
    still hold in all, ``done`` once none holds anything (nor a RabbitMQ batch: ``amqp`` not ``draining``) and
    every bridge answered. Idempotent: asked again, the node says how far it got."""
    bridges = sorted((dict(r) for r in reports), key=lambda r: str(r.get("process")))
    in_flight = sum(int(r.get("in_flight", 0)) for r in bridges)
    done = not failures and all(r.get("in_flight") == 0 and r.get("amqp") != "draining" for r in bridges)
    body: dict[str, Any] = {"status": "drained" if done else "draining", "in_flight": in_flight, "bridges": bridges}
    if failures:
        body["failures"] = [dict(f) for f in failures]
    return Answer(200, body)


def rate_limited(limit: KeyLimit, wait: float) -> Answer:
    """429: the key's bucket is empty; ``Retry-After`` is the seconds until it holds a token, rounded up."""
    seconds = retry_after(wait)
    answer = error(429, "rate_limited", f"the API key {limit.name!r} may publish {limit.rate:g} events a second, "
                   f"{limit.burst} at once, and has used that up; nothing of this request was accepted: retry in "
                   f"{seconds} s", headers=(("Retry-After", str(seconds)),))
    return replace(answer, body={**answer.body, "key": limit.name, "rate": limit.rate, "burst": limit.burst,
                                 "retry_after": seconds})


def retry_after(wait: float) -> int:
    """A wait in whole seconds for ``Retry-After``: rounded up, at least 1."""
    return max(1, math.ceil(wait - 1e-9))


def as_fault(answer: Answer) -> Answer:
    """A refusal as ``POST /RPC2`` gives it: a fault whose code is the status, on an HTTP 200 that keeps
    the ``Retry-After`` header (which a client may read; the fault string says it too). The metrics count
    it as one refusal of its code, as the same refusal of ``POST /events``."""
    return replace(xmlrpc.respond(xmlrpc.fault_of(answer)), headers=answer.headers,
                   refusals=(str(answer.body.get("error", answer.status)),))


#: Descriptors a bridge process needs besides its HTTP connections: its listening socket, the router, the
#: store, logs, the hand-off and Python's own.
FILES_BESIDES_CONNECTIONS = 256


def open_file_limit(soft: int, hard: int, max_connections: int) -> tuple[int, str | None]:
    """The soft open-file limit (RLIMIT_NOFILE) a bridge process should run with, and a warning if even the hard
    limit leaves too few for ``max_connections``. Past the limit, connections are refused at accept (they wait in
    the kernel's queue, retried) and one passed on by another bridge is lost (``handoff``). Raised, never
    lowered; a hard limit of -1 is unlimited."""
    needed = max_connections + FILES_BESIDES_CONNECTIONS
    if soft == -1 or soft >= needed:
        return soft, None
    raised = needed if hard == -1 else min(hard, needed)
    if raised >= needed:
        return raised, None
    return max(soft, raised), (
        f"the open-file limit ({raised}) is below bridge.max_connections ({max_connections}) plus "
        f"{FILES_BESIDES_CONNECTIONS} for the rest: past it, connections wait and one passed on by the other "
        f"bridge is lost; raise it (LimitNOFILE, ulimit -n) or lower max_connections")
