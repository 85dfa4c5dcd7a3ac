"""Batched delivery: the grouping of a turn's envelopes (pure), the live index's two topics per query,
and the Publisher with a fake router: one WAMP event per batch, every event answered only once every
publish it is in was acknowledged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, ensureDeferred

from components import uris
from components.delivery.batching import Batch, Delivery, group
from components.delivery.live_queries import LiveQueries, Made
from components.delivery.publishing import ANYONE, Publisher
from components.delivery.results import Accepted, Refused
from components.delivery.sessions import Restriction, Sessions
from components.events import Registry
from components.store.sqlite import SqliteStore
from components.store.thread import Inline
from tests.unit.delivery.inline import publisher_on

REGISTRY = Registry.load(["examples.demo_events"], ["examples/demo_events.yaml"],
                         base_dir=Path(__file__).resolve().parents[3])
ALICE = Restriction(eligible=[1])
BOB = Restriction(eligible=[2])


def env(seq: int) -> dict[str, Any]:
    return {"event": "demo.message", "id": f"e{seq}", "seq": seq, "time": "t", "data": {}}


def deliver(topic: str, seq: int, restriction: Restriction = ANYONE, exclude: list[int] | None = None,
            size: int = 10) -> Delivery:
    return Delivery(topic, restriction, exclude or [], env(seq), size, seq)


def shape(batches: list[Batch]) -> list[tuple[str, list[int]]]:
    return [(b.topic, [e["seq"] for e in b.envelopes]) for b in batches]


# -- group: pure ---------------------------------------------------------------------------------

def test_nothing_makes_no_batch() -> None:
    assert group([]) == []


def test_a_lone_event_is_a_batch_of_one() -> None:
    batches = group([deliver("t", 1)])
    assert shape(batches) == [("t", [1])] and batches[0].members == [1]


def test_the_events_of_a_turn_for_one_topic_are_one_batch_in_seq_order() -> None:
    batches = group([deliver("t", s) for s in (3, 4, 5, 6)])
    assert shape(batches) == [("t", [3, 4, 5, 6])]
    assert batches[0].members == [3, 4, 5, 6] and batches[0].restriction == ANYONE


def test_a_change_of_restriction_starts_a_new_batch_and_order_is_kept() -> None:
    """A A B A: three batches, not [A A A] [B], which would put seq 4 after 3 for a session in both."""
    batches = group([deliver("t", 1, ALICE), deliver("t", 2, ALICE), deliver("t", 3, BOB), deliver("t", 4, ALICE)])
    assert shape(batches) == [("t", [1, 2]), ("t", [3]), ("t", [4])]
    assert [b.restriction for b in batches] == [ALICE, BOB, ALICE]


def test_restrictions_that_reach_the_same_sessions_share_a_batch() -> None:
    """Equal by value (each event's restriction is a new object)."""
    batches = group([deliver("t", 1, Restriction(eligible=[1, 2])), deliver("t", 2, Restriction(eligible=[1, 2])),
                     deliver("t", 3, Restriction(eligible_authrole=["user"])),
                     deliver("t", 4, Restriction(eligible_authrole=["user"]))])
    assert shape(batches) == [("t", [1, 2]), ("t", [3, 4])]


def test_no_restriction_and_a_restriction_never_mix() -> None:
    batches = group([deliver("t", 1), deliver("t", 2, Restriction(eligible=[])), deliver("t", 3)])
    assert shape(batches) == [("t", [1]), ("t", [2]), ("t", [3])]


def test_a_change_of_excluded_sessions_starts_a_new_batch() -> None:
    batches = group([deliver("t", 1), deliver("t", 2, exclude=[7]), deliver("t", 3, exclude=[7])])
    assert shape(batches) == [("t", [1]), ("t", [2, 3])]


def test_topics_are_batched_apart_and_other_topics_do_not_break_a_run() -> None:
    """Events of another topic in between do not end a topic's batch; batches go in the order they begin."""
    batches = group([deliver("a", 1), deliver("b", 1), deliver("a", 2), deliver("b", 2, ALICE), deliver("a", 3)])
    assert shape(batches) == [("a", [1, 2, 3]), ("b", [1]), ("b", [2])]


def test_each_topics_batches_are_in_seq_order() -> None:
    deliveries = [deliver("a" if s % 3 else "b", s, ALICE if s % 4 == 0 else ANYONE) for s in range(1, 40)]
    batches = group(deliveries)
    for topic in ("a", "b"):
        seqs = [e["seq"] for b in batches if b.topic == topic for e in b.envelopes]
        assert seqs == sorted(seqs) == [d.envelope["seq"] for d in deliveries if d.topic == topic]


def test_a_batch_ends_at_most_envelopes() -> None:
    assert shape(group([deliver("t", s) for s in range(1, 8)], most=3)) == [("t", [1, 2, 3]), ("t", [4, 5, 6]),
                                                                           ("t", [7])]


def test_a_batch_ends_at_its_budget_but_one_envelope_alone_may_weigh_more() -> None:
    batches = group([deliver("t", 1, size=40), deliver("t", 2, size=60), deliver("t", 3, size=1),
                     deliver("t", 4, size=500), deliver("t", 5, size=1)], budget=100)
    assert shape(batches) == [("t", [1, 2]), ("t", [3]), ("t", [4]), ("t", [5])]


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        group([], most=0)


# -- the live index: two topics per query --------------------------------------------------------

LOBBY = 'demo.message where room = "lobby"'
MESSAGE = {"room": "lobby", "text": "t", "author": "a"}
MADE: Made = ([LOBBY], None)


def index() -> LiveQueries:
    return LiveQueries(lambda key, made: made[0], lambda: 1000.0)


def sub(sid: int, topic: str) -> dict[str, Any]:
    return {"id": sid, "uri": topic, "match": "exact"}


def test_no_batched_subscriber_no_batched_topic() -> None:
    live = index()
    live.grant("k", 1, MADE)
    plain, batched = live.targets("demo.message", MESSAGE)
    assert plain == [(uris.query_topic("k"), [])] and list(batched) == [] and not live.batching


def test_a_batched_grant_publishes_to_the_batched_topic_only() -> None:
    live = index()
    live.grant("k", 1, MADE, batched=True)
    assert live.batching
    assert live.targets("demo.message", MESSAGE) == ([], [(uris.batch_query_topic("k"), [])])
    assert live.topics_for("demo.message", MESSAGE) == []


def test_both_topics_while_both_have_subscribers_then_the_one_left() -> None:
    live = index()
    live.grant("k", 1, MADE)
    assert live.created(1, sub(10, uris.query_topic("k"))) is None  # indexed by the grant already
    live.grant("k", 2, MADE, batched=True)
    live.created(2, sub(11, uris.batch_query_topic("k")))
    live.exclude("k", 5)
    assert live.targets("demo.message", MESSAGE) == ([(uris.query_topic("k"), [5])],
                                                     [(uris.batch_query_topic("k"), [5])])
    live.deleted(1, 10)  # the unbatched topic's last subscriber left
    assert live.targets("demo.message", MESSAGE) == ([], [(uris.batch_query_topic("k"), [5])])
    assert "k" in live and live.subscribed == 1
    live.deleted(2, 11)
    assert "k" not in live and not live.batching and live.subscribed == 0


def test_a_batched_topic_created_on_the_router_is_indexed_like_its_twin() -> None:
    """At start-up (wamp.subscription.list) or on_create: the key is asked for, then indexed."""
    live = index()
    assert live.created(0, sub(20, uris.batch_query_topic("k"))) == "k"
    live.made("k", MADE)
    assert live.targets("demo.message", MESSAGE) == ([], [(uris.batch_query_topic("k"), [])])


def test_the_authorizer_wants_the_batched_topic_of_an_indexed_query() -> None:
    live = index()
    live.grant("k", 1, MADE)
    live.created(1, sub(10, uris.query_topic("k")))
    live.want("k", batched=True)
    assert live.targets("demo.message", MESSAGE)[1] == [(uris.batch_query_topic("k"), [])]
    live.want("nope", batched=True)  # not indexed: nothing
    assert "nope" not in live


# -- the Publisher, with a fake router ------------------------------------------------------------

class Router:
    """Records every publish as (topic, [seq of each positional argument]); acks wait for the test."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[int], Any]] = []
        self.acks: dict[str, list[Deferred[Any]]] = {}

    def __call__(self, topic: str, payload: dict[str, Any], restriction: Any = ANYONE, exclude: Any = (),
                 acknowledge: bool = False, more: Any = ()) -> Deferred[Any] | None:
        self.sent.append((topic, [payload["seq"], *(e["seq"] for e in more)], restriction))
        if not acknowledge:
            return None
        d: Deferred[Any] = Deferred()
        self.acks.setdefault(topic, []).append(d)
        return d

    def ack(self, prefix: str, fail: bool = False) -> None:
        for topic in [t for t in self.acks if t.startswith(prefix)]:
            for d in self.acks.pop(topic):
                if fail:
                    d.errback(RuntimeError("refused"))
                else:
                    d.callback(None)


@pytest.fixture
def world(tmp_path: Path) -> Any:
    store = SqliteStore(tmp_path / "s.sqlite3")
    inline = Inline(store)
    router = Router()
    sessions = Sessions()
    for sid, user in ((1, "alice"), (2, "bob")):
        sessions.joined({"session": sid, "authrole": "user", "authid": user,
                         "authextra": {"user": user, "roles": []}})
    publisher, queries = publisher_on(inline, REGISTRY, router, sessions)
    yield router, publisher, queries
    store.close()


def publish(publisher: Publisher, *items: list[Any]) -> list[Any]:
    got: list[Any] = []
    ensureDeferred(publisher.publish([list(i) for i in items])).addBoth(got.append)
    return got


def message(n: int) -> dict[str, Any]:
    return {**MESSAGE, "text": str(n)}


def test_unbatched_only_publishes_as_before(world: Any) -> None:
    router, publisher, queries = world
    queries.live.grant("k", 1, MADE)
    got = publish(publisher, *[["demo.message", message(n), f"i{n}"] for n in range(3)])
    assert [(t, s) for t, s, _ in router.sent] == [(uris.query_topic("k"), [1]), ("gateway.event.demo.message", [1]),
                                                  (uris.query_topic("k"), [2]), ("gateway.event.demo.message", [2]),
                                                  (uris.query_topic("k"), [3]), ("gateway.event.demo.message", [3])]
    router.ack("gateway.event.")
    assert got == [[Accepted("i0", 1), Accepted("i1", 2), Accepted("i2", 3)]]


def test_a_turns_events_go_to_a_batched_topic_as_one_event_before_the_class_topics(world: Any) -> None:
    """Query topics at once; then the batch; then the class topics, acknowledged: the router handles the
    dispatcher's messages in order, so the acknowledgement of an event's class topic covers its batch."""
    router, publisher, queries = world
    queries.live.grant("k", 1, MADE)
    queries.live.grant("k", 2, MADE, batched=True)
    got = publish(publisher, *[["demo.message", message(n), f"i{n}"] for n in range(3)])
    assert [(t, s) for t, s, _ in router.sent] == [
        (uris.query_topic("k"), [1]), (uris.query_topic("k"), [2]), (uris.query_topic("k"), [3]),
        (uris.batch_query_topic("k"), [1, 2, 3]),
        ("gateway.event.demo.message", [1]), ("gateway.event.demo.message", [2]), ("gateway.event.demo.message", [3])]
    assert list(router.acks) == ["gateway.event.demo.message"], "only the class topic is acknowledged"
    assert got == []
    router.ack("gateway.event.")
    assert got == [[Accepted("i0", 1), Accepted("i1", 2), Accepted("i2", 3)]]


def test_events_that_match_no_batched_topic_keep_the_class_topic_in_seq_order(world: Any) -> None:
    """While some batched topic has subscribers, every class-topic publish of the turn waits for the
    batches, those of events that are in none too: the class topic stays in seq order."""
    router, publisher, queries = world
    queries.live.grant("k", 2, MADE, batched=True)
    got = publish(publisher, ["demo.message", message(1), "a"], ["demo.message", {**message(2), "room": "hall"}, "b"],
                  ["demo.message", message(3), "c"])
    assert [(t, s) for t, s, _ in router.sent] == [
        (uris.batch_query_topic("k"), [1, 3]),
        ("gateway.event.demo.message", [1]), ("gateway.event.demo.message", [2]), ("gateway.event.demo.message", [3])]
    router.ack("gateway.event.")
    assert [r.seq for r in got[0]] == [1, 2, 3]


def test_an_audience_in_the_middle_splits_the_batch(world: Any) -> None:
    router, publisher, queries = world
    queries.live.grant("k", 2, MADE, batched=True)
    got = publish(publisher, ["demo.message", message(1), "a"], ["demo.message", message(2), "b"],
                  ["demo.message", message(3), "c", {"users": ["alice"]}], ["demo.message", message(4), "d"],
                  ["demo.message", message(5), "e"])
    batches = [(s, r) for t, s, r in router.sent if t == uris.batch_query_topic("k")]
    assert [s for s, _ in batches] == [[1, 2], [3], [4, 5]]
    assert batches[1][1] == Restriction(eligible=[1]) and batches[0][1] == batches[2][1] == Restriction()
    router.ack("gateway.")
    assert [r.seq for r in got[0]] == [1, 2, 3, 4, 5]


class Unserializable(Router):
    """Raises for a batch of more than one envelope, as a serializer would for a value it cannot write."""

    def __call__(self, topic: str, payload: dict[str, Any], restriction: Any = ANYONE, exclude: Any = (),
                 acknowledge: bool = False, more: Any = ()) -> Deferred[Any] | None:
        if more:
            raise ValueError("cannot serialize")
        return super().__call__(topic, payload, restriction, exclude, acknowledge, more)


def test_a_batch_that_cannot_be_sent_refuses_its_events_only(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3")
    inline = Inline(store)
    router = Unserializable()
    publisher, queries = publisher_on(inline, REGISTRY, router)
    queries.live.grant("k", 2, MADE, batched=True)
    got = publish(publisher, ["demo.message", message(1), "a"], ["demo.message", message(2), "b"],
                  ["demo.message", {**message(3), "room": "hall"}, "c"])
    router.ack("gateway.event.")
    assert isinstance(got[0][0], Refused) and isinstance(got[0][1], Refused)
    assert got[0][2] == Accepted("c", 3)
    assert [(t, s) for t, s, _ in router.sent] == [("gateway.event.demo.message", [3])]
    store.close()


def test_a_refused_class_topic_refuses_the_event(world: Any) -> None:
    router, publisher, queries = world
    queries.live.grant("k", 2, MADE, batched=True)
    got = publish(publisher, ["demo.message", message(1), "a"], ["demo.message", message(2), "b"])
    router.ack("gateway.event.", fail=True)
    assert all(isinstance(r, Refused) for r in got[0]) and len(got[0]) == 2


def test_a_takeover_publishes_each_logged_event_as_a_batch_of_one_before_its_class_topic(world: Any) -> None:
    router, publisher, queries = world
    queries.live.grant("k", 2, MADE, batched=True)
    publisher._send_envelope(REGISTRY, {"event": "demo.message", "id": "x", "seq": 9, "time": "t",
                                        "data": message(9)}, None)
    assert [(t, s) for t, s, _ in router.sent] == [(uris.batch_query_topic("k"), [9]),
                                                  ("gateway.event.demo.message", [9])]


def test_leaving_one_topic_of_a_query_keeps_the_exclusion_from_the_other() -> None:
    """A session may hold both topics of a key under one grant; excluded (its grant ended), leaving the
    batched topic must not let it back into the unbatched one, nor the other way round (review)."""
    message = {"room": "lobby", "text": "t", "author": "a"}
    for left, kept in ((11, 0), (10, 1)):
        live = LiveQueries(lambda key, made: made[0], lambda: 1000.0)
        live.grant("k", 5, ([LOBBY], None))
        live.created(5, {"id": 10, "uri": uris.query_topic("k"), "match": "exact"})
        live.want("k", True)
        live.created(5, {"id": 11, "uri": uris.batch_query_topic("k"), "match": "exact"})
        live.exclude("k", 5)
        assert live.targets("demo.message", message) == (
            [(uris.query_topic("k"), [5])], [(uris.batch_query_topic("k"), [5])])
        live.unsubscribed(5, left)
        targets = live.targets("demo.message", message)
        assert targets[kept][0][1] == [5], f"still excluded from the topic it holds: {targets}"
        assert targets[1 - kept][0][1] == [], "the topic it left excludes nobody"
        live.grant("k", 5, ([LOBBY], None))
        assert live.targets("demo.message", message) == (
            [(uris.query_topic("k"), [])], [(uris.batch_query_topic("k"), [])]), "a new grant lifts both"
