"""One active dispatcher for everything that writes or orders (issue 15, point 4).

The active dispatcher holds ``gateway.internal.dispatcher.leader``; only it registers what writes or
orders. Here it is killed (SIGKILL of its container) in the middle of registering those, and the
other dispatcher serves all of them, alone.

To stop the active one at a known point of its start-up, with no timing: the other container is
frozen (SIGSTOP), the test holds ``gateway.replay`` itself (force_reregister takes it from the
active dispatcher), and the active dispatcher's session is killed. Crossbar starts it again in the
same container; it takes leadership (the other is frozen), registers what comes before
``gateway.replay`` and waits for it to be free. That is the moment its container is SIGKILLed.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions

from components import uris
from tests.integration.test_continuous_service import container_pids, sessions_of, wait_for
from tests.support.harness import API_KEY, GatewayNode
from tests.support.wamp import WampClient

pytestmark = pytest.mark.integration

#: What the active dispatcher registers once it holds leadership, in its order (components/delivery/dispatcher.py).
WRITERS = [uris.INTERNAL_PUBLISH, uris.SUBSCRIBE, uris.UNSUBSCRIBE, uris.SUBSCRIPTIONS, uris.REPLAY, uris.ACK,
           uris.INTERNAL_SUBSCRIPTION_CREATE, uris.INTERNAL_SUBSCRIPTION_LIST, uris.INTERNAL_SUBSCRIPTION_DELETE,
           uris.INTERNAL_STATS]


def callees(admin: WampClient, procedure: str) -> list[int]:
    registration = admin.call(uris.META_REGISTRATION_LOOKUP, procedure)
    if registration is None:
        return []
    try:
        return list(admin.call(uris.META_REGISTRATION_LIST_CALLEES, registration))
    except ApplicationError as exc:
        if exc.error == "wamp.error.no_such_registration":  # its last callee left between the two calls
            return []
        raise


def leader(admin: WampClient) -> dict[str, Any] | None:
    """Who holds leadership (``{"session", "pid", "since"}``), None if nobody does."""
    if not callees(admin, uris.INTERNAL_DISPATCHER_LEADER):
        return None
    try:
        answer: dict[str, Any] = admin.call(uris.INTERNAL_DISPATCHER_LEADER)
    except Exception:  # it went between the look-up and the call
        return None
    return answer


@contextmanager
def frozen(pid: int) -> Iterator[None]:
    """The process stopped (SIGSTOP) until the block ends, whatever happens in it."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def hold(admin: WampClient, procedure: str) -> Any:
    """Register ``procedure`` from the test's backend session, taking it from whoever has it."""
    async def register() -> Any:
        assert admin.session is not None
        return await admin.session.register(lambda *a, **kw: None, procedure,
                                            options=RegisterOptions(force_reregister=True))
    return admin._run(register())


async def release(registration: Any) -> None:
    await registration.unregister()


def http(node: GatewayNode, method: str, path: str, doc: Any = None) -> Any:
    return node.request(method, path, None if doc is None else json.dumps(doc).encode(),
                        {"Authorization": f"Bearer {API_KEY}"})


def test_the_healthz_counts_the_active_and_the_standby_dispatcher(node: GatewayNode) -> None:
    # Ready (healthz 200) once one dispatcher is active: the other may still be starting.
    health = wait_for(lambda: (h := node.get("/healthz").body)["dispatchers"] == 2 and h, what="both dispatchers")
    assert (health["dispatchers"], health["active_dispatchers"], health["standby_dispatchers"]) == (2, 1, 1)
    with node.backend_client() as admin:
        active = leader(admin)
        assert active is not None and active["session"] in sessions_of(admin, "dispatcher")
        for procedure in WRITERS:
            assert callees(admin, procedure) == [active["session"]], procedure
        assert len(callees(admin, uris.CATALOG)) == len(callees(admin, uris.AUTHORIZE)) == 2, "read-only: both"


def test_the_active_dispatcher_killed_while_registering_leaves_the_survivor_serving_everything(
        own_node: GatewayNode) -> None:
    node = own_node
    pids = container_pids(node)
    with WampClient(node.ws_url) as keeper:  # made before: the survivor must find and serve it
        token = keeper.authextra_welcome["client_token"]
        kept = keeper.call("gateway.subscribe", "demo.message where room = 'lead'", persistent=True)
    with node.backend_client() as admin:
        first = leader(admin)
        assert first is not None
        (dying,) = [name for name, pid in pids.items() if pid == first["pid"]]
        (survivor,) = [name for name in pids if name != dying]
        with frozen(pids[survivor]):
            held = hold(admin, uris.REPLAY)
            admin.call("wamp.session.kill", first["session"], reason="gateway.test.kill", message="test")

            def restarted_and_stuck() -> dict[str, Any] | None:
                now = leader(admin)
                if now is None or now["session"] == first["session"] or not callees(admin, uris.SUBSCRIPTIONS):
                    return None
                return now

            second = wait_for(restarted_and_stuck, timeout=60, what="the restarted dispatcher active, registering")
            # In the middle of its registrations: leadership, publish and subscribe are its own,
            # replay (held here) and everything after it are not.
            assert second["pid"] == pids[dying]
            for procedure in WRITERS[:4]:
                assert callees(admin, procedure) == [second["session"]], procedure
            assert callees(admin, uris.REPLAY) == [admin.session_id]
            for procedure in WRITERS[5:]:
                assert callees(admin, procedure) == [], procedure
            os.kill(pids[dying], signal.SIGKILL)
            wait_for(lambda: leader(admin) is None, what="the killed dispatcher's registrations gone")
            admin._run(release(held))
        # The survivor, running again, takes over.
        node.wait_ready(60)
        third = wait_for(lambda: leader(admin) if callees(admin, uris.INTERNAL_STATS) else None, timeout=60,
                         what="the survivor active, with everything registered")
        assert third["pid"] == pids[survivor]
        for procedure in WRITERS:
            assert callees(admin, procedure) == [third["session"]], procedure
        assert sessions_of(admin, "dispatcher") == [third["session"]]

    # ... and serves all of them: publish, subscribe, replay, ack, /subscriptions.
    health = node.get("/healthz").body
    assert (health["dispatchers"], health["active_dispatchers"], health["standby_dispatchers"]) == (1, 1, 0)
    with WampClient(node.ws_url, authextra={"client_token": token}) as client:
        (listed,) = [s for s in client.call("gateway.subscriptions") if s["persistent"]]
        assert listed["id"] == kept["id"]
        client.subscribe(listed["topic"])
        fresh = client.call("gateway.subscribe", "demo.message where room = 'lead' and author = 't'")
        client.subscribe(fresh["topic"])
        posted = node.post_event("demo.message", {"room": "lead", "text": "after", "author": "t"})
        assert posted.status == 202, posted.body
        got = client.take(2)
        assert [e["seq"] for e in got] == [posted.body["seq"]] * 2, "on both topics"
        replayed = client.call("gateway.replay", kept["id"], kept["last_seq"])["events"]
        assert [e["seq"] for e in replayed] == [posted.body["seq"]]
        assert client.call("gateway.ack", kept["id"], posted.body["seq"]) == {"id": kept["id"],
                                                                             "last_seq": posted.body["seq"]}
        client.call("gateway.unsubscribe", fresh["id"])
    made = http(node, "POST", "/subscriptions", {"user": "lea", "query": "test.notice", "persistent": True})
    assert made.status == 201, made.body
    listed_for_lea = http(node, "GET", "/subscriptions?user=lea")
    assert [s["id"] for s in listed_for_lea.body["subscriptions"]] == [made.body["id"]]
    assert http(node, "DELETE", f"/subscriptions/{made.body['id']}").status == 200
