"""What the bridge reads for ``gateway.status`` besides the metrics: the live queries and their subscribers;
``Shared``, one answer for the callers of a moment; ``Remembered``, the procedure's decisions per session.

The router knows how many sessions subscribe to each topic (``wamp.subscription.count_subscribers``, one
meta call per subscription id) and which URI an id stands for (``wamp.subscription.get``, one call per
id); the store knows each query topic's query (``Store.query_text``). Crossbar's meta API has no call
answering many subscriptions at once, nor one sorting them by subscribers, so the busiest query topics
are found with bounded work, at most every ``REFRESH`` seconds (callers meanwhile get the last count,
and callers during a count share it):

- ``wamp.subscription.list``: the ids of every subscription (one call);
- **counting first**: ``count_subscribers`` for at most ``MOST`` ids per refresh: the query topics listed
  at the last refresh (``busiest``, so that their counts stay fresh), then the ids counted longest ago
  (never counted first). With more ids than that, every id is counted in turn, once every
  ``ceil(ids / (MOST - busiest))`` refreshes: a topic that became busy is listed within that many
  refreshes, and the counts of the others may be that old (10,000 query topics: 21 refreshes, 105 s).
  Ids known to be other topics (event classes, meta events) are not counted;
- **then looking up**: ``wamp.subscription.get`` only for the ids with the most subscribers, the busiest
  first, until ``busiest`` query topics are found, at most ``LOOKUPS`` ids per refresh. An id's URI
  never changes: each is looked up once and remembered while the id lives;
- the store, for the text of the query topics listed (each once, while the topic lives).

At most ``CONCURRENT`` meta calls are outstanding at once. The answer says how many topics the router
holds that may be query topics (``live``) and for how many of them subscribers were counted in this
refresh (``counted``).

Nothing here runs unless an operator has the status page open: no cost for the gateway otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from autobahn.wamp.exception import ApplicationError
from twisted.internet.defer import Deferred, DeferredList, DeferredSemaphore, ensureDeferred

from components import uris
from components.exceptions import StoreUnavailable
from components.metrics.status import BUSIEST, LiveQuery

#: Seconds a count of the live queries is reused: the page polls every second; subscribers change slower
#: than that matters, and each count is many router calls.
REFRESH = 5.0
#: Subscription ids whose subscribers are counted at most per refresh (the others in later refreshes).
MOST = 500
#: Subscription ids looked up (``wamp.subscription.get``) at most per refresh.
LOOKUPS = 100
#: Meta calls outstanding at once, at most.
CONCURRENT = 8

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

#: ``call(procedure, *args)``: a WAMP call of the router's meta API (the bridge's session).
Call = Callable[..., Awaitable[Any]]
#: The canonical query text of each query key (None: unknown to the store).
Texts = Callable[[Sequence[str]], Awaitable[dict[str, str | None]]]


class Shared(Generic[T]):
    """One answer of ``make`` for every caller of a moment: callers while it is made wait for it, and
    callers within ``ttl`` seconds of it get it again. A failure is every waiting caller's, and not kept."""

    def __init__(self, make: Callable[[], Awaitable[T]], ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._make = make
        self._ttl = ttl
        self._clock = clock
        self._last: tuple[float, T] | None = None
        self._making: list[Deferred[T]] | None = None

    async def get(self) -> T:
        if self._last is not None and self._clock() - self._last[0] < self._ttl:
            return self._last[1]
        if self._making is not None:  # under way: its answer is this caller's too
            waiter: Deferred[T] = Deferred()
            self._making.append(waiter)
            return await waiter
        self._making = []
        try:
            result = await self._make()
        except Exception as exc:
            waiting, self._making = self._making, None
            for w in waiting:
                w.errback(exc)
            raise
        waiting, self._making = self._making, None
        self._last = (self._clock(), result)
        for w in waiting:
            w.callback(result)
        return result


class Remembered(Generic[K, V]):
    """Values remembered ``ttl`` seconds each, at most ``most`` of them (past that, all are forgotten:
    what is asked again is only a little work, never a wrong answer)."""

    def __init__(self, ttl: float, most: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._most = most
        self._clock = clock
        self._values: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        found = self._values.get(key)
        if found is None:
            return None
        if self._clock() - found[0] >= self._ttl:
            del self._values[key]
            return None
        return found[1]

    def put(self, key: K, value: V) -> None:
        if len(self._values) >= self._most:
            self._values.clear()
        self._values[key] = (self._clock(), value)


@dataclass(frozen=True)
class Counted:
    queries: tuple[LiveQuery, ...]
    #: Topics the router holds that may be query topics (those not known to be others), and for how many
    #: of them subscribers were counted in this refresh.
    live: int
    counted: int
    #: Whether the store answered for the queries' texts (else the queries new to it have none).
    store_ok: bool = True


class LiveQueryCounts:
    """The busiest live query topics with their subscriber counts and queries, at most ``refresh`` seconds
    old, found with at most ``most`` counts and ``lookups`` look-ups per refresh (see the module)."""

    def __init__(self, call: Call, texts: Texts, clock: Callable[[], float] = time.monotonic,
                 refresh: float = REFRESH, most: int = MOST, lookups: int = LOOKUPS, busiest: int = BUSIEST,
                 concurrent: int = CONCURRENT) -> None:
        self._call = call
        self._texts_of = texts
        self._most = most
        self._lookups = lookups
        self._busiest = busiest
        self._limit = DeferredSemaphore(concurrent)
        #: id -> its URI, for the ids looked up (remembered while the id lives)
        self._uris: dict[int, str] = {}
        #: id -> (its subscribers when last counted, the refresh it was counted in)
        self._counts: dict[int, tuple[int, int]] = {}
        #: the ids of the query topics listed at the last refresh, the busiest first
        self._top: list[int] = []
        self._refreshes = 0
        self._texts: dict[str, str | None] = {}
        self._shared: Shared[Counted] = Shared(self._count, refresh, clock)

    async def counted(self) -> Counted:
        return await self._shared.get()

    async def _count(self) -> Counted:
        self._refreshes += 1
        listing = await self._call(uris.META_SUBSCRIPTION_LIST)
        ids = [int(i) for i in listing.get("exact", [])] if isinstance(listing, dict) else []
        present = set(ids)
        # What is remembered of ids gone is forgotten (an id could come back for another topic).
        self._uris = {i: u for i, u in self._uris.items() if i in present}
        self._counts = {i: c for i, c in self._counts.items() if i in present}
        candidates = [i for i in ids if _may_be_query(self._uris.get(i))]
        # The busiest of last time first, then those counted longest ago (never counted: first of all).
        order = {i: n for n, i in enumerate(candidates)}
        top = [i for i in self._top if i in order]
        rest = sorted((i for i in candidates if i not in set(top)),
                      key=lambda i: (self._counts[i][1] if i in self._counts else -1, order[i]))
        counting = (top + rest)[:self._most]
        for i, n in zip(counting, await self._all(uris.META_SUBSCRIPTION_COUNT_SUBSCRIBERS, counting)):
            if isinstance(n, int) and n > 0:
                self._counts[i] = (n, self._refreshes)
            else:  # gone meanwhile (or no subscriber left)
                self._counts.pop(i, None)
        # The ids with the most subscribers, looked up until enough query topics are found.
        ranked = sorted((i for i in candidates if i in self._counts), key=lambda i: (-self._counts[i][0], order[i]))
        found: list[int] = []
        budget = self._lookups
        at = 0
        while len(found) < self._busiest and at < len(ranked):
            batch: list[int] = []
            while at < len(ranked) and len(found) + len(batch) < self._busiest:
                i = ranked[at]
                at += 1
                if i in self._uris:
                    if uris.query_key(self._uris[i]) is not None:  # a query topic, or its batched twin
                        found.append(i)
                elif budget > 0:
                    batch.append(i)
                    budget -= 1
                # else: no look-up left for this refresh; it may be looked up at the next
            for i, info in zip(batch, await self._all(uris.META_SUBSCRIPTION_GET, batch)):
                if isinstance(info, dict) and isinstance(info.get("uri"), str):
                    self._uris[i] = info["uri"]
                    if uris.query_key(info["uri"]) is not None:
                        found.append(i)
                else:  # gone meanwhile
                    self._counts.pop(i, None)
        found.sort(key=lambda i: (-self._counts[i][0], order[i]))
        found = found[:self._busiest]
        self._top = found
        keys = [_key(self._uris[i]) for i in found]
        store_ok = True
        missing = sorted({k for k in keys if k not in self._texts})
        if missing:
            try:
                self._texts.update(await self._texts_of(missing))
            except StoreUnavailable:
                store_ok = False  # asked again at the next refresh
        self._texts = {k: self._texts[k] for k in keys if k in self._texts}  # only those listed are remembered
        queries = tuple(LiveQuery(self._uris[i], self._texts.get(key), self._counts[i][0])
                        for i, key in zip(found, keys))
        live = sum(1 for i in ids if _may_be_query(self._uris.get(i)))
        return Counted(queries, live, sum(1 for i in counting if _may_be_query(self._uris.get(i))), store_ok)

    async def _all(self, procedure: str, ids: list[int]) -> list[Any]:
        """``procedure(id)`` for each id, at most ``concurrent`` outstanding at once; None for one that
        failed with an ApplicationError (a subscription gone between the list and the call)."""
        if not ids:
            return []
        def one(i: int) -> Deferred[Any]:
            return ensureDeferred(_settled(self._call(procedure, i)))
        answers = await DeferredList([self._limit.run(one, i) for i in ids])
        return [result for _, result in answers]


def _may_be_query(uri: str | None) -> bool:
    """Whether a subscription may be a query topic's (or its batched twin's): it is, or it was never looked up."""
    return uri is None or uris.query_key(uri) is not None


def _key(uri: str) -> str:
    """The query key of a query topic or its batched twin."""
    found = uris.query_key(uri)
    assert found is not None
    return found[0]


async def _settled(call: Awaitable[Any]) -> Any:
    try:
        return await call
    except ApplicationError:
        return None
