"""How many persistent subscriptions there may be (per token, per user, anonymous ones), without a router."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.request import Registration
from autobahn.wamp.types import CallDetails

from components import uris
from components.auth.credentials import ANONYMOUS, digest
from components.config import QueriesConfig
from components.delivery.persistent import PersistentBook, token_owner
from components.delivery.sessions import Sessions
from components.delivery.subscriptions import QuerySubscriptions
from components.store.sqlite import SqliteStore
from components.store.thread import Inline
from tests.unit.delivery.inline import Now
from tests.unit.delivery.test_persistent import REGISTRY

LIMITS = QueriesConfig(max_persistent_per_token=3, max_persistent_per_user=4, max_persistent_per_anonymous_token=2,
                       max_anonymous_persistent=3)
REGISTRATION = Registration(session=None, registration_id=1, procedure="gateway.subscribe", endpoint=None)
ROOMS = [f"demo.message where room = 'r{i}'" for i in range(10)]


class Node:
    """The dispatcher's query subscriptions on a temp store, with clients joining it."""

    def __init__(self, store: SqliteStore, limits: QueriesConfig = LIMITS) -> None:
        self.store = store
        self.sessions = Sessions()
        self.book = PersistentBook(store, lambda: REGISTRY, lambda: 0)
        self.queries: Any = Now(QuerySubscriptions(Inline(store), lambda: REGISTRY, limits, self.sessions,
                                                   high_water=lambda: 0, token_ttl=600))
        self._next = 0

    def client(self, user: str | None = None, token: str | None = None) -> CallDetails:
        self._next += 1
        token = token or f"ct_{self._next:032d}"
        self.sessions.joined({"session": self._next, "authid": user or "x", "authrole": "user" if user else "anonymous",
                              "authextra": {"user": user, "roles": [], "client_token": token}})
        return CallDetails(registration=REGISTRATION, caller=self._next, caller_authrole="user" if user else "anonymous")

    def subscribe(self, who: CallDetails, query: str) -> dict[str, Any]:
        return self.queries.subscribe(query, True, details=who)


@pytest.fixture
def node(tmp_path: Path) -> Any:
    store = SqliteStore(tmp_path / "s.sqlite3")
    yield Node(store)
    store.close()


def refused(do: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as exc:
        do()
    return exc.value


def test_a_token_keeps_at_most_its_limit_and_resuming_never_counts_twice(node: Node) -> None:
    alice = node.client("alice")
    made = [node.subscribe(alice, q)["id"] for q in ROOMS[:3]]
    for _ in range(3):  # the same queries again: the same subscriptions, at no cost
        assert [node.subscribe(alice, q)["resumed"] for q in ROOMS[:3]] == [True] * 3
    exc = refused(lambda: node.subscribe(alice, ROOMS[3]))
    assert exc.error == uris.ERROR_LIMIT_EXCEEDED
    assert exc.kwargs == {"limit": "queries.max_persistent_per_token", "maximum": 3}
    assert "at most 3 (queries.max_persistent_per_token)" in exc.args[0]
    node.queries.unsubscribe(made[0], alice)
    assert node.subscribe(alice, ROOMS[3])["resumed"] is False, "one ended: room for one"


def test_a_user_keeps_at_most_its_limit_over_its_clients_and_the_web_apps(node: Node) -> None:
    phone, laptop = node.client("bob"), node.client("bob")
    node.subscribe(phone, ROOMS[0])
    node.subscribe(laptop, ROOMS[1])
    node.queries.create_for_user("bob", (), ROOMS[2], "user")
    node.queries.create_for_user("bob", (), ROOMS[3], "user")
    exc = refused(lambda: node.subscribe(phone, ROOMS[4]))
    assert exc.error == uris.ERROR_LIMIT_EXCEEDED and exc.kwargs["limit"] == "queries.max_persistent_per_user"
    exc = refused(lambda: node.queries.create_for_user("bob", (), ROOMS[5], "user"))
    assert exc.error == uris.ERROR_LIMIT_EXCEEDED and exc.kwargs == {"limit": "queries.max_persistent_per_user",
                                                                     "maximum": 4}
    assert node.subscribe(laptop, ROOMS[2])["resumed"] is True, "one made for bob: resumed, at no cost"
    assert refused(lambda: node.subscribe(laptop, ROOMS[0])).error == uris.ERROR_LIMIT_EXCEEDED, \
        "the phone's: not the laptop's to resume, and bob has no room for another"


def test_anonymous_clients_keep_few_each_and_few_in_all(node: Node) -> None:
    first, second = node.client(), node.client()
    node.subscribe(first, ROOMS[0])
    node.subscribe(first, ROOMS[1])
    exc = refused(lambda: node.subscribe(first, ROOMS[2]))
    assert exc.kwargs == {"limit": "queries.max_persistent_per_anonymous_token", "maximum": 2}
    node.subscribe(second, ROOMS[0])
    exc = refused(lambda: node.subscribe(second, ROOMS[1]))
    assert exc.error == uris.ERROR_LIMIT_EXCEEDED
    assert exc.kwargs == {"limit": "queries.max_anonymous_persistent", "maximum": 3} and "log in" in exc.args[0]
    assert node.subscribe(node.client("carol"), ROOMS[1])["resumed"] is False, "a user is not held back by them"


def test_anonymous_clients_may_be_refused_persistence_altogether(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3")
    try:
        node = Node(store, QueriesConfig(anonymous_persistent=False))
        exc = refused(lambda: node.subscribe(node.client(), ROOMS[0]))
        assert exc.error == uris.ERROR_NOT_AUTHORIZED and "queries.anonymous_persistent" in exc.args[0]
        assert node.queries.subscribe(ROOMS[0], False, details=node.client())["persistent"] is False
        assert node.subscribe(node.client("dave"), ROOMS[0])["persistent"] is True
    finally:
        store.close()


def test_the_token_is_stored_with_its_first_persistent_subscription(node: Node) -> None:
    token = "ct_" + "z" * 32
    who = node.client(token=token)
    node.queries.subscribe(ROOMS[0], False, details=who)
    assert node.store.token(digest(token)) is None, "a plain subscription needs no row"
    node.subscribe(who, ROOMS[0])
    identity, expires = node.store.token(digest(token)) or ("", 0.0)
    assert identity == ANONYMOUS and expires > 0
    assert [s.owner for s in node.book.everyone()] == [token_owner(token)]
    assert node.store.forget_unheld_tokens(ANONYMOUS) == 0, "held: kept"


def test_the_authorizer_grants_a_persistent_topic_to_a_session_of_its_owner_and_indexes_it(
        node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    import components.delivery.live_queries as live_queries

    token = "ct_" + "p" * 32
    made = node.subscribe(node.client("gina", token=token), ROOMS[0])
    room = {"room": "r0", "text": "t", "author": "a"}
    monkeypatch.setattr(live_queries, "UNCONFIRMED_TTL", -1.0)
    node.queries.expire_unconfirmed()  # nobody subscribed: out of the index
    assert node.queries.topics_for("demo.message", room) == []
    later = node.client("gina", token=token)  # the same client, back in a new session
    session = {"session": later.caller, "authrole": "user", "authid": "gina",
               "authextra": {"user": "gina", "roles": [], "client_token": token}}
    assert node.queries.authorize(session, made["topic"], "subscribe")["allow"]
    assert node.store.granted(later.caller, made["topic"].removeprefix("gateway.query."))
    assert [t for t, _ in node.queries.topics_for("demo.message", room)] == [made["topic"]], \
        "indexed before the router takes the subscription"
    stranger = {"session": 99, "authrole": "anonymous", "authextra": {"client_token": "ct_" + "q" * 32}}
    assert not node.queries.authorize(stranger, made["topic"], "subscribe")["allow"]
