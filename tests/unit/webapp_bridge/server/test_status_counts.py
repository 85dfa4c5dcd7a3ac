"""The status page's live queries: counted through the router's meta API, at most so often and so many,
the busiest looked up, each subscription's URI and each topic's query asked once (a fake router answers
here: no sockets); and ``Shared``, one answer for the callers of a moment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autobahn.wamp.exception import ApplicationError
from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed

from components import uris
from components.exceptions import StoreUnavailable
from components.metrics.status import LiveQuery
from webapp_bridge.server.status import CONCURRENT, Counted, LiveQueryCounts, Remembered, Shared


class Router:
    """The meta procedures the counting calls, over a table of subscriptions."""

    def __init__(self, subscriptions: dict[int, tuple[str, int]]) -> None:
        self.subscriptions = subscriptions  # id -> (uri, subscribers)
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.texts_asked: list[list[str]] = []
        self.vanish_on_get: set[int] = set()

    def call(self, procedure: str, *args: Any) -> Deferred[Any]:
        self.calls.append((procedure, args))
        if procedure == uris.META_SUBSCRIPTION_LIST:
            return succeed({"exact": list(self.subscriptions), "prefix": [], "wildcard": []})
        (sub,) = args
        if sub not in self.subscriptions or (procedure == uris.META_SUBSCRIPTION_GET and sub in self.vanish_on_get):
            return fail(ApplicationError("wamp.error.no_such_subscription"))
        uri, n = self.subscriptions[sub]
        if procedure == uris.META_SUBSCRIPTION_GET:
            return succeed({"id": sub, "uri": uri, "match": "exact"})
        assert procedure == uris.META_SUBSCRIPTION_COUNT_SUBSCRIBERS
        return succeed(n)

    def texts(self, keys: Sequence[str]) -> Deferred[dict[str, str | None]]:
        self.texts_asked.append(list(keys))
        return succeed({k: None if k == "lost" else f"query of {k}" for k in keys})

    def asked(self, procedure: str) -> list[Any]:
        return [args[0] if args else None for p, args in self.calls if p == procedure]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def counted(counts: LiveQueryCounts) -> Counted:
    results: list[Counted] = []
    ensureDeferred(counts.counted()).addCallback(results.append)
    assert results, "the fake router answers at once"
    return results[0]


def router() -> Router:
    return Router({1: ("gateway.event.demo.message", 3), 2: ("gateway.query.k1", 2), 3: ("gateway.query.k2", 5),
                   4: ("wamp.session.on_join", 1), 5: ("gateway.query.lost", 1)})


def test_query_topics_are_counted_with_their_queries() -> None:
    r = router()
    result = counted(LiveQueryCounts(r.call, r.texts, Clock()))
    assert set(result.queries) == {LiveQuery("gateway.query.k1", "query of k1", 2),
                                   LiveQuery("gateway.query.k2", "query of k2", 5),
                                   LiveQuery("gateway.query.lost", None, 1)}
    # Before they are looked up, any topic may be a query topic's: all five are counted once.
    assert (result.live, result.counted) == (3, 3)
    assert sorted(r.asked(uris.META_SUBSCRIPTION_COUNT_SUBSCRIBERS)) == [1, 2, 3, 4, 5]
    # Once looked up, class and meta topics are not counted again.
    r.calls.clear()
    clock = Clock()
    counts = LiveQueryCounts(r.call, r.texts, clock, refresh=1.0)
    counted(counts)
    clock.now += 2
    r.calls.clear()
    counted(counts)
    assert sorted(r.asked(uris.META_SUBSCRIPTION_COUNT_SUBSCRIBERS)) == [2, 3, 5]
    assert r.asked(uris.META_SUBSCRIPTION_GET) == []


def test_a_count_is_reused_for_a_while_then_made_again() -> None:
    r, clock = router(), Clock()
    counts = LiveQueryCounts(r.call, r.texts, clock, refresh=5.0)
    first = counted(counts)
    clock.now += 4.9
    assert counted(counts) is first
    assert len(r.asked(uris.META_SUBSCRIPTION_LIST)) == 1
    r.subscriptions[3] = ("gateway.query.k2", 9)
    clock.now += 0.2
    again = counted(counts)
    assert LiveQuery("gateway.query.k2", "query of k2", 9) in again.queries
    assert len(r.asked(uris.META_SUBSCRIPTION_LIST)) == 2


def test_uris_and_queries_are_asked_once_while_they_live() -> None:
    r, clock = router(), Clock()
    counts = LiveQueryCounts(r.call, r.texts, clock, refresh=1.0)
    counted(counts)
    clock.now += 2
    r.subscriptions[6] = ("gateway.query.k3", 1)
    counted(counts)
    # Looked up: the busiest ids, each once while it lives (here all: fewer than the page lists).
    assert sorted(r.asked(uris.META_SUBSCRIPTION_GET)) == [1, 2, 3, 4, 5, 6]
    assert r.texts_asked == [["k1", "k2", "lost"], ["k3"]]
    # A topic gone is forgotten: should its id come back with another topic, it is asked again.
    del r.subscriptions[2]
    clock.now += 2
    assert "gateway.query.k1" not in {q.topic for q in counted(counts).queries}
    r.subscriptions[2] = ("gateway.query.k9", 1)
    clock.now += 2
    assert LiveQuery("gateway.query.k9", "query of k9", 1) in counted(counts).queries


def test_at_most_so_many_topics_are_counted_and_the_answer_says_so() -> None:
    r = Router({i: (f"gateway.query.q{i:03d}", i) for i in range(1, 21)})
    result = counted(LiveQueryCounts(r.call, r.texts, Clock(), most=5))
    assert (result.live, result.counted) == (20, 5)
    assert len(result.queries) == 5
    assert len(r.asked(uris.META_SUBSCRIPTION_COUNT_SUBSCRIBERS)) == 5


def test_a_subscription_gone_meanwhile_is_left_out() -> None:
    r = router()
    r.vanish_on_get.add(3)
    result = counted(LiveQueryCounts(r.call, r.texts, Clock()))
    assert {q.topic for q in result.queries} == {"gateway.query.k1", "gateway.query.lost"}
    # Counted after the look-up but gone before its count: left out too (no subscribers left).
    r2 = router()
    original = r2.call

    def gone_before_count(procedure: str, *args: Any) -> Deferred[Any]:
        if procedure == uris.META_SUBSCRIPTION_COUNT_SUBSCRIBERS and args == (2,):
            return fail(ApplicationError("wamp.error.no_such_subscription"))
        return original(procedure, *args)
    result = counted(LiveQueryCounts(gone_before_count, r2.texts, Clock()))
    assert {q.topic for q in result.queries} == {"gateway.query.k2", "gateway.query.lost"}


def test_callers_during_a_count_share_it() -> None:
    r = router()
    pending: list[Deferred[Any]] = []

    def slow_list(procedure: str, *args: Any) -> Deferred[Any]:
        if procedure == uris.META_SUBSCRIPTION_LIST and not pending:
            d: Deferred[Any] = Deferred()
            pending.append(d)
            return d
        return r.call(procedure, *args)
    counts = LiveQueryCounts(slow_list, r.texts, Clock())
    got: list[Counted] = []
    ensureDeferred(counts.counted()).addCallback(got.append)
    ensureDeferred(counts.counted()).addCallback(got.append)
    assert got == [] and len(pending) == 1
    pending[0].callback({"exact": list(r.subscriptions)})
    assert len(got) == 2 and got[0] is got[1]


class PendingRouter(Router):
    """The same router answering only when ``answer_all`` is called: shows how many calls are outstanding."""

    def __init__(self, subscriptions: dict[int, tuple[str, int]]) -> None:
        super().__init__(subscriptions)
        self.pending: list[tuple[Deferred[Any], Deferred[Any]]] = []
        self.most_outstanding = 0

    def call(self, procedure: str, *args: Any) -> Deferred[Any]:
        answer = super().call(procedure, *args)
        d: Deferred[Any] = Deferred()
        self.pending.append((answer, d))
        self.most_outstanding = max(self.most_outstanding, len(self.pending))
        return d

    def answer_all(self) -> None:
        while self.pending:
            answer, d = self.pending.pop(0)
            answer.chainDeferred(d)


def count_pending(counts: LiveQueryCounts, r: PendingRouter) -> Counted:
    results: list[Counted] = []
    ensureDeferred(counts.counted()).addCallback(results.append)
    r.answer_all()
    assert results
    return results[0]


def many(n: int, busy: dict[int, int] | None = None) -> dict[int, tuple[str, int]]:
    """``n`` per-user query topics (one subscriber each, ``busy`` ids more), and a class and a meta topic."""
    table = {i: (f"gateway.query.u{i:05d}", (busy or {}).get(i, 1)) for i in range(1, n + 1)}
    table[n + 1] = ("gateway.event.demo.message", 50)
    table[n + 2] = ("wamp.session.on_join", 2)
    return table


def test_a_refresh_is_bounded_however_many_query_topics_there_are() -> None:
    r = PendingRouter(many(10_000))
    counts = LiveQueryCounts(r.call, r.texts, Clock(), most=500, lookups=100)
    result = count_pending(counts, r)
    assert len(r.asked(uris.META_SUBSCRIPTION_LIST)) == 1
    assert len(r.asked(uris.META_SUBSCRIPTION_COUNT_SUBSCRIBERS)) == 500
    assert len(r.asked(uris.META_SUBSCRIPTION_GET)) <= 100
    assert r.most_outstanding <= CONCURRENT
    assert (result.live, result.counted) == (10_002, 500)
    assert len(result.queries) == 10
    assert sum(len(asked) for asked in r.texts_asked) == 10  # the store: only the queries listed


def test_the_busiest_are_found_wherever_they_are_and_kept_fresh() -> None:
    # The busiest have the highest ids (the last listed, the last by URI): they are found within one sweep.
    busy = {1990 + k: 100 + k for k in range(10)}
    r = PendingRouter(many(2000, busy))
    clock = Clock()
    counts = LiveQueryCounts(r.call, r.texts, clock, refresh=1.0, most=500)
    for _ in range(5):  # 2,002 ids, 500 a refresh of which the 10 listed: 490 new ones a refresh
        result = count_pending(counts, r)
        clock.now += 2
    assert [q.subscribers for q in result.queries] == list(range(109, 99, -1))
    assert len(r.asked(uris.META_SUBSCRIPTION_GET)) <= 5 * 10 + 2
    # The busiest are counted again at every refresh: a change in them shows at the next.
    r.subscriptions[1990] = ("gateway.query.u01990", 500)
    r.calls.clear()
    result = count_pending(counts, r)
    assert result.queries[0] == LiveQuery("gateway.query.u01990", "query of u01990", 500)
    assert set(busy) <= set(r.asked(uris.META_SUBSCRIPTION_COUNT_SUBSCRIBERS))
    assert r.asked(uris.META_SUBSCRIPTION_GET) == []


def test_lookups_per_refresh_are_bounded_and_the_rest_wait_for_the_next() -> None:
    # Busy class topics rank above every query topic: each is looked up once, at most ``lookups`` a refresh.
    table = {i: (f"gateway.event.c{i}", 100) for i in range(1, 31)}
    table.update({i: (f"gateway.query.q{i}", 1) for i in range(31, 41)})
    r = Router(table)
    clock = Clock()
    counts = LiveQueryCounts(r.call, r.texts, clock, refresh=1.0, lookups=12)
    first = counted(counts)
    assert len(r.asked(uris.META_SUBSCRIPTION_GET)) == 12
    assert first.queries == ()
    for _ in range(3):
        clock.now += 2
        last = counted(counts)
    assert len(last.queries) == 10
    assert sorted(r.asked(uris.META_SUBSCRIPTION_GET)) == list(range(1, 41))  # each id once


def test_a_store_that_does_not_answer_leaves_the_queries_without_text_until_it_does() -> None:
    r = router()
    down = [True]

    def texts(keys: Sequence[str]) -> Deferred[dict[str, str | None]]:
        if down[0]:
            return fail(StoreUnavailable("the store cannot be reached"))
        return r.texts(keys)
    clock = Clock()
    counts = LiveQueryCounts(r.call, texts, clock, refresh=1.0)
    result = counted(counts)
    assert result.store_ok is False
    assert {q.query for q in result.queries} == {None}
    assert len(result.queries) == 3
    down[0] = False
    clock.now += 2
    result = counted(counts)
    assert result.store_ok is True
    assert LiveQuery("gateway.query.k2", "query of k2", 5) in result.queries


def test_shared_gives_callers_of_a_moment_one_answer() -> None:
    clock = Clock()
    made: list[Deferred[int]] = []

    def make() -> Deferred[int]:
        made.append(Deferred())
        return made[-1]
    shared: Shared[int] = Shared(make, 1.0, clock)
    got: list[int] = []
    for _ in range(3):
        ensureDeferred(shared.get()).addCallback(got.append)
    assert len(made) == 1 and got == []
    made[0].callback(7)
    assert got == [7, 7, 7]
    clock.now += 0.9
    ensureDeferred(shared.get()).addCallback(got.append)
    assert len(made) == 1 and got[-1] == 7
    clock.now += 0.2
    ensureDeferred(shared.get()).addCallback(got.append)
    assert len(made) == 2
    made[1].callback(8)
    assert got[-1] == 8


def test_shared_keeps_no_failure() -> None:
    calls: list[int] = []

    def make() -> Deferred[int]:
        calls.append(1)
        return fail(StoreUnavailable("down")) if len(calls) == 1 else succeed(3)
    shared: Shared[int] = Shared(make, 10.0, Clock())
    failures: list[Any] = []
    ensureDeferred(shared.get()).addErrback(failures.append)
    assert len(failures) == 1 and failures[0].check(StoreUnavailable)
    got: list[int] = []
    ensureDeferred(shared.get()).addCallback(got.append)
    assert got == [3]


def test_remembered_for_a_while_and_never_too_many() -> None:
    clock = Clock()
    seen: Remembered[int, bool] = Remembered(5.0, most=3, clock=clock)
    seen.put(1, True)
    seen.put(2, False)
    assert (seen.get(1), seen.get(2), seen.get(3)) == (True, False, None)
    clock.now += 5
    assert seen.get(1) is None
    for k in range(10, 14):
        seen.put(k, True)
    assert seen.get(10) is None and seen.get(13) is True  # past ``most``: forgotten, asked again
