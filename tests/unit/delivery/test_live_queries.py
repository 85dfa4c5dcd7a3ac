"""The live query index on its own: query texts in, topics out; a fake clock, no store, no router."""

import subprocess
import sys
from typing import Any

import pytest

from components import uris
from components.delivery.live_queries import UNCONFIRMED_TTL, LiveQueries, Made
from components.query import QueryError

LOBBY = 'demo.message where room = "lobby"'
ALERTS = "demo.alert"
MESSAGE = {"room": "lobby", "text": "t", "author": "a"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class World:
    """What the index is given: how each query topic was made (as the store would say), the parts to
    match it with now (``parts``: what the row filters of the current classes leave of them), a clock."""

    def __init__(self) -> None:
        self.parts: dict[str, list[str] | None] = {"lobby": [LOBBY], "alerts": [ALERTS]}
        self.clock = Clock()
        self.unindexable: list[tuple[str, list[str], QueryError]] = []
        self.live = LiveQueries(self.current, self.clock, lambda *args: self.unindexable.append(args))
        #: the keys the index asked about (``created``), not answered yet
        self.asked: list[str] = []

    def made(self, key: str) -> Made | None:
        """As the store keeps it: every key of ``parts`` is known."""
        return ([f"as made: {key}"], None) if key in self.parts else None

    def current(self, key: str, made: Made) -> list[str] | None:
        assert made == self.made(key), "the index passes the record it was given"
        return self.parts.get(key)

    def created(self, session: int, subscription: dict[str, Any], answer: bool = True) -> None:
        """The router's on_create, and (``answer``) the store's answer to what the index asked at once."""
        key = self.live.created(session, subscription)
        if key is not None:
            self.asked.append(key)
        if answer:
            self.answer()

    def answer(self) -> None:
        asked, self.asked = self.asked, []
        for key in asked:
            self.live.made(key, self.made(key))

    def grant(self, key: str, session: int) -> None:
        made = self.made(key)
        assert made is not None
        self.live.grant(key, session, made)

    def topics(self, event: str = "demo.message", data: dict[str, Any] | None = None) -> list[tuple[str, list[int]]]:
        return sorted(self.live.topics_for(event, MESSAGE if data is None else data))


def topic(key: str) -> str:
    return uris.query_topic(key)


def subscription(sid: int, key: str) -> dict[str, Any]:
    """A router subscription as ``on_create`` and ``wamp.subscription.get`` describe it."""
    return {"id": sid, "uri": topic(key), "match": "exact"}


@pytest.fixture
def world() -> World:
    return World()


# -- the router's meta events --------------------------------------------------------

def test_a_created_query_topic_is_indexed_from_its_parts(world: World) -> None:
    assert world.topics() == []
    world.created(7, subscription(1, "lobby"))
    assert "lobby" in world.live
    assert world.topics() == [(topic("lobby"), [])]
    assert world.topics(data={**MESSAGE, "room": "hall"}) == []
    assert world.topics("demo.alert", {"level": "high", "text": "x"}) == []


def test_topics_other_than_query_topics_are_ignored(world: World) -> None:
    world.created(7, {"id": 1, "uri": uris.EVENT_TOPIC_PREFIX + "demo.message"})
    world.live.deleted(7, 1)
    assert world.topics() == [] and "lobby" not in world.live


def test_a_deleted_topic_leaves_the_index(world: World) -> None:
    world.created(7, subscription(1, "lobby"))
    world.created(7, subscription(2, "alerts"))
    world.live.deleted(7, 1)
    assert world.topics() == [] and "lobby" not in world.live
    assert world.topics("demo.alert", {}) == [(topic("alerts"), [])]
    world.live.deleted(7, 99)  # never seen (made before a rebuild it missed): nothing happens
    assert "alerts" in world.live


def test_a_topic_subscribed_to_again_comes_back(world: World) -> None:
    world.created(7, subscription(1, "lobby"))
    world.live.deleted(7, 1)
    world.created(8, subscription(2, "lobby"))
    assert world.topics() == [(topic("lobby"), [])]


def test_a_topic_without_parts_is_dormant_until_it_has_some(world: World) -> None:
    world.parts["lobby"] = None
    world.created(7, subscription(1, "lobby"))
    assert world.topics() == [] and world.live.dormant == {"lobby"}
    world.parts["lobby"] = [LOBBY]
    world.live.recompile()
    assert world.topics() == [(topic("lobby"), [])] and world.live.dormant == frozenset()
    world.live.deleted(7, 1)
    assert "lobby" not in world.live and world.live.dormant == frozenset()


def test_a_dormant_topic_is_forgotten_when_its_last_subscriber_leaves(world: World) -> None:
    world.parts["lobby"] = None
    world.created(7, subscription(1, "lobby"))
    world.live.deleted(7, 1)
    world.parts["lobby"] = [LOBBY]
    world.live.recompile()
    assert world.topics() == [] and world.live.dormant == frozenset()


def test_an_excluded_session_is_published_around_until_it_leaves_the_topic(world: World) -> None:
    world.created(7, subscription(1, "lobby"))
    world.live.exclude("lobby", 7)
    world.live.exclude("lobby", 3)
    assert world.topics() == [(topic("lobby"), [3, 7])]
    world.live.unsubscribed(7, 1)
    assert world.topics() == [(topic("lobby"), [3])]
    world.live.unsubscribed(3, 1)
    assert world.topics() == [(topic("lobby"), [])]
    world.live.unsubscribed(3, 42)  # a topic that is not a live query topic: nothing to do
    assert world.topics() == [(topic("lobby"), [])]


def test_a_session_that_leaves_is_excluded_from_nothing(world: World) -> None:
    world.created(7, subscription(1, "lobby"))
    world.created(7, subscription(2, "alerts"))
    world.live.exclude("lobby", 7)
    world.live.exclude("alerts", 7)
    world.live.exclude("alerts", 8)
    world.live.session_left(7)
    assert world.topics() == [(topic("lobby"), [])]
    assert world.topics("demo.alert", {}) == [(topic("alerts"), [8])]


# -- grants and their expiry ---------------------------------------------------------

def test_a_grant_indexes_the_query_at_once(world: World) -> None:
    world.parts["k"] = [LOBBY]
    world.grant("k", 1)
    assert world.topics() == [(topic("k"), [])]
    world.grant("lobby", 1)
    assert world.topics() == [(topic("k"), []), (topic("lobby"), [])]
    assert world.asked == [], "a grant says how the query was made: nothing to look up"


def test_a_grant_of_a_query_with_no_parts_left_indexes_nothing(world: World) -> None:
    world.parts["gone"] = None
    world.grant("gone", 1)
    world.parts["empty"] = []
    world.grant("empty", 1)
    assert "gone" not in world.live and "empty" not in world.live and world.live.dormant == frozenset()


# -- the store's answers come later ----------------------------------------------------

def test_a_topic_is_indexed_once_the_store_said_how_it_was_made(world: World) -> None:
    world.created(7, subscription(1, "lobby"), answer=False)
    assert world.asked == ["lobby"] and world.topics() == []
    world.answer()
    assert world.topics() == [(topic("lobby"), [])]


def test_a_topic_whose_subscribers_left_before_the_answer_is_not_indexed(world: World) -> None:
    world.created(7, subscription(1, "lobby"), answer=False)
    world.live.deleted(7, 1)
    world.answer()
    assert "lobby" not in world.live and world.topics() == [] and world.live.dormant == frozenset()


def test_a_grant_before_the_answer_is_not_indexed_twice(world: World) -> None:
    world.created(7, subscription(1, "lobby"), answer=False)
    world.grant("lobby", 7)
    world.answer()
    assert world.topics() == [(topic("lobby"), [])] and len(world.live.index) == 1


def test_a_topic_the_store_does_not_know_is_dormant(world: World) -> None:
    world.created(7, subscription(1, "unknown"))
    assert world.live.dormant == {"unknown"} and world.topics() == []
    world.live.recompile()
    assert world.live.dormant == {"unknown"}, "nothing to recompile it from"
    world.live.deleted(7, 1)
    assert world.live.dormant == frozenset()


def test_a_session_granted_the_topic_again_is_no_longer_excluded(world: World) -> None:
    world.created(7, subscription(1, "lobby"))
    world.live.exclude("lobby", 7)
    world.grant("lobby", 7)
    assert world.topics() == [(topic("lobby"), [])]


def test_a_granted_query_nobody_subscribes_to_expires(world: World) -> None:
    world.grant("lobby", 1)
    world.clock.now += UNCONFIRMED_TTL
    world.live.expire_unconfirmed()
    assert world.topics() == [(topic("lobby"), [])], "not yet: exactly the time to live"
    world.clock.now += 1
    world.live.expire_unconfirmed()
    assert world.topics() == [] and "lobby" not in world.live


def test_a_granted_query_subscribed_to_does_not_expire(world: World) -> None:
    world.grant("lobby", 1)
    world.created(1, subscription(5, "lobby"))
    world.clock.now += 10 * UNCONFIRMED_TTL
    world.live.expire_unconfirmed()
    assert world.topics() == [(topic("lobby"), [])]


def test_a_confirmed_query_leaves_with_its_last_subscriber(world: World) -> None:
    world.grant("lobby", 2)
    world.created(2, subscription(6, "lobby"))
    world.grant("lobby", 3)  # already indexed: no new stay
    world.live.deleted(2, 6)
    assert world.topics() == [] and "lobby" not in world.live


def test_a_query_granted_while_dormant_stays_its_time_after_its_subscribers_left(world: World) -> None:
    world.parts["lobby"] = None
    world.created(1, subscription(5, "lobby"))
    world.parts["lobby"] = [LOBBY]  # the classes allow it again (before the reload's recompile)
    world.grant("lobby", 2)
    assert world.live.dormant == frozenset()
    world.live.deleted(1, 5)
    assert world.topics() == [(topic("lobby"), [])], "granted: its subscriber may still come"
    world.clock.now += UNCONFIRMED_TTL + 1
    world.live.expire_unconfirmed()
    assert world.topics() == [] and "lobby" not in world.live


# -- the classes changed ----------------------------------------------------------

def test_recompile_matches_with_the_parts_as_they_are_now(world: World) -> None:
    world.created(1, subscription(5, "lobby"))
    world.grant("alerts", 2)
    world.parts["lobby"] = ['demo.message where room = "hall"']
    world.parts["alerts"] = None
    world.live.recompile()
    assert world.topics() == []
    assert world.topics(data={**MESSAGE, "room": "hall"}) == [(topic("lobby"), [])]
    assert world.topics("demo.alert", {}) == [] and world.live.dormant == {"alerts"}


def test_a_query_of_several_parts_is_one_topic(world: World) -> None:
    world.parts["split"] = ['demo.message where author = "a"', 'demo.message where room = "lobby"', ALERTS]
    world.created(1, subscription(5, "split"))
    assert world.topics() == [(topic("split"), [])], "both parts match: published once"
    assert world.topics(data={**MESSAGE, "author": "b"}) == [(topic("split"), [])]
    assert world.topics("demo.alert", {}) == [(topic("split"), [])]
    world.parts["split"] = [ALERTS]
    world.live.recompile()
    assert world.topics() == [] and world.topics("demo.alert", {}) == [(topic("split"), [])]
    world.live.deleted(1, 5)
    assert world.topics("demo.alert", {}) == [] and len(world.live.index) == 0


def test_a_text_that_does_not_parse_is_reported_and_not_indexed(world: World) -> None:
    world.parts["bad"] = ["demo.message where"]
    world.created(1, subscription(5, "bad"))
    assert "bad" not in world.live and world.topics() == []
    (key, texts, error), = world.unindexable
    assert (key, texts) == ("bad", ["demo.message where"]) and isinstance(error, QueryError)


# -- rebuilt at start-up -----------------------------------------------------------

def test_rebuilt_from_the_routers_listing(world: World) -> None:
    """At start-up every subscription ``wamp.subscription.list`` names is fed in as if just created."""
    followed = World()
    followed.created(1, subscription(5, "lobby"))
    followed.created(2, subscription(6, "alerts"))
    followed.created(2, {"id": 7, "uri": uris.EVENT_TOPIC_PREFIX + "demo.message"})
    world.grant("lobby", 1)  # granted by this dispatcher just before the listing came
    for info in [subscription(5, "lobby"), subscription(6, "alerts"),
                 {"id": 7, "uri": uris.EVENT_TOPIC_PREFIX + "demo.message"}]:
        world.created(0, info)
    for event, data in [("demo.message", MESSAGE), ("demo.alert", {})]:
        assert world.topics(event, data) == followed.topics(event, data) != []
    world.clock.now += 2 * UNCONFIRMED_TTL
    world.live.expire_unconfirmed()
    assert world.topics() == [(topic("lobby"), [])], "the listing confirmed the grant"
    world.live.deleted(0, 5)
    world.live.deleted(0, 6)
    assert world.topics() == [] and world.topics("demo.alert", {}) == []


def test_the_index_imports_no_io() -> None:
    code = ("import sys, components.delivery.live_queries; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('twisted', 'autobahn', 'txaio', 'sqlite3', "
            "'psycopg', 'socket') or m.startswith('components.store')))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert found.strip() == "[]"
