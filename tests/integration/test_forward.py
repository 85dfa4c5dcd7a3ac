"""Forwarding (``webapp_bridge.server.forward``) on a real node: the bridge beside a standby dispatcher parses its
own requests and sends their events to the bridge beside the active one over a Unix socket; what was on its
way when that process died is sent again over WAMP, and answered. And the same-user check at both ends, against
a process of another user.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_handoff import another_user, as_nobody, livez, squatting, stop
from tests.integration.test_overload import BRIDGES, Reply, event, post, router_pid
from tests.support.harness import GatewayNode, running_node
from tests.support.waiting import wait_for
from tests.support.wamp import WampClient
from webapp_bridge.server import forward

pytestmark = pytest.mark.integration
TOPIC = "gateway.event.demo.message"


def states(node: GatewayNode, probes: int = 20) -> dict[int, dict[str, Any]]:
    """/livez of each bridge reached by ``probes`` new connections: pid -> its body."""
    seen: dict[int, dict[str, Any]] = {}
    for _ in range(probes):
        try:
            body = livez(node).body
        except OSError:  # a connection the killed process had accepted
            continue
        seen[body["pid"]] = body
    return seen


def forwarding(node: GatewayNode) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(the bridge beside the active dispatcher, the other) once the other forwards its events there."""
    seen = states(node)
    publishing = [b for b in seen.values() if b["forward"]["state"] == "publishing"]
    others = [b for b in seen.values() if b["forward"]["state"] == "forwarding"]
    if len(seen) == BRIDGES and len(publishing) == 1 and len(others) == 1 and publishing[0]["forward"]["from"] == 1:
        return publishing[0], others[0]
    return None


def forwarded(node: GatewayNode) -> dict[str, float]:
    """The node's ``gateway_forwarded_requests_total`` by outcome."""
    reply = node.get("/metrics")
    assert reply.status == 200, reply
    counts = {"answered": 0.0, "again": 0.0}
    for family in text_string_to_metric_families(reply.body):
        for sample in family.samples:
            if sample.name == "gateway_forwarded_requests_total":
                counts[sample.labels["outcome"]] = sample.value
    return counts


#: Each bridge serves the connections the kernel gives it (the hand-off would pass them all to one).
BOTH_SERVE: dict[str, Any] = {"bridge": {"hand_off": False}}


@pytest.fixture(scope="module")
def node() -> Iterator[GatewayNode]:
    with running_node(BOTH_SERVE) as running:
        yield running


def test_events_posted_to_either_bridge_are_published_in_one_numbering(node: GatewayNode) -> None:
    active, other = wait_for(lambda: forwarding(node), what="the standby's bridge forwarding its events")
    room, sent = uuid.uuid4().hex, 40
    with WampClient(node.ws_url) as client, ThreadPoolExecutor(8) as pool:
        client.subscribe(TOPIC)
        replies = list(pool.map(lambda i: post(node, event(room, f"fw-{room}-{i}")), range(sent)))
        assert [r.status for r in replies] == [202] * sent
        got = client.take(sent, timeout=30)
    assert [e["seq"] for e in got] == sorted(r.body["seq"] for r in replies), "one numbering, in order"
    assert len({r.body["seq"] for r in replies}) == sent
    after = wait_for(lambda: states(node).get(other["pid"]), what="the forwarding bridge's /livez")["forward"]
    assert after["state"] == "forwarding" and after["answered"] > other["forward"]["answered"], \
        "some of them came to the standby's bridge, and were answered through the other"
    assert forwarded(node)["answered"] >= after["answered"]


def test_events_on_their_way_when_the_active_container_dies_are_answered_all_the_same() -> None:
    """The router stopped holds every request in flight: those that came to the standby's bridge wait, forwarded,
    in the active container. That one is killed: they are sent again over WAMP, with the same ids, and answered
    once the survivor's dispatcher takes over. Those that came to the killed bridge are cut (the client's retry).
    Every event answered reaches a subscriber with the seq it was answered with (an unlogged one the killed
    dispatcher had already handed to the router may come a second time, with its first seq: the window
    docs/architecture.md describes)."""
    with running_node(BOTH_SERVE) as node, WampClient(node.ws_url) as subscriber:
        subscriber.subscribe(TOPIC)
        active, _ = wait_for(lambda: forwarding(node), what="the standby's bridge forwarding its events")
        room, sent = uuid.uuid4().hex, 20
        bodies = [event(room, f"death-{room}-{i}") for i in range(sent)]
        router = router_pid(node)
        with ThreadPoolExecutor(sent) as pool:
            os.kill(router, signal.SIGSTOP)
            try:
                futures = [pool.submit(_post_or_cut, node, body) for body in bodies]
                wait_for(lambda: sum(b["in_flight"] for b in states(node).values()) == sent and
                         len(states(node)) == BRIDGES, what=f"{sent} requests in flight over both bridges")
                os.kill(active["pid"], signal.SIGKILL)  # Crossbar does not start a container killed so again
            finally:
                os.kill(router, signal.SIGCONT)
            first = [f.result(timeout=90) for f in futures]
        survived = [r for r in first if r is not None]
        assert survived, "some came to the standby's bridge"
        assert all(r.status == 202 for r in survived), [(r.status, r.body) for r in survived]
        assert forwarded(node)["again"] >= len(survived), "each was sent again over WAMP"
        cut = [body for body, r in zip(bodies, first) if r is None]
        retried = [post(node, body) for body in cut]  # the client's retry, with the same id
        assert all(r.status == 202 for r in retried), [(r.status, r.body) for r in retried]
        seqs = {r.body["id"]: r.body["seq"] for r in survived + retried}
        assert len(seqs) == sent and len(set(seqs.values())) == sent
        delivered: set[tuple[str, int]] = set()
        while not set(seqs.items()) <= delivered:
            delivered.update((e["id"], e["seq"]) for e in subscriber.take(1, timeout=30))


def _post_or_cut(node: GatewayNode, body: bytes) -> Reply | None:
    """The answer, or None if the connection was cut (it came to the bridge that was killed)."""
    try:
        return post(node, body, timeout=90)
    except (ConnectionError, http.client.RemoteDisconnected):
        return None


# -- another user's process at the other end -------------------------------------------------------------------------


class Transport:
    """What ``forward._same_user`` asks of a transport: its socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def getHandle(self) -> socket.socket:
        return self._sock


def test_a_process_of_this_user_is_trusted() -> None:
    one, other = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with one, other:
        assert forward._same_user(Transport(one))


@another_user
def test_a_name_held_by_another_user_is_not_trusted() -> None:
    name = forward.address("test", int.from_bytes(os.urandom(3), "big"))
    squatter = squatting(name, "SOCK_STREAM")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(name)
            assert not forward._same_user(Transport(sock)), "the client sends nothing to it"
    finally:
        stop(squatter)


@another_user
def test_a_client_of_another_user_is_not_trusted() -> None:
    name = forward.address("test", int.from_bytes(os.urandom(3), "big"))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listening:
        listening.bind(name)
        listening.listen(1)
        intruder = as_nobody(f"""
            import socket, sys
            unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            unix.connect({name!r})
            print("connected", flush=True)
            sys.stdin.read()
        """)
        try:
            assert intruder.stdout is not None
            assert intruder.stdout.readline().strip() == "connected"
            accepted, _ = listening.accept()
            with accepted:
                assert not forward._same_user(Transport(accepted)), "the server publishes nothing of its"
        finally:
            stop(intruder)
