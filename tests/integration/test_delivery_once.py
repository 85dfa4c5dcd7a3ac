"""An accepted event reaches a plain subscriber once, in seq order, whoever publishes it (issue 15, seen 1 and 4).

Plain autobahn subscribers (tests/support/wamp.py): no dedupe on the client, so every publish shows.
To show that something did *not* arrive, a marker event is posted after it: the router delivers a
publisher's events in order, so the next envelope received is the marker, or what came before it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

import pytest

from components import uris
from components.envelope import rfc3339
from components.store.base import LoggedEvent, Store
from components.store.postgres import PostgresStore
from components.store.sqlite import SqliteStore
from tests.integration.test_continuous_service import sessions_of, wait_for
from tests.integration.test_leadership import leader
from tests.support.harness import GatewayNode, Response
from tests.support.wamp import WampClient

pytestmark = pytest.mark.integration
TOPIC = "gateway.event.demo.message"


def message(text: str, room: str) -> dict[str, str]:
    return {"room": room, "text": text, "author": "test"}


@pytest.fixture(params=["sqlite", "postgresql"])
def any_node(request: pytest.FixtureRequest) -> GatewayNode:
    return request.getfixturevalue("node" if request.param == "sqlite" else "pg_node")  # type: ignore[no-any-return]


@pytest.fixture(params=["sqlite", "postgresql"])
def any_own_node(request: pytest.FixtureRequest) -> GatewayNode:
    return request.getfixturevalue("own_node" if request.param == "sqlite" else "own_pg_node")  # type: ignore[no-any-return]


@contextmanager
def node_store(node: GatewayNode) -> Iterator[Store]:
    """A connection of the test's own to the node's store (as another dispatcher would have)."""
    cfg = node.extra_config.get("store")
    store: Store = (PostgresStore(cfg["url"], cfg["schema_name"]) if cfg and cfg.get("url")
                    else SqliteStore(node.workdir / "store.sqlite3"))
    try:
        yield store
    finally:
        store.close()


def post(node: GatewayNode, text: str, room: str, event_id: str) -> Response:
    answer = node.post_event("demo.message", message(text, room), id=event_id)
    assert answer.status == 202, answer.body
    return answer


@pytest.mark.parametrize("logged", [True, False], ids=["logged class", "unlogged class"])
def test_a_duplicate_post_reaches_a_live_subscriber_once(any_node: GatewayNode, logged: bool) -> None:
    node = any_node
    room = f"dup-{logged}-{time.monotonic_ns()}"
    with WampClient(node.ws_url) as live, WampClient(node.ws_url) as keeper:
        if logged:  # a persistent subscription: the class's events are logged
            keeper.call("gateway.subscribe", f"demo.message where room = '{room}'", persistent=True)
        live.subscribe(TOPIC)
        first = post(node, "once", room, f"{room}-1")
        second = post(node, "once", room, f"{room}-1")
        assert second.body == {"id": f"{room}-1", "seq": first.body["seq"], "duplicate": True}
        marker = post(node, "marker", room, f"{room}-marker")
        got = [(e["id"], e["seq"]) for e in live.take(2)]
    assert got == [(f"{room}-1", first.body["seq"]), (f"{room}-marker", marker.body["seq"])]


def test_an_event_logged_but_never_published_is_published_first_by_the_next_active_dispatcher(
        any_own_node: GatewayNode) -> None:
    """As a dispatcher that died between its log write and its publish leaves it: the one that takes
    over publishes it, with its seq, before anything it numbers; a retry of its id is then a duplicate."""
    node = any_own_node
    room = "orphan"
    with WampClient(node.ws_url) as keeper:
        token = keeper.authextra_welcome["client_token"]
        sub = keeper.call("gateway.subscribe", f"demo.message where room = '{room}'", persistent=True)
    with WampClient(node.ws_url, serializer="msgpack") as live, node.backend_client() as admin:
        live.subscribe(TOPIC)
        before = post(node, "before", room, "orphan-before")
        assert [e["seq"] for e in live.take(1)] == [before.body["seq"]]

        # The dying dispatcher: a seq of its own, the log row and the id in one transaction, no publish.
        with node_store(node) as store:
            seq = store.take(1)
            now = datetime.now(timezone.utc)
            data = message("logged, never published", room)
            store.log_and_remember([LoggedEvent(
                seq=seq, event="demo.message", id="orphan-1", time=rfc3339(now),
                data=json.dumps(data, separators=(",", ":")), audience=None, logged_at=now.timestamp())])
        (active,) = admin.call(uris.META_REGISTRATION_LIST_CALLEES,
                               admin.call(uris.META_REGISTRATION_LOOKUP, uris.INTERNAL_DISPATCHER_LEADER))
        admin.call("wamp.session.kill", active, reason="gateway.test.kill", message="test")

        # Posted once another dispatcher holds leadership (it publishes the orphan before it takes anything
        # new). Posted at once, it could still reach the killed one through the bridge beside it, in the moment
        # before that process learns of the kill (seen once, with the process paused by a garbage collection),
        # and be numbered from the killed one's block, below the orphan's seq: in seq order all the same, but
        # not what this test is about.
        wait_for(lambda: (lead := leader(admin)) is not None and lead["session"] != active, 60, "another leader")
        after = post(node, "after", room, "orphan-after")
        got = live.take(2, timeout=30)
        assert [(e["id"], e["seq"]) for e in got] == [("orphan-1", seq), ("orphan-after", after.body["seq"])]
        assert got[0]["data"] == data and after.body["seq"] > seq
        assert sessions_of(admin, "dispatcher"), "a dispatcher is active"

        retried = post(node, "logged, never published", room, "orphan-1")
        assert retried.body == {"id": "orphan-1", "seq": seq, "duplicate": True}
        marker = post(node, "marker", room, "orphan-marker")
        assert [e["id"] for e in live.take(1)] == ["orphan-marker"] and marker.body["seq"] > after.body["seq"]

    with WampClient(node.ws_url, authextra={"client_token": token}) as again:
        replayed = again.call("gateway.replay", sub["id"], sub["last_seq"])["events"]
    assert [e["id"] for e in replayed] == ["orphan-before", "orphan-1", "orphan-after", "orphan-marker"]


def test_a_node_started_on_a_log_with_an_unpublished_event_publishes_it(own_node: GatewayNode) -> None:
    """A whole node that died in that instant: its first active dispatcher publishes it when it starts."""
    node = own_node
    with WampClient(node.ws_url) as keeper:
        keeper.call("gateway.subscribe", "demo.message where room = 'restart'", persistent=True)
    node.stop()
    with node_store(node) as store:
        seq = store.take(1)
        store.log_and_remember([LoggedEvent(seq, "demo.message", "restart-1", "2026-12-01T00:00:00.000Z",
                                            json.dumps(message("x", "restart")), None, time.time())])
    node.start()
    with node_store(node) as store:
        wait_for(lambda: not store.unpublished(0, 10), what="the unpublished event published", timeout=30)
        (row,) = [e for e in store.events_after(["demo.message"], 0, 100) if e.id == "restart-1"]
    assert row.published
    assert post(node, "y", "restart", "restart-1").body == {"id": "restart-1", "seq": seq, "duplicate": True}
