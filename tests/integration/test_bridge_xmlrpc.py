"""XML-RPC at POST /RPC2 against a real node, with Python's stdlib xmlrpc.client as the caller."""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import time
import xmlrpc.client
from typing import Any

import pytest

from tests.support.harness import API_KEY, GatewayNode
from tests.support.wamp import WampClient

pytestmark = pytest.mark.integration
TOPIC = "gateway.event.demo.message"
MESSAGE = {"room": "rpc", "text": "hello", "author": "xmlrpc"}


def proxy(node: GatewayNode, key: str | None = API_KEY) -> xmlrpc.client.ServerProxy:
    headers = [] if key is None else [("Authorization", f"Bearer {key}")]
    return xmlrpc.client.ServerProxy(f"{node.bridge_url}/RPC2", headers=headers, allow_none=True,
                                     use_builtin_types=True)


def faulted(call: Any, *params: Any) -> xmlrpc.client.Fault:
    with pytest.raises(xmlrpc.client.Fault) as exc:
        call(*params)
    return exc.value


def access_log_has(node: GatewayNode, text: str, timeout: float = 10) -> bool:
    path = node.cbdir / "access.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return True
        time.sleep(0.05)  # lines are appended every half second
    return False


def test_a_published_event_reaches_a_wamp_subscriber_with_the_seq_the_call_returned(node: GatewayNode) -> None:
    when = datetime.datetime(2026, 11, 28, 9, 30, 1)
    with WampClient(node.ws_url) as client, proxy(node) as rpc:
        client.subscribe(TOPIC)
        result = rpc.publish("demo.message", {**MESSAGE, "text": when})
        (envelope,) = client.take(1)
    assert set(result) == {"id", "seq"} and isinstance(result["seq"], int) and len(result["id"]) == 32
    assert envelope == {"event": "demo.message", "id": result["id"], "seq": result["seq"], "time": envelope["time"],
                        "data": {**MESSAGE, "text": "2026-11-28T09:30:01"}}


def test_the_same_id_twice_is_one_event_on_either_interface(node: GatewayNode) -> None:
    with proxy(node) as rpc:
        first = rpc.publish("demo.message", MESSAGE, {"id": "rpc-once-1"})
        again = rpc.publish("demo.message", MESSAGE, {"id": "rpc-once-1"})
        conflict = faulted(rpc.publish, "demo.order", {"order_id": 1, "amount": 1.0, "country": "AR", "tags": [],
                                                       "customer": {"id": 1, "name": "c"}}, {"id": "rpc-once-1"})
    assert first == {"id": "rpc-once-1", "seq": first["seq"]}
    assert again == {"id": "rpc-once-1", "seq": first["seq"], "duplicate": True}
    over_http = node.post_event("demo.message", MESSAGE, id="rpc-once-1")
    assert over_http.status == 202 and over_http.body == again
    assert conflict.faultCode == 409 and conflict.faultString.startswith("conflict: ")


def test_an_audience_reaches_only_the_sessions_it_names(node: GatewayNode) -> None:
    with node.client("rpc-alice") as alice, node.client() as anonymous, proxy(node) as rpc:
        for c in (alice, anonymous):
            c.subscribe(TOPIC)
        only_alice = rpc.publish("demo.message", MESSAGE, {"audience": {"users": ["rpc-alice"]}})
        everyone = rpc.publish("demo.message", MESSAGE)  # after it, nothing more can come
        assert [e["seq"] for e in alice.take(2)] == [only_alice["seq"], everyone["seq"]]
        assert [e["seq"] for e in anonymous.take(1)] == [everyone["seq"]]
        assert anonymous.events.empty()


SEVERAL_BAD = {"room": 1, "txt": "typo"}


@pytest.mark.parametrize("params,code,starts,contains", [
    (("demo.nope", MESSAGE), 404, "unknown_event: no event class named 'demo.nope'", "demo.message"),
    (("demo.message", SEVERAL_BAD), 400, "invalid_event: the data does not match the event class demo.message: ",
     "data.author: "),
    (("demo.message", MESSAGE, {"id": "not an id"}), 400, "invalid_request: 'id' must be", "1 to 128"),
    (("demo.message", MESSAGE, {"audience": {"groups": ["x"]}}), 400, "invalid_request: unknown key(s) in audience",
     "groups"),
    (("demo.message", MESSAGE, {"audience": {}}), 400, "invalid_request: 'audience' names no users and no roles",
     ""),
    (("demo.message", {**MESSAGE, "text": xmlrpc.client.Binary(b"\x89PNG")}), 400,
     "invalid_request: data.text is base64 binary", "send text"),
    (("demo.message", MESSAGE, {"retain": True}), 400, "invalid_request: unknown key(s) in options: retain",
     "(expected id, audience)"),
    (("demo.message", [MESSAGE]), -32602, "publish: parameter 2 (data) must be a struct, not an array", ""),
    (("demo.message",), -32602, "publish takes 2 or 3 parameters (event, data[, options]), not 1", ""),
])
def test_every_mistake_is_a_fault_with_the_http_status_and_a_readable_string(
        node: GatewayNode, params: tuple[Any, ...], code: int, starts: str, contains: str) -> None:
    with proxy(node) as rpc:
        fault = faulted(rpc.publish, *params)
    assert fault.faultCode == code and fault.faultString.startswith(starts) and contains in fault.faultString
    assert "Traceback" not in fault.faultString


def test_invalid_data_lists_each_bad_field(node: GatewayNode) -> None:
    with proxy(node) as rpc:
        fault = faulted(rpc.publish, "demo.message", SEVERAL_BAD)
    listed = fault.faultString.split("demo.message: ", 1)[1].split("; ")
    assert sorted(item.split(": ")[0] for item in listed) == ["data.author", "data.room", "data.text", "data.txt"]


def test_unknown_methods_are_32601(node: GatewayNode) -> None:
    with proxy(node) as rpc:
        fault = faulted(rpc.gateway.publish, "demo.message", MESSAGE)
        assert sorted(rpc.system.listMethods()) == ["issue_ticket", "publish", "publish_batch", "system.listMethods",
                                                    "system.methodHelp", "system.methodSignature", "system.multicall"]
        assert rpc.system.methodHelp("publish").startswith("publish(event, data[, options])")
        assert ["struct", "string", "struct"] in rpc.system.methodSignature("publish")
    assert fault.faultCode == -32601 and fault.faultString.startswith("no such method 'gateway.publish' (methods: ")


@pytest.mark.parametrize("body,why", [
    (b"<methodCall><methodName>publish", "line 1, column 31"),
    (b'{"event": "demo.message", "data": {}}', "line 1, column 0"),
    (xmlrpc.client.dumps(({"id": "a"},), methodresponse=True).encode(), "not a methodCall"),
])
def test_what_is_not_xml_rpc_is_a_parse_error_fault_in_an_http_200(node: GatewayNode, body: bytes, why: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", node.bridge_port, timeout=10)
    conn.request("POST", "/RPC2", body, {"Authorization": f"Bearer {API_KEY}", "Content-Type": "text/xml"})
    resp = conn.getresponse()
    answer = resp.read()
    conn.close()
    assert resp.status == 200 and resp.getheader("Content-Type") == "text/xml"
    with pytest.raises(xmlrpc.client.Fault) as exc:
        xmlrpc.client.loads(answer)
    assert exc.value.faultCode == -32700 and exc.value.faultString.startswith("parse error: not well-formed XML-RPC: ")
    assert why in exc.value.faultString


def test_a_missing_or_wrong_key_is_an_http_401(node: GatewayNode) -> None:
    for key in (None, "not-the-key-at-all"):
        with proxy(node, key) as rpc, pytest.raises(xmlrpc.client.ProtocolError) as exc:
            rpc.publish("demo.message", MESSAGE)
        assert exc.value.errcode == 401
    assert access_log_has(node, " POST /RPC2 401 key=- ")


def test_basic_auth_with_the_key_as_password_works(node: GatewayNode) -> None:
    url = f"http://web-app:{API_KEY}@127.0.0.1:{node.bridge_port}/RPC2"
    with xmlrpc.client.ServerProxy(url, allow_none=True) as rpc:
        assert isinstance(rpc.publish("demo.message", MESSAGE)["seq"], int)
    wrong = f"http://web-app:not-the-key-at-all@127.0.0.1:{node.bridge_port}/RPC2"
    with xmlrpc.client.ServerProxy(wrong) as rpc, pytest.raises(xmlrpc.client.ProtocolError) as exc:
        rpc.publish("demo.message", MESSAGE)
    assert exc.value.errcode == 401
    # The other routes take Basic too: it is the same key.
    basic = "Basic " + base64.b64encode(f"x:{API_KEY}".encode()).decode()
    assert node.request("GET", "/catalog", headers={"Authorization": basic}).status == 200


def test_a_ticket_issued_over_xml_rpc_logs_its_user_in_over_wamp(node: GatewayNode) -> None:
    with proxy(node) as rpc:
        ticket = rpc.issue_ticket("rpc-bob", ["staff"], 30)
        default = rpc.issue_ticket("rpc-carol")
        bad = faulted(rpc.issue_ticket, "rpc-bob", ["Staff"])
        too_long = faulted(rpc.issue_ticket, "rpc-bob", None, 999999)
    assert set(ticket) == {"ticket", "expires_at", "user", "roles"}
    assert (ticket["user"], ticket["roles"], default["roles"]) == ("rpc-bob", ["staff"], [])
    with WampClient(node.ws_url, ticket=ticket["ticket"]) as c:
        assert (c.details.authrole, c.details.authid) == ("user", "rpc-bob")
        assert c.authextra_welcome["roles"] == ["staff"]
    assert bad.faultCode == 400 and bad.faultString.startswith("invalid_request: roles[0] ('Staff')")
    assert too_long.faultCode == 400 and "ttl must be a number of seconds" in too_long.faultString


def test_multicall_with_xmlrpc_client_multicall(node: GatewayNode) -> None:
    with WampClient(node.ws_url) as client, proxy(node) as rpc:
        client.subscribe(TOPIC)
        multi = xmlrpc.client.MultiCall(rpc)
        multi.publish("demo.message", {**MESSAGE, "text": "one"})
        multi.issue_ticket("rpc-dave")
        multi.publish("demo.nope", {})
        multi.nope()
        multi.publish("demo.message", {**MESSAGE, "text": "two"})
        results = multi()
        first, ticket = results[0], results[1]
        for i, code in ((2, 404), (3, -32601)):
            with pytest.raises(xmlrpc.client.Fault) as exc:
                results[i]
            assert exc.value.faultCode == code
        second = results[4]
        got = client.take(2)
    assert second["seq"] > first["seq"]
    assert [(e["seq"], e["data"]["text"]) for e in got] == [(first["seq"], "one"), (second["seq"], "two")]
    assert ticket["user"] == "rpc-dave" and ticket["ticket"].startswith("gt_")


def test_publish_batch_answers_like_post_events_batch(node: GatewayNode) -> None:
    events = [{"event": "demo.message", "data": {**MESSAGE, "text": "b1"}},
              {"event": "demo.message", "data": {"room": 1}},
              {"event": "demo.nope", "data": {}},
              {"event": "demo.message", "data": {**MESSAGE, "text": "b2"}, "id": "rpc-batch-2"}]
    with WampClient(node.ws_url) as client, proxy(node) as rpc:
        client.subscribe(TOPIC)
        results = rpc.publish_batch(events)
        got = client.take(2)
    assert [sorted(r) for r in results] == [["id", "seq"], ["details", "error", "message", "status"],
                                            ["error", "message", "status"], ["id", "seq"]]
    assert (results[1]["status"], results[1]["error"], results[2]["status"]) == (400, "invalid_event", 404)
    assert {d["path"] for d in results[1]["details"]} == {"events.1.data.room", "events.1.data.text",
                                                          "events.1.data.author"}
    assert results[3]["id"] == "rpc-batch-2"
    assert [(e["seq"], e["data"]["text"]) for e in got] == [(results[0]["seq"], "b1"), (results[3]["seq"], "b2")]
    over_http = node.request("POST", "/events/batch", json.dumps({"events": events[1:3]}).encode(),
                             {"Authorization": f"Bearer {API_KEY}"})
    assert [{k: v for k, v in r.items() if k != "details"} for r in over_http.body["results"]] == [
        {k: v for k, v in r.items() if k != "details"} for r in results[1:3]]


def test_the_access_log_has_the_rpc2_line(node: GatewayNode) -> None:
    with proxy(node) as rpc:
        rpc.system.listMethods()
    assert access_log_has(node, " POST /RPC2 200 key=key-1 ")


def test_a_body_over_the_limit_stays_an_http_413(node: GatewayNode) -> None:
    big = xmlrpc.client.dumps(("demo.message", {**MESSAGE, "text": "x" * (2 * 1024 * 1024)}), "publish").encode()
    conn = http.client.HTTPConnection("127.0.0.1", node.bridge_port, timeout=10)
    conn.putrequest("POST", "/RPC2")
    conn.putheader("Authorization", f"Bearer {API_KEY}")
    conn.putheader("Content-Length", str(len(big)))
    conn.endheaders()
    try:
        conn.send(big)
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused before it was read: the point
    resp = conn.getresponse()
    assert resp.status == 413 and json.loads(resp.read())["error"] == "too_large"
    conn.close()
