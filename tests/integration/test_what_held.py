"""What held when issue 14 tried the gateway as an attacker would, kept so, against a real node: request
smuggling on the bridge's port is refused and no hidden request is ever served, a 2 GiB Content-Length is
answered 413 at once without the body being read, and a WAMP message over the router's 4 MiB limit
drops its sender while everyone else is still served.

Smuggling, what Twisted 26.10 does (``twisted/web/http.py``, ``HTTPChannel``): a second length header
(Content-Length twice, or beside ``Transfer-Encoding: chunked``), a Transfer-Encoding other than
``chunked``/``identity``, a header name with a space, a chunk size that is not bare hex: 400 and the
connection closed (``_respondToBadRequestAndDisconnect``), nothing after it read. A header line starting
with white space continues the previous header (obs-fold): ``Transfer-Encoding:`` + `` chunked`` is
chunked (so, beside a Content-Length, a second length header again), and `` Transfer-Encoding: chunked``
becomes part of the header before it, leaving the Content-Length to say where the body ends.

Each smuggled request is a POST of an event with an id of its own: served, it would be accepted. After
each attempt the same id is posted for real and must be new to the gateway (not ``duplicate``). Every
attempt ends with a ``GET /healthz`` asking to close, so the connection ends whichever way it is parsed
and every answer on it is read to the end (no waiting for a silence).
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError

from tests.support.harness import API_KEY, GatewayNode
from tests.support.rawwamp import WELCOME, hello
from tests.support.rawwamp import exchange as exchange_wamp
from tests.support.wamp import WampClient

pytestmark = pytest.mark.integration
MESSAGE = {"room": "held", "text": "t", "author": "a"}
CALL = 48
TOPIC = "gateway.event.demo.message"
#: The last request of every attempt: served (once the framing is back in step), it answers and closes.
TRAILER = b"GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
#: The router's limit on a client's WAMP message (components/nodeconfig.py, the WebSocket transport's
#: ``max_message_size``): autobahn closes the connection with 1009 past it.
MAX_WAMP_MESSAGE = 4 * 1024 * 1024


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def exchange(node: GatewayNode, raw: bytes, timeout: float = 10) -> list[Answer]:
    """Send ``raw`` on one connection and read every answer until the bridge closes it (at most
    ``timeout`` seconds: a connection the bridge keeps open fails the test)."""
    data = b""
    with socket.create_connection(("127.0.0.1", node.bridge_port), timeout=timeout) as s:
        s.sendall(raw)
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass  # closed with something of ours unread: what was answered before is in ``data``
        except TimeoutError:
            raise AssertionError(f"the bridge kept the connection open {timeout}s; answered so far: {data!r}")
    return parse_answers(data)


def parse_answers(data: bytes) -> list[Answer]:
    answers = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"a truncated answer: {data!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        length = int(headers["content-length"]) if "content-length" in headers else len(rest)
        answers.append(Answer(int(status_line.split()[1]), headers, rest[:length]))
        data = rest[length:]
    return answers


def request(*header_lines: bytes, path: bytes = b"/events") -> bytes:
    """A POST's head with the API key, the given header lines as they are, and the blank line."""
    lines = [b"POST " + path + b" HTTP/1.1", b"Host: gw", b"Authorization: Bearer " + API_KEY.encode(),
             b"Content-Type: application/json", *header_lines]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def length(body: bytes) -> bytes:
    return b"Content-Length: %d" % len(body)


def smuggled(event_id: str) -> bytes:
    """The hidden request: a valid event POST with its own id (served, it would be accepted)."""
    body = json.dumps({"event": "demo.message", "data": MESSAGE, "id": event_id}).encode()
    return request(length(body), b"Connection: close") + body


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


#: Each attempt: the bytes sent for a hidden request, and the statuses the bridge answers (a bare 400 is
#: Twisted's, before anything is routed; the 200 is the trailer's /healthz).
ATTEMPTS: dict[str, tuple[Callable[[bytes], bytes], list[int]]] = {
    # CL.TE / TE.CL: under chunked the body ends at "0", and the hidden request is next.
    "content-length then transfer-encoding chunked": (
        lambda hidden: request(length(b"0\r\n\r\n" + hidden), b"Transfer-Encoding: chunked")
        + b"0\r\n\r\n" + hidden + TRAILER, [400]),
    "transfer-encoding chunked then content-length": (
        lambda hidden: request(b"Transfer-Encoding: chunked", length(b"0\r\n\r\n" + hidden))
        + b"0\r\n\r\n" + hidden + TRAILER, [400]),
    # Two lengths that differ: under the first the body is empty and the hidden request is next.
    "content-length 0 then content-length n": (
        lambda hidden: request(b"Content-Length: 0", length(hidden)) + hidden + TRAILER, [400]),
    "content-length n then content-length 0": (
        lambda hidden: request(length(hidden), b"Content-Length: 0") + hidden + TRAILER, [400]),
    # Transfer-Encodings a lenient parser takes for chunked, beside a Content-Length.
    "transfer-encoding xchunked": (
        lambda hidden: request(length(b"0\r\n\r\n" + hidden), b"Transfer-Encoding: xchunked")
        + b"0\r\n\r\n" + hidden + TRAILER, [400]),
    "transfer-encoding with a space before the colon": (
        lambda hidden: request(length(b"0\r\n\r\n" + hidden), b"Transfer-Encoding : chunked")
        + b"0\r\n\r\n" + hidden + TRAILER, [400]),
    "transfer-encoding chunked folded onto a continuation line": (
        lambda hidden: request(length(b"0\r\n\r\n" + hidden), b"Transfer-Encoding:", b" chunked")
        + b"0\r\n\r\n" + hidden + TRAILER, [400]),
    "transfer-encoding with a tab before chunked": (
        lambda hidden: request(length(b"0\r\n\r\n" + hidden), b"Transfer-Encoding:\tchunked")
        + b"0\r\n\r\n" + hidden + TRAILER, [400]),
    # A header line starting with a space continues the header before it. After the Content-Length, that
    # is no longer a number: 400. After Content-Type, the Content-Length says where the body ends, the body
    # (chunked framing and hidden request) is not JSON (400 malformed_json), then the trailer.
    "a space before transfer-encoding, after content-length": (
        lambda hidden: request(length(b"0\r\n\r\n" + hidden), b" Transfer-Encoding: chunked")
        + b"0\r\n\r\n" + hidden + TRAILER, [400]),
    "a space before transfer-encoding, after content-type": (
        lambda hidden: request(b" Transfer-Encoding: chunked", length(b"0\r\n\r\n" + hidden))
        + b"0\r\n\r\n" + hidden + TRAILER, [400, 200]),
    # Chunk sizes a lenient parser reads as 0 (then the hidden request is next).
    "chunk size 0x0": (lambda hidden: request(b"Transfer-Encoding: chunked") + b"0x0\r\n\r\n" + hidden + TRAILER,
                       [400]),
    "chunk size +0": (lambda hidden: request(b"Transfer-Encoding: chunked") + b"+0\r\n\r\n" + hidden + TRAILER,
                      [400]),
    # A request as the body is a body: not JSON (400 malformed_json), then the trailer.
    "a request as a content-length body": (lambda hidden: request(length(hidden)) + hidden + TRAILER, [400, 200]),
    "a request as a chunked body": (
        lambda hidden: request(b"Transfer-Encoding: chunked") + chunk(hidden) + b"0\r\n\r\n" + TRAILER, [400, 200]),
    # ...and as text in a valid event: that event is accepted, with the request as its text.
    "a request as text in a valid event": (
        lambda hidden: request(length(valid := json.dumps(
            {"event": "demo.message", "data": {**MESSAGE, "text": hidden.decode()}}).encode())) + valid + TRAILER,
        [202, 200]),
}


@pytest.mark.parametrize("attempt", list(ATTEMPTS))
def test_a_smuggled_request_is_never_served(node: GatewayNode, attempt: str) -> None:
    build, statuses = ATTEMPTS[attempt]
    event_id = f"smuggled-{uuid.uuid4().hex}"
    answers = exchange(node, build(smuggled(event_id)))
    assert [a.status for a in answers] == statuses, answers
    for answer in answers:
        if answer.status == 400 and answer.body:  # ours, once the request was read whole and routed
            assert answer.json()["error"] == "malformed_json", answer
        if answer.status == 202:
            assert answer.json()["id"] != event_id
    # The hidden event was never accepted: the gateway meets its id for the first time now.
    r = node.post_event("demo.message", MESSAGE, id=event_id)
    assert r.status == 202 and r.body["id"] == event_id and not r.body.get("duplicate"), r.body


def test_pipelined_requests_are_still_served_in_order(node: GatewayNode) -> None:
    """The check above can fail: a second request sent as a second request is served, and accepted."""
    event_id = f"pipelined-{uuid.uuid4().hex}"
    body = json.dumps({"event": "demo.message", "data": MESSAGE}).encode()
    answers = exchange(node, request(length(body)) + body + smuggled(event_id))
    assert [a.status for a in answers] == [202, 202], answers
    assert answers[1].json()["id"] == event_id
    r = node.post_event("demo.message", MESSAGE, id=event_id)
    assert r.status == 202 and r.body.get("duplicate") is True, r.body


# -- a 2 GiB Content-Length ----------------------------------------------------------------------


@pytest.mark.parametrize("path,declared,expect_continue", [
    (b"/events", 2**31, False),
    (b"/events", 2**31, True),
    (b"/events/batch", 2**31, False),
    (b"/RPC2", 2**31, False),
    (b"/events", 2**64, False),
])
def test_a_2_gib_content_length_is_413_at_once_and_the_body_is_not_read(
        node: GatewayNode, path: bytes, declared: int, expect_continue: bool) -> None:
    head = request(b"Content-Length: %d" % declared, *([b"Expect: 100-continue"] if expect_continue else []),
                   path=path)
    started = time.monotonic()
    # A few bytes of the body, then nothing more: the answer and the close must come within the socket's
    # timeout. The bridge closes the connection itself (at once its side, the rest after LINGER, 2 s).
    answers = exchange(node, head + b'{"event": "demo.message", ', timeout=8)
    elapsed = time.monotonic() - started
    assert [a.status for a in answers] == [413], answers  # and no "100 Continue" before it
    (answer,) = answers
    assert answer.json()["error"] == "too_large" and answer.headers["connection"] == "close", answer
    assert elapsed < 8
    assert node.post_event("demo.message", MESSAGE).status == 202


# -- the router's 4 MiB limit on a WAMP message ---------------------------------------------------


def test_a_wamp_message_over_4_mib_drops_its_sender_and_the_router_serves_on(node: GatewayNode) -> None:
    # Just under the limit (the JSON CALL around the argument is a few dozen bytes): the call reaches our
    # dispatcher, which answers that the query is too long; the session goes on.
    with WampClient(node.ws_url) as under:
        with pytest.raises(ApplicationError) as refused:
            under.call("gateway.subscribe", "x" * (MAX_WAMP_MESSAGE - 1024), timeout=30)
        assert refused.value.error == "gateway.error.invalid_query", refused.value
        assert refused.value.args == (f"the query is {MAX_WAMP_MESSAGE - 1024} characters long; "
                                      "the limit is 2000",), refused.value
        assert under.is_attached
    # Over it: autobahn in the router fails the connection (1009, message too big) before anything is
    # decoded; the call is never answered. (A raw peer: autobahn's asyncio client leaves a call pending
    # for ever when its transport is lost, so it could not tell a drop from a silence.)
    big_call = [CALL, 1, {}, "gateway.subscribe", ["x" * (MAX_WAMP_MESSAGE + 1)]]
    received, closed = exchange_wamp(node.ws_url, [hello()], reply=lambda m: [big_call] if m[0] == WELCOME else [],
                                     timeout=30)
    assert closed, "the router closed the connection"
    assert [m[0] for m in received] == [WELCOME], received  # no RESULT, no ERROR
    dropped = f"failing WebSocket connection (code=1009): \"received WebSocket message size {len(json.dumps(big_call))} " \
              f"exceeds payload limit of {MAX_WAMP_MESSAGE} octets\""
    deadline = time.monotonic() + 10
    while dropped not in node.log_text():  # the router's log reaches the node's through the controller
        assert time.monotonic() < deadline, node.log_tail()
        time.sleep(0.05)
    # The router serves everyone else: a new client subscribes and gets an event posted over HTTP.
    text = f"after a message over 4 MiB: {uuid.uuid4().hex}"
    with WampClient(node.ws_url) as client:
        client.subscribe(TOPIC)
        r = node.post_event("demo.message", {**MESSAGE, "text": text})
        assert r.status == 202, r.body
        [envelope] = client.take(1, timeout=30)
    assert envelope["data"]["text"] == text
    assert node.get("/healthz").status == 200
