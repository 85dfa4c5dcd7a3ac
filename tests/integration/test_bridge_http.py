"""Every bad request to the bridge gets its status and a JSON error body; the bridge stays up."""

import http.client
import json
import time
import socket

import pytest

from tests.support.harness import API_KEY, GatewayNode

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MESSAGE = {"room": "r", "text": "t", "author": "a"}


def post(node: GatewayNode, body: bytes, headers: dict[str, str] | None = None, path: str = "/events"):  # type: ignore[no-untyped-def]
    return node.request("POST", path, body, {**AUTH, **(headers or {})})


def test_missing_key_is_401(node: GatewayNode) -> None:
    r = node.request("POST", "/events", json.dumps({"event": "demo.message", "data": MESSAGE}).encode())
    assert r.status == 401 and r.body["error"] == "unauthorized" and "missing" in r.body["message"]


def test_wrong_key_is_401(node: GatewayNode) -> None:
    r = node.post_event("demo.message", MESSAGE, key="not-the-key-at-all")
    assert r.status == 401 and r.body == {"error": "unauthorized", "message": "the API key is not valid"}


def test_unknown_event_is_404(node: GatewayNode) -> None:
    r = node.post_event("demo.unknown", {})
    assert r.status == 404 and r.body["error"] == "unknown_event"


@pytest.mark.parametrize("body,expected", [
    (b"{oops", "malformed_json"),
    (b"[1, 2]", "invalid_request"),
    (b'"a string"', "invalid_request"),
    (b'{"data": {}}', "invalid_request"),
    (b'{"event": "demo.message", "data": {"room": 1}}', "invalid_event"),
])
def test_bad_bodies_are_400_saying_what_was_wrong(node: GatewayNode, body: bytes, expected: str) -> None:
    r = post(node, body)
    assert r.status == 400 and r.body["error"] == expected and r.body["message"]


def test_invalid_data_names_each_field(node: GatewayNode) -> None:
    r = node.post_event("demo.order", {"order_id": "1", "amount": 5, "country": "AR", "tags": [],
                                       "customer": {"id": 1, "name": "x"}, "colour": "red"})
    assert r.status == 400
    assert sorted(d["path"] for d in r.body["details"]) == ["data.colour", "data.order_id"]


def test_a_body_over_the_limit_is_413_before_it_is_read(node: GatewayNode) -> None:
    big = b'{"event": "demo.message", "data": {"text": "' + b"x" * (2 * 1024 * 1024) + b'"}}'
    conn = http.client.HTTPConnection("127.0.0.1", node.bridge_port, timeout=10)
    conn.putrequest("POST", "/events")
    conn.putheader("Authorization", AUTH["Authorization"])
    conn.putheader("Content-Length", str(len(big)))
    conn.endheaders()
    try:
        conn.send(big)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the bridge answered and closed without reading it all: that is the point
    resp = conn.getresponse()
    assert resp.status == 413 and json.loads(resp.read())["error"] == "too_large"
    conn.close()
    access_log = node.cbdir / "access.log"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and " POST /events 413 key=- " not in (
            access_log.read_text() if access_log.exists() else ""):
        time.sleep(0.05)  # appended every half second
    assert " POST /events 413 key=- " in access_log.read_text(), "a refusal is logged too"


def test_a_chunked_body_over_the_limit_is_413(node: GatewayNode) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", node.bridge_port, timeout=10)
    chunks = (b"x" * 65536 for _ in range(40))  # 2.5 MiB, no Content-Length
    try:
        conn.request("POST", "/events", body=chunks, headers={**AUTH, "Transfer-Encoding": "chunked"},
                     encode_chunked=True)
    except (BrokenPipeError, ConnectionResetError):
        pass
    resp = conn.getresponse()
    assert resp.status == 413
    conn.close()


def test_a_body_just_under_the_limit_is_read(node: GatewayNode) -> None:
    text = "x" * (1024 * 1024 - 200)
    r = node.post_event("demo.message", {**MESSAGE, "text": text})
    assert r.status == 202


def test_wrong_method_and_path(node: GatewayNode) -> None:
    assert node.get("/events").status == 405
    r = node.get("/nothing/here")
    assert r.status == 404 and r.body["error"] == "not_found"
    assert post(node, b"{}", path="/events/extra").status == 404


def test_garbage_on_the_socket_does_not_hurt_the_bridge(node: GatewayNode) -> None:
    with socket.create_connection(("127.0.0.1", node.bridge_port), timeout=5) as s:
        s.sendall(b"\x00\x01\x02 NOT HTTP\r\n\r\n")
        s.recv(1024)
    assert node.post_event("demo.message", MESSAGE).status == 202


def test_healthz(node: GatewayNode) -> None:
    r = node.get("/healthz")
    assert r.status == 200 and r.body == {"status": "ok", "router": True, "dispatchers": 2, "active_dispatchers": 1,
                                          "standby_dispatchers": 1, "authenticators": 2,
                                          "definitions": r.body["definitions"], "amqp": "off", "in_flight": 0,
                                          "max_in_flight": r.body["max_in_flight"], "event_log": r.body["event_log"]}
    assert len(r.body["definitions"]) == 16
    # The event log's size, as the active dispatcher counted it at its last housekeeping round.
    log = r.body["event_log"]
    assert log is None or (log["rows"] is None or isinstance(log["rows"], int)) and isinstance(log["by_class"], dict), \
        r.body
