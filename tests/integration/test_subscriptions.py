"""Subscribing by query over WAMP: matching, errors, shared topics, grants, unsubscribe."""

from __future__ import annotations

import queue
import time

import pytest
from autobahn.wamp.exception import ApplicationError

from tests.support.harness import GatewayNode
from tests.support.jsclient import js_subscriber_receives
from tests.support.wamp import WampClient

pytestmark = pytest.mark.integration
LOBBY = 'demo.message where room = "lobby"'


def message(room: str, text: str) -> dict[str, str]:
    return {"room": room, "text": text, "author": "test"}


def quiet(client: WampClient, seconds: float = 0.5) -> list[object]:
    """Whatever else arrives within a short while (to show that nothing more does)."""
    time.sleep(seconds)
    extra = []
    while True:
        try:
            extra.append(client.events.get_nowait())
        except queue.Empty:
            return extra


def test_a_query_subscription_receives_only_matching_events(node: GatewayNode) -> None:
    with WampClient(node.ws_url) as client:
        sub = client.call("gateway.subscribe", LOBBY)
        assert set(sub) == {"id", "topic", "query", "persistent"}
        assert sub["persistent"] is False and sub["topic"].startswith("gateway.query.")
        assert sub["query"] == 'demo.message where room = "lobby"'
        client.subscribe(sub["topic"])
        node.post_event("demo.message", message("kitchen", "no"))
        hit = node.post_event("demo.message", message("lobby", "yes"))
        (envelope,) = client.take(1)
        assert envelope["seq"] == hit.body["seq"] and envelope["data"]["text"] == "yes"
        assert quiet(client) == []


def test_equal_queries_share_one_topic_and_one_publish(node: GatewayNode) -> None:
    with WampClient(node.ws_url) as a, WampClient(node.ws_url, serializer="msgpack") as b, \
            node.backend_client() as spy:
        first = a.call("gateway.subscribe", "demo.message where author = 'x' and room in ['b', 'a', 'a']")
        second = b.call("gateway.subscribe", 'demo.message   WHERE (room IN ["a","b"]) AND author == "x"')
        assert first["topic"] == second["topic"] and first["query"] == second["query"]
        a.subscribe(first["topic"])
        b.subscribe(second["topic"])
        spy.subscribe(first["topic"])
        sent = node.post_event("demo.message", {"room": "a", "text": "t", "author": "x"})
        for client in (a, b, spy):
            (envelope,) = client.take(1)
            assert envelope["seq"] == sent.body["seq"]
        assert quiet(spy) == [], "one publish per distinct query, not one per client"


def test_a_topic_that_was_not_granted_is_refused(node: GatewayNode) -> None:
    with WampClient(node.ws_url) as owner, WampClient(node.ws_url) as other:
        topic = owner.call("gateway.subscribe", 'demo.message where room = "secret"')["topic"]
        with pytest.raises(ApplicationError) as exc:
            other.subscribe(topic)
        assert exc.value.error == "wamp.error.not_authorized"
        with pytest.raises(ApplicationError):
            other.subscribe("gateway.query.0123456789abcdef")


def test_unsubscribe_stops_delivery_even_if_the_client_does_not(node: GatewayNode) -> None:
    with WampClient(node.ws_url) as client:
        sub = client.call("gateway.subscribe", 'demo.message where room = "gone"')
        client.subscribe(sub["topic"])
        assert [s["id"] for s in client.call("gateway.subscriptions")] == [sub["id"]]
        node.post_event("demo.message", message("gone", "1"))
        client.take(1)
        client.call("gateway.unsubscribe", sub["id"])
        assert client.call("gateway.subscriptions") == []
        node.post_event("demo.message", message("gone", "2"))
        assert quiet(client) == []
        with pytest.raises(ApplicationError) as exc:
            client.call("gateway.unsubscribe", sub["id"])
        assert exc.value.error == "gateway.error.no_such_subscription"


def test_a_topic_is_dropped_when_its_last_subscriber_leaves(node: GatewayNode) -> None:
    with node.backend_client() as admin:
        with WampClient(node.ws_url) as client:
            topic = client.call("gateway.subscribe", 'demo.message where room = "brief"')["topic"]
            client.subscribe(topic)
            assert admin.call("wamp.subscription.lookup", topic) is not None
        deadline = time.monotonic() + 5
        while admin.call("wamp.subscription.lookup", topic) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert admin.call("wamp.subscription.lookup", topic) is None


@pytest.mark.parametrize("query,error,fragment", [
    ("demo.message where room = ", "gateway.error.invalid_query", "column"),
    ("demo.order where amout > 1", "gateway.error.not_authorized", "demo.order"),
    ("demo.message where rom = 'x'", "gateway.error.invalid_query", "did you mean 'room'"),
    ("demo.nothing", "gateway.error.invalid_query", "demo.nothing"),
    ("demo.message where room > 5", "gateway.error.invalid_query", "room"),
])
def test_bad_queries_are_refused_with_a_readable_error(node: GatewayNode, query: str, error: str,
                                                        fragment: str) -> None:
    with WampClient(node.ws_url) as client:
        with pytest.raises(ApplicationError) as exc:
            client.call("gateway.subscribe", query)
    assert exc.value.error == error
    assert fragment in str(exc.value.args[0])


def test_a_syntax_error_carries_its_position(node: GatewayNode) -> None:
    with WampClient(node.ws_url) as client:
        with pytest.raises(ApplicationError) as exc:
            client.call("gateway.subscribe", "demo.message where room = = 'x'")
    assert exc.value.kwargs["position"] == 27
    assert "^" in exc.value.args[0]


def test_an_autobahn_js_client_subscribes_by_query(node: GatewayNode) -> None:
    sent: list[dict[str, object]] = []

    def post() -> None:
        node.post_event("demo.message", message("elsewhere", "no"))
        sent.append(node.post_event("demo.message", message("lobby", "js")).body)

    (envelope,) = js_subscriber_receives(node.ws_url, "query:" + LOBBY, 1, post)
    assert envelope["seq"] == sent[0]["seq"] and envelope["data"]["text"] == "js"
