"""Batched delivery over a real node, with plain autobahn subscribers (no client library of ours).

``gateway.subscribe(query, batch=True)`` answers the query's batched topic; there one WAMP event carries
the envelopes of one turn of the dispatcher (one ``POST /events/batch`` is one turn), one per positional
argument, in seq order. Unbatched subscribers of the same query see today's events, one envelope each.
Events that reach different sessions never share a batch.
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError

from tests.support.harness import API_KEY, GatewayNode
from tests.support.wamp import WampClient

pytestmark = pytest.mark.integration


def room_query(room: str) -> str:
    return f'demo.message where room = "{room}"'


def message(room: str, n: int) -> dict[str, Any]:
    return {"room": room, "text": str(n), "author": "test"}


class Events:
    """Every WAMP event of one topic, with all its positional arguments."""

    def __init__(self, client: WampClient, topic: str) -> None:
        self.got: queue.Queue[tuple[Any, ...]] = queue.Queue()

        async def sub() -> Any:
            assert client.session is not None
            return await client.session.subscribe(lambda *args, **kw: self.got.put(args), topic)

        client._run(sub())

    def envelopes(self, n: int, timeout: float = 10) -> list[tuple[Any, ...]]:
        """WAMP events (each a tuple of envelopes) until they hold ``n`` envelopes."""
        deadline = time.monotonic() + timeout
        events: list[tuple[Any, ...]] = []
        while sum(len(e) for e in events) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"received {sum(len(e) for e in events)} of {n} envelopes: {events}")
            try:
                events.append(self.got.get(timeout=remaining))
            except queue.Empty:
                continue
        return events

    def quiet(self, seconds: float = 0.5) -> list[tuple[Any, ...]]:
        """Whatever else arrives within a short while (to show that nothing more does)."""
        time.sleep(seconds)
        extra = []
        while True:
            try:
                extra.append(self.got.get_nowait())
            except queue.Empty:
                return extra


def post_batch(node: GatewayNode, events: list[dict[str, Any]]) -> list[int]:
    r = node.request("POST", "/events/batch", json.dumps({"events": events}).encode(),
                     {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
    assert r.status == 200, (r.status, r.body)
    results = r.body["results"]
    assert all("seq" in x for x in results), results
    return [int(x["seq"]) for x in results]


def seqs(events: list[tuple[Any, ...]]) -> list[int]:
    return [int(e["seq"]) for event in events for e in event]


def test_subscribe_with_batch_answers_a_topic_of_its_own_beside_the_unbatched_one(node: GatewayNode) -> None:
    room = f"r-{uuid.uuid4().hex[:8]}"
    with WampClient(node.ws_url) as client:
        plain = client.call("gateway.subscribe", room_query(room))
        batched = client.call("gateway.subscribe", room_query(room), batch=True)
        assert set(plain) == {"id", "topic", "query", "persistent"}
        assert set(batched) == {"id", "topic", "query", "persistent", "batch"} and batched["batch"] is True
        assert plain["topic"].startswith("gateway.query.") and batched["query"] == plain["query"]
        assert batched["topic"] == "gateway.batch.query." + plain["topic"][len("gateway.query."):]
        # A bare class name has a batched topic too.
        whole = client.call("gateway.subscribe", "demo.message", False, batch=True)
        assert whole["topic"].startswith("gateway.batch.query.") and whole["batch"] is True
        with pytest.raises(ApplicationError) as exc:  # by name only: the second positional stays persistent
            client.call("gateway.subscribe", "demo.message", False, True)
        assert exc.value.error == "gateway.error.invalid_argument" and "by position" in exc.value.args[0]
        with pytest.raises(ApplicationError) as exc:
            client.call("gateway.subscribe", room_query(room), batch="yes")
        assert exc.value.error == "gateway.error.invalid_argument"


def test_a_batched_topic_is_refused_to_a_session_that_was_not_granted_its_query(node: GatewayNode) -> None:
    room = f"r-{uuid.uuid4().hex[:8]}"
    with WampClient(node.ws_url) as owner, WampClient(node.ws_url) as other:
        topic = owner.call("gateway.subscribe", room_query(room), batch=True)["topic"]
        with pytest.raises(ApplicationError) as exc:
            other.subscribe(topic)
        assert exc.value.error == "wamp.error.not_authorized"
        # Granted the unbatched topic, a session may take the batched twin too (the same grant).
        plain = other.call("gateway.subscribe", room_query(room))["topic"]
        other.subscribe(topic)
        assert plain != topic


def test_batched_and_unbatched_subscribers_get_every_event_in_seq_order(node: GatewayNode) -> None:
    """One POST /events/batch of 20 is one turn: the batched subscriber (anonymous) gets them in fewer
    WAMP events than envelopes, the unbatched one 20 events of one envelope each, both in seq order."""
    room = f"r-{uuid.uuid4().hex[:8]}"
    with WampClient(node.ws_url) as batched_client, WampClient(node.ws_url, serializer="msgpack") as plain_client:
        batched = Events(batched_client, batched_client.call("gateway.subscribe", room_query(room), batch=True)["topic"])
        plain = Events(plain_client, plain_client.call("gateway.subscribe", room_query(room))["topic"])
        first = node.post_event("demo.message", message(room, 0))
        assert first.status == 202
        # At a low rate a batch is one envelope: exactly today's event.
        assert batched.envelopes(1) == plain.envelopes(1)
        sent = post_batch(node, [{"event": "demo.message", "data": message(room, n)} for n in range(1, 21)])
        assert sent == sorted(sent)
        got_batched = batched.envelopes(20)
        got_plain = plain.envelopes(20)
        assert seqs(got_batched) == sent and seqs(got_plain) == sent
        assert all(len(e) == 1 for e in got_plain), "unbatched: one envelope per event, as before"
        assert max(len(e) for e in got_batched) > 1, [len(e) for e in got_batched]
        assert len(got_batched) < 20
        assert [e["data"]["text"] for event in got_batched for e in event] == [str(n) for n in range(1, 21)]
        assert batched.quiet() == [] and plain.quiet() == []


def test_an_audience_restricted_event_never_reaches_others_and_never_shares_a_batch(node: GatewayNode) -> None:
    room = f"r-{uuid.uuid4().hex[:8]}"
    query = room_query(room)
    with node.client("alice") as alice, node.client("bob") as bob, WampClient(node.ws_url) as anonymous:
        topics = [c.call("gateway.subscribe", query, batch=True)["topic"] for c in (alice, bob)]
        assert topics[0] == topics[1], "the same query, the same batched topic"
        to_alice = Events(alice, topics[0])
        to_bob = Events(bob, topics[1])
        plain = Events(anonymous, anonymous.call("gateway.subscribe", query)["topic"])
        items: list[dict[str, Any]] = [{"event": "demo.message", "data": message(room, n)} for n in range(1, 8)]
        items[3]["audience"] = {"users": ["alice"]}
        sent = post_batch(node, items)
        private = sent[3]
        got_alice = to_alice.envelopes(7)
        got_bob = to_bob.envelopes(6)
        got_plain = plain.envelopes(6)
        assert seqs(got_alice) == sent
        assert seqs(got_bob) == seqs(got_plain) == [s for s in sent if s != private]
        # The restricted event is a batch of its own: the runs around it are batches of their own too.
        assert [[int(e["seq"]) for e in event] for event in got_alice if any(e["seq"] == private for e in event)] \
            == [[private]]
        assert [len(e) for e in got_alice] == [3, 1, 3], [len(e) for e in got_alice]
        assert to_bob.quiet() == [] and plain.quiet() == [] and to_alice.quiet() == []


def test_a_persistent_batched_subscription_replays_a_list_of_envelopes(node: GatewayNode) -> None:
    room = f"r-{uuid.uuid4().hex[:8]}"
    with node.client("carol") as carol:
        sub = carol.call("gateway.subscribe", room_query(room), True, batch=True)
        assert sub["persistent"] is True and sub["batch"] is True and sub["topic"].startswith("gateway.batch.query.")
        events = Events(carol, sub["topic"])
        sent = post_batch(node, [{"event": "demo.message", "data": message(room, n)} for n in range(5)])
        assert seqs(events.envelopes(5)) == sent
        replay = carol.call("gateway.replay", sub["id"], sent[0] - 1)
        assert [e["seq"] for e in replay["events"]] == sent
        # The same query again on a new call: resumed, still batched.
        again = carol.call("gateway.subscribe", room_query(room), persistent=True, batch=True)
        assert again["id"] == sub["id"] and again["resumed"] is True and again["topic"] == sub["topic"]
        carol.call("gateway.unsubscribe", sub["id"])
