"""RabbitMQ ingest: messages in a durable queue become events, exactly once and in order; bad ones are
dead-lettered with their error; a gateway restart, a broker that is away and a broker closing the
connection lose nothing. Real RabbitMQ (this machine's), real gateway nodes."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from components import uris
from tests.support.amqp import (BROKER_URL, Broker, BrokerGate, amqp_config, broker_connections, close_broker_connection,
                        queue_stats, temporary_queues)
from tests.support.harness import API_KEY, GatewayNode, running_node

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
TOPIC = "gateway.event.demo.message"
#: The module's node refuses bodies over this (bridge.max_body_bytes), over HTTP and AMQP alike.
MAX_BODY = 4096
#: The lease the one consuming bridge of a node holds.
CONSUMER_LEASE = uris.INTERNAL_AMQP_CONSUMER


def message(text: str, **extra: Any) -> dict[str, Any]:
    return {"event": "demo.message", "data": {"room": "amqp", "text": text, "author": "queue"}, **extra}


def connections_of(node: GatewayNode) -> list[Any]:
    return broker_connections(f"events-gateway bridge 127.0.0.1:{node.bridge_port} pid ")


def wait_drained(broker: Broker, queue: str) -> None:
    """Until the queue holds nothing, waiting or delivered-but-unacked."""
    broker.wait_until(queue, 0)
    for _ in range(20):  # acks go out as the events are published: at most a moment behind
        stats = queue_stats(queue)[queue]
        if stats.unacked == 0:
            return
    raise AssertionError(f"{queue} still has {stats.unacked} unacked messages")


@dataclass
class Ingest:
    node: GatewayNode
    broker: Broker
    queue: str
    dead: str
    gate: BrokerGate  # the node reaches the broker through it


@pytest.fixture(scope="module")
def ingest() -> Iterator[Ingest]:
    """A node consuming queues of its own (deleted afterwards), shared by the module's tests.

    The last test stops and restarts it and kills one of its containers.
    """
    with Broker() as broker, temporary_queues(broker, "events", "dead") as (queue, dead), BrokerGate() as gate:
        gate.open()
        config = {"amqp": {**amqp_config(queue, dead, reconnect_max_delay=1), "url": gate.url},
                  "bridge": {"max_body_bytes": MAX_BODY}}
        with running_node(config) as node:
            yield Ingest(node, broker, queue, dead, gate)


def test_messages_become_events_with_their_data_and_are_acked_once_accepted(ingest: Ingest) -> None:
    broker, queue = ingest.broker, ingest.queue
    with ingest.node.client() as client:
        client.subscribe(TOPIC)
        broker.publish(queue, message("one", id="body-id-1"), message_id="not-this-one")
        broker.publish(queue, message("two"), message_id="message-id-2")
        broker.publish(queue, message("three"))
        broker.publish(queue, message("né ✓ \u2028 four"), message_id="m-4", content_type=None)
        got = client.take(4)
    assert [e["data"] for e in got] == [message(t)["data"] for t in ("one", "two", "three", "né ✓ \u2028 four")]
    assert [e["id"] for e in got[:2]] == ["body-id-1", "message-id-2"] and re.fullmatch("[0-9a-f]{32}", got[2]["id"])
    assert all(b["seq"] > a["seq"] for a, b in zip(got, got[1:]))
    wait_drained(broker, queue)
    # One bridge of the node consumes (the other stands by), so the queue's order is kept.
    assert queue_stats(queue)[queue].consumers == 1
    assert {ingest.node.get("/healthz").body["amqp"] for _ in range(6)} == {"connected"}


#: (message_id, body) of each kind of message that can never be accepted.
BAD: list[tuple[str, bytes]] = [
    ("bad-json", b'{"event": "demo.message", "data": {'),
    ("not-utf8", b'{"event": "demo.message", "data": {"text": "\xff\xfe"}}'),
    ("not-an-object", b'["demo.message"]'),
    ("unknown-class", json.dumps({"event": "demo.nothing", "data": {}}).encode()),
    ("invalid-data", json.dumps({"event": "demo.message",
                                 "data": {"room": 5, "text": "t", "author": "a", "colour": "red"}}).encode()),
    ("bad-id", json.dumps(message("x", id="spaces are not allowed")).encode()),
    ("bad-audience", json.dumps(message("x", audience={"users": "alice"})).encode()),
    ("too-large", json.dumps(message("x" * MAX_BODY)).encode()),
    ("id-of-another-class", json.dumps({"event": "demo.alert", "data": {"level": "high", "text": "t"},
                                        "id": "amqp-conflict-1"}).encode()),
]


def test_each_kind_of_bad_message_is_dead_lettered_saying_what_post_events_says(ingest: Ingest) -> None:
    node, broker, queue = ingest.node, ingest.broker, ingest.queue
    assert node.post_event("demo.message", message("x")["data"], id="amqp-conflict-1").status == 202
    with node.client() as client:
        client.subscribe(TOPIC)
        for kind, body in BAD:
            broker.publish(queue, body, message_id=kind, headers={"trace": kind}, app_id="shop")
        broker.publish(queue, message("after the bad ones"), message_id="good-after-bad")
        (event,) = client.take(1)
    assert event["id"] == "good-after-bad", "no bad message became an event"
    copies = [broker.wait_get(ingest.dead) for _ in BAD]
    assert broker.get(ingest.dead) is None
    assert [c.properties.message_id for c in copies] == [kind for kind, _ in BAD]
    for (kind, body), copy in zip(BAD, copies):
        http = node.request("POST", "/events", body, {"Authorization": f"Bearer {API_KEY}"})
        headers = copy.headers
        assert copy.body == body, kind
        assert (headers["x-gateway-status"], headers["x-gateway-error"], headers["x-gateway-message"]) == (
            http.status, http.body["error"], http.body["message"]), kind
        if "details" in http.body:
            assert json.loads(headers["x-gateway-details"]) == http.body["details"], kind
        else:
            assert "x-gateway-details" not in headers, kind
        assert headers["x-gateway-queue"] == queue and headers["trace"] == kind
        datetime.fromisoformat(headers["x-gateway-failed-at"].replace("Z", "+00:00"))
        assert (copy.properties.app_id, copy.properties.content_type, copy.properties.delivery_mode) == (
            "shop", "application/json", 2)
    assert sorted({c.headers["x-gateway-status"] for c in copies}) == [400, 404, 409, 413]
    wait_drained(broker, queue)


def test_the_same_message_id_or_body_id_twice_is_one_event(ingest: Ingest) -> None:
    broker, queue = ingest.broker, ingest.queue
    with ingest.node.client() as client:
        client.subscribe(TOPIC)
        for _ in range(2):
            broker.publish(queue, message("by message id"), message_id="amqp-idem-1")
        broker.publish(queue, message("by body id", id="amqp-idem-2"), message_id="first")
        broker.publish(queue, message("by body id", id="amqp-idem-2"), message_id="second")
        broker.publish(queue, message("last"), message_id="amqp-idem-3")
        got = client.take(3)
    # The queue is consumed in order: a second event for either id would have come before the last.
    assert [e["id"] for e in got] == ["amqp-idem-1", "amqp-idem-2", "amqp-idem-3"]
    again = ingest.node.post_event("demo.message", message("by message id")["data"], id="amqp-idem-1")
    assert again.status == 202 and again.body == {"id": "amqp-idem-1", "seq": got[0]["seq"], "duplicate": True}
    wait_drained(broker, queue)


def test_the_broker_closing_the_connections_is_survived(ingest: Ingest) -> None:
    node, broker = ingest.node, ingest.broker
    before = connections_of(node)
    assert len(before) == 2, before  # both bridges of the node, and no one else's
    for connection in before:
        close_broker_connection(connection, "test: as if the broker restarted")
    with node.client() as client:
        client.subscribe(TOPIC)
        for i in range(3):
            broker.publish(ingest.queue, message(f"after the break {i}"), message_id=f"amqp-break-{i}")
        got = client.take(3, timeout=30)
    assert [e["id"] for e in got] == [f"amqp-break-{i}" for i in range(3)]
    deadline = time.monotonic() + 15
    while len(after := connections_of(node)) < 2 and time.monotonic() < deadline:
        pass  # each look takes rabbitmqctl a good part of a second
    assert len(after) == 2 and not {c.pid for c in after} & {c.pid for c in before}, "both reconnected"
    assert node.log_text().count("(ConnectionClosedByBroker: (320, 'CONNECTION_FORCED - test: as if the broker "
                                 "restarted')); reconnecting in") == 2
    wait_drained(broker, ingest.queue)


#: The consumer of webapp_bridge.server.amqp in a process of its own, against the real broker, with a
#: dispatcher standing in for the gateway's: the faults it plays (no dispatcher; an event the
#: gateway fails on every time) cannot be caused in a running node on demand. Prints its calls.
FAULTY_DISPATCHER = r"""
import json, sys
from pathlib import Path
from twisted.internet import reactor, task
from twisted.logger import globalLogBeginner, textFileLogObserver
from components.config import AmqpConfig, ApiKey
from components.events import Registry
from webapp_bridge.server import amqp
from webapp_bridge.server.api import BridgeLogic, error

globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
amqp.DISPATCH_RETRY_FIRST, amqp.DISPATCH_RETRY_MAX = 0.01, 0.05
url, queue, dead = sys.argv[1:4]
registry = Registry.load(["examples.demo_events"], ["examples/demo_events.yaml"], base_dir=Path.cwd())
logic = BridgeLogic((ApiKey(name="t", key="test-key-0123"),), registry, 4096)
calls, accepted = [], []

async def dispatch(requests):
    await task.deferLater(reactor, 0.01)
    ids = [r.id for r in requests]
    if sum("a" in c["ids"] for c in calls) < 2 and "a" in ids:
        calls.append({"ids": ids, "answer": 503})
        return error(503, "unavailable", "no dispatcher is running; the event was not accepted")
    if "poison" in ids:
        calls.append({"ids": ids, "answer": "raised"})
        raise RuntimeError("the dispatcher broke on it")
    calls.append({"ids": ids, "answer": "ok"})
    accepted.extend(ids)
    if "b" in ids:
        reactor.callLater(0.3, finish)
    return [{"id": i, "seq": len(accepted)} for i in ids]

def finish():
    ingest.stop().addBoth(lambda _: reactor.stop())

ingest = amqp.AmqpIngest(AmqpConfig(url=url, queue=queue, dead_letter_queue=dead, prefetch=10), lambda: logic,
                         dispatch, "events-gateway tests faulty dispatcher")
ingest.start()
reactor.callLater(30, reactor.stop)
reactor.run()
print(json.dumps(calls))
"""


def test_unavailable_is_retried_in_order_and_an_event_that_always_fails_is_dead_lettered() -> None:
    with Broker() as broker, temporary_queues(broker, "faults", "faults-dead") as (queue, dead):
        for mid in ("a", "poison", "b"):
            broker.publish(queue, message(mid), message_id=mid)
        done = subprocess.run([sys.executable, "-c", FAULTY_DISPATCHER, amqp_config(queue, dead)["url"], queue, dead],
                              cwd=REPO, capture_output=True, text=True, timeout=60, env={**os.environ,
                                                                                         "PYTHONPATH": str(REPO)})
        assert done.returncode == 0, done.stderr[-3000:]
        calls = json.loads(done.stdout)
        # Nothing was taken past "a" while it waited: the same events were tried again until accepted.
        first_ok = next(i for i, c in enumerate(calls) if c["answer"] == "ok")
        assert [c["answer"] for c in calls[:2]] == [503, 503] and all(c["ids"] == calls[0]["ids"] for c in calls[:2])
        assert calls[0]["ids"][0] == "a"
        # Accepted once each, in queue order; the one that always failed was tried MAX_STRIKES times alone.
        assert [i for c in calls if c["answer"] == "ok" for i in c["ids"]] == ["a", "b"]
        assert [c["ids"] for c in calls if c["answer"] == "raised"][-5:] == [["poison"]] * 5
        assert calls[first_ok]["ids"][0] == "a"
        copy = broker.wait_get(dead)
        assert copy.body == json.dumps(message("poison")).encode() and copy.properties.message_id == "poison"
        assert (copy.headers["x-gateway-status"], copy.headers["x-gateway-error"]) == (500, "internal_error")
        assert "the dispatcher broke on it" in copy.headers["x-gateway-message"]
        assert broker.ready(queue) == 0, "every message was acked before the consumer closed"
        assert "trying again" in done.stderr


#: The consumer of webapp_bridge.server.amqp in a process of its own, given a broker it cannot use: it
#: runs for a second and prints its state and what it logged.
WATCH = r"""
import json, sys
from twisted.internet import reactor
from twisted.logger import formatEvent, globalLogBeginner
from components.config import AmqpConfig
from webapp_bridge.server import amqp

amqp.CONNECT_TIMEOUT = 0.3
lines, seen = [], {}
globalLogBeginner.beginLoggingTo([lambda event: lines.append(formatEvent(event))], redirectStandardIO=False)
ingest = amqp.AmqpIngest(AmqpConfig(**json.loads(sys.argv[1])), lambda: None, None, "events-gateway tests watch")
ingest.start()

def finish():
    seen["state"] = ingest.state
    ingest.stop().addBoth(lambda _: reactor.stop())

reactor.callLater(1.0, finish)
reactor.run()
print(json.dumps({"state": seen["state"], "log": lines}))
"""


@pytest.mark.parametrize("case", ["wrong password", "unknown vhost", "queue declared otherwise", "not AMQP"])
def test_a_broker_the_bridge_cannot_use_is_retried_and_logged_saying_why(case: str) -> None:
    with Broker() as broker, socket.socket() as silent, temporary_queues(
            broker, "unusable", "unusable-dead", "declared-otherwise") as (queue, dead, other):
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # takes the TCP connection, never says a word
        url, expected = {
            "wrong password": ("amqp://guest:not-the-password@127.0.0.1:5672/%2F", "ACCESS_REFUSED"),
            "unknown vhost": ("amqp://guest:guest@127.0.0.1:5672/gw-test-no-such-vhost", "NOT_ALLOWED"),
            "queue declared otherwise": (BROKER_URL, f"cannot declare the queue '{other}' (durable, no arguments, "
                                                     "as the gateway's publishers declare it): ChannelClosedByBroker: "
                                                     "(406, \"PRECONDITION_FAILED - inequivalent arg 'durable'"),
            "not AMQP": (f"amqp://guest:guest@127.0.0.1:{silent.getsockname()[1]}/%2F", "no AMQP handshake within"),
        }[case]
        config = {**amqp_config(queue, dead, reconnect_max_delay=0.2), "url": url}
        if case == "queue declared otherwise":
            broker.delete(other)
            broker.channel.queue_declare(other, durable=False)  # deleted with the others at the end
            config["queue"] = other
        done = subprocess.run([sys.executable, "-c", WATCH, json.dumps(config)], cwd=REPO, capture_output=True,
                              text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    failures = [line for line in report["log"] if "trying again in" in line]
    assert report["state"] == "connecting" and len(failures) >= 2, report["log"]
    assert expected in failures[0] and "amqp://guest:***@127.0.0.1:" in failures[0], failures[0]
    assert not any("not-the-password" in line or ":guest@" in line for line in report["log"])


def test_no_loss_across_a_gateway_restart_nor_while_the_broker_is_unreachable(ingest: Ingest) -> None:
    """Last in the module: it stops the module's node, starts it again, and kills a container of it."""
    n = 40
    node, broker, queue, dead, gate = ingest.node, ingest.broker, ingest.queue, ingest.dead, ingest.gate
    with node.client() as client:
        client.subscribe(TOPIC)
        broker.publish(queue, message("before"), message_id="restart-before")
        (first,) = client.take(1)

    node.stop()
    for i in range(n):
        broker.publish(queue, message(str(i)), message_id=f"restart-{i}")
    gate.shut()  # and the broker is unreachable when the gateway comes back
    node.start()
    health = node.get("/healthz")
    assert health.status == 200 and health.body["amqp"] == "connecting"
    assert node.post_event("demo.message", message("over http")["data"]).status == 202
    assert broker.ready(queue) == n

    with node.client() as client:
        client.subscribe(TOPIC)
        gate.open()
        got = client.take(n, timeout=30)
        broker.publish(queue, message("last"), message_id="restart-last")
        (last,) = client.take(1)
    assert [e["id"] for e in got] == [f"restart-{i}" for i in range(n)]
    assert [e["data"]["text"] for e in got] == [str(i) for i in range(n)]
    seqs = [first["seq"], *(e["seq"] for e in got), last["seq"]]
    assert all(b > a for a, b in zip(seqs, seqs[1:]))
    assert last["id"] == "restart-last", "no event came twice"
    wait_drained(broker, queue)
    log = node.log_text()
    assert f"cannot connect to RabbitMQ at amqp://guest:***@127.0.0.1:{gate.port}/" in log
    assert ":guest@" not in log, "no password in the log"

    # The bridge that consumes dies (SIGKILL, not restarted): the other takes over.
    with node.backend_client().connect() as backend:
        consumer = backend.call(CONSUMER_LEASE)
    assert consumer["queue"] == queue and consumer["state"] == "connected"
    with node.client() as client:
        client.subscribe(TOPIC)
        os.kill(consumer["pid"], signal.SIGKILL)
        for i in range(3):
            broker.publish(queue, message(f"after the kill {i}"), message_id=f"restart-kill-{i}")
        got = client.take(3, timeout=30)
    assert [e["id"] for e in got] == [f"restart-kill-{i}" for i in range(3)]
    assert broker.get(dead) is None
