"""The proxy library against a real gateway: one suite, run over each transport (HTTP, XML-RPC, AMQP).

The node loads a Python event module that this test process imports too (as a
web-app and its gateway share their event classes), and consumes a RabbitMQ
queue of its own (deleted afterwards).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import socket
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.amqp import Broker, BrokerGate, amqp_config, temporary_queues
from tests.support.harness import GatewayNode, free_port, running_node
from tests.support.wamp import WampClient
from webapp_bridge.proxy import (EventRejected, GatewayProxy, GatewayUnavailable, ProxyConfigError, Published,
                                 RequestRejected)

pytestmark = pytest.mark.integration
TRANSPORTS = ["http", "xmlrpc", "amqp"]
MESSAGES = "gateway.event.demo.message"
ORDERS = "gateway.event.proxytest.order_placed"
EVENT_MODULE = '''\
from components.events import Event


class OrderPlaced(Event, name="proxytest.order_placed"):
    """An order was placed: a class the gateway and the web-app (this test) both load."""

    order_id: int
    amount: float
    note: str | None = None
'''


@dataclass
class Gateway:
    node: GatewayNode
    config: Path
    queue: str
    order_class: Any

    def proxy(self, transport: str, tmp: Path | None = None, env: dict[str, str] | None = None,
              **sections: dict[str, Any]) -> GatewayProxy:
        """A proxy for this node; ``sections`` change gateway.yaml (a copy in ``tmp``), ``env`` overrides it."""
        config = self.config
        if sections:
            assert tmp is not None
            raw = yaml.safe_load(self.config.read_text())
            for name, values in sections.items():
                raw.setdefault(name, {}).update(values)
            config = tmp / f"gateway-{uuid.uuid4().hex[:6]}.yaml"
            config.write_text(yaml.safe_dump(raw))
        return GatewayProxy.from_config(config, transport=transport, env=env or {})


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    def prepare(workdir: Path) -> None:
        (workdir / "proxytest_events.py").write_text(EVENT_MODULE)

    with Broker() as broker, temporary_queues(broker, "proxy", "proxy-dead") as (queue, dead), running_node({
            "amqp": amqp_config(queue, dead),
            "events": {"modules": ["examples.demo_events", "proxytest_events"]}}, prepare=prepare) as node:
        sys.path.insert(0, str(node.workdir))  # the web-app's sys.path holds its event modules
        try:
            order_class = importlib.import_module("proxytest_events").OrderPlaced
            yield Gateway(node, node.workdir / "gateway.yaml", queue, order_class)
        finally:
            sys.path.remove(str(node.workdir))
            sys.modules.pop("proxytest_events", None)


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def proxy(gateway: Gateway, transport: str) -> Iterator[GatewayProxy]:
    with gateway.proxy(transport) as p:
        yield p


def message(room: str, text: str) -> dict[str, str]:
    return {"room": room, "text": text, "author": "proxy-test"}


def until_barrier(client: WampClient, proxy: GatewayProxy, room: str,
                  *others: WampClient) -> list[Any] | list[list[Any]]:
    """Publish a barrier event to ``room``; every event of the room the client received before it
    (with ``others``: a list of those per client).

    Events of one publisher reach a subscriber in order, so anything sent
    before the barrier has arrived by the time the barrier does.
    """
    barrier = proxy.publish("demo.message", message(room, "barrier"))
    per_client: list[list[Any]] = []
    for each in (client, *others):
        got: list[Any] = []
        while (envelope := each.take(1)[0])["id"] != barrier.id:
            if envelope.get("data", {}).get("room") == room or envelope["event"] != "demo.message":
                got.append(envelope)
        per_client.append(got)
    return per_client if others else per_client[0]


def check_published(published: Published, transport: str) -> None:
    if transport == "amqp":
        assert published.seq is None and published.queued  # the broker holds it; the gateway numbers it later
    else:
        assert isinstance(published.seq, int) and not published.queued


def test_integers_past_32_bits_go_over_every_transport(gateway: Gateway, proxy: GatewayProxy, transport: str) -> None:
    big = 1_764_323_401_123  # a millisecond timestamp: XML-RPC's plain <int> stops at 2**31 - 1
    with gateway.node.client() as client:
        client.subscribe(ORDERS)
        one = proxy.publish("proxytest.order_placed", {"order_id": big, "amount": 1.0})
        (many,) = proxy.publish_many([("proxytest.order_placed", {"order_id": -big, "amount": 2.0})])
        got = {e["id"]: e["data"]["order_id"] for e in client.take(2)}
    assert isinstance(many, Published)
    assert got == {one.id: big, many.id: -big}


def test_an_event_instance_and_a_name_with_its_data_reach_a_subscriber(gateway: Gateway, proxy: GatewayProxy,
                                                                        transport: str) -> None:
    room = uuid.uuid4().hex
    with gateway.node.client() as client:
        client.subscribe(ORDERS)
        client.subscribe(MESSAGES)
        order = proxy.publish(gateway.order_class(order_id=42, amount=9.5))
        note = proxy.publish("demo.message", message(room, "hello"))
        got = {e["id"]: e for e in client.take(2)}
    assert got[order.id]["event"] == "proxytest.order_placed"
    assert got[order.id]["data"] == {"order_id": 42, "amount": 9.5, "note": None}
    assert got[note.id]["event"] == "demo.message" and got[note.id]["data"] == message(room, "hello")
    for published in (order, note):
        check_published(published, transport)
        if published.seq is not None:
            assert got[published.id]["seq"] == published.seq


def test_publish_many_answers_each_item_in_order_and_sends_only_the_good_ones(
        gateway: Gateway, proxy: GatewayProxy, transport: str) -> None:
    room = uuid.uuid4().hex
    own_id = f"many-{uuid.uuid4().hex}"
    with gateway.node.client() as client:
        client.subscribe(MESSAGES)
        results = proxy.publish_many([
            ("demo.message", message(room, "one")),
            ("demo.message", {"room": room, "text": 2}),
            {"event": "demo.message", "data": message(room, "three"), "id": own_id},
            42,
            {"event": "demo.message", "data": message(room, "five"), "audience": {"users": []}},
        ])
        arrived = until_barrier(client, proxy, room)
    first, bad_data, third, not_an_event, nobody = results
    assert isinstance(first, Published) and isinstance(third, Published) and third.id == own_id
    assert isinstance(bad_data, EventRejected) and bad_data.code == "invalid_event"
    assert [d["path"] for d in bad_data.details] == ["data.text", "data.author"]
    assert isinstance(not_an_event, EventRejected) and "item 3 is int" in not_an_event.message
    assert isinstance(nobody, EventRejected) and "names no users and no roles" in nobody.message
    assert [e["id"] for e in arrived] == [first.id, own_id]
    assert [e["data"]["text"] for e in arrived] == ["one", "three"]


def test_bad_data_is_refused_here_with_the_gateways_words_without_sending(
        gateway: Gateway, transport: str, tmp_path: Path) -> None:
    closed = free_port()
    # Nothing listens where this proxy would send: a refusal (not GatewayUnavailable) proves it sent nothing.
    nowhere = gateway.proxy(transport, env={"GATEWAY_BRIDGE_PORT": str(closed),
                                            "GATEWAY_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{closed}/%2F"})
    bad = {"room": 1, "text": "t", "author": "a", "colour": "red"}
    with nowhere, pytest.raises(EventRejected) as here:
        nowhere.publish("demo.message", bad)
    with gateway.proxy("http") as unchecked, pytest.raises(EventRejected) as there:
        unchecked.validate = False
        unchecked.publish("demo.message", bad)
    assert (here.value.status, here.value.code, here.value.message, here.value.details) == \
           (there.value.status, there.value.code, there.value.message, there.value.details)
    assert [d["path"] for d in here.value.details] == ["data.room", "data.colour"]


def test_an_unknown_class_is_refused_before_sending(gateway: Gateway, proxy: GatewayProxy) -> None:
    with pytest.raises(EventRejected) as exc:
        proxy.publish("demo.nothing", {"a": 1})
    assert exc.value.status == 404 and exc.value.code == "unknown_event"
    assert "'demo.nothing'" in exc.value.message and "demo.message" in exc.value.message


def test_the_same_id_twice_is_one_event(gateway: Gateway, proxy: GatewayProxy, transport: str) -> None:
    room = uuid.uuid4().hex
    event_id = f"twice-{uuid.uuid4().hex}"
    with gateway.node.client() as client:
        client.subscribe(MESSAGES)
        first = proxy.publish("demo.message", message(room, "once"), id=event_id)
        again = proxy.publish("demo.message", message(room, "once"), id=event_id)
        arrived = until_barrier(client, proxy, room)
    assert first.id == again.id == event_id
    assert [e["id"] for e in arrived] == [event_id]
    if transport != "amqp":
        assert again.duplicate and again.seq == first.seq and not first.duplicate


def test_an_audience_limits_who_receives_the_event(gateway: Gateway, proxy: GatewayProxy) -> None:
    room = uuid.uuid4().hex
    alice = WampClient(gateway.node.ws_url, ticket=proxy.ticket("alice").ticket)
    with alice, gateway.node.client() as anonymous:
        for client in (alice, anonymous):
            client.subscribe(MESSAGES)
        targeted = proxy.publish("demo.message", message(room, "for alice"), audience={"users": ("alice",)})
        to_alice, to_anonymous = until_barrier(alice, proxy, room, anonymous)
    assert [e["id"] for e in to_alice] == [targeted.id] and to_anonymous == []


def test_a_ticket_and_the_client_config_log_a_user_in(gateway: Gateway, proxy: GatewayProxy) -> None:
    ticket = proxy.ticket("alice", roles=["staff"], ttl=30)
    assert ticket.user == "alice" and ticket.roles == ("staff",) and ticket.expires_at.endswith("Z")
    assert ticket.ticket not in repr(ticket)
    with WampClient(gateway.node.ws_url, ticket=ticket.ticket) as client:
        assert (client.authextra_welcome["user"], client.authextra_welcome["roles"]) == ("alice", ["staff"])
    config = proxy.client_config("dora")
    assert (config["url"], config["realm"]) == (gateway.node.ws_url, "gateway") and "jwt" not in config
    with WampClient(config["url"], realm=config["realm"], ticket=config["ticket"]) as client:
        assert client.call("gateway.whoami")["user"] == "dora"
    assert proxy.client_config() == {"url": gateway.node.ws_url, "realm": "gateway"}


def test_a_jwt_minted_here_logs_a_user_in(gateway: Gateway, proxy: GatewayProxy) -> None:
    with WampClient(gateway.node.ws_url, ticket=proxy.jwt("bob", roles=["red"])) as client:
        welcome = client.authextra_welcome
        assert (welcome["user"], welcome["roles"], welcome["authmethod"]) == ("bob", ["red"], "jwt")
    config = proxy.client_config("erin", credentials="jwt")
    with WampClient(config["url"], ticket=config["jwt"]) as client:
        assert client.call("gateway.whoami")["user"] == "erin"


def test_bad_ticket_requests_are_refused_with_the_reason(proxy: GatewayProxy) -> None:
    with pytest.raises(RequestRejected, match=r"roles\[0\] \('Staff!'\) must be a lower-case name"):
        proxy.ticket("alice", roles=["Staff!"])
    with pytest.raises(RequestRejected, match="at most 3600"):  # the gateway's own limit (auth.max_ticket_ttl)
        proxy.ticket("alice", ttl=999_999)


def test_a_gateway_that_comes_back_during_the_backoff_gets_the_event_once(
        gateway: Gateway, transport: str, tmp_path: Path) -> None:
    room = uuid.uuid4().hex
    with BrokerGate(gateway_url(gateway, transport)) as door:  # shut for now: nothing listens on its port
        proxy = gateway.proxy(transport, tmp_path, door_env(door, transport),
                              proxy={"retries": 20, "backoff": 0.05, "max_backoff": 0.2})
        failed = threading.Event()
        handler = _OnWarning(failed)
        logging.getLogger("webapp_bridge.proxy").addHandler(handler)
        opener = threading.Thread(target=lambda: failed.wait(10) and door.open())
        try:
            with gateway.node.client() as client, proxy:
                client.subscribe(MESSAGES)
                opener.start()
                published = proxy.publish("demo.message", message(room, "late"))
                assert failed.is_set() and door.is_open
                arrived = until_barrier(client, proxy, room)
        finally:
            logging.getLogger("webapp_bridge.proxy").removeHandler(handler)
            opener.join(10)
    assert "attempt 1 of 21 failed" in handler.first
    assert [e["id"] for e in arrived] == [published.id]


def test_a_gateway_that_never_comes_back_is_gateway_unavailable(gateway: Gateway, transport: str,
                                                                 tmp_path: Path) -> None:
    closed = free_port()
    env = {"GATEWAY_BRIDGE_PORT": str(closed), "GATEWAY_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{closed}/%2F"}
    with gateway.proxy(transport, tmp_path, env, proxy={"retries": 2, "backoff": 0.01}) as proxy:
        with pytest.raises(GatewayUnavailable) as exc:
            proxy.publish("demo.message", message("r", "lost"), id="never-delivered-1")
    error = exc.value
    assert error.attempts == 3 and error.ids == ["never-delivered-1"] and not error.maybe_accepted
    assert "after 3 attempts" in str(error) and "not accepted: retry later with id 'never-delivered-1'" in str(error)
    assert "refused" in error.last_error.lower() and str(closed) in error.last_error


def test_a_connection_dropped_while_idle_is_replaced_without_a_retry(gateway: Gateway, transport: str) -> None:
    room = uuid.uuid4().hex
    with BrokerGate(gateway_url(gateway, transport)) as door:
        door.open()
        warnings = _OnWarning(threading.Event())
        logging.getLogger("webapp_bridge.proxy").addHandler(warnings)
        try:
            with gateway.proxy(transport, env=door_env(door, transport)) as proxy, gateway.node.client() as client:
                client.subscribe(MESSAGES)
                first = proxy.publish("demo.message", message(room, "before"))
                door.shut()  # drops the kept-alive connection, as a gateway (or broker) restart does
                door.open()
                second = proxy.publish("demo.message", message(room, "after"))
                arrived = until_barrier(client, proxy, room)
        finally:
            logging.getLogger("webapp_bridge.proxy").removeHandler(warnings)
    assert [e["id"] for e in arrived] == [first.id, second.id]
    assert not warnings.event.is_set(), f"no attempt should have failed: {warnings.first}"


def test_a_gateway_that_never_answers_times_out_and_the_event_may_have_been_accepted(
        gateway: Gateway, transport: str, tmp_path: Path) -> None:
    with socket.socket() as silent:  # takes connections (the kernel does) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        env = {"GATEWAY_BRIDGE_PORT": str(port), "GATEWAY_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{port}/%2F"}
        with gateway.proxy(transport, tmp_path, env, proxy={"timeout": 0.3, "retries": 1, "backoff": 0}) as proxy:
            with pytest.raises(GatewayUnavailable) as exc:
                proxy.publish("demo.message", message("r", "unanswered"), id="unanswered-1")
    error = exc.value
    assert error.attempts == 2 and error.ids == ["unanswered-1"]
    if transport == "amqp":  # the broker's handshake never finished: nothing was published
        assert not error.maybe_accepted
    else:  # the request went out and no answer came: it may have been accepted
        assert error.maybe_accepted and "within 0.3 s (proxy.timeout)" in error.last_error
        assert "It may have been accepted: retry later with id 'unanswered-1'" in str(error)


def test_a_key_the_gateway_does_not_know_is_a_config_error_naming_the_key_not_showing_it(
        gateway: Gateway, transport: str) -> None:
    with gateway.proxy(transport, env={"GATEWAY_API_KEY": "not-a-known-key-42"}) as proxy:
        with pytest.raises(ProxyConfigError) as exc:
            proxy.ticket("alice")
    assert "refused the API key named 'key-1' (401" in str(exc.value)
    assert "not-a-known-key-42" not in str(exc.value) and "not-a-known-key-42" not in repr(proxy)


def test_threads_share_one_proxy(gateway: Gateway, proxy: GatewayProxy, transport: str) -> None:
    room = uuid.uuid4().hex
    results: list[Published] = []
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(5):
                results.append(proxy.publish("demo.message", message(room, f"{n}-{i}")))
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    with gateway.node.client() as client:
        client.subscribe(MESSAGES)
        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        arrived = until_barrier(client, proxy, room)
    assert errors == []
    assert sorted(e["id"] for e in arrived) == sorted(r.id for r in results) and len(results) == 30
    if transport != "amqp":
        assert len({r.seq for r in results}) == 30


def test_a_forked_child_opens_its_own_connection(gateway: Gateway, transport: str, tmp_path: Path) -> None:
    room = uuid.uuid4().hex
    with BrokerGate(gateway_url(gateway, transport)) as door:  # counts the connections made through it
        door.open()
        with gateway.proxy(transport, env=door_env(door, transport)) as proxy, gateway.node.client() as client:
            client.subscribe(MESSAGES)
            before = proxy.publish("demo.message", message(room, "parent, before"))  # the parent's connection
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child (gunicorn's worker after preload): publish, report, leave without cleanup
                code = 1
                try:
                    os.write(write, json.dumps(proxy.publish("demo.message", message(room, "child")).id).encode())
                    code = 0
                finally:
                    os._exit(code)
            os.close(write)
            with os.fdopen(read) as pipe:
                child_id = json.loads(pipe.read() or "null")
            _, status = os.waitpid(pid, 0)
            after = proxy.publish("demo.message", message(room, "parent, after"))  # still the parent's own
            arrived = until_barrier(client, proxy, room)
            connections = len(door._sockets) // 2  # each connection through the door is two sockets
    assert os.waitstatus_to_exitcode(status) == 0 and child_id is not None
    assert [e["id"] for e in arrived] == [before.id, child_id, after.id]
    assert connections == 2, "one connection for the parent (kept alive throughout), one of the child's own"


def gateway_url(gateway: Gateway, transport: str) -> str:
    """Where the transport's requests go: the bridge, or the broker."""
    return gateway.node.bridge_url if transport != "amqp" else amqp_config("q", "d")["url"]


def door_env(door: BrokerGate, transport: str) -> dict[str, str]:
    """Env overrides that send the transport's requests through ``door``."""
    return {"GATEWAY_BRIDGE_PORT": str(door.port)} if transport != "amqp" else {"GATEWAY_AMQP_URL": door.url}


class _OnWarning(logging.Handler):
    """Sets ``event`` at the proxy's first warning (a failed attempt) and keeps its text."""

    def __init__(self, event: threading.Event) -> None:
        super().__init__(logging.WARNING)
        self.event = event
        self.first = ""

    def emit(self, record: logging.LogRecord) -> None:
        if not self.event.is_set():
            self.first = record.getMessage()
            self.event.set()
