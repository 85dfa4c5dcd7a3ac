"""The edge limits on a real node, every way in: a body nested 100,000 deep (which killed the container
with SIGSEGV: json.loads overflowed the C stack under Crossbar's raised recursion limit), integers past
64 bits (a 500 before), NaN. Each gets its refusal over HTTP, XML-RPC and RabbitMQ; the node stays up and
the next valid event is accepted and delivered."""

from __future__ import annotations

import json
import time
import uuid
import xmlrpc.client
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.amqp import Broker, amqp_config, temporary_queues
from tests.support.harness import API_KEY, GatewayNode, Response, running_node

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {API_KEY}"}
TOPIC = "gateway.event.demo.message"
DEEP = 100_000
INT_RANGE = "integers must be within the signed 64-bit range, -9223372036854775808 to 9223372036854775807"
ORDER = {"order_id": 10**40, "amount": 9.5, "country": "AR", "tags": [], "customer": {"id": 1, "name": "A"}}
#: What the node's log says when a worker dies (a crash, not a clean stop).
CRASHED = ("signal 11", "ended with error", "process ended by signal")


@dataclass
class Edge:
    node: GatewayNode
    broker: Broker
    queue: str
    dead: str
    dispatchers: int  # as many as the node started with: one per container


@pytest.fixture(scope="module")
def edge() -> Iterator[Edge]:
    """A node of the module's own (it is sent what used to kill containers), consuming queues of its own."""
    with Broker() as broker, temporary_queues(broker, "edge", "edge-dead") as (queue, dead):
        # Bodies up to 8 MiB: an XML-RPC call 100,000 arrays deep is 4.4 MB, and must reach the parser.
        config = {"amqp": amqp_config(queue, dead, reconnect_max_delay=1), "bridge": {"max_body_bytes": 8 << 20,
                                                                                        # both bridges' parsers
                                                                                        "hand_off": False}}
        with running_node(config) as node:
            deadline = time.monotonic() + 30
            while broker.consumers(queue) != 1:  # a bridge has taken the queue
                assert time.monotonic() < deadline, "no bridge consumes the queue"
                time.sleep(0.05)
            health = node.get("/healthz")
            assert health.status == 200, health.body
            yield Edge(node, broker, queue, dead, health.body["dispatchers"])


def post(node: GatewayNode, path: str, body: bytes) -> Response:
    return node.request("POST", path, body, AUTH, timeout=60)


def rpc(node: GatewayNode, body: bytes) -> Any:
    """The result of an XML-RPC call (xmlrpc.client.Fault raised for a fault), as a client reads it."""
    r = post(node, "/RPC2", body)
    assert r.status == 200, (r.status, r.body)
    (result,), _ = xmlrpc.client.loads(r.body.encode(), use_builtin_types=True)
    return result


def rpc_fault(node: GatewayNode, body: bytes) -> xmlrpc.client.Fault:
    with pytest.raises(xmlrpc.client.Fault) as exc:
        rpc(node, body)
    return exc.value


def publish_call(data_xml: bytes, method: str = "publish", event: str = "demo.order") -> bytes:
    """``publish(event, <data>)`` (or ``publish_batch([{event, data}])``) with the data's XML as given."""
    start = (b"<?xml version='1.0'?><methodCall><methodName>" + method.encode() + b"</methodName><params>")
    if method == "publish":
        return (start + b"<param><value><string>" + event.encode() + b"</string></value></param><param><value>"
                + data_xml + b"</value></param></params></methodCall>")
    return (start + b"<param><value><array><data><value><struct><member><name>event</name><value><string>"
            + event.encode() + b"</string></value></member><member><name>data</name><value>" + data_xml
            + b"</value></member></struct></value></data></array></value></param></params></methodCall>")


def order_xml(order_id: bytes = b"<i8>" + str(10**40).encode() + b"</i8>",
              amount: bytes = b"<double>9.5</double>") -> bytes:
    return (b"<struct><member><name>order_id</name><value>" + order_id + b"</value></member>"
            b"<member><name>amount</name><value>" + amount + b"</value></member>"
            b"<member><name>country</name><value><string>AR</string></value></member>"
            b"<member><name>tags</name><value><array><data></data></array></value></member>"
            b"<member><name>customer</name><value><struct><member><name>id</name><value><int>1</int></value>"
            b"</member><member><name>name</name><value><string>A</string></value></member></struct></value>"
            b"</member></struct>")


def still_serving(edge: Edge, way: str) -> None:
    """No worker died, every container's dispatcher is there, and a valid event sent ``way`` is delivered."""
    node = edge.node
    log = node.log_text()
    assert not [line for line in log.splitlines() if any(mark in line for mark in CRASHED)], node.log_tail()
    health = node.get("/healthz")
    assert health.status == 200 and health.body["dispatchers"] == edge.dispatchers, health.body
    text = f"after the refusals, by {way}: {uuid.uuid4().hex}"
    message = {"room": "edge", "text": text, "author": "t"}
    with node.client() as client:
        client.subscribe(TOPIC)
        if way == "http":
            r = node.post_event("demo.message", message)
            assert r.status == 202, r.body
        elif way == "xmlrpc":
            body = xmlrpc.client.dumps(("demo.message", message), "publish").encode()
            assert isinstance(rpc(node, body)["seq"], int)
        else:
            edge.broker.publish(edge.queue, {"event": "demo.message", "data": message})
        [envelope] = client.take(1, timeout=30)
    assert envelope["data"]["text"] == text


# -- 100,000 nested brackets ---------------------------------------------------------------------


def test_a_body_nested_100k_deep_is_a_400_on_every_json_route_and_kills_nothing(edge: Edge) -> None:
    deep = b"[" * DEEP + b"]" * DEEP
    in_event = b'{"event": "demo.message", "data": {"x": ' + deep + b"}}"
    # Several times each: the kernel spreads connections over the containers' bridges (SO_REUSEPORT),
    # and each must refuse it. Before, two of these took both containers down.
    for path, body in [("/events", deep), ("/events", in_event), ("/events/batch", deep),
                       ("/events/batch", b'{"events": [' + in_event + b"]}"), ("/tickets", deep),
                       ("/subscriptions", deep)] * 3:
        r = post(edge.node, path, body)
        assert (r.status, r.body["error"]) == (400, "too_deep"), (path, r.status, r.body)
        assert r.body["message"].startswith("the body nests arrays and objects more than 32 levels deep "
                                            "(bridge.max_depth), at line 1, column "), r.body
    still_serving(edge, "http")


def test_an_xmlrpc_call_nested_100k_deep_is_a_fault_and_kills_nothing(edge: Edge) -> None:
    deep = b"<array><data><value>" * DEEP + b"<int>1</int>" + b"</value></data></array>" * DEEP
    for body in [publish_call(deep), publish_call(deep, "publish_batch")] * 3:
        fault = rpc_fault(edge.node, body)
        assert fault.faultCode == 400
        assert fault.faultString.startswith("too_deep: the call nests arrays and structs more than 34 levels deep "
                                            "(bridge.max_depth is 32, plus 2), at line 1, column ")
    still_serving(edge, "xmlrpc")


def test_a_rabbitmq_message_nested_100k_deep_is_dead_lettered_and_kills_nothing(edge: Edge) -> None:
    edge.broker.publish(edge.queue, b"[" * DEEP + b"]" * DEEP, headers={"trace": "deep"})
    copy = edge.broker.wait_get(edge.dead, timeout=30)
    headers = copy.headers
    assert (headers["x-gateway-status"], headers["x-gateway-error"], headers["trace"]) == (400, "too_deep", "deep")
    assert headers["x-gateway-message"].startswith("the body nests arrays and objects more than 32 levels deep")
    assert copy.body == b"[" * DEEP + b"]" * DEEP
    still_serving(edge, "amqp")


# -- numbers events cannot carry ------------------------------------------------------------------


def test_an_order_id_of_10_to_the_40_is_a_400_naming_it_on_every_way_in(edge: Edge) -> None:
    node = edge.node
    detail = f"{INT_RANGE}, not {10**40}"
    r = node.post_event("demo.order", ORDER)
    assert (r.status, r.body) == (400, {"error": "invalid_number", "message": f"data.order_id: {detail}",
                                        "details": [{"path": "data.order_id", "message": detail,
                                                     "type": "int_range"}]})
    r = post(node, "/events/batch", json.dumps({"events": [{"event": "demo.order", "data": ORDER}]}).encode())
    assert (r.status, r.body["error"], r.body["message"]) == (400, "invalid_number", f"events.0.data.order_id: {detail}")
    for method in ("publish", "publish_batch"):
        fault = rpc_fault(node, publish_call(order_xml(), method))
        where = "data.order_id" if method == "publish" else "events.0.data.order_id"
        assert (fault.faultCode, fault.faultString) == (400, f"invalid_number: {where}: {detail}")
    edge.broker.publish(edge.queue, json.dumps({"event": "demo.order", "data": ORDER}).encode())
    headers = edge.broker.wait_get(edge.dead, timeout=30).headers
    assert (headers["x-gateway-status"], headers["x-gateway-error"], headers["x-gateway-message"]) == (
        400, "invalid_number", f"data.order_id: {detail}")
    assert json.loads(headers["x-gateway-details"])[0]["path"] == "data.order_id"
    # The 64-bit edge itself is fine.
    r = node.post_event("demo.order", {**ORDER, "order_id": 2**63 - 1})
    assert r.status == 202, r.body


def test_nan_and_infinity_are_refused_on_every_way_in(edge: Edge) -> None:
    node = edge.node
    for literal in (b"NaN", b"Infinity", b"-Infinity", b"1e400"):
        body = json.dumps({"event": "demo.order", "data": {**ORDER, "order_id": 1}}).replace(
            '"amount": 9.5', '"amount": ' + literal.decode()).encode()
        r = post(node, "/events", body)
        assert (r.status, r.body["error"], r.body["message"]) == (
            400, "invalid_number", "data.amount: NaN and Infinity are not JSON numbers"), literal
    fault = rpc_fault(node, publish_call(order_xml(b"<int>1</int>", b"<double>nan</double>")))
    assert (fault.faultCode, fault.faultString) == (
        400, "invalid_number: data.amount: NaN and Infinity are not JSON numbers")
    edge.broker.publish(edge.queue, json.dumps({"event": "demo.order", "data": {**ORDER, "order_id": 1,
                                                                                "amount": float("nan")}}).encode())
    headers = edge.broker.wait_get(edge.dead, timeout=30).headers
    assert (headers["x-gateway-status"], headers["x-gateway-error"]) == (400, "invalid_number")
    still_serving(edge, "http")


def test_the_served_schemas_say_the_integer_range(edge: Edge) -> None:
    openapi = edge.node.get("/openapi.json").body
    catalog = edge.node.request("GET", "/catalog", headers=AUTH).body
    order = next(c for c in catalog["classes"] if c["name"] == "demo.order")["schema"]
    assert (order["properties"]["order_id"]["format"], order["properties"]["order_id"]["maximum"]) == (
        "int64", 2**63 - 1)
    assert '"format": "int64"' in json.dumps(openapi) and '"minimum": -9223372036854775808' in json.dumps(openapi)
