"""Identity and access against a real node: logins, client tokens, visibility, audiences, row filters."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError

from tests.support.harness import API_KEY, GatewayNode, make_jwt
from tests.support.rawwamp import ABORT, AUTHENTICATE, CHALLENGE, WELCOME, exchange, hello
from tests.support.wamp import WampClient

MESSAGE = {"room": "lobby", "text": "hi", "author": "ann"}
ORDER = {"order_id": 1, "amount": 5.0, "country": "AR", "tags": [], "customer": {"id": 1, "name": "C"}}
WEEK = 7 * 24 * 3600


def refused(node: GatewayNode, ticket: Any, authid: str | None = None) -> str:
    """Try to log in; the reason the router gave for refusing."""
    client = WampClient(node.ws_url, ticket=ticket, authid=authid)
    try:
        with pytest.raises(RuntimeError):
            client.connect()
    finally:
        client.close()
    assert client.leave_reason == "gateway.error.authentication_failed", client.leave_reason
    assert client.leave_message is not None
    return client.leave_message


def expires(extra: dict[str, Any]) -> float:
    return datetime.fromisoformat(extra["client_token_expires"].replace("Z", "+00:00")).timestamp()


def post_ticket(node: GatewayNode, doc: Any, key: str = API_KEY) -> Any:
    return node.request("POST", "/tickets", json.dumps(doc).encode(), {"Authorization": f"Bearer {key}"})


# -- logins ---------------------------------------------------------------------


def test_no_credentials_is_anonymous_with_a_client_token(node: GatewayNode) -> None:
    with WampClient(node.ws_url) as c:
        assert c.details.authrole == "anonymous"
        extra = c.authextra_welcome
        assert extra["client_token"].startswith("ct_") and len(extra["client_token"]) == 35
        assert extra["user"] is None and extra["roles"] == []
        assert abs(expires(extra) - (time.time() + WEEK)) < 60
        me = c.call("gateway.whoami")
        assert me["role"] == "anonymous" and me["user"] is None and me["authid"] == c.details.authid
        assert me["client_token"] == extra["client_token"]
        assert me["client_token_expires"] == extra["client_token_expires"]


def test_a_ticket_logs_its_user_in_once(node: GatewayNode) -> None:
    r = post_ticket(node, {"user": "alice", "roles": ["staff"], "ttl": 30})
    assert r.status == 201
    assert r.body["ticket"].startswith("gt_") and r.body["user"] == "alice" and r.body["roles"] == ["staff"]
    assert abs(datetime.fromisoformat(r.body["expires_at"].replace("Z", "+00:00")).timestamp()
               - (time.time() + 30)) < 5
    with WampClient(node.ws_url, ticket=r.body["ticket"]) as c:
        assert (c.details.authrole, c.details.authid) == ("user", "alice")
        assert c.authextra_welcome["roles"] == ["staff"] and c.authextra_welcome["user"] == "alice"
        me = c.call("gateway.whoami")
        assert (me["authid"], me["role"], me["user"], me["roles"]) == ("alice", "user", "alice", ["staff"])
    assert "works once" in refused(node, r.body["ticket"])


def test_a_ticket_names_its_user_and_expires(node: GatewayNode) -> None:
    assert "another user" in refused(node, node.ticket("alice"), authid="bob")
    with WampClient(node.ws_url, ticket=node.ticket("alice"), authid="alice") as c:
        assert c.details.authid == "alice"
    ticket = node.ticket("alice", ttl=1)
    time.sleep(1.2)  # the one wait of this module: a ticket's life is measured in seconds
    assert "expired" in refused(node, ticket)
    assert "neither a gateway ticket" in refused(node, "letmein")
    assert "unknown or was used" in refused(node, "gt_" + "A" * 43)


@pytest.mark.parametrize("doc,where", [
    ({}, "missing 'user'"),
    ({"user": ""}, "user must be 1 to"),
    ({"user": 5}, "user must be a string"),
    ({"user": "alice", "roles": "staff"}, "roles must be a list"),
    ({"user": "alice", "roles": ["Staff!"]}, "roles[0]"),
    ({"user": "alice", "roles": ["backend"]}, "gateway's own role"),
    ({"user": "alice", "ttl": 0}, "ttl must be"),
    ({"user": "alice", "ttl": 999999}, "at most 3600"),
    ({"user": "alice", "ttl": "60"}, "ttl must be"),
    ({"user": "alice", "role": "x"}, "unknown key(s): role"),
])
def test_bad_ticket_requests_are_400_saying_what(node: GatewayNode, doc: dict[str, Any], where: str) -> None:
    r = post_ticket(node, doc)
    assert r.status == 400 and where in r.body["message"], r.body


def test_tickets_need_an_api_key(node: GatewayNode) -> None:
    assert post_ticket(node, {"user": "alice"}, key="wrong-key-123").status == 401


def test_a_jwt_signed_with_the_shared_secret_logs_in(node: GatewayNode) -> None:
    token = make_jwt({"sub": "bob", "roles": ["red"]})
    with WampClient(node.ws_url, ticket=token) as c:
        assert (c.details.authrole, c.details.authid) == ("user", "bob")
        assert c.authextra_welcome["roles"] == ["red"] and c.authextra_welcome["authmethod"] == "jwt"
    # A JWT may be used again until it expires (it is the web-app's session, not a one-time ticket).
    with WampClient(node.ws_url, ticket=token) as c:
        assert c.details.authid == "bob"
    with WampClient(node.ws_url, ticket=make_jwt({"sub": "bob", "aud": "gateway"})) as c:
        assert c.details.authid == "bob"


OTHER_SECRET = "another-secret-0123456789abcdef-0123"


@pytest.mark.parametrize("claims,signing,reason", [
    ({"sub": "bob"}, {"secret": OTHER_SECRET}, "signature does not match"),
    ({"sub": "bob", "exp": -3600}, {}, "expired"),
    ({"sub": "bob"}, {"algorithm": "none"}, "only HS256"),
    ({"sub": "bob"}, {"algorithm": "HS512", "secret": "x" * 64}, "only HS256"),
    ({"roles": ["staff"]}, {}, "no 'sub' claim"),
    ({"sub": "bob", "exp": None}, {}, "no 'exp' claim"),
    ({"sub": "bob", "exp": "tomorrow"}, {}, "must be an integer"),
    ({"sub": "bob", "roles": "staff"}, {}, "roles claim must be a list"),
    ({"sub": "bob", "roles": ["anonymous"]}, {}, "gateway's own role"),
    ({"sub": "bob", "aud": "elsewhere"}, {}, "aud claim"),
    ({"sub": "bob", "exp": 3 * 24 * 3600}, {}, "auth.max_jwt_ttl"),
    ({"sub": ""}, {}, "sub claim must be 1 to"),
])
def test_bad_jwts_are_refused_with_the_reason(node: GatewayNode, claims: dict[str, Any], signing: dict[str, str],
                                              reason: str) -> None:
    if isinstance(claims.get("exp"), int):
        claims = {**claims, "exp": int(time.time()) + claims["exp"]}
    assert reason in refused(node, make_jwt(claims, **signing))


def test_a_malformed_jwt_is_refused(node: GatewayNode) -> None:
    assert "malformed" in refused(node, "a.b.c")


def test_a_jwt_without_exp_is_refused(node: GatewayNode) -> None:
    import jwt

    from tests.support.harness import JWT_SECRET

    assert "no 'exp' claim" in refused(node, jwt.encode({"sub": "bob"}, JWT_SECRET, algorithm="HS256"))


# -- client tokens ----------------------------------------------------------------


def test_a_token_presented_again_is_the_same_client_with_its_expiry_renewed(node: GatewayNode) -> None:
    with WampClient(node.ws_url) as first:
        token, first_expiry = first.authextra_welcome["client_token"], expires(first.authextra_welcome)
    time.sleep(1.1)  # expiries are in whole seconds
    with WampClient(node.ws_url, authextra={"client_token": token}) as again:
        assert again.authextra_welcome["client_token"] == token
        assert expires(again.authextra_welcome) > first_expiry
    with WampClient(node.ws_url, ticket=node.ticket("alice"), authextra={}) as alice:
        alice_token = alice.authextra_welcome["client_token"]
    with WampClient(node.ws_url, ticket=make_jwt({"sub": "alice"}), authextra={"client_token": alice_token}) as c:
        assert c.authextra_welcome["client_token"] == alice_token, "the same user, logged in another way"


def test_a_token_works_only_for_the_identity_it_was_issued_to(node: GatewayNode) -> None:
    with WampClient(node.ws_url) as anonymous:
        anonymous_token = anonymous.authextra_welcome["client_token"]
    with WampClient(node.ws_url, ticket=node.ticket("alice")) as alice:
        alice_token = alice.authextra_welcome["client_token"]
    attempts = [  # (who presents it, the stolen token)
        (dict(ticket=node.ticket("alice")), anonymous_token),
        (dict(ticket=node.ticket("bob")), alice_token),
        (dict(ticket=make_jwt({"sub": "bob"})), alice_token),
        ({}, alice_token),
    ]
    for login, stolen in attempts:
        with WampClient(node.ws_url, authextra={"client_token": stolen}, **login) as thief:
            fresh = thief.authextra_welcome["client_token"]
            assert fresh != stolen and fresh.startswith("ct_")
    # The owners still have theirs.
    with WampClient(node.ws_url, ticket=node.ticket("alice"), authextra={"client_token": alice_token}) as alice:
        assert alice.authextra_welcome["client_token"] == alice_token
    with WampClient(node.ws_url, authextra={"client_token": anonymous_token}) as anonymous:
        assert anonymous.authextra_welcome["client_token"] == anonymous_token


@pytest.mark.parametrize("presented", ["ct_" + "x" * 32, "nonsense", 42, None, ["ct_"], {"a": 1}, "ct_" + "y" * 5000])
def test_unknown_or_malformed_tokens_get_a_fresh_one(node: GatewayNode, presented: Any) -> None:
    with WampClient(node.ws_url, authextra={"client_token": presented}) as c:
        token = c.authextra_welcome["client_token"]
        assert token != presented and token.startswith("ct_") and len(token) == 35


def test_tokens_survive_a_restart_of_the_whole_node(own_node: GatewayNode) -> None:
    with WampClient(own_node.ws_url, ticket=own_node.ticket("alice")) as c:
        token = c.authextra_welcome["client_token"]
    own_node.stop()
    own_node.start()
    with WampClient(own_node.ws_url, ticket=own_node.ticket("alice"), authextra={"client_token": token}) as c:
        assert c.authextra_welcome["client_token"] == token


# -- visibility ------------------------------------------------------------------

IDENTITIES: dict[str, tuple[str | None, list[str] | None]] = {
    "anonymous": (None, None),
    "user": ("ursula", []),
    "staff": ("stella", ["staff"]),
}
SEES = {
    "anonymous": {"demo.message"},
    "user": {"demo.message", "demo.order", "test.notice", "test.team"},
    "staff": {"demo.message", "demo.order", "demo.alert", "test.notice", "test.team"},
}


@pytest.mark.parametrize("who", list(IDENTITIES))
def test_each_identity_sees_its_classes_on_every_path(node: GatewayNode, who: str) -> None:
    user, roles = IDENTITIES[who]
    with node.client(user, roles) as c:
        assert {cls["name"] for cls in c.call("gateway.catalog")["classes"]} == SEES[who]
        for name in ("demo.message", "demo.order", "demo.alert"):
            if name in SEES[who]:
                assert c.call("gateway.subscribe", name)["query"] == name
                c.subscribe(f"gateway.event.{name}")
            else:
                with pytest.raises(ApplicationError) as exc:
                    c.call("gateway.subscribe", name)
                assert exc.value.error == "gateway.error.not_authorized" and name in exc.value.args[0]
                with pytest.raises(ApplicationError) as exc:
                    c.subscribe(f"gateway.event.{name}")
                assert exc.value.error == "wamp.error.not_authorized"
        expanded = c.call("gateway.subscribe", "demo.*")["query"]
        assert expanded == ", ".join(sorted(n for n in SEES[who] if n.startswith("demo.")))


def test_a_query_topic_is_only_for_those_granted_it(node: GatewayNode) -> None:
    with node.client("stella", ["staff"]) as staff, node.client() as anonymous:
        topic = staff.call("gateway.subscribe", "demo.alert")["topic"]
        with pytest.raises(ApplicationError) as exc:
            anonymous.subscribe(topic)
        assert exc.value.error == "wamp.error.not_authorized"


def test_a_wildcard_that_selects_nothing_visible_is_an_error(node: GatewayNode) -> None:
    with node.client() as anonymous:
        with pytest.raises(ApplicationError) as exc:
            anonymous.call("gateway.subscribe", "test.*")
        assert exc.value.error == "gateway.error.invalid_query"


def test_clients_never_register_or_publish_gateway_uris(node: GatewayNode) -> None:
    with node.client("stella", ["staff"]) as c:
        for topic in ("gateway.event.demo.message", "gateway.internal.publish", "gateway.anything"):
            with pytest.raises(ApplicationError) as exc:
                c.publish(topic, {"x": 1})
            assert exc.value.error == "wamp.error.not_authorized"

        async def register(uri: str) -> Any:
            assert c.session is not None
            return await c.session.register(lambda *a: None, uri)

        for uri in ("gateway.mine", "gateway.internal.publish2", "anything.else"):
            with pytest.raises(ApplicationError) as exc:
                c._run(register(uri))
            assert exc.value.error == "wamp.error.not_authorized"
        with pytest.raises(ApplicationError) as exc:
            c.call("gateway.internal.ticket", "mallory")
        assert exc.value.error == "wamp.error.not_authorized"


# -- audience and row filters --------------------------------------------------------


def test_an_audience_reaches_only_the_sessions_it_names_on_every_topic(node: GatewayNode) -> None:
    with node.client("alice") as alice, node.client("bob", ["staff"]) as bob, node.client() as anon:
        for c in (alice, bob, anon):
            c.subscribe("gateway.event.demo.message")
            c.subscribe(c.call("gateway.subscribe", "demo.message where room = 'aud'")["topic"])
        room = {**MESSAGE, "room": "aud"}
        assert node.post_event("demo.message", room, audience={"users": ["alice"]}).status == 202
        assert node.post_event("demo.message", room, audience={"roles": ["staff"]}).status == 202
        assert node.post_event("demo.message", room, audience={"roles": ["anonymous"]}).status == 202
        done = node.post_event("demo.message", room).body["seq"]
        # Two copies of each (class topic and query topic); the last event, for everyone,
        # comes after anything else a session could get.
        seen = {name: [e["seq"] for e in c.take(4)] for name, c in (("alice", alice), ("bob", bob), ("anon", anon))}
        first = done - 3
        assert seen["alice"] == [first, first, done, done]
        assert seen["bob"] == [first + 1, first + 1, done, done]
        assert seen["anon"] == [first + 2, first + 2, done, done]


@pytest.mark.parametrize("audience,where", [
    ({}, "names no users and no roles"),
    ({"users": []}, "names no users and no roles"),
    ({"users": "alice"}, "audience.users' must be a list"),
    ({"users": [1]}, "audience.users.0 must be a string"),
    ({"roles": ["Staff"]}, "audience.roles.0"),
    ({"groups": ["x"]}, "unknown key(s) in audience: groups"),
    ("alice", "'audience' must be an object"),
])
def test_bad_audiences_are_400_saying_where(node: GatewayNode, audience: Any, where: str) -> None:
    r = node.post_event("demo.message", MESSAGE, audience=audience)
    assert r.status == 400 and where in r.body["message"], r.body


def test_row_filters_show_each_user_only_their_own_rows(node: GatewayNode) -> None:
    with node.client("alice") as alice, node.client("bob", ["red"]) as bob:
        for c in (alice, bob):
            for query in ("test.notice", "test.*", "test.notice where text != 'x'"):
                c.subscribe(c.call("gateway.subscribe", query)["topic"])
        for user in ("alice", "bob", "carol", "alice"):
            assert node.post_event("test.notice", {"user": user, "text": "t"}).status == 202
        assert node.post_event("test.team", {"team": "red", "text": "t"}).status == 202
        for user in ("alice", "bob"):  # the last events: after them, nothing more can come
            assert node.post_event("test.notice", {"user": user, "text": "end"}).status == 202
        # Each matching event once per subscription it matches: three for notices, test.* for teams.
        alice_got = alice.take(9)
        assert sorted(e["data"]["user"] for e in alice_got) == ["alice"] * 9
        bob_got = bob.take(7)
        assert sorted((e["event"], e["data"].get("user") or e["data"]["team"]) for e in bob_got) == sorted(
            [("test.notice", "bob")] * 6 + [("test.team", "red")])
        assert alice.events.empty() and bob.events.empty()
        with pytest.raises(ApplicationError) as exc:
            alice.subscribe("gateway.event.test.notice")
        assert exc.value.error == "wamp.error.not_authorized"
    with node.client() as anonymous:
        with pytest.raises(ApplicationError) as exc:
            anonymous.call("gateway.subscribe", "test.notice")
        assert exc.value.error == "gateway.error.not_authorized"


def test_a_query_can_use_session_parameters(node: GatewayNode) -> None:
    with node.client("alice", ["red"]) as alice:
        answer = alice.call("gateway.subscribe", "demo.message where author = $user or room in $roles")
        assert answer["query"] == "demo.message where author = \"alice\" or room = \"red\""


# -- bad input ---------------------------------------------------------------------


def assert_still_serving(node: GatewayNode) -> None:
    assert node.get("/healthz").status == 200
    with node.client("alice") as c:
        c.subscribe("gateway.event.demo.message")
        seq = node.post_event("demo.message", MESSAGE).body["seq"]
        assert c.take(1)[0]["seq"] == seq


def test_malformed_hellos_and_authentications_are_refused_cleanly(node: GatewayNode) -> None:
    url = node.ws_url
    # authextra that is not an object: a protocol error, the connection is closed.
    received, closed = exchange(url, [hello(authextra="not-an-object")])
    assert closed and not any(m[0] == WELCOME for m in received)
    # An authentication method we do not offer.
    received, closed = exchange(url, [hello(authmethods=["scram"], authid="alice")])
    assert received and received[0][0] == ABORT and not any(m[0] == WELCOME for m in received)
    # A ticket that is not a string.
    received, closed = exchange(url, [hello(authmethods=["ticket"])],
                                reply=lambda m: [[AUTHENTICATE, 12345, {}]] if m[0] == CHALLENGE else [])
    assert closed and not any(m[0] == WELCOME for m in received)
    # A huge ticket: refused with the reason, before any work on it.
    received, closed = exchange(url, [hello(authmethods=["ticket"])],
                                reply=lambda m: [[AUTHENTICATE, "gt_" + "x" * 200_000, {}]] if m[0] == CHALLENGE
                                else [])
    abort = next(m for m in received if m[0] == ABORT)
    assert abort[2] == "gateway.error.authentication_failed" and "at most 8192" in abort[1]["message"]
    # Not even WAMP.
    received, closed = exchange(url, ["{this is not json"])
    assert closed and received == []
    assert_still_serving(node)


def test_each_request_is_logged_with_the_name_of_its_key_never_the_key(node: GatewayNode) -> None:
    access_log = node.cbdir / "access.log"

    def text() -> str:
        return access_log.read_text() if access_log.exists() else ""

    lines = (" GET /catalog 200 key=key-1 ", " GET /catalog 401 key=- ")
    before = [text().count(line) for line in lines]
    assert node.request("GET", "/catalog", headers={"Authorization": f"Bearer {API_KEY}"}).status == 200
    assert node.request("GET", "/catalog", headers={"Authorization": "Bearer wrong-key-0000"}).status == 401
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(text().count(line) <= n for line, n in zip(lines, before)):
        time.sleep(0.05)  # the bridges append their lines every half second
    after = [text().count(line) for line in lines]
    assert after[0] > before[0] and after[1] > before[1], (before, after)
    assert all(line.endswith("ms") and line[:4].isdigit() for line in text().splitlines())
    assert API_KEY not in text() + node.log_text() and "wrong-key-0000" not in text() + node.log_text()
