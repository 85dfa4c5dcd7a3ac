"""Overload is bounded and visible, against a real node: past ``bridge.max_in_flight`` a request is refused 503
with Retry-After at once, a key past its rate 429; nothing accepted is lost; RabbitMQ ingest waits for room; the
health check answers throughout; the proxy honours Retry-After.

To hold the bridges at their limit without timing, the tests stop the router (SIGSTOP): requests the bridges
took stay in flight, and whatever comes next finds them full. No timing is asserted; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import re
import signal
import subprocess
import time
import uuid
import xmlrpc.client
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.amqp import Broker, amqp_config, temporary_queues
from tests.support.harness import API_KEY, GatewayNode, running_node
from tests.support.wamp import WampClient
from webapp_bridge.proxy import GatewayProxy

pytestmark = pytest.mark.integration
TOPIC = "gateway.event.demo.message"
#: Each bridge process (two per node) holds this many events in flight at most.
LIMIT = 5
BRIDGES = 2
#: A key with a rate so low it does not refill during a test: its burst per bridge, then 429.
LIMITED_KEY, LIMITED_BURST = "limited-key-0123456789", 3
#: A key allowed one event every two seconds: the proxy is made to wait for it.
PACED_KEY = "paced-key-0123456789"
AMQP_PREFETCH = 2


def message(room: str, text: str = "t") -> dict[str, str]:
    return {"room": room, "text": text, "author": "overload"}


@dataclass
class Overloaded:
    node: GatewayNode
    broker: Broker
    queue: str
    dead: str


@pytest.fixture(scope="module")
def gateway() -> Iterator[Overloaded]:
    with Broker() as broker, temporary_queues(broker, "overload", "overload-dead") as (queue, dead):
        config = {
            # Without the hand-off: new connections reach both bridges, each with its limits and its buckets
            # (test_handoff holds the limits with it).
            "bridge": {"max_in_flight": LIMIT, "max_batch": LIMIT, "hand_off": False, "api_keys": [
                {"name": "test", "key": API_KEY},
                {"name": "limited", "key": LIMITED_KEY, "rate": 0.01, "burst": LIMITED_BURST},
                {"name": "paced", "key": PACED_KEY, "rate": 0.5, "burst": 1}]},
            "amqp": amqp_config(queue, dead, prefetch=AMQP_PREFETCH),
        }
        with running_node(config) as node:
            yield Overloaded(node, broker, queue, dead)


# -- requests ------------------------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def retry_after(self) -> int | None:
        value = self.headers.get("retry-after")
        return int(value) if value is not None else None


def post(node: GatewayNode, body: bytes, key: str = API_KEY, path: str = "/events", timeout: float = 60,
         content_type: str = "application/json") -> Reply:
    """One request on a connection of its own (so on either bridge)."""
    connection = http.client.HTTPConnection("127.0.0.1", node.bridge_port, timeout=timeout)
    try:
        connection.request("POST", path, body, {"Authorization": f"Bearer {key}", "Content-Type": content_type})
        response = connection.getresponse()
        raw = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()
    return Reply(response.status, headers, json.loads(raw) if "json" in headers.get("content-type", "") else raw)


def event(room: str, event_id: str) -> bytes:
    return json.dumps({"event": "demo.message", "data": message(room), "id": event_id}).encode()


def health(node: GatewayNode, path: str = "/healthz") -> Reply:
    """Readiness (``/healthz``), or liveness with ``path="/livez"``; on a connection of its own (so either bridge)."""
    connection = http.client.HTTPConnection("127.0.0.1", node.bridge_port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(response.read()))
    finally:
        connection.close()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"{what}: not within {timeout}s")


def assert_refused_overloaded(reply: Reply) -> None:
    assert reply.status == 503 and reply.retry_after is not None and reply.retry_after >= 1, reply
    assert reply.body["error"] == "overloaded" and "bridge.max_in_flight" in reply.body["message"], reply


# -- holding the bridges at their limit ------------------------------------------------------------------------------


def router_pid(node: GatewayNode) -> int:
    assert node.process is not None
    out = subprocess.run(["pgrep", "-g", str(node.process.pid), "-a"], capture_output=True, text=True).stdout
    (pid,) = [int(line.split()[0]) for line in out.splitlines() if line.split(None, 1)[1] == "gateway router"]
    return pid


@dataclass
class Held:
    """The node's bridges, full: ``LIMIT`` requests each in flight behind a stopped router."""

    node: GatewayNode
    room: str
    #: The requests in flight: answered once the router goes on.
    pending: list[Future[Reply]]
    refused: list[Reply]


@contextmanager
def held(node: GatewayNode, pool: ThreadPoolExecutor, sent: int = 60) -> Iterator[Held]:
    """Stop the router, post ``sent`` events (each on a connection of its own): ``LIMIT`` per bridge stay in
    flight, the rest are refused. Yields once they are; on leaving, the router goes on and the held ones end."""
    room = uuid.uuid4().hex
    pid = router_pid(node)
    os.kill(pid, signal.SIGSTOP)
    try:
        futures = [pool.submit(post, node, event(room, f"held-{room}-{i}")) for i in range(sent)]
        in_flight = LIMIT * BRIDGES
        wait_for(f"{sent - in_flight} refusals of {sent}",
                 lambda: sum(1 for f in futures if f.done()) >= sent - in_flight)
        done = [f.result() for f in futures if f.done()]
        for reply in done:
            assert_refused_overloaded(reply)
        yield Held(node, room, [f for f in futures if not f.done()], done)
    finally:
        os.kill(pid, signal.SIGCONT)


def accepted_ids(replies: list[Reply]) -> set[str]:
    return {r.body["id"] for r in replies if r.status == 202}


# -- the tests -------------------------------------------------------------------------------------------------------


async def _burst(port: int, bodies: list[bytes], timeout: float,
                 on_reply: Callable[[tuple[int, dict[str, str], Any]], None] = lambda reply: None,
                 ) -> list[tuple[int, dict[str, str], Any]]:
    """Every body POSTed at once, each on a connection of its own; ``on_reply`` is told of each answer as it comes."""
    async def one(body: bytes) -> tuple[int, dict[str, str], Any]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"POST /events HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nConnection: close\r\n"
                         b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (API_KEY.encode(), len(body), body))
            raw = await reader.read()  # to the end: the bridge closes after its answer
        finally:
            writer.close()
        head, _, answer = raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        reply = int(lines[0].split()[1]), headers, json.loads(answer)
        on_reply(reply)
        return reply

    return list(await asyncio.wait_for(asyncio.gather(*(one(b) for b in bodies)), timeout))


def test_a_burst_far_past_the_limit_is_answered_202_or_503_and_every_202_is_delivered(gateway: Overloaded) -> None:
    """300 requests at once at two bridges taking LIMIT each. So that the burst passes the limit whatever the
    timing, the router is stopped (SIGSTOP) until the first refusal is answered: nothing in flight can end
    meanwhile, so the bridges fill up and refuse. Then the router goes on and the rest of the burst meets
    the bridges as it comes."""
    node = gateway.node
    room = uuid.uuid4().hex
    bodies = [event(room, f"burst-{room}-{i}") for i in range(300)]
    answered: list[tuple[int, dict[str, str], Any]] = []
    with WampClient(node.ws_url) as client, ThreadPoolExecutor(1) as pool:
        client.subscribe(TOPIC)
        pid = router_pid(node)
        os.kill(pid, signal.SIGSTOP)
        try:
            burst = pool.submit(asyncio.run, _burst(node.bridge_port, bodies, timeout=120, on_reply=answered.append))
            wait_for("a refusal while the router is stopped", lambda: [r for r in list(answered) if r[0] == 503])
        finally:
            os.kill(pid, signal.SIGCONT)
        replies = burst.result(timeout=150)
        accepted = {body["id"] for status, _, body in replies if status == 202}
        got = client.take(len(accepted), timeout=60)
    statuses = {status for status, _, _ in replies}
    assert statuses <= {202, 503}, statuses
    refused = [Reply(status, headers, body) for status, headers, body in replies if status == 503]
    assert refused, "the burst passed the limit: some were refused"
    for reply in refused:
        assert_refused_overloaded(reply)  # 503 with Retry-After, naming bridge.max_in_flight
    assert len(accepted) >= LIMIT, "the ones in flight when the router stopped get in, and are answered 202"
    assert {e["id"] for e in got} == accepted, "every event answered 202 reaches the subscriber"


def test_at_the_limit_everything_is_refused_at_once_and_the_health_check_says_so(gateway: Overloaded) -> None:
    node = gateway.node
    with WampClient(node.ws_url) as client, ThreadPoolExecutor(80) as pool:
        client.subscribe(TOPIC)
        with held(node, pool) as full:
            assert len(full.refused) == 60 - LIMIT * BRIDGES
            # Readiness answers at once (the router is stopped: it could not ask it anything).
            ready = health(node)
            assert ready.status == 503 and ready.retry_after == 1
            assert {k: ready.body[k] for k in ("status", "in_flight", "max_in_flight")} == {
                "status": "overloaded", "in_flight": LIMIT, "max_in_flight": LIMIT}
            # Other work for our components, and a batch, are refused alike.
            assert_refused_overloaded(post(node, json.dumps({"user": "alice"}).encode(), path="/tickets"))
            batch = {"events": [{"event": "demo.message", "data": message(full.room)}]}
            assert_refused_overloaded(post(node, json.dumps(batch).encode(), path="/events/batch"))
            # XML-RPC: a fault whose code is the status, and the Retry-After header.
            call = xmlrpc.client.dumps(("demo.message", message(full.room)), "publish").encode()
            rpc = post(node, call, path="/RPC2", content_type="text/xml")
            assert rpc.status == 200 and rpc.retry_after == 1
            with pytest.raises(xmlrpc.client.Fault) as fault:
                xmlrpc.client.loads(rpc.body)
            assert fault.value.faultCode == 503 and fault.value.faultString.startswith("overloaded: ")
            # A wrong key is still told so, not "overloaded".
            assert post(node, event(full.room, "x"), key="not-a-key-at-all").status == 401
        replies = [f.result(timeout=60) for f in full.pending]
        assert [r.status for r in replies] == [202] * (LIMIT * BRIDGES), "the held ones are accepted"
        got = client.take(LIMIT * BRIDGES, timeout=60)
    assert {e["id"] for e in got} == accepted_ids(replies)
    assert wait_for("the node ready again", lambda: health(node).status == 200)


def test_at_the_limit_liveness_answers_200_while_readiness_answers_503(gateway: Overloaded) -> None:
    """A load balancer's readiness check sends traffic elsewhere; the liveness check must not get the busy node
    restarted. Both bridges are full (and the router stopped): each probe reaches either of them."""
    node = gateway.node
    with ThreadPoolExecutor(80) as pool:
        with held(node, pool) as full:
            answered_by = set()
            for _ in range(8):
                ready, live = health(node), health(node, "/livez")
                assert ready.status == 503 and ready.body["status"] == "overloaded", ready
                assert live.status == 200 and live.retry_after is None, live
                assert {k: live.body[k] for k in ("status", "in_flight", "max_in_flight")} == {
                    "status": "alive", "in_flight": LIMIT, "max_in_flight": LIMIT}, live
                answered_by.add(live.headers["x-gateway-process"])
            assert answered_by <= {"components-1", "components-2"}
        replies = [f.result(timeout=60) for f in full.pending]
    assert [r.status for r in replies] == [202] * (LIMIT * BRIDGES)
    assert wait_for("the node ready again", lambda: health(node).status == 200)
    assert health(node, "/livez").status == 200


def test_rabbitmq_ingest_at_the_limit_stops_taking_messages_and_resumes_losing_none(gateway: Overloaded) -> None:
    node, broker, queue = gateway.node, gateway.broker, gateway.queue
    sent = 6
    with WampClient(node.ws_url) as client, ThreadPoolExecutor(80) as pool:
        client.subscribe(TOPIC)
        with held(node, pool) as full:
            ids = [f"amqp-{full.room}-{i}" for i in range(sent)]
            for message_id in ids:
                broker.publish(queue, {"event": "demo.message", "data": message(full.room)}, message_id=message_id)
            # The consuming bridge waits for room (either bridge may answer: ask until the consuming one does).
            def paused() -> Reply | None:
                reply = health(node)
                return reply if reply.body.get("amqp") == "paused" else None
            assert wait_for("the consuming bridge paused", paused).body["status"] == "overloaded"
            # The broker holds what the bridge has not taken: no more than the prefetch went out.
            assert broker.ready(queue) >= sent - AMQP_PREFETCH
        replies = [f.result(timeout=60) for f in full.pending]
        got = client.take(LIMIT * BRIDGES + sent, timeout=60)
    assert {e["id"] for e in got} == accepted_ids(replies) | set(ids), "every message became an event, once"
    assert [e["id"] for e in got if e["id"] in ids] == ids, "in queue order"
    assert broker.get(gateway.dead) is None, "nothing dead-lettered for the wait"
    wait_for("the queue drained", lambda: broker.ready(queue) == 0)


def test_a_key_past_its_rate_gets_429_naming_it_while_another_key_is_not_affected(gateway: Overloaded) -> None:
    node = gateway.node
    room = uuid.uuid4().hex
    # Each bridge process has its own bucket: burst events from each, then 429 (the rate refills one event
    # in 100 s). Many requests on connections of their own reach both bridges.
    replies = [post(node, event(room, f"limited-{room}-{i}"), key=LIMITED_KEY) for i in range(30)]
    assert sorted({r.status for r in replies}) == [202, 429]
    assert sum(1 for r in replies if r.status == 202) == LIMITED_BURST * BRIDGES
    for reply in (r for r in replies if r.status == 429):
        assert reply.retry_after is not None and 1 <= reply.retry_after <= 100
        assert {k: reply.body[k] for k in ("error", "key", "rate", "burst")} == {
            "error": "rate_limited", "key": "limited", "rate": 0.01, "burst": LIMITED_BURST}
        assert reply.body["retry_after"] == reply.retry_after
        assert LIMITED_KEY not in json.dumps(reply.body), "the key's name, never the key"
    assert post(node, event(room, f"free-{room}"), key=API_KEY).status == 202, "another key is not affected"
    call = xmlrpc.client.dumps(("demo.message", message(room)), "publish").encode()
    rpc = post(node, call, key=LIMITED_KEY, path="/RPC2", content_type="text/xml")
    assert rpc.status == 200 and rpc.retry_after is not None
    with pytest.raises(xmlrpc.client.Fault) as fault:
        xmlrpc.client.loads(rpc.body)
    assert fault.value.faultCode == 429 and "the API key 'limited'" in fault.value.faultString
    log = (node.cbdir / "access.log")
    assert wait_for("the access log names the key", lambda: log.exists() and " 429 key=limited " in log.read_text(),
                    timeout=10)


# -- the proxy -----------------------------------------------------------------------------------------------------


class _Retries(logging.Handler):
    """The proxy's warnings (each failed attempt, and the wait before the next)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def waits(self, status: int) -> list[float]:
        return [float(m.group(1)) for line in self.lines if f"answered {status} " in line
                for m in [re.search(r"retrying in ([0-9.]+) s", line)] if m]


@contextmanager
def proxy_logs() -> Iterator[_Retries]:
    handler = _Retries()
    logger = logging.getLogger("webapp_bridge.proxy")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def make_proxy(node: GatewayNode, tmp: Path, transport: str, key_name: str) -> GatewayProxy:
    """A proxy on the node's gateway.yaml, with no backoff of its own: any wait is the gateway's Retry-After."""
    raw = yaml.safe_load((node.workdir / "gateway.yaml").read_text())
    raw["proxy"] = {"api_key_name": key_name, "retries": 8, "backoff": 0, "max_backoff": 5, "timeout": 60}
    config = tmp / f"gateway-{uuid.uuid4().hex[:6]}.yaml"
    config.write_text(yaml.safe_dump(raw))
    return GatewayProxy.from_config(config, transport=transport, env={})


@pytest.mark.parametrize("transport", ["http", "xmlrpc"])
def test_the_proxy_waits_as_long_as_a_503_says_then_gets_the_event_in(gateway: Overloaded, transport: str,
                                                                       tmp_path: Path) -> None:
    node = gateway.node
    with WampClient(node.ws_url) as client, ThreadPoolExecutor(80) as pool, proxy_logs() as logs, \
            make_proxy(node, tmp_path, transport, "test") as proxy:
        client.subscribe(TOPIC)
        with held(node, pool) as full:
            publishing = pool.submit(proxy.publish, "demo.message", message(full.room), id=f"proxy-{full.room}")
            wait_for("the proxy refused once", lambda: logs.waits(503))
        published = publishing.result(timeout=120)
        replies = [f.result(timeout=60) for f in full.pending]
        got = client.take(LIMIT * BRIDGES + 1, timeout=60)
    assert published.id == f"proxy-{full.room}" and published.seq is not None
    assert min(logs.waits(503)) >= 1.0, "each retry waited at least the Retry-After (the proxy's own backoff is 0)"
    assert {e["id"] for e in got} == accepted_ids(replies) | {published.id}


def test_the_proxy_waits_as_long_as_a_429_says(gateway: Overloaded, tmp_path: Path) -> None:
    node = gateway.node
    room = uuid.uuid4().hex
    with WampClient(node.ws_url) as client, proxy_logs() as logs, \
            make_proxy(node, tmp_path, "http", "paced") as proxy:
        client.subscribe(TOPIC)
        # One event every 2 s per bridge, one at once: four in a row meet the limit.
        published = [proxy.publish("demo.message", message(room), id=f"paced-{room}-{i}") for i in range(4)]
        got = client.take(4, timeout=60)
    waits = logs.waits(429)
    assert waits and min(waits) >= 1.0, logs.lines
    assert [p.id for p in published] == [e["id"] for e in got]
