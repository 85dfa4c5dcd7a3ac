"""The query subscription book keeping, without a router (a temp SQLite file, no sockets)."""

from pathlib import Path
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.request import Registration
from autobahn.wamp.types import CallDetails

from components.config import QueriesConfig
from components.events import Registry
from components.store.sqlite import SqliteStore
from components.store.thread import Inline
from components.delivery.subscriptions import QuerySubscriptions
from tests.unit.delivery.inline import Now

REGISTRY = Registry.load(["examples.demo_events"], ["examples/demo_events.yaml"],
                         base_dir=Path(__file__).resolve().parents[3])
MESSAGE = {"room": "lobby", "text": "t", "author": "a"}


@pytest.fixture
def book(tmp_path: Path) -> Any:
    store = SqliteStore(tmp_path / "s.sqlite3")
    yield Now(QuerySubscriptions(Inline(store), lambda: REGISTRY, QueriesConfig(max_per_session=3)))
    store.close()


REGISTRATION = Registration(session=None, registration_id=1, procedure="gateway.subscribe", endpoint=None)


def caller(session: int, authrole: str = "anonymous") -> CallDetails:
    return CallDetails(registration=REGISTRATION, caller=session, caller_authrole=authrole)


def test_subscribe_grants_the_topic_and_indexes_the_query_at_once(book: Any) -> None:
    sub = book.subscribe('demo.message where room = "lobby"', details=caller(1))
    key = sub["topic"].removeprefix("gateway.query.")
    assert book.authorize({"session": 1, "authrole": "anonymous"}, sub["topic"], "subscribe")["allow"]
    assert not book.authorize({"session": 2, "authrole": "anonymous"}, sub["topic"], "subscribe")["allow"]
    assert book.topics_for("demo.message", MESSAGE) == [(sub["topic"], [])]
    assert book.topics_for("demo.message", {**MESSAGE, "room": "x"}) == []
    assert key


def test_the_index_follows_the_routers_subscriptions(book: Any) -> None:
    topic = book.subscribe('demo.message where room = "lobby"', details=caller(1))["topic"]
    book.created(1, {"id": 77, "uri": topic})
    book.created(1, {"id": 78, "uri": "gateway.event.demo.message"})  # not a query topic: ignored
    assert book.topics_for("demo.message", MESSAGE) == [(topic, [])]
    book.deleted(1, 77)
    assert book.topics_for("demo.message", MESSAGE) == []
    book.created(2, {"id": 79, "uri": topic})  # subscribed again later: back from the store
    assert book.topics_for("demo.message", MESSAGE) == [(topic, [])]


def test_a_granted_query_nobody_subscribes_to_expires(book: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    book.subscribe('demo.message where room = "lobby"', details=caller(1))
    import components.delivery.live_queries as module

    monkeypatch.setattr(module, "UNCONFIRMED_TTL", -1.0)
    book.expire_unconfirmed()
    assert book.topics_for("demo.message", MESSAGE) == []


def test_unsubscribe_and_the_list(book: Any) -> None:
    sub = book.subscribe('demo.message where room = "lobby"', details=caller(1))
    assert [s["id"] for s in book.subscriptions(details=caller(1))] == [sub["id"]]
    assert book.subscriptions(details=caller(2)) == []
    with pytest.raises(ApplicationError) as exc:
        book.unsubscribe(sub["id"], details=caller(2))
    assert exc.value.error == "gateway.error.no_such_subscription"
    assert book.unsubscribe(sub["id"], details=caller(1)) == (1, sub["topic"].removeprefix("gateway.query."))
    assert book.subscriptions(details=caller(1)) == []


def test_an_unsubscribed_session_is_excluded_until_it_leaves_the_topic(book: Any) -> None:
    sub = book.subscribe('demo.message where room = "lobby"', details=caller(1))
    book.subscribe('demo.message where room = "lobby"', details=caller(2))
    book.created(1, {"id": 5, "uri": sub["topic"]})
    book.unsubscribe(sub["id"], details=caller(1))
    assert book.topics_for("demo.message", MESSAGE) == [(sub["topic"], [1])]
    book.unsubscribed(1, 5)
    assert book.topics_for("demo.message", MESSAGE) == [(sub["topic"], [])]


def test_wildcards_expand_to_the_classes_the_caller_may_see(book: Any) -> None:
    anonymous = book.subscribe("demo.*", details=caller(1))
    staff = book.subscribe("demo.*", details=caller(2, "backend"))
    assert anonymous["query"] == "demo.message"
    assert staff["query"] == "demo.alert, demo.message, demo.order"
    assert anonymous["topic"] != staff["topic"]
    alert = {"level": "high", "text": "x"}
    assert [t for t, _ in book.topics_for("demo.alert", alert)] == [staff["topic"]]


def test_errors_are_wamp_errors_with_the_position(book: Any) -> None:
    with pytest.raises(ApplicationError) as exc:
        book.subscribe("demo.message where", details=caller(1))
    assert exc.value.error == "gateway.error.invalid_query" and exc.value.kwargs["position"] is not None
    with pytest.raises(ApplicationError) as exc:
        book.subscribe("demo.alert", details=caller(1))
    assert exc.value.error == "gateway.error.not_authorized"
    assert book.subscribe("demo.alert", details=caller(1, "backend"))["query"] == "demo.alert"


def test_a_session_may_hold_only_so_many(book: Any) -> None:
    for room in "abc":
        book.subscribe(f'demo.message where room = "{room}"', details=caller(1))
    with pytest.raises(ApplicationError, match="at most 3"):
        book.subscribe('demo.message where room = "d"', details=caller(1))


def test_a_session_that_leaves_loses_its_grants(book: Any) -> None:
    topic = book.subscribe("demo.message", details=caller(5))["topic"]
    book.session_left(5)
    assert not book.authorize({"session": 5, "authrole": "anonymous"}, topic, "subscribe")["allow"]


def test_a_class_whose_row_filter_changes_is_no_longer_delivered_on_older_topics(tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"
    filtered = tmp_path / "filtered.yaml"
    plain.write_text("events:\n  t.note:\n    fields: {text: string}\n  t.other:\n    fields: {text: string}\n")
    filtered.write_text(plain.read_text().replace("  t.note:\n", "  t.note:\n    row_filter: 'text = $user'\n"))
    current = {"registry": Registry.load([], [str(plain)])}
    store = SqliteStore(tmp_path / "s.sqlite3")
    try:
        book: Any = Now(QuerySubscriptions(Inline(store), lambda: current["registry"], QueriesConfig()))
        topic = book.subscribe("t.*", details=caller(1, "user"))["topic"]
        book.created(1, {"id": 5, "uri": topic})
        assert book.topics_for("t.note", {"text": "x"}) == [(topic, [])]
        current["registry"] = Registry.load([], [str(filtered)])
        book.recompile()
        assert book.topics_for("t.note", {"text": "x"}) == [], "made before the filter: not delivered"
        assert book.topics_for("t.other", {"text": "x"}) == [(topic, [])], "the other class still is"
        current["registry"] = Registry.load([], [str(plain)])
        book.recompile()
        assert book.topics_for("t.note", {"text": "x"}) == [(topic, [])], "the rules it was made under again"
    finally:
        store.close()


def test_a_query_row_from_before_filters_were_recorded_fails_closed(tmp_path: Path) -> None:
    filtered = tmp_path / "filtered.yaml"
    filtered.write_text("events:\n  t.note:\n    row_filter: 'text = $user'\n    fields: {text: string}\n")
    store = SqliteStore(tmp_path / "s.sqlite3")
    try:
        store.save_query("legacy", "t.note")  # as an older version wrote it: no filters recorded
        book = Now(QuerySubscriptions(Inline(store), lambda: Registry.load([], [str(filtered)]), QueriesConfig()))
        book.created(1, {"id": 9, "uri": "gateway.query.legacy"})
        assert book.topics_for("t.note", {"text": "x"}) == [], "made when t.note had no filter: not delivered"
        store.save_query("legacy", "t.note", ["t.note"], {"t.note": "text = $user"})
        assert store.query_filters("legacy") == {"t.note": "text = $user"}, "recorded by the next grant"
    finally:
        store.close()
