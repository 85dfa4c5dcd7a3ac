"""The status page's live queries: counted through the router's meta API, at most so often and so many,
each subscription's URI and each topic's query asked once (a fake router answers here: no sockets)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autobahn.wamp.exception import ApplicationError
from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed

from components import uris
from components.metrics.status import LiveQuery
from webapp_bridge.server.status import Counted, LiveQueryCounts


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
    assert (result.live, result.counted) == (3, 3)
    # Only query topics are counted; class and meta topics are looked up once, not counted.
    assert sorted(r.asked(uris.META_SUBSCRIPTION_COUNT_SUBSCRIBERS)) == [2, 3, 5]


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
