"""A node leaving drains: no new events, what it accepted is answered, then it stops (issue 17, "Leaving").

Against real nodes: ``POST /admin/drain`` reaches both bridges of a node (they share the port, a request
reaches one); events in flight when it comes are answered 202, new ones 503 ``draining`` with Retry-After,
``/healthz`` says 503 ``draining`` while ``/livez`` stays 200, tickets are still issued, RabbitMQ ingest
hands over what it holds and stops consuming; and ``gateway run`` on SIGTERM drains its node before it
stops it, so that a client posting all along gets every request answered, 202 or 503 ``draining``.

Requests are held in flight by stopping the router (SIGSTOP), as ``test_overload`` does: nothing in flight
can end meanwhile. Every wait is polled and bounded; no timing is asserted but gateway run's stop bound.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import threading
import time
import uuid
import xmlrpc.client
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from components.config import BridgeConfig
from components.supervision import Settings
from tests.integration.test_overload import Reply, event, health, message, post, router_pid
from tests.integration.test_supervision import WAIT, gateway_run
from tests.support.amqp import Broker, amqp_config, temporary_queues
from tests.support.harness import GatewayNode, running_node
from tests.support.waiting import wait_for
from tests.support.wamp import WampClient

pytestmark = pytest.mark.integration
TOPIC = "gateway.event.demo.message"
PROCESSES = {"components-1", "components-2"}
#: Events held in flight behind the stopped router when the drain comes.
HELD = 4
#: Without the hand-off, new connections reach both bridges: each is asked how it drains.
BOTH_BRIDGES: dict[str, Any] = {"bridge": {"hand_off": False}}


def drain(node: GatewayNode) -> Reply:
    """``POST /admin/drain`` (on a connection of its own, so either bridge takes it)."""
    return post(node, b"", path="/admin/drain")


def by_process(node: GatewayNode, path: str) -> dict[str, Reply]:
    """The answer of each bridge process to ``GET path``: asked on new connections until both have answered."""
    seen: dict[str, Reply] = {}
    for _ in range(200):
        reply = health(node, path)
        seen[reply.headers["x-gateway-process"]] = reply
        if set(seen) == PROCESSES:
            return seen
    raise AssertionError(f"only {sorted(seen)} answered {path} in 200 requests")


def assert_draining(reply: Reply) -> None:
    assert reply.status == 503 and reply.retry_after is not None and reply.retry_after >= 1, reply
    assert reply.body["error"] == "draining" and "another node" in reply.body["message"], reply


def test_a_drained_node_answers_what_it_held_refuses_new_events_and_says_so_to_probes() -> None:
    room = uuid.uuid4().hex
    with running_node(BOTH_BRIDGES) as node, WampClient(node.ws_url) as client, ThreadPoolExecutor(HELD + 1) as pool:
        client.subscribe(TOPIC)
        assert node.not_ready() is None
        pid = router_pid(node)
        os.kill(pid, signal.SIGSTOP)
        try:
            held = [pool.submit(post, node, event(room, f"held-{room}-{i}")) for i in range(HELD)]
            wait_for(lambda: sum(r.body["in_flight"] for r in by_process(node, "/livez").values()) == HELD, 30,
                     f"{HELD} events in flight behind the stopped router")
            # The bridge that takes the drain drains at once, by itself; it reaches the other through the
            # router, once it goes on.
            first = pool.submit(drain, node)
            wait_for(lambda: any(r.body["draining"] for r in by_process(node, "/livez").values()), 30,
                     "a bridge draining")
            assert not any(f.done() for f in held), "still in flight: the router is stopped"
        finally:
            os.kill(pid, signal.SIGCONT)
        replies = [f.result(timeout=60) for f in held]
        assert [r.status for r in replies] == [202] * HELD, "what was in flight when the drain came is accepted"
        got = client.take(HELD, timeout=60)
        assert {e["id"] for e in got} == {r.body["id"] for r in replies}, "and delivered"

        answer = first.result(timeout=60)
        assert answer.status == 200 and answer.body["status"] in ("draining", "drained"), answer
        assert {b["process"] for b in answer.body["bridges"]} == PROCESSES, "both bridges reached"
        assert "failures" not in answer.body, answer

        # New events, on either bridge, by any ingest: 503 draining with Retry-After, nothing accepted.
        for i in range(6):
            assert_draining(post(node, event(room, f"late-{room}-{i}")))
        batch = {"events": [{"event": "demo.message", "data": message(room)}]}
        assert_draining(post(node, json.dumps(batch).encode(), path="/events/batch"))
        call = xmlrpc.client.dumps(("demo.message", message(room)), "publish").encode()
        rpc = post(node, call, path="/RPC2", content_type="text/xml")
        assert rpc.status == 200 and rpc.retry_after == 1
        with pytest.raises(xmlrpc.client.Fault) as fault:
            xmlrpc.client.loads(rpc.body)
        assert fault.value.faultCode == 503 and fault.value.faultString.startswith("draining: ")
        # Tickets lose nothing: still issued (a browser's login works on any node of a cluster).
        assert node.ticket("alice")

        # Readiness says draining on both bridges (a load balancer sends elsewhere); liveness stays 200.
        for reply in by_process(node, "/healthz").values():
            assert reply.status == 503 and reply.retry_after == 1, reply
            assert reply.body["status"] == "draining", reply
        for reply in by_process(node, "/livez").values():
            assert reply.status == 200 and reply.body["status"] == "alive" and reply.body["draining"] is True

        # Asked again: the same drain, and what is left in flight: nothing, on both.
        again = wait_for(lambda: (r := drain(node)).body.get("status") == "drained" and r, 30, "drained")
        assert again.status == 200 and again.body["in_flight"] == 0
        assert sorted((b["process"], b["in_flight"]) for b in again.body["bridges"]) == [
            ("components-1", 0), ("components-2", 0)]
        assert client.events.empty(), "nothing refused was published"
        # A wrong key may not drain a node.
        assert post(node, b"", key="not-a-key-at-all", path="/admin/drain").status == 401


@dataclass
class WithBroker:
    node: GatewayNode
    broker: Broker
    queue: str


@pytest.fixture
def amqp_node() -> Iterator[WithBroker]:
    with Broker() as broker, temporary_queues(broker, "drain", "drain-dead") as (queue, dead):
        with running_node({"amqp": amqp_config(queue, dead), **BOTH_BRIDGES}) as node:
            yield WithBroker(node, broker, queue)


def test_rabbitmq_ingest_hands_over_what_it_took_then_stops_consuming(amqp_node: WithBroker) -> None:
    node, broker, queue = amqp_node.node, amqp_node.broker, amqp_node.queue
    room = uuid.uuid4().hex
    with WampClient(node.ws_url) as client:
        client.subscribe(TOPIC)
        wait_for(lambda: broker.consumers(queue) == 1, 60, "one bridge of the node consuming")
        before = [f"before-{room}-{i}" for i in range(5)]
        for message_id in before:
            broker.publish(queue, {"event": "demo.message", "data": message(room)}, message_id=message_id)
        assert {e["id"] for e in client.take(len(before), timeout=60)} == set(before)

        answer = wait_for(lambda: (r := drain(node)).body.get("status") == "drained" and r, 60, "drained")
        states = {b["process"]: b["amqp"] for b in answer.body["bridges"]}
        assert states == {"components-1": "drained", "components-2": "drained"}, "the consumer and the standby"
        wait_for(lambda: broker.consumers(queue) == 0, 30, "no consumer left on the queue")

        after = [f"after-{room}-{i}" for i in range(3)]
        for message_id in after:
            broker.publish(queue, {"event": "demo.message", "data": message(room)}, message_id=message_id)
        broker.wait_until(queue, len(after), timeout=30)  # they wait in the broker for another node
        assert broker.consumers(queue) == 0 and client.events.empty()
        assert {r.body["amqp"] for r in by_process(node, "/healthz").values()} == {"drained"}


@dataclass
class Outcome:
    status: int | None
    error: str | None = None
    retry_after: int | None = None
    id: str | None = None


def test_sigterm_to_gateway_run_drains_the_node_then_stops_it_with_every_request_answered() -> None:
    room = uuid.uuid4().hex
    bound = BridgeConfig().drain_timeout + Settings().stop_grace  # the repo's gateway.yaml has the defaults
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def keep_posting(worker: int) -> None:
        """Posts until told to go elsewhere (a 503 draining: the proxy would send it to another node)."""
        for i in range(100_000):
            try:
                reply = post(run.api, event(room, f"w{worker}-{i}-{room}"), timeout=WAIT)
            except ConnectionRefusedError:
                with lock:
                    outcomes.append(Outcome(None, "refused"))  # nothing sent: nobody listens any more
                return
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    outcomes.append(Outcome(None, repr(exc)))  # cut mid-way
                return
            with lock:
                outcomes.append(Outcome(reply.status, reply.body.get("error") if isinstance(reply.body, dict) else None,
                                        reply.retry_after, reply.body.get("id") if reply.status == 202 else None))
            if reply.status != 202:
                return

    with gateway_run() as run:
        run.wait_serving()
        client = WampClient(run.api.ws_url).connect()
        client.subscribe(TOPIC)
        workers = [threading.Thread(target=keep_posting, args=(n,), daemon=True) for n in range(4)]
        for worker in workers:
            worker.start()
        wait_for(lambda: sum(1 for o in list(outcomes) if o.status == 202) >= 40, 60, "events flowing")
        signalled = time.monotonic()
        run.process.send_signal(signal.SIGTERM)
        assert run.process.wait(bound + 5) == 0
        took = time.monotonic() - signalled
        for worker in workers:
            worker.join(30)
        assert not any(w.is_alive() for w in workers)
        wait_for(lambda: not run.processes(), 30, "every process of the node gone")
        log = run.log_text()

    accepted = [o.id for o in outcomes if o.status == 202]
    cut = [o for o in outcomes if o.status is None and o.error != "refused"]
    assert cut == [], f"requests cut mid-way: {cut}"
    others = [o for o in outcomes if o.status not in (202, 503, None)]
    assert others == [], others
    refused = [o for o in outcomes if o.status == 503]
    assert refused, "the posting clients were told the node leaves"
    assert all(o.error == "draining" and o.retry_after == 1 for o in refused), refused
    assert took <= bound, f"gateway run took {took:.1f} s to stop, over drain_timeout + stop grace ({bound:g} s)"
    # Every event answered 202 reached the subscriber before the node closed its session.
    got = client.take(len(accepted), timeout=30)
    assert sorted(e["id"] for e in got) == sorted(accepted)
    assert client.disconnected.wait(30), "the node closed the client's session: it moves to another node"
    client.close()

    supervisor = [line for line in log.splitlines() if "[Supervisor  " in line]
    assert any("got SIGTERM: stopping the node, draining it first" in line for line in supervisor), supervisor
    drained = [line for line in supervisor if re.search(r"drained in [\d.]+ s: nothing left in flight", line)]
    assert len(drained) == 1 and "components-1: 0" in drained[0] and "components-2: 0" in drained[0], supervisor
    assert supervisor[-1].endswith("the node stopped")
    assert "Traceback" not in log, log[max(0, log.find("Traceback") - 500):][:4000]  # the whole traceback, if any
