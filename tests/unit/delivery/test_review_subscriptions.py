"""A race a review found in the query-topic bookkeeping (``subscriptions``), reproduced without a router.

The sweep of grants of sessions that left unseen read the router's sessions, then deleted the grants
of every session not listed: a grant the active dispatcher made in between, to a client that joined
after the list was read, was deleted, and the client's subscribe to its query topic refused. It ran in
every dispatcher at start, standbys too (a write by a non-leader). Now a standby's ``rebuild`` writes
nothing, and the active dispatcher's ``forget_gone_sessions`` revokes only sessions that held a grant
before the router's list was read and are not in it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed

from components import uris
from components.config import QueriesConfig
from components.delivery.subscriptions import QuerySubscriptions
from components.events import Registry
from components.store.sqlite import SqliteStore
from components.store.thread import Inline
from tests.unit.delivery.inline import now

REGISTRY = Registry.load(["examples.demo_events"], ["examples/demo_events.yaml"],
                         base_dir=Path(__file__).resolve().parents[3])


@pytest.fixture
def world(tmp_path: Path) -> Any:
    store = SqliteStore(tmp_path / "s.sqlite3")
    queries = QuerySubscriptions(Inline(store), lambda: REGISTRY, QueriesConfig())
    store.save_query("k", "demo.message")
    yield store, queries
    store.close()


class Router:
    """The router's meta API as the sweep calls it; ``meanwhile`` runs while the session list is read."""

    def __init__(self, sessions: list[int], meanwhile: Any = None) -> None:
        self.sessions = sessions
        self.meanwhile = meanwhile
        self.calls: list[str] = []

    def __call__(self, procedure: str, *args: Any) -> Deferred[Any]:
        self.calls.append(procedure)
        if procedure == uris.META_SESSION_LIST:
            listed = list(self.sessions)
            if self.meanwhile is not None:
                self.meanwhile()  # after the router read its sessions, before the sweep's store work
            return succeed(listed)
        if procedure == uris.META_SUBSCRIPTION_LIST:
            return succeed({"exact": [], "prefix": [], "wildcard": []})
        raise AssertionError(f"unexpected call {procedure}")


def test_a_grant_made_between_the_session_list_and_the_sweep_is_kept(world: Any) -> None:
    store, queries = world
    store.grant("s_gone", 1, "k")     # session 1 left while no dispatcher watched (a router restart)
    store.grant("s_live", 2, "k")     # session 2 is connected
    # Session 3 joins after the router's list was read; the active dispatcher grants it its query topic.
    router = Router([2], meanwhile=lambda: store.grant("s_new", 3, "k"))
    assert now(queries.forget_gone_sessions(router)) == 1
    assert not store.granted(1, "k"), "a session that held a grant and is gone loses it"
    assert store.granted(2, "k")
    assert store.granted(3, "k"), "the grant made meanwhile was deleted: the client's subscribe would be refused"


def test_a_grant_made_while_the_holders_are_read_is_kept(world: Any) -> None:
    """The other interleaving: the grant is made before the router's list, after the holders were read;
    its session is then in the list (it joined before it was granted)."""
    store, queries = world
    store.grant("s_gone", 1, "k")
    router = Router([5])

    def grant_then_list() -> None:
        store.grant("s_new", 5, "k")

    router.meanwhile = grant_then_list
    assert now(queries.forget_gone_sessions(router)) == 1
    assert store.granted(5, "k") and not store.granted(1, "k")


def test_nothing_held_asks_the_router_nothing(world: Any) -> None:
    store, queries = world
    router = Router([])
    assert now(queries.forget_gone_sessions(router)) == 0
    assert router.calls == []


def test_rebuild_writes_nothing(world: Any) -> None:
    """Every dispatcher rebuilds its index at start, standbys too: no grant is deleted by it."""
    store, queries = world
    store.grant("s_1", 1, "k")
    router = Router([])
    now(queries.rebuild(router))
    assert store.granted(1, "k")
    assert uris.META_SESSION_LIST not in router.calls
