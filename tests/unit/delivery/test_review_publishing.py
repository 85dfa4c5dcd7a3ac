"""Races a review found in the per-event path (``publishing``), reproduced without a router.

A fake ``Send`` records every publish and hands back the router's acknowledgement as a Deferred
the test fires (or fails) itself; the store is a temp SQLite file run inline.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, ensureDeferred

from components.delivery.publishing import ANYONE, Publisher, Turn
from components.delivery.results import Accepted, IdOrigin, Refused
from components.delivery.sessions import SessionInfo
from components.events import Registry
from components.delivery.persistent import compile_parts, read_replay
from components.store.base import TERMS, PersistentSubscription
from components.store.sqlite import SqliteStore
from components.store.thread import Inline
from tests.unit.delivery.inline import publisher_on

REGISTRY = Registry.load(["examples.demo_events"], ["examples/demo_events.yaml"],
                         base_dir=Path(__file__).resolve().parents[3])
MESSAGE = {"room": "lobby", "text": "t", "author": "a"}


class Router:
    """Records publishes; the acknowledgement of each acknowledged one waits for the test."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []
        self.acks: list[Deferred[Any]] = []

    def __call__(self, topic: str, payload: dict[str, Any], restriction: Any = ANYONE,
                 exclude: Any = (), acknowledge: bool = False) -> Deferred[Any] | None:
        self.sent.append((topic, payload["seq"]))
        if not acknowledge:
            return None
        d: Deferred[Any] = Deferred()
        self.acks.append(d)
        return d

    def ack_all(self) -> None:
        acks, self.acks = self.acks, []
        for d in acks:
            d.callback(None)


class Counted(Inline):
    """Inline, recording the name of each piece of store work it runs."""

    def __init__(self, store: SqliteStore) -> None:
        super().__init__(store)
        self.work: list[str] = []

    def run(self, work: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        self.work.append(getattr(work, "__name__", repr(work)))
        return super().run(work, *args, **kwargs)


def outcome(d: Deferred[Any]) -> list[Any]:
    got: list[Any] = []
    d.addBoth(got.append)
    return got


@pytest.fixture
def world(tmp_path: Path) -> Any:
    store = SqliteStore(tmp_path / "s.sqlite3")
    inline = Counted(store)
    router = Router()
    publisher, _ = publisher_on(inline, REGISTRY, router)
    inline.work.clear()
    yield store, router, publisher
    store.close()


def publish(publisher: Publisher, *items: list[Any]) -> Deferred[Any]:
    return ensureDeferred(publisher.publish([list(i) for i in items]))


def test_a_cancelled_call_keeps_the_acknowledgement_and_the_retry_is_a_duplicate(world: Any) -> None:
    """Crossbar INTERRUPTs the invocation when the caller (a bridge) goes away; autobahn cancels it.
    The publish has reached the router: its acknowledgement must still remember the id, so that the
    caller's retry is a duplicate, not a second event (it was, before the events' chains were shielded)."""
    store, router, publisher = world
    call = publish(publisher, ["demo.message", MESSAGE, "k1"])
    assert router.sent == [("gateway.event.demo.message", 1)] and len(router.acks) == 1
    call.addErrback(lambda f: None)
    call.cancel()          # the caller went away (INTERRUPT), the router has the publish
    router.ack_all()       # ... and acknowledges it: it was delivered
    assert publisher._unsaved.get("k1") == ("demo.message", 1)
    again = outcome(publish(publisher, ["demo.message", MESSAGE, "k1"]))
    router.ack_all()
    assert router.sent == [("gateway.event.demo.message", 1)], "published once"
    assert again[0] == [Accepted("k1", 1, duplicate=True)]


def test_a_logged_event_refused_once_is_published_later_below_a_higher_seq(world: Any) -> None:
    """A logged event whose publish failed (503) is published on retry with its old seq, after
    higher seqs went out: a subscriber connected throughout that drops seq <= last seen loses it,
    though this time it was answered 202."""
    store, router, publisher = world
    store.save_persistent(PersistentSubscription(
        id="p_x", owner="user:u", user="u", query="demo.message", key="k", parts=["demo.message"],
        filters={"demo.message": None}, classes=["demo.message"], last_seq=0, created=time.time()))
    first = outcome(publish(publisher, ["demo.message", MESSAGE, "a"]))
    router.acks.pop().errback(RuntimeError("router refused"))
    assert isinstance(first[0][0], Refused)
    second = outcome(publish(publisher, ["demo.message", MESSAGE, "b"]))
    router.ack_all()
    retry = outcome(publish(publisher, ["demo.message", MESSAGE, "a"]))
    router.ack_all()
    assert isinstance(second[0][0], Accepted) and second[0][0].seq == 2
    assert isinstance(retry[0][0], Accepted)
    seqs = [seq for topic, seq in router.sent]
    # Nothing answered 202 goes out below a seq subscribers already saw: the retry is renumbered (it
    # was [1, 2, 1]: 1 refused, 2, then 1 again).
    assert seqs == sorted(seqs), seqs
    assert retry[0][0] == Accepted("a", 3) and seqs == [1, 2, 3]
    # The row and the id moved to seq 3, marked published; nothing is left at seq 1.
    publisher._save()  # the end of the reactor turn
    assert [(r.seq, r.id, r.published) for r in store.events_after(["demo.message"], 0, 10)] == [
        (2, "b", True), (3, "a", True)]
    assert store.accepted("a") == ("demo.message", 3)
    again = outcome(publish(publisher, ["demo.message", MESSAGE, "a"]))
    assert again[0] == [Accepted("a", 3, duplicate=True)] and len(router.sent) == 3, "published once"


def test_a_refused_logged_event_below_a_published_one_is_neither_taken_over_nor_replayed(world: Any) -> None:
    """Not retried: the takeover does not publish it below seq 2 (it was answered 503), nor does replay
    hand it out; a retry after the takeover renumbers it above everything."""
    store, router, publisher = world
    store.save_persistent(PersistentSubscription(
        id="p_x", owner="user:u", user="u", query="demo.message", key="k", parts=["demo.message"],
        filters={"demo.message": None}, classes=["demo.message"], last_seq=0, created=time.time()))
    first = outcome(publish(publisher, ["demo.message", MESSAGE, "a"]))
    router.acks.pop().errback(RuntimeError("router refused"))
    assert isinstance(first[0][0], Refused)
    outcome(publish(publisher, ["demo.message", MESSAGE, "b"]))
    router.ack_all()
    publisher._save()  # the end of the reactor turn: seq 2 marked published
    assert store.last_published_seq() == 2
    took = outcome(ensureDeferred(publisher.take_over(store.take(1, TERMS))))
    assert took == [0] and router.sent == [("gateway.event.demo.message", 1), ("gateway.event.demo.message", 2)]
    sub = store.persistent("p_x")
    who = SessionInfo(1, "u", "user", "u", ())
    replayed = read_replay(store, who, sub, compile_parts(sub, REGISTRY), REGISTRY, 0)
    assert [e["seq"] for e in replayed["events"]] == [2]
    retry = outcome(publish(publisher, ["demo.message", MESSAGE, "a"]))
    router.ack_all()
    assert retry[0] == [Accepted("a", 3)]
    assert [seq for _, seq in router.sent] == [1, 2, 3]


def persistent_on_messages(store: SqliteStore) -> None:
    store.save_persistent(PersistentSubscription(
        id="p_x", owner="user:u", user="u", query="demo.message", key="k", parts=["demo.message"],
        filters={"demo.message": None}, classes=["demo.message"], last_seq=0, created=time.time()))


def test_ids_the_bridge_made_are_not_looked_up_and_a_turn_with_nothing_to_learn_needs_no_store(world: Any) -> None:
    """Issue 16: an id the bridge has just made cannot have been accepted before; once the logged
    classes are known, a batch of such ids takes its turn without a store round trip."""
    store, router, publisher = world
    thread = publisher._thread
    first = outcome(publish(publisher, ["demo.message", MESSAGE, "n1", None, IdOrigin.NEW]))
    router.ack_all()
    assert first[0] == [Accepted("n1", 1)]
    assert thread.work.count("_look_up") == 1, "the first turn learns which classes are logged"
    thread.work.clear()
    second = outcome(publish(publisher, ["demo.message", MESSAGE, "n2", None, IdOrigin.NEW],
                             ["demo.message", MESSAGE, "n3", None, IdOrigin.NEW]))
    router.ack_all()
    assert second[0] == [Accepted("n2", 2), Accepted("n3", 3)]
    assert "_look_up" not in thread.work, thread.work
    # An id the web-app gave is looked up, every time.
    outcome(publish(publisher, ["demo.message", MESSAGE, "given"]))
    router.ack_all()
    assert thread.work.count("_look_up") == 1


def test_a_turns_publishes_go_to_the_router_at_once_once_all_are_queued(tmp_path: Path) -> None:
    """``sent()`` (the dispatcher sends what it queued, ``components.sending``) comes once a turn, after its
    last publish: the router starts on them while this process goes on with the reactor's other work."""
    store = SqliteStore(tmp_path / "s.sqlite3")
    router = Router()
    queued_when_sent: list[int] = []
    publisher, _ = publisher_on(Inline(store), REGISTRY, router, sent=lambda: queued_when_sent.append(len(router.sent)))
    try:
        got = outcome(publish(publisher, ["demo.message", MESSAGE, "s1"], ["demo.message", MESSAGE, "s2"]))
        assert queued_when_sent == [2], "once, after both"
        router.ack_all()
        assert got[0] == [Accepted("s1", 1), Accepted("s2", 2)]
        outcome(publish(publisher, ["demo.message", MESSAGE, "s1"]))
        assert queued_when_sent == [2, 2], "a turn of duplicates publishes nothing; sending nothing costs nothing"
    finally:
        store.close()


def test_a_new_id_is_remembered_and_sent_again_it_is_a_duplicate(world: Any) -> None:
    """NEW: not looked up, but remembered: the caller learnt it in the answer and the bridge calls again
    with it (as GIVEN) after the dispatcher went away. An unknown origin is GIVEN: looked up."""
    store, router, publisher = world
    outcome(publish(publisher, ["demo.message", MESSAGE, "made", None, IdOrigin.NEW],
                    ["demo.message", MESSAGE, "also-made", None, IdOrigin.NEW]))
    router.ack_all()
    publisher._save()  # the end of the reactor turn
    assert store.accepted("made") == ("demo.message", 1)
    assert store.accepted("also-made") == ("demo.message", 2)
    again = outcome(publish(publisher, ["demo.message", MESSAGE, "made", None, IdOrigin.GIVEN],
                            ["demo.message", MESSAGE, "also-made", None, 7]))
    assert again[0] == [Accepted("made", 1, duplicate=True), Accepted("also-made", 2, duplicate=True)]
    assert len(router.sent) == 2, "published once"


def test_a_persistent_subscription_made_in_the_turn_between_batches_is_seen_by_the_next_batch(world: Any) -> None:
    """What is known of the logged classes holds only while nothing else took the turn: a persistent
    subscribe takes it (``Turn.acquire``), and the next batch, all of new ids, looks again and logs."""
    store, router, publisher = world
    outcome(publish(publisher, ["demo.message", MESSAGE, "n1", None, IdOrigin.NEW]))
    router.ack_all()
    turn: Turn = publisher._turn

    def subscribe(_: Any) -> None:  # what gateway.subscribe(persistent=True) does in its turn
        persistent_on_messages(store)
        turn.release()
    turn.acquire().addCallback(subscribe)
    outcome(publish(publisher, ["demo.message", MESSAGE, "n2", None, IdOrigin.NEW]))
    router.ack_all()
    assert [(r.seq, r.id) for r in store.events_after(["demo.message"], 0, 10)] == [(2, "n2")], "logged"


def test_a_batch_whose_turn_comes_before_a_waiting_subscribe_does_not_vouch_for_what_it_writes(world: Any) -> None:
    """The turn a persistent subscribe asks for counts as a change only once it ends: a batch that takes
    its turn while the subscribe waits learns the logged classes before the subscribe writes, and the
    batch after the subscribe must look again (review of issue 16)."""
    store, router, publisher = world
    outcome(publish(publisher, ["demo.message", MESSAGE, "n1", None, IdOrigin.NEW]))
    router.ack_all()
    turn: Turn = publisher._turn
    first_done: list[Any] = []
    turn.acquire().addCallback(first_done.append)  # subscribe S1 holds the turn
    batch_a = outcome(publish(publisher, ["demo.message", MESSAGE, "a", None, IdOrigin.NEW]))

    def subscribe(_: Any) -> None:  # S2, asked while A waits: runs after A
        persistent_on_messages(store)
        turn.release()
    turn.acquire().addCallback(subscribe)
    turn.release()  # S1 ends; A takes its turn (before S2 wrote), then S2
    router.ack_all()
    assert batch_a[0] == [Accepted("a", 2)]
    outcome(publish(publisher, ["demo.message", MESSAGE, "b", None, IdOrigin.NEW]))
    router.ack_all()
    assert [(r.seq, r.id) for r in store.events_after(["demo.message"], 0, 10)] == [(3, "b")], "b is logged"


def test_the_event_log_write_has_its_own_name_in_the_store_duration_metric(world: Any) -> None:
    """gateway_store_duration_seconds{op} names store work by its function: the per-turn log write is the
    store's hottest work for logged classes, and was counted as ``other`` (a lambda) before."""
    store, router, publisher = world
    persistent_on_messages(store)
    outcome(publish(publisher, ["demo.message", MESSAGE, "k1"]))
    router.ack_all()
    assert "log_and_remember" in publisher._thread.work
