"""Components that fail, leave or are killed come back (or are covered) without dropping clients."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from autobahn.wamp.exception import ApplicationError

from tests.support.harness import GatewayNode, Response
from tests.support.wamp import WampClient

pytestmark = pytest.mark.integration
TOPIC = "gateway.event.demo.message"
MESSAGE = {"room": "ops", "text": "still here", "author": "test"}


@contextmanager
def backend(node: GatewayNode) -> Iterator[WampClient]:
    """A session with role backend, over the components' own unix socket."""
    client = node.backend_client()
    with client:
        yield client


def sessions_of(admin: WampClient, authid: str) -> list[int]:
    found = []
    for session_id in admin.call("wamp.session.list"):
        if session_id == admin.session_id:
            continue
        try:
            if admin.call("wamp.session.get", session_id)["authid"] == authid:
                found.append(session_id)
        except ApplicationError as exc:  # it left between the list and the look-up
            if exc.error != "wamp.error.no_such_session":
                raise
    return found


def wait_for(predicate, timeout: float = 20, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"{what} not reached in {timeout}s")


def container_pids(node: GatewayNode) -> dict[str, int]:
    """PID of each container worker, by its process title (set from the node config)."""
    assert node.process is not None
    out = subprocess.run(["pgrep", "-g", str(node.process.pid), "-a"], capture_output=True, text=True).stdout
    pids = {}
    for line in out.splitlines():
        pid, _, title = line.partition(" ")
        if title.startswith("gateway components-"):
            pids[title.removeprefix("gateway ")] = int(pid)
    return pids


def test_components_that_leave_come_back_and_clients_stay(own_node: GatewayNode) -> None:
    with WampClient(own_node.ws_url) as client, backend(own_node) as admin:
        client.subscribe(TOPIC)
        session_before = client.session_id
        before = own_node.post_event("demo.message", MESSAGE)
        assert before.status == 202
        client.take(1)

        # Throw every dispatcher and every bridge (other than our admin) out of the router.
        killed = sessions_of(admin, "dispatcher") + sessions_of(admin, "bridge")
        assert len(killed) == 4
        for session_id in killed:
            admin.call("wamp.session.kill", session_id, reason="gateway.test.kill", message="test")

        wait_for(lambda: len(sessions_of(admin, "dispatcher")) == 2 and len(sessions_of(admin, "bridge")) == 2,
                 what="all four components back")
        own_node.wait_ready()
        after = own_node.post_event("demo.message", MESSAGE)
        assert after.status == 202 and after.body["seq"] > before.body["seq"]
        (envelope,) = client.take(1)
        assert envelope["seq"] == after.body["seq"]
        # The same client session, never dropped.
        assert client.is_attached and client.session_id == session_before
        assert set(sessions_of(admin, "dispatcher")).isdisjoint(killed)


def test_a_sigkilled_container_is_covered_by_the_other_and_no_accepted_event_is_lost(
        own_node: GatewayNode) -> None:
    pids = container_pids(own_node)
    assert set(pids) == {"components-1", "components-2"}
    with WampClient(own_node.ws_url, serializer="msgpack") as client:
        client.subscribe(TOPIC)
        session_before = client.session_id

        answers: list[Response | Exception] = []
        stop = threading.Event()

        def post_forever() -> None:
            i = 0
            while not stop.is_set():
                try:
                    answers.append(own_node.post_event("demo.message", {**MESSAGE, "text": str(i)}))
                except OSError as exc:  # a connection to the killed bridge was cut
                    answers.append(exc)
                i += 1

        poster = threading.Thread(target=post_forever)
        poster.start()
        try:
            wait_for(lambda: len(answers) >= 30, what="30 events posted before the kill")
            # Crossbar does not restart a container killed this way.
            os.kill(pids["components-1"], signal.SIGKILL)
            count_at_kill = len(answers)
            wait_for(lambda: len(answers) >= count_at_kill + 50, what="50 more events after the kill")
        finally:
            stop.set()
            poster.join(30)

        accepted = [a for a in answers if isinstance(a, Response) and a.status == 202]
        others = [a for a in answers if not (isinstance(a, Response) and a.status == 202)]
        # Refusals are allowed only as an honest 503 or a cut connection, never a 500.
        for a in others:
            assert isinstance(a, OSError) or (a.status == 503 and a.body["error"] == "unavailable"), a
        assert len(accepted) >= 70

        delivered = client.take(len(accepted), timeout=30)
        time.sleep(0.5)
        delivered += [client.events.get_nowait()[1] for _ in range(client.events.qsize())]
        seqs = [e["seq"] for e in delivered]
        assert all(b > a for a, b in zip(seqs, seqs[1:])), "seq must strictly increase across the failover"
        assert {a.body["seq"] for a in accepted} <= set(seqs), "every 202 must be delivered"
        assert client.is_attached and client.session_id == session_before

    health = own_node.get("/healthz")
    assert health.status == 200 and health.body["dispatchers"] == 1
    assert set(container_pids(own_node)) == {"components-2"}
