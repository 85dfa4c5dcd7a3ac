"""No request is answered 500 because of what it contains (issue 15, point 2), case by case, every way in.

``test_fuzz_openapi.py`` fuzzes what the OpenAPI document describes; ``test_edge_limits.py`` holds integers
past 64 bits, NaN and deep nesting on every way in. Here: what neither reaches. Each answer is a 4xx whose
body names the field (HTTP), a fault saying what was wrong (XML-RPC), or a dead-lettered copy with the reason
(RabbitMQ). Found 500s, each with its regression test below:

- a lone UTF-16 surrogate (JSON ``"\\ud800"``) in a ticket's or a subscription's user, a query, or an
  event's audience reached the WAMP serializer (UnicodeEncodeError); in event data it was a 400 that named
  no field;
- ``GET /subscriptions?user=`` (an empty user) reached the dispatcher, whose refusal the bridge did not expect.
"""

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
MESSAGE = {"room": "lobby", "text": "hi", "author": "a"}
ORDER = {"order_id": 1, "amount": 9.5, "country": "AR", "tags": [], "customer": {"id": 1, "name": "A"}}
JSON_ROUTES = ["/events", "/events/batch", "/tickets", "/subscriptions"]
LONE = "strings must be valid Unicode, without lone UTF-16 surrogates (\\ud800 to \\udfff); this one has "
TWICE = "the key appears more than once in one object; each key may appear once"


@dataclass
class Ways:
    node: GatewayNode
    broker: Broker
    queue: str
    dead: str


@pytest.fixture(scope="module")
def ways() -> Iterator[Ways]:
    """A node of the module's own consuming queues of its own: HTTP, XML-RPC and RabbitMQ."""
    with Broker() as broker, temporary_queues(broker, "errors", "errors-dead") as (queue, dead):
        with running_node({"amqp": amqp_config(queue, dead, reconnect_max_delay=1)}) as node:
            deadline = time.monotonic() + 30
            while broker.consumers(queue) != 1:  # a bridge has taken the queue
                assert time.monotonic() < deadline, "no bridge consumes the queue"
                time.sleep(0.05)
            yield Ways(node, broker, queue, dead)


def post(node: GatewayNode, path: str, body: bytes, content_type: str = "application/json") -> Response:
    """POST ``body`` as it is; any answer but a 5xx, whose body is JSON (or XML-RPC's XML)."""
    r = node.request("POST", path, body, {**AUTH, "Content-Type": content_type}, timeout=60)
    assert r.status < 500, (path, body[:200], r.status, r.body)
    return r


def refused(node: GatewayNode, path: str, body: bytes, status: int, error: str) -> dict[str, Any]:
    r = post(node, path, body)
    assert (r.status, r.body["error"]) == (status, error), (path, body[:200], r.body)
    assert isinstance(r.body["message"], str) and r.body["message"]
    return dict(r.body)


def fault(node: GatewayNode, body: bytes) -> xmlrpc.client.Fault:
    r = post(node, "/RPC2", body, "text/xml")
    assert r.status == 200, (r.status, r.body)
    with pytest.raises(xmlrpc.client.Fault) as exc:
        xmlrpc.client.loads(r.body.encode(), use_builtin_types=True)
    return exc.value


def dead_lettered(ways: Ways, body: bytes) -> dict[str, Any]:
    """The reason headers of ``body``'s copy in the dead-letter queue, the copy's body checked unchanged."""
    ways.broker.publish(ways.queue, body)
    copy = ways.broker.wait_get(ways.dead, timeout=30)
    assert copy.body == body
    return copy.headers


# -- lone surrogates -------------------------------------------------------------------------------


@pytest.mark.parametrize("path,body,field,shown", [
    # Found by the fuzzing: each of these was a 500 (the WAMP call could not be serialized).
    ("/tickets", b'{"user": "\\ud800"}', "user", "\\ud800 at character 1"),
    ("/subscriptions", b'{"user": "a\\udbff", "query": "demo.message"}', "user", "\\udbff at character 2"),
    ("/subscriptions", b'{"user": "a", "query": "demo.message where text = \'\\ud800\'"}', "query",
     "\\ud800 at character 28"),
    ("/events", b'{"event": "demo.message", "data": {"room": "r", "text": "t", "author": "a"}, '
                b'"audience": {"users": ["\\udc00"]}}', "audience.users.0", "\\udc00 at character 1"),
    # A 400 before, but one that named no field ("data: must be JSON data (... UnicodeEncodeError ...)").
    ("/events", b'{"event": "demo.message", "data": {"room": "r", "text": "x\\ud800", "author": "a"}}',
     "data.text", "\\ud800 at character 2"),
    ("/events", b'{"event": "demo.message", "data": {"room": "r", "text": "t", "author": "a", "\\ud800": 1}}',
     "data.\\ud800", "\\ud800 at character 1 of the key"),
    ("/events/batch", b'{"events": [{"event": "demo.message", "data": {"room": "r", "text": "t", "author": "a"}}, '
                      b'{"event": "demo.message", "data": {"room": "\\udfff", "text": "t", "author": "a"}}]}',
     "events.1.data.room", "\\udfff at character 1"),
    # Its UTF-8 bytes (not valid UTF-8) are read as the same surrogate.
    ("/events", b'{"event": "demo.message", "data": {"room": "r", "text": "\xed\xa0\x80", "author": "a"}}',
     "data.text", "\\ud800 at character 1"),
])
def test_a_lone_surrogate_is_a_400_naming_the_field(ways: Ways, path: str, body: bytes, field: str,
                                                     shown: str) -> None:
    answer = refused(ways.node, path, body, 400, "invalid_unicode")
    assert answer["message"] == f"{field}: {LONE}{shown}"
    assert answer["details"] == [{"path": field, "message": LONE + shown, "type": "string_unicode"}]


def test_a_lone_surrogate_in_a_rabbitmq_message_is_dead_lettered_with_the_reason(ways: Ways) -> None:
    headers = dead_lettered(ways, b'{"event": "demo.message", "data": {"room": "r", "text": "\\ud800", "author": "a"}}')
    assert (headers["x-gateway-status"], headers["x-gateway-error"], headers["x-gateway-message"]) == (
        400, "invalid_unicode", f"data.text: {LONE}\\ud800 at character 1")
    assert json.loads(headers["x-gateway-details"])[0]["path"] == "data.text"


def test_xml_cannot_carry_a_lone_surrogate_and_says_so_in_a_fault(ways: Ways) -> None:
    body = (b"<?xml version='1.0'?><methodCall><methodName>issue_ticket</methodName><params>"
            b"<param><value><string>&#xD800;</string></value></param></params></methodCall>")
    found = fault(ways.node, body)
    assert found.faultCode == -32700
    assert found.faultString.startswith("parse error: not well-formed XML-RPC: reference to invalid character number")


def test_the_edges_of_unicode_are_characters_events_carry(ways: Ways) -> None:
    """NUL, a whole surrogate pair (as an escape and as UTF-8), the last code point: accepted and delivered as sent
    (PostgreSQL's store keeps them too: the log holds the JSON text, escapes and all)."""
    text = f"a\0b 😀 \U0010ffff {uuid.uuid4().hex}"
    with ways.node.client() as client:
        client.subscribe("gateway.event.demo.message")
        for body in (json.dumps({"event": "demo.message", "data": {**MESSAGE, "text": text}}).encode(),
                     json.dumps({"event": "demo.message", "data": {**MESSAGE, "text": text}},
                                ensure_ascii=False).encode()):
            r = post(ways.node, "/events", body)
            assert r.status == 202, r.body
        envelopes = client.take(2, timeout=30)
    assert [e["data"]["text"] for e in envelopes] == [text, text]
    # Where a user id is asked for, a control character is refused, naming the field.
    answer = refused(ways.node, "/tickets", b'{"user": "a\\u0000"}', 400, "invalid_request")
    assert answer["details"][0]["path"] == "user" and "without control characters" in answer["message"]


# -- keys named twice ------------------------------------------------------------------------------


@pytest.mark.parametrize("path,body,field", [
    ("/events", b'{"event": "demo.message", "event": "demo.order", "data": {}}', "event"),
    ("/events", b'{"event": "demo.message", "data": {"room": "a", "room": "b", "text": "t", "author": "a"}}',
     "data.room"),
    ("/events/batch", b'{"events": [{"event": "demo.message", "data": {"text": 1, "text": 2}}]}', "events.0.data.text"),
    ("/tickets", b'{"user": "alice", "user": "root"}', "user"),
    ("/subscriptions", b'{"user": "a", "query": "demo.message", "query": "demo.order"}', "query"),
])
def test_a_key_named_twice_is_a_400_naming_it(ways: Ways, path: str, body: bytes, field: str) -> None:
    # json.loads kept the last silently: the proxy, which had checked the first, and the gateway read two events.
    answer = refused(ways.node, path, body, 400, "duplicate_key")
    assert answer["message"] == f"{field}: {TWICE}"
    assert answer["details"] == [{"path": field, "message": TWICE, "type": "duplicate_key"}]


def test_a_key_named_twice_is_refused_over_xmlrpc_and_rabbitmq_too(ways: Ways) -> None:
    member = b"<member><name>room</name><value>lobby</value></member>"
    body = (b"<?xml version='1.0'?><methodCall><methodName>publish</methodName><params>"
            b"<param><value><string>demo.message</string></value></param><param><value><struct>" + member + member
            + b"</struct></value></param></params></methodCall>")
    found = fault(ways.node, body)
    assert found.faultCode == 400
    assert found.faultString.startswith("duplicate_key: the call has a struct naming the member 'room' more than "
                                        "once, at line 1, column ")
    headers = dead_lettered(ways, b'{"event": "demo.message", "event": "demo.alert", "data": {}}')
    assert (headers["x-gateway-status"], headers["x-gateway-error"], headers["x-gateway-message"]) == (
        400, "duplicate_key", f"event: {TWICE}")


# -- empty, not JSON, wrong content type ---------------------------------------------------------------


@pytest.mark.parametrize("path", JSON_ROUTES)
@pytest.mark.parametrize("body", [b"", b"   ", b"event=demo.message&data=x", b"\xff\xfe\x00", b"{", b'{"a": 1}x'])
def test_a_body_that_is_not_json_is_a_400_on_every_json_route(ways: Ways, path: str, body: bytes) -> None:
    answer = refused(ways.node, path, body, 400, "malformed_json")
    assert answer["message"].startswith(("the body is not valid JSON: ", "the body is not UTF-8 text")), answer


def test_the_content_type_is_not_what_decides(ways: Ways) -> None:
    """Documented: the body is JSON or it is refused, whatever it is labelled (a curl without -H works)."""
    body = json.dumps({"event": "demo.message", "data": MESSAGE}).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml", ""):
        assert post(ways.node, "/events", body, content_type).status == 202
    found = fault(ways.node, body)  # JSON to the XML-RPC route is not a call
    assert found.faultCode == -32700


# -- wrong types at every level --------------------------------------------------------------------


@pytest.mark.parametrize("path,doc,status,error,field", [
    ("/events", [], 400, "invalid_request", "the body"),
    ("/events", "demo.message", 400, "invalid_request", "the body"),
    ("/events", {"event": ["demo.message"], "data": MESSAGE}, 400, "invalid_request", "event"),
    ("/events", {"event": "demo.message", "data": MESSAGE, "id": 7}, 400, "invalid_request", "id"),
    ("/events", {"event": "demo.message", "data": "hi"}, 400, "invalid_event", "data"),
    ("/events", {"event": "demo.message", "data": {**MESSAGE, "room": ["lobby"]}}, 400, "invalid_event", "data.room"),
    ("/events", {"event": "demo.order", "data": {**ORDER, "customer": {"id": "1", "name": "A"}}}, 400,
     "invalid_event", "data.customer.id"),
    ("/events", {"event": "demo.order", "data": {**ORDER, "tags": ["a", 2]}}, 400, "invalid_event", "data.tags.1"),
    ("/events", {"event": "demo.order", "data": {**ORDER, "order_id": True}}, 400, "invalid_event", "data.order_id"),
    ("/events", {"event": "demo.message", "data": MESSAGE, "audience": ["alice"]}, 400, "invalid_request",
     "audience"),
    ("/events", {"event": "demo.message", "data": MESSAGE, "audience": {"users": "alice"}}, 400, "invalid_request",
     "audience.users"),
    ("/events", {"event": "demo.message", "data": MESSAGE, "audience": {"users": [1]}}, 400, "invalid_request",
     "audience.users.0"),
    ("/events", {"event": "demo.message", "data": MESSAGE, "audience": {"roles": [None]}}, 400, "invalid_request",
     "audience.roles.0"),
    ("/events/batch", {"events": {"event": "demo.message"}}, 400, "invalid_request", "events"),
    ("/events/batch", [{"event": "demo.message", "data": MESSAGE}], 400, "invalid_request", "the body"),
    ("/tickets", {"user": 42}, 400, "invalid_request", "user"),
    ("/tickets", {"user": "alice", "roles": "staff"}, 400, "invalid_request", "roles"),
    ("/tickets", {"user": "alice", "ttl": "60"}, 400, "invalid_request", "ttl"),
    ("/tickets", {"user": "alice", "ttl": True}, 400, "invalid_request", "ttl"),
    ("/tickets", {"user": "alice", "ttl": 10**40}, 400, "invalid_number", "ttl"),
    ("/subscriptions", {"user": ["a"], "query": "demo.message"}, 400, "invalid_request", "user"),
    ("/subscriptions", {"user": "a", "query": 1}, 400, "invalid_request", "query"),
    ("/subscriptions", {"user": "a", "query": "demo.message", "persistent": "yes"}, 400, "invalid_request",
     "persistent"),
])
def test_a_wrong_type_is_a_4xx_naming_the_field(ways: Ways, path: str, doc: Any, status: int, error: str,
                                                field: str) -> None:
    answer = refused(ways.node, path, json.dumps(doc).encode(), status, error)
    named = [d["path"] for d in answer.get("details", [])]
    assert field in named or field in answer["message"], answer


def test_a_wrong_item_of_a_batch_is_refused_in_place_naming_it(ways: Ways) -> None:
    items = [{"event": "demo.message", "data": MESSAGE}, 7, {"event": "demo.message", "data": {**MESSAGE, "text": 1}},
             {"event": 1}, {"event": "demo.message", "data": MESSAGE, "id": ""}]
    r = post(ways.node, "/events/batch", json.dumps({"events": items}).encode())
    assert r.status == 200, r.body
    first, *rest = r.body["results"]
    assert isinstance(first["seq"], int)
    assert [(x["status"], x["error"]) for x in rest] == [(400, "invalid_request"), (400, "invalid_event"),
                                                         (400, "invalid_request"), (400, "invalid_request")]
    assert "events.1" in rest[0]["message"]
    assert rest[1]["details"][0]["path"] == "events.2.data.text"
    assert [d["path"] for d in rest[2]["details"]] == ["events.3.event"]
    assert [d["path"] for d in rest[3]["details"]] == ["events.4.id"]


@pytest.mark.parametrize("query,field", [("?user=", "user"), ("?user=%20alice", "user"), ("?user=a%00b", "user"),
                                         ("?user=" + "u" * 256, "user")])
def test_listing_subscriptions_by_a_user_who_cannot_be_is_a_400_naming_user(ways: Ways, query: str,
                                                                            field: str) -> None:
    # ?user= was a 500: the dispatcher refused the empty user, which the bridge had not checked.
    r = ways.node.request("GET", "/subscriptions" + query, headers=AUTH)
    assert (r.status, r.body["error"], r.body["details"][0]["path"]) == (400, "invalid_request", field), r.body


def test_numbers_past_the_edge_in_a_batch_and_over_xmlrpc_batches_and_tickets(ways: Ways) -> None:
    """What test_edge_limits.py leaves out: NaN inside a batch, an XML-RPC batch's NaN, a ticket's ttl."""
    answer = refused(ways.node, "/events/batch", json.dumps({"events": [
        {"event": "demo.order", "data": ORDER}, {"event": "demo.order", "data": {**ORDER, "amount": float("nan")}}]},
    ).encode(), 400, "invalid_number")
    assert answer["message"] == "events.1.data.amount: NaN and Infinity are not JSON numbers"
    body = xmlrpc.client.dumps(([{"event": "demo.order", "data": {**ORDER, "amount": float("inf")}}],),
                               "publish_batch").encode()
    found = fault(ways.node, body)
    assert (found.faultCode, found.faultString) == (
        400, "invalid_number: events.0.data.amount: NaN and Infinity are not JSON numbers")
    found = fault(ways.node, xmlrpc.client.dumps(("alice", None, float("nan")), "issue_ticket",
                                                 allow_none=True).encode())
    assert (found.faultCode, found.faultString) == (400, "invalid_number: ttl: NaN and Infinity are not JSON numbers")


# -- large ---------------------------------------------------------------------------------------------


def test_large_strings_within_the_body_limit_are_answered_never_a_500(ways: Ways) -> None:
    """Text just under bridge.max_body_bytes (1 MiB) in each place a string goes."""
    big = "é" * 500_000  # 1,000,000 bytes as UTF-8, 3,000,000 as JSON escapes (sent as UTF-8 here)
    marker = uuid.uuid4().hex

    def body(doc: Any) -> bytes:
        data = json.dumps(doc, ensure_ascii=False).encode()
        assert len(data) < 1024 * 1024
        return data

    with ways.node.client() as client:
        client.subscribe("gateway.event.demo.message")
        r = post(ways.node, "/events", body({"event": "demo.message", "data": {**MESSAGE, "text": big + marker}}))
        assert r.status == 202, r.body
        [envelope] = client.take(1, timeout=60)
    assert envelope["data"]["text"] == big + marker
    assert refused(ways.node, "/events", body({"event": "demo.message", "data": {**MESSAGE, big: 1}}), 400,
                   "invalid_event")["details"][0]["type"] == "extra_forbidden"
    assert refused(ways.node, "/events", body({"event": big[:100_000], "data": {}}), 404, "unknown_event")
    assert refused(ways.node, "/events", body({"event": "demo.message", "data": MESSAGE, "id": big}), 400,
                   "invalid_request")["details"][0]["path"] == "id"
    assert refused(ways.node, "/tickets", body({"user": big}), 400, "invalid_request")["details"][0]["path"] == "user"
    assert refused(ways.node, "/subscriptions", body({"user": "a", "query": big}), 400, "invalid_query")
    r = ways.node.request("DELETE", "/subscriptions/" + "x" * 8000, headers=AUTH)
    assert r.status == 404, r.body
    r = post(ways.node, "/events", b"x" * (1024 * 1024 + 1))
    assert (r.status, r.body["error"]) == (413, "too_large")


def test_the_bridge_logged_no_failure(ways: Ways) -> None:
    """After all of the above (and whatever ran before in this module): no request failed inside the bridge."""
    log = ways.node.log_text()
    assert "the bridge failed on" not in log, ways.node.log_tail(80)
