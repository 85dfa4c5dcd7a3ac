"""What the bridge reads for ``gateway.status`` besides the metrics: the live queries and their subscribers.

The router knows how many sessions subscribe to each query topic; the store knows each topic's query
(``Store.query_text``). Counting costs one meta call per query topic, so it is done at most every
``REFRESH`` seconds (callers meanwhile get the last count, and callers during a count share it), for at
most ``MOST`` topics (the answer says how many there were and how many were counted). A subscription's
URI and a topic's query never change, so each is asked once and remembered while the topic lives.

Nothing here runs unless an operator has the status page open: no cost for the gateway otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from autobahn.wamp.exception import ApplicationError
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred

from components import uris
from components.metrics.status import LiveQuery

#: Seconds a count of the live queries is reused: the page polls every second; subscribers change slower
#: than that matters, and each count is one router call per query topic.
REFRESH = 5.0
#: Query topics counted at most per refresh: bounds the router calls one refresh makes.
MOST = 500

#: ``call(procedure, *args)``: a WAMP call of the router's meta API (the bridge's session).
Call = Callable[..., Awaitable[Any]]
#: The canonical query text of each query key (None: unknown to the store).
Texts = Callable[[Sequence[str]], Awaitable[dict[str, str | None]]]


@dataclass(frozen=True)
class Counted:
    queries: tuple[LiveQuery, ...]
    #: Query topics the router holds, and how many of them were counted.
    live: int
    counted: int


class LiveQueryCounts:
    """The live query topics with their subscriber counts and queries, at most ``refresh`` seconds old."""

    def __init__(self, call: Call, texts: Texts, clock: Callable[[], float] = time.monotonic,
                 refresh: float = REFRESH, most: int = MOST) -> None:
        self._call = call
        self._texts_of = texts
        self._clock = clock
        self._refresh = refresh
        self._most = most
        self._uris: dict[int, str] = {}
        self._texts: dict[str, str | None] = {}
        self._last: tuple[float, Counted] | None = None
        self._counting: list[Deferred[Counted]] | None = None

    async def counted(self) -> Counted:
        if self._last is not None and self._clock() - self._last[0] < self._refresh:
            return self._last[1]
        if self._counting is not None:  # a count under way: its answer is this caller's too
            waiter: Deferred[Counted] = Deferred()
            self._counting.append(waiter)
            return await waiter
        self._counting = []
        try:
            result = await self._count()
        except Exception as exc:
            waiting, self._counting = self._counting, None
            for w in waiting:
                w.errback(exc)
            raise
        waiting, self._counting = self._counting, None
        self._last = (self._clock(), result)
        for w in waiting:
            w.callback(result)
        return result

    async def _count(self) -> Counted:
        listing = await self._call(uris.META_SUBSCRIPTION_LIST)
        ids = [int(i) for i in listing.get("exact", [])] if isinstance(listing, dict) else []
        known = {i: self._uris[i] for i in ids if i in self._uris}
        new = [i for i in ids if i not in known]
        for i, info in zip(new, await _all([self._call(uris.META_SUBSCRIPTION_GET, i) for i in new])):
            if isinstance(info, dict) and isinstance(info.get("uri"), str):
                known[i] = info["uri"]  # None: gone meanwhile
        self._uris = known
        topics = sorted((uri, i) for i, uri in known.items() if uri.startswith(uris.QUERY_TOPIC_PREFIX))
        counting = topics[:self._most]
        counts = await _all([self._call(uris.META_SUBSCRIPTION_COUNT_SUBSCRIBERS, i) for _, i in counting])
        keys = [uri[len(uris.QUERY_TOPIC_PREFIX):] for uri, _ in counting]
        missing = [k for k in keys if k not in self._texts]
        if missing:
            self._texts.update(await self._texts_of(missing))
        self._texts = {k: self._texts.get(k) for k in keys}  # only the live ones are remembered
        queries = tuple(LiveQuery(uri, self._texts.get(key), int(n))
                        for (uri, _), key, n in zip(counting, keys, counts) if isinstance(n, int) and n > 0)
        return Counted(queries, len(topics), len(counting))


async def _all(calls: list[Awaitable[Any]]) -> list[Any]:
    """Every call's result, at once; None for one that failed with an ApplicationError (a subscription
    gone between the list and the look-up)."""
    if not calls:
        return []
    answers = await DeferredList([ensureDeferred(_settled(c)) for c in calls])
    return [result for _, result in answers]


async def _settled(call: Awaitable[Any]) -> Any:
    try:
        return await call
    except ApplicationError:
        return None
