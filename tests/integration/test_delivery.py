"""POST /events → the envelope reaches WAMP subscribers (Python and JS), in order."""

import shutil
from datetime import datetime

import pytest

from tests.support.harness import GatewayNode
from tests.support.jsclient import js_subscriber_receives
from tests.support.wamp import WampClient

TOPIC = "gateway.event.demo.message"
MESSAGE = {"room": "lobby", "text": "hello", "author": "ann"}
pytestmark = pytest.mark.integration


@pytest.mark.parametrize("serializer", ["json", "msgpack", "cbor"])
def test_a_posted_event_reaches_a_python_subscriber(node: GatewayNode, serializer: str) -> None:
    with WampClient(node.ws_url, serializer=serializer) as client:
        assert client.details.authrole == "anonymous"
        client.subscribe(TOPIC)
        answer = node.post_event("demo.message", MESSAGE, id=f"greeting-{serializer}")
        assert answer.status == 202
        assert answer.body["id"] == f"greeting-{serializer}" and isinstance(answer.body["seq"], int)
        (envelope,) = client.take(1)
    assert envelope == {"event": "demo.message", "id": answer.body["id"], "seq": answer.body["seq"],
                        "time": envelope["time"], "data": MESSAGE}
    assert envelope["time"].endswith("Z")
    datetime.fromisoformat(envelope["time"].replace("Z", "+00:00"))


def test_an_event_without_id_gets_one(node: GatewayNode) -> None:
    with WampClient(node.ws_url) as client:
        client.subscribe(TOPIC)
        answer = node.post_event("demo.message", MESSAGE)
        (envelope,) = client.take(1)
    assert answer.status == 202 and len(answer.body["id"]) == 32 and envelope["id"] == answer.body["id"]


def test_a_posted_event_reaches_an_autobahn_js_subscriber_in_node(node: GatewayNode) -> None:
    assert shutil.which("node"), "Node.js is part of this machine's toolset"
    sent: list[dict[str, object]] = []

    def post() -> None:
        sent.extend(node.post_event("demo.message", {**MESSAGE, "text": f"js {i}"}).body for i in range(2))

    got = js_subscriber_receives(node.ws_url, TOPIC, 2, post)
    assert [(e["id"], e["seq"], e["data"]["text"]) for e in got] == [
        (s["id"], s["seq"], f"js {i}") for i, s in enumerate(sent)]


def test_a_hundred_events_arrive_in_order_with_increasing_seq(node: GatewayNode) -> None:
    with WampClient(node.ws_url, serializer="msgpack") as client:
        client.subscribe(TOPIC)
        answers = [node.post_event("demo.message", {**MESSAGE, "text": str(i)}) for i in range(100)]
        got = client.take(100, timeout=30)
    assert all(a.status == 202 for a in answers)
    assert [e["data"]["text"] for e in got] == [str(i) for i in range(100)]
    seqs = [e["seq"] for e in got]
    assert seqs == [a.body["seq"] for a in answers]
    assert all(b > a for a, b in zip(seqs, seqs[1:]))


def test_every_subscriber_gets_every_event(node: GatewayNode) -> None:
    clients = [WampClient(node.ws_url).connect() for _ in range(5)]
    try:
        for c in clients:
            c.subscribe(TOPIC)
        seqs = [node.post_event("demo.message", MESSAGE).body["seq"] for _ in range(3)]
        for c in clients:
            assert [e["seq"] for e in c.take(3)] == seqs
    finally:
        for c in clients:
            c.close()


def test_anonymous_clients_may_only_subscribe_to_public_events(node: GatewayNode) -> None:
    with WampClient(node.ws_url) as client:
        for topic in ("gateway.event.demo.order", "gateway.event.demo.alert", "gateway.event.demo"):
            with pytest.raises(Exception, match="not authorized"):
                client.subscribe(topic)
        with pytest.raises(Exception, match="not authorized"):
            client.publish(TOPIC, {"event": "demo.message", "data": MESSAGE})
        with pytest.raises(Exception, match="not authorized"):
            client.call("gateway.internal.publish", "demo.message", MESSAGE)


def test_the_demo_page_and_autobahn_browser_are_served(node: GatewayNode) -> None:
    import urllib.request

    base = f"http://127.0.0.1:{node.router_port}"
    with urllib.request.urlopen(base + "/", timeout=5) as page:
        html = page.read().decode()
    assert "/vendor/autobahn.min.js" in html
    with urllib.request.urlopen(base + "/vendor/autobahn.min.js", timeout=5) as lib:
        assert lib.status == 200 and len(lib.read()) > 10000
