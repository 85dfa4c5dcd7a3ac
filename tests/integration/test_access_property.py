"""Who receives what: a property test of visibility, wildcards, row filters, queries and audiences.

For random groups of clients (anonymous, or alice/bob/carol with random ticket
roles; one user may be connected twice), random subscription queries from a
fixed pool and random events (random data, random audience or none), every
subscription must receive exactly the events an independent oracle says it
should: no event it should not get, every event it should, no duplicates.

The oracle lives in this file (``Viewer``, ``expected_outcome``,
``delivered``): the visibility table of the test classes, wildcard expansion to
visible classes only, the row filters of test.notice and test.team, audiences,
and the reference interpreter (``components.query.interpret``) for ``where``.

An example ends without sleeping: every client also subscribes to one
``demo.message where room = "<unique>"`` query and, after the random events,
one *barrier* event is posted to that room. The router delivers a session's
events in publish order, so a client that has the barrier has everything that
was published before it. (The barrier may also arrive on other topics of the
client, later; it is left out of the comparison.)
"""

from __future__ import annotations

import queue
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from components.query import And, Compare, Contains, Exists, Expr, In, Not, Or, Path, Query, StartsWith, parse
from components.query.interpret import evaluate_where, selector_matches
from tests.support.harness import API_KEY, GatewayNode
from tests.support.wamp import WampClient

pytestmark = pytest.mark.integration

NOT_AUTHORIZED = "gateway.error.not_authorized"
INVALID_QUERY = "gateway.error.invalid_query"

# -- the oracle -----------------------------------------------------------------

#: Every event class the test node has, and who may see it.
VISIBILITY = {
    "demo.message": "public",
    "demo.order": "authenticated",
    "demo.alert": "role:staff",
    "test.notice": "authenticated",  # row filter: user = $user
    "test.team": "authenticated",  # row filter: team in $roles
}

#: The field paths of each class (from its schema), for "a field no selected class has".
FIELDS: dict[str, frozenset[Path]] = {
    "demo.message": frozenset({("room",), ("text",), ("author",)}),
    "demo.order": frozenset({("order_id",), ("amount",), ("country",), ("tags",), ("customer",),
                             ("customer", "id"), ("customer", "name"), ("coupon",)}),
    "demo.alert": frozenset({("level",), ("text",)}),
    "test.notice": frozenset({("user",), ("text",)}),
    "test.team": frozenset({("team",), ("text",)}),
}

USERS = ["alice", "bob", "carol"]
TICKET_ROLES = ["staff", "red", "blue"]

#: The queries clients subscribe with. Values always fit their fields' types: a
#: refusal is only ever about visibility, wildcards or fields.
QUERIES = [
    "demo.message",
    'demo.message where room = "lobby"',
    "demo.*",
    'demo.* where not room = "lobby"',
    'demo.* where room = "dev" or level = "high"',  # level: demo.alert only (staff)
    'demo.* where author = $user',
    'demo.order where amount > 100 and country in ["AR", "UY"]',
    'demo.order where tags contains "urgent" or coupon exists',
    'demo.alert where level in ["high", "critical"]',
    "test.notice",
    "test.*",
    'test.team where team != "red"',
    'demo.message, test.notice where text contains "x" or user = "bob"',
    "**",
    '** where text startswith "a" or customer.id = 7',
]


@dataclass(frozen=True)
class Viewer:
    """A client as the oracle sees it: anonymous (user None) or a user with ticket roles."""

    user: str | None
    roles: tuple[str, ...] = ()

    @property
    def authrole(self) -> str:
        return "anonymous" if self.user is None else "user"

    @property
    def params(self) -> dict[str, Any]:
        return {"user": self.user, "role": self.authrole, "roles": self.roles}

    def can_see(self, cls: str) -> bool:
        visibility = VISIBILITY[cls]
        if visibility == "public":
            return True
        if visibility == "authenticated":
            return self.user is not None
        assert visibility.startswith("role:")
        return visibility.removeprefix("role:") in self.roles

    def row_allows(self, cls: str, data: dict[str, Any]) -> bool:
        if cls == "test.notice":
            return self.user is not None and data.get("user") == self.user
        if cls == "test.team":
            return data.get("team") in self.roles
        return True

    def in_audience(self, audience: dict[str, list[str]] | None) -> bool:
        if audience is None:
            return True
        if self.user is not None and self.user in audience.get("users", []):
            return True
        return bool({self.authrole, *self.roles} & set(audience.get("roles", [])))

    def __str__(self) -> str:
        return "anonymous" if self.user is None else f"{self.user}(roles={list(self.roles)})"


@dataclass(frozen=True)
class Expected:
    """What gateway.subscribe should answer: an error, or a subscription over ``classes``."""

    error: str | None
    classes: frozenset[str] = frozenset()
    query: Query | None = None


def where_paths(expr: Expr | None) -> Iterator[Path]:
    if expr is None:
        return
    if isinstance(expr, (Compare, In, Contains, StartsWith, Exists)):
        yield expr.path
    elif isinstance(expr, Not):
        yield from where_paths(expr.operand)
    elif isinstance(expr, (And, Or)):
        for operand in expr.operands:
            yield from where_paths(operand)
    else:
        raise TypeError(expr)


def expected_outcome(viewer: Viewer, text: str) -> Expected:
    query = parse(text, params=viewer.params)
    selected: set[str] = set()
    for selector in query.selectors:
        if "*" not in selector:
            assert selector in VISIBILITY, selector
            if not viewer.can_see(selector):
                return Expected(NOT_AUTHORIZED)
            selected.add(selector)
            continue
        matched = {c for c in VISIBILITY if selector_matches(selector, c) and viewer.can_see(c)}
        if not matched:
            return Expected(INVALID_QUERY)
        selected |= matched
    for path in where_paths(query.where):
        if not any(path in FIELDS[c] for c in selected):
            return Expected(INVALID_QUERY)
    return Expected(None, frozenset(selected), query)


def delivered(viewer: Viewer, expected: Expected, event: str, data: dict[str, Any],
              audience: dict[str, list[str]] | None) -> bool:
    """Whether a subscription (that was accepted) must receive this event."""
    assert expected.query is not None
    return (event in expected.classes
            and (expected.query.where is None or evaluate_where(expected.query.where, data))
            and viewer.row_allows(event, data)
            and viewer.in_audience(audience))


# -- strategies -------------------------------------------------------------------

viewers = st.one_of(
    st.just(Viewer(None)),
    st.builds(lambda user, roles: Viewer(user, tuple(sorted(roles))),
              st.sampled_from(USERS), st.sets(st.sampled_from(TICKET_ROLES))),
)

texts = st.sampled_from(["hi", "axe", "all set", "x"])
event_data: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "demo.message": st.fixed_dictionaries({"room": st.sampled_from(["lobby", "dev"]), "text": texts,
                                           "author": st.sampled_from(["alice", "bob", "zed"])}),
    "demo.order": st.fixed_dictionaries(
        {"order_id": st.integers(1, 3), "amount": st.sampled_from([5, 100, 150.5]),
         "country": st.sampled_from(["AR", "UY", "DE"]),
         "tags": st.lists(st.sampled_from(["urgent", "gift"]), max_size=2, unique=True),
         "customer": st.fixed_dictionaries({"id": st.sampled_from([7, 8]), "name": st.sampled_from(["ann", "ben"])})},
        optional={"coupon": st.sampled_from(["SAVE10", None])}),
    "demo.alert": st.fixed_dictionaries({"level": st.sampled_from(["low", "high", "critical"]), "text": texts}),
    "test.notice": st.fixed_dictionaries({"user": st.sampled_from(["alice", "bob", "carol", "dave"]), "text": texts}),
    "test.team": st.fixed_dictionaries({"team": st.sampled_from(["staff", "red", "blue", "green"]), "text": texts}),
}

audience_users = st.lists(st.sampled_from(["alice", "bob", "carol", "dave"]), min_size=1, max_size=2, unique=True)
audience_roles = st.lists(st.sampled_from(["staff", "red", "blue", "green", "user", "anonymous"]),
                          min_size=1, max_size=2, unique=True)
#: None (everyone who may see the class) or naming at least one user or role (naming no one is a 400).
audiences = st.one_of(
    st.none(),
    st.fixed_dictionaries({"users": audience_users}),
    st.fixed_dictionaries({"roles": audience_roles}),
    st.fixed_dictionaries({"users": audience_users, "roles": audience_roles}),
)


@dataclass(frozen=True)
class PlannedEvent:
    event: str
    data: dict[str, Any]
    audience: dict[str, list[str]] | None


@st.composite
def planned_events(draw: st.DrawFn) -> PlannedEvent:
    event = draw(st.sampled_from(sorted(VISIBILITY)))
    return PlannedEvent(event, draw(event_data[event]), draw(audiences))


@dataclass(frozen=True)
class Scenario:
    clients: list[tuple[Viewer, list[str]]]
    events: list[PlannedEvent]


scenarios = st.builds(
    Scenario,
    clients=st.lists(st.tuples(viewers, st.lists(st.sampled_from(QUERIES), min_size=1, max_size=2)),
                     min_size=2, max_size=5),
    events=st.lists(planned_events(), min_size=3, max_size=8),
)


# -- running an example -------------------------------------------------------------


@dataclass
class Sub:
    text: str
    expected: Expected
    topic: str | None = None  # None: refused
    answer: Any = None


@dataclass
class Connected:
    index: int
    viewer: Viewer
    client: WampClient
    subs: list[Sub] = field(default_factory=list)
    received: dict[str, list[str]] = field(default_factory=dict)  # topic -> event ids, in order


def connect(node: GatewayNode, viewer: Viewer) -> WampClient:
    client: WampClient = node.client() if viewer.user is None else node.client(viewer.user, list(viewer.roles))
    return client


def collect_until(conn: Connected, barrier_topic: str, barrier_id: str, timeout: float = 15) -> None:
    """Everything the client receives, up to the barrier on its barrier topic (and what is queued after it)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"client {conn.index} ({conn.viewer}) did not receive the barrier event "
                                 f"within {timeout}s; received so far: {conn.received}")
        try:
            topic, envelope = conn.client.events.get(timeout=remaining)
        except queue.Empty:
            continue
        if topic == barrier_topic and envelope["id"] == barrier_id:
            break
        conn.received.setdefault(topic, []).append(envelope["id"])
    while True:  # the barrier's deliveries on other topics may be queued already; nothing else may be
        try:
            topic, envelope = conn.client.events.get_nowait()
        except queue.Empty:
            return
        conn.received.setdefault(topic, []).append(envelope["id"])


def describe(posted: dict[str, PlannedEvent], event_id: str) -> str:
    p = posted.get(event_id)
    if p is None:
        return f"{event_id} (not posted by this example)"
    return f"{p.event} {p.data} audience={p.audience}"


def run_scenario(node: GatewayNode | Sequence[GatewayNode], scenario: Scenario) -> None:
    """With several nodes (a cluster: tests/integration/test_cluster.py), client i connects to node i and
    event j is posted to node j, round robin; the barrier, posted last, has the highest seq, and every
    node publishes in seq order: the oracle and the barrier hold as on one node."""
    nodes = [node] if isinstance(node, GatewayNode) else list(node)
    marker = uuid.uuid4().hex[:12]
    barrier_query = f'demo.message where room = "end-{marker}"'
    conns: list[Connected] = []
    try:
        for index, (viewer, _) in enumerate(scenario.clients):
            conns.append(Connected(index, viewer, connect(nodes[index % len(nodes)], viewer)))
        barrier_topic = ""
        for conn in conns:
            topics: set[str] = set()
            for text in scenario.clients[conn.index][1]:
                sub = Sub(text, expected_outcome(conn.viewer, text))
                conn.subs.append(sub)
                try:
                    answer = conn.client.call("gateway.subscribe", text)
                except ApplicationError as exc:
                    event(f"refused: {exc.error}")
                    assert sub.expected.error is not None, (
                        f"client {conn.index} ({conn.viewer}): {text!r} was refused ({exc.error}: {exc.args}), "
                        f"expected a subscription to {sorted(sub.expected.classes)}")
                    assert exc.error == sub.expected.error, (
                        f"client {conn.index} ({conn.viewer}): {text!r} was refused with {exc.error} ({exc.args}), "
                        f"expected {sub.expected.error}")
                    continue
                assert sub.expected.error is None, (
                    f"client {conn.index} ({conn.viewer}): {text!r} was accepted ({answer}), "
                    f"expected {sub.expected.error}")
                selected = set(parse(answer["query"]).selectors)
                assert selected == set(sub.expected.classes), (
                    f"client {conn.index} ({conn.viewer}): {text!r} selects {sorted(selected)} "
                    f"(answer {answer['query']!r}), expected {sorted(sub.expected.classes)}")
                sub.topic, sub.answer = answer["topic"], answer
                if sub.topic not in topics:  # a second subscribe would add a second handler
                    conn.client.subscribe(sub.topic)
                    topics.add(sub.topic)
            barrier = conn.client.call("gateway.subscribe", barrier_query)
            assert not barrier_topic or barrier["topic"] == barrier_topic
            barrier_topic = barrier["topic"]
            assert barrier_topic not in topics
            conn.client.subscribe(barrier_topic)

        posted: dict[str, PlannedEvent] = {}
        for j, planned in enumerate(scenario.events):
            extra: dict[str, Any] = {} if planned.audience is None else {"audience": planned.audience}
            r = nodes[j % len(nodes)].post_event(planned.event, planned.data, **extra)
            assert r.status == 202, (planned, r.status, r.body)
            posted[r.body["id"]] = planned
        r = nodes[-1].post_event("demo.message", {"room": f"end-{marker}", "text": "barrier", "author": "test"})
        assert r.status == 202, (r.status, r.body)
        barrier_id = r.body["id"]

        for conn in conns:
            collect_until(conn, barrier_topic, barrier_id)

        for conn in conns:
            topics_of_subs = {s.topic for s in conn.subs if s.topic is not None}
            stray = {t: ids for t, ids in conn.received.items() if t not in topics_of_subs}
            assert not stray, f"client {conn.index} ({conn.viewer}) received on topics it did not subscribe: {stray}"
            for sub in conn.subs:
                if sub.topic is None:
                    continue
                got = [i for i in conn.received.get(sub.topic, []) if i != barrier_id]
                dupes = [i for i, n in Counter(got).items() if n > 1]
                want = {i for i, p in posted.items()
                        if delivered(conn.viewer, sub.expected, p.event, p.data, p.audience)}
                event(f"deliveries per accepted subscription: {min(len(want), 3)}{'+' if len(want) >= 3 else ''}")
                missing = want - set(got)
                extra_ids = set(got) - want
                where = f"client {conn.index} ({conn.viewer}), query {sub.text!r} (canonical {sub.answer['query']!r})"
                assert not extra_ids, f"{where} received events it should not:\n" + "\n".join(
                    f"  {describe(posted, i)}" for i in sorted(extra_ids))
                assert not missing, f"{where} missed events it should receive:\n" + "\n".join(
                    f"  {describe(posted, i)}" for i in sorted(missing))
                assert not dupes, f"{where} received events more than once:\n" + "\n".join(
                    f"  {describe(posted, i)}" for i in dupes)
    finally:
        for conn in conns:
            conn.client.close()


def test_the_test_node_has_the_classes_the_oracle_knows(node: GatewayNode) -> None:
    r = node.request("GET", "/catalog", headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status == 200, r.body
    entries = r.body["classes"] if isinstance(r.body, dict) and "classes" in r.body else r.body
    names = {e["name"]: e["visibility"] for e in entries}
    assert names == VISIBILITY, "the oracle's visibility table (VISIBILITY) no longer matches the node's classes"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios)
def test_every_subscription_gets_exactly_the_events_it_may_see(node: GatewayNode, scenario: Scenario) -> None:
    run_scenario(node, scenario)


# -- what the property could miss ------------------------------------------------------


def room_query(room: str) -> str:
    return f'demo.message where room = "{room}"'


def subscribed(client: WampClient, query: str) -> str:
    topic: str = client.call("gateway.subscribe", query)["topic"]
    client.subscribe(topic)
    return topic


def ids_until(client: WampClient, last_id: str, timeout: float = 10) -> list[str]:
    """The ids of the events the client receives up to and including ``last_id``."""
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while not got or got[-1] != last_id:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{last_id} did not arrive; received {got}"
        try:
            got.append(client.events.get(timeout=remaining)[1]["id"])
        except queue.Empty:
            continue
    return got


def post_message(node: GatewayNode, room: str, text: str, **extra: Any) -> str:
    r = node.post_event("demo.message", {"room": room, "text": text, "author": "test"}, **extra)
    assert r.status == 202, (r.status, r.body)
    return str(r.body["id"])


def test_an_audience_of_no_connected_session_reaches_no_one(node: GatewayNode) -> None:
    room = f"nobody-{uuid.uuid4().hex[:8]}"
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    clients = [node.client(), node.client("alice", ["staff", "red"]), node.client("bob")]
    try:
        for c in clients:
            subscribed(c, room_query(room))
        hidden = post_message(node, room, "for a ghost", audience={"users": [ghost], "roles": ["green"]})
        last = post_message(node, room, "for all")
        for c in clients:
            assert ids_until(c, last) == [last], f"{hidden} reached a session it does not name"
    finally:
        for c in clients:
            c.close()


def test_an_audience_role_reaches_the_sessions_holding_it_by_ticket_or_as_their_wamp_role(node: GatewayNode) -> None:
    room = f"roles-{uuid.uuid4().hex[:8]}"
    anon, red, plain = node.client(), node.client("alice", ["red"]), node.client("bob", ["blue"])
    try:
        for c in (anon, red, plain):
            subscribed(c, room_query(room))
        to_red = post_message(node, room, "red", audience={"roles": ["red"]})
        to_users = post_message(node, room, "users", audience={"roles": ["user"]})
        to_anonymous = post_message(node, room, "anonymous", audience={"roles": ["anonymous"]})
        last = post_message(node, room, "all")
        assert ids_until(red, last) == [to_red, to_users, last]
        assert ids_until(plain, last) == [to_users, last]
        assert ids_until(anon, last) == [to_anonymous, last]
    finally:
        for c in (anon, red, plain):
            c.close()


def test_a_user_connected_twice_receives_a_user_audience_event_in_both_sessions(node: GatewayNode) -> None:
    room = f"twice-{uuid.uuid4().hex[:8]}"
    first, second, other = node.client("carol"), node.client("carol", ["staff"]), node.client("bob")
    try:
        t1 = subscribed(first, room_query(room))
        t2 = subscribed(second, room_query(room))
        assert t1 == t2
        subscribed(other, room_query(room))
        subscribed(first, "test.notice")
        to_carol = post_message(node, room, "carol only", audience={"users": ["carol"]})
        last = post_message(node, room, "all")
        assert ids_until(first, last) == [to_carol, last]
        assert ids_until(second, last) == [to_carol, last]
        assert ids_until(other, last) == [last]
        # a row-filtered class and an audience together: both must let the event through
        r = node.post_event("test.notice", {"user": "carol", "text": "t"}, audience={"users": ["carol"]})
        assert r.status == 202, r.body
        assert first.take(1)[0]["id"] == r.body["id"]
    finally:
        for c in (first, second, other):
            c.close()
