"""The login rules (components.auth.credentials) and their application with a store (components.auth.authenticator)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest

from components.auth.logins import Identities
from components.config import AuthConfig
from components.auth.credentials import ANONYMOUS, AuthFailure, anonymous_token_key, check_credential, check_roles, \
    check_user, digest, identity_of, is_anonymous_token, is_jwt, may_reuse, new_anonymous_token, new_client_token, \
    new_ticket, presented_token, rfc3339, verify_jwt
from components.store.base import PersistentSubscription
from components.store.sqlite import SqliteStore

SECRET = "unit-test-secret-0123456789abcdef-0123"
KEY = anonymous_token_key("unit-test-backend-secret")


def token(claims: dict[str, Any], secret: str = SECRET, **kw: Any) -> str:
    return jwt.encode({"exp": int(time.time()) + 60, **claims}, secret, **kw)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = SqliteStore(tmp_path / "store.sqlite3")
    yield s
    s.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ids(store: SqliteStore, clock: Clock) -> Identities:
    return Identities(store, AuthConfig(secret=SECRET, client_token_ttl=3600, ticket_ttl=60, max_ticket_ttl=600),
                      "gateway", clock, token_key=KEY)


def token_rows(store: SqliteStore) -> int:
    return int(store._db.execute("SELECT count(*) FROM client_tokens").fetchone()[0])


def anonymous(authextra: Any = None) -> dict[str, Any]:
    return {"authmethod": "anonymous", "authextra": authextra, "session": 1}


def with_ticket(ticket: Any, authextra: Any = None) -> dict[str, Any]:
    return {"authmethod": "ticket", "ticket": ticket, "authextra": authextra, "session": 1}


# -- the pure rules ----------------------------------------------------------------


def test_credentials_are_long_random_and_distinct() -> None:
    tickets = {new_ticket() for _ in range(100)}
    tokens = {new_client_token() for _ in range(100)}
    assert len(tickets) == len(tokens) == 100
    assert all(t.startswith("gt_") and len(t) == 46 for t in tickets)  # 32 bytes: 256 bits
    assert all(t.startswith("ct_") and len(t) == 35 for t in tokens)  # 24 bytes: 192 bits
    assert all(presented_token({"client_token": t}) == t for t in tokens)


def test_the_store_keeps_digests_not_credentials() -> None:
    assert digest("ct_x") != "ct_x" and len(digest("ct_x")) == 64 and digest("ct_x") == digest("ct_x")


@pytest.mark.parametrize("user,why", [
    (None, "must be a string"), (5, "must be a string"), ("", "1 to 255"), ("x" * 256, "1 to 255"),
    ("a\nb", "control"), (" alice", "spaces"),
])
def test_bad_user_ids(user: Any, why: str) -> None:
    with pytest.raises(AuthFailure, match=why):
        check_user(user)


def test_user_ids_may_be_emails_numbers_as_text_or_any_script() -> None:
    for user in ("alice@example.com", "42", "ñandú", "x" * 255):
        assert check_user(user) == user


@pytest.mark.parametrize("roles,why", [
    ("staff", "must be a list"), ([1], r"roles\[0\]"), (["Staff"], "lower-case"), (["a b"], "lower-case"),
    (["backend"], "gateway's own role"), (["anonymous"], "gateway's own role"), ([f"r{i}" for i in range(33)],
                                                                                "at most 32"),
])
def test_bad_roles(roles: Any, why: str) -> None:
    with pytest.raises(AuthFailure, match=why):
        check_roles(roles)


def test_roles_are_sorted_without_repeats() -> None:
    assert check_roles(["staff", "red", "staff"]) == ("red", "staff") and check_roles(None) == ()


@pytest.mark.parametrize("credential,why", [(12, "must be a string"), (None, "must be a string"), ("", "empty"),
                                            ("x" * 8193, "at most 8192"), ({"t": 1}, "must be a string")])
def test_bad_credentials(credential: Any, why: str) -> None:
    with pytest.raises(AuthFailure, match=why):
        check_credential(credential)


def test_jwts_and_tickets_are_told_apart() -> None:
    assert is_jwt(token({"sub": "a"})) and not is_jwt(new_ticket()) and not is_jwt("gt_a.b.c")


def test_a_good_jwt() -> None:
    login = verify_jwt(token({"sub": "alice", "roles": ["staff"]}), SECRET, "gateway")
    assert (login.user, login.roles, login.method) == ("alice", ("staff",), "jwt")
    assert verify_jwt(token({"sub": "alice", "aud": ["other", "gateway"]}), SECRET, "gateway").user == "alice"


#: Each made when its test runs, not when the tests are collected: the suite may run for minutes before
#: it gets here, and a token made then with a minute to live would have expired for another reason.
BAD_JWTS: list[tuple[Callable[[], str], str]] = [
    (lambda: token({"sub": "a"}, "another-secret-0123456789abcdef-0123"), "signature does not match"),
    (lambda: token({"sub": "a", "exp": 1}), "expired"),
    (lambda: token({"sub": "a", "nbf": int(time.time()) + 3600}), "not valid yet"),
    (lambda: token({"sub": "a"}, "k" * 64, algorithm="HS384"), "only HS256"),
    (lambda: jwt.encode({"sub": "a", "exp": int(time.time()) + 60}, None, algorithm="none"), "only HS256"),
    (lambda: token({"roles": []}), "no 'sub' claim"),
    (lambda: jwt.encode({"sub": "a"}, SECRET, algorithm="HS256"), "no 'exp' claim"),
    (lambda: token({"sub": "a", "aud": "elsewhere"}), "aud claim"),
    (lambda: token({"sub": "a", "roles": ["ok", 3]}), r"roles claim\[1\]"),
    (lambda: token({"sub": "a", "exp": int(time.time()) + 2 * 24 * 3600}), "at most 86400 s"),
    (lambda: "x.y.z", "malformed"),
]


@pytest.mark.parametrize("make,why", BAD_JWTS, ids=[why for _, why in BAD_JWTS])
def test_bad_jwts(make: Callable[[], str], why: str) -> None:
    with pytest.raises(AuthFailure, match=why):
        verify_jwt(make(), SECRET, "gateway")


def test_tokens_are_bound_to_identities() -> None:
    assert identity_of(None) == ANONYMOUS and identity_of("alice") == "user:alice"
    assert may_reuse(("user:alice", 10.0), "user:alice", 5.0)
    assert not may_reuse(("user:alice", 10.0), "user:bob", 5.0)
    assert not may_reuse(("user:alice", 10.0), ANONYMOUS, 5.0)
    assert not may_reuse(("user:alice", 10.0), "user:alice", 10.0), "expired"
    assert not may_reuse(None, ANONYMOUS, 0.0)


@pytest.mark.parametrize("authextra", [None, "x", [], {}, {"client_token": 3}, {"client_token": "ct_short"},
                                       {"client_token": "ct_" + "a" * 5000}, {"client_token": "xx" + "a" * 33}])
def test_malformed_presented_tokens_are_ignored(authextra: Any) -> None:
    assert presented_token(authextra) is None


def test_anonymous_tokens_are_signed_and_known_by_their_signature() -> None:
    tokens = {new_anonymous_token(KEY) for _ in range(100)}
    assert len(tokens) == 100
    assert all(presented_token({"client_token": t}) == t for t in tokens), "the shape every client token has"
    assert all(is_anonymous_token(t, KEY) for t in tokens)
    other = anonymous_token_key("another-backend-secret")
    assert not any(is_anonymous_token(t, other) for t in tokens), "signed with another key"
    assert not any(is_anonymous_token(new_client_token(), KEY) for _ in range(100)), "random: a user's"
    token = tokens.pop()
    for i in range(3, len(token)):  # any character changed: not ours
        changed = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]
        assert not is_anonymous_token(changed, KEY)
    assert anonymous_token_key("x") == anonymous_token_key("x"), "every authenticator derives the same key"


def test_times_are_rfc3339_utc() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00Z"


# -- applied with the store ------------------------------------------------------------


def test_anonymous_gets_a_token_and_keeps_it(ids: Identities, store: SqliteStore, clock: Clock) -> None:
    first = ids.authenticate("gateway", "ABC", anonymous())
    assert first["role"] == "anonymous" and "authid" not in first
    extra = first["extra"]
    assert extra["user"] is None and extra["roles"] == [] and extra["client_token_expires"] == rfc3339(clock.now + 3600)
    clock.now += 100
    again = ids.authenticate("gateway", "DEF", anonymous({"client_token": extra["client_token"]}))
    assert again["extra"]["client_token"] == extra["client_token"]
    assert again["extra"]["client_token_expires"] == rfc3339(clock.now + 3600), "renewed"
    clock.now += 100_000
    late = ids.authenticate("gateway", "GHI", anonymous({"client_token": extra["client_token"]}))
    assert late["extra"]["client_token"] == extra["client_token"], "nothing hangs on it: signed, never stored"
    assert token_rows(store) == 0


def test_an_anonymous_token_is_stored_only_while_a_persistent_subscription_holds_it(
        ids: Identities, store: SqliteStore, clock: Clock) -> None:
    for _ in range(50):
        ids.authenticate("gateway", None, anonymous())
    assert token_rows(store) == 0, "a flood of anonymous connections stores nothing"
    token = ids.authenticate("gateway", None, anonymous())["extra"]["client_token"]
    sub = PersistentSubscription(id="p_1", owner=f"token:{digest(token)}", user=None, query="q", key="k",
                                 parts=["q"], filters={}, classes=["demo.message"], last_seq=0, created=clock.now)
    store.save_persistent(sub, keep_token=(digest(token), ANONYMOUS, clock.now + 3600))
    ids.prune()
    assert store.token(digest(token)) == (ANONYMOUS, clock.now + 3600), "held: kept"
    clock.now += 100
    again = ids.authenticate("gateway", None, anonymous({"client_token": token}))["extra"]
    assert again["client_token"] == token and store.token(digest(token)) == (ANONYMOUS, clock.now + 3600), "renewed"
    clock.now += 3601
    late = ids.authenticate("gateway", None, anonymous({"client_token": token}))["extra"]["client_token"]
    assert late != token, "a stored token that expired is not taken again (its subscriptions end with it)"
    store.delete_persistent("p_1")
    ids.prune()
    assert token_rows(store) == 0, "no longer held: its row goes"


def test_signed_anonymous_tokens_are_for_anonymous_clients_only(ids: Identities) -> None:
    token = ids.authenticate("gateway", None, anonymous())["extra"]["client_token"]
    alice = ids.authenticate("gateway", None, with_ticket(ids.issue_ticket("alice")["ticket"], {"client_token": token}))
    assert alice["extra"]["client_token"] != token
    assert not is_anonymous_token(alice["extra"]["client_token"], KEY), "a user's token is random, and stored"
    forged = "ct_" + "x" * 32
    assert ids.authenticate("gateway", None, anonymous({"client_token": forged}))["extra"]["client_token"] != forged


def test_a_ticket_works_once_for_its_user_until_it_expires(ids: Identities, clock: Clock) -> None:
    issued = ids.issue_ticket("alice", ["staff"], 30)
    assert issued["expires_at"] == rfc3339(clock.now + 30) and issued["roles"] == ["staff"]
    principal = ids.authenticate("gateway", None, with_ticket(issued["ticket"]))
    assert (principal["role"], principal["authid"], principal["extra"]["roles"]) == ("user", "alice", ["staff"])
    with pytest.raises(AuthFailure, match="works once"):
        ids.authenticate("gateway", None, with_ticket(issued["ticket"]))
    late = ids.issue_ticket("alice")
    clock.now += 61
    with pytest.raises(AuthFailure, match="expired"):
        ids.authenticate("gateway", None, with_ticket(late["ticket"]))
    other = ids.issue_ticket("alice")
    with pytest.raises(AuthFailure, match="another user"):
        ids.authenticate("gateway", "bob", with_ticket(other["ticket"]))


@pytest.mark.parametrize("args,why", [(("",), "user must be"), (("a", "x"), "roles must be a list"),
                                      (("a", None, 0), "ttl must be"), (("a", None, 601), "at most 600"),
                                      (("a", None, True), "ttl must be")])
def test_bad_ticket_requests(ids: Identities, args: tuple[Any, ...], why: str) -> None:
    with pytest.raises(AuthFailure, match=why):
        ids.issue_ticket(*args)


def test_a_token_follows_its_owner_across_login_methods_but_not_to_others(ids: Identities) -> None:
    alice = ids.authenticate("gateway", None, with_ticket(ids.issue_ticket("alice")["ticket"]))["extra"]
    by_jwt = ids.authenticate("gateway", None, with_ticket(token({"sub": "alice"}),
                                                           {"client_token": alice["client_token"]}))
    assert by_jwt["extra"]["client_token"] == alice["client_token"]
    for thief in (with_ticket(token({"sub": "bob"}), {"client_token": alice["client_token"]}),
                  anonymous({"client_token": alice["client_token"]})):
        assert ids.authenticate("gateway", None, thief)["extra"]["client_token"] != alice["client_token"]
    # The thief's attempt did not take the token over: alice still has it.
    back = ids.authenticate("gateway", None, with_ticket(token({"sub": "alice"}), {"client_token": alice["client_token"]}))
    assert back["extra"]["client_token"] == alice["client_token"]


def test_other_methods_are_refused(ids: Identities) -> None:
    with pytest.raises(AuthFailure, match="not offered"):
        ids.authenticate("gateway", "x", {"authmethod": "wampcra"})


def test_expired_credentials_are_pruned(ids: Identities, store: SqliteStore, clock: Clock) -> None:
    ticket = ids.issue_ticket("alice")["ticket"]
    extra = ids.authenticate("gateway", None, with_ticket(ids.issue_ticket("bob")["ticket"]))["extra"]
    clock.now += 100
    ids.prune()
    assert store.token(digest(extra["client_token"])) is not None, "expired, but kept an hour"
    clock.now += 10_000
    ids.prune()
    assert store.use_ticket(digest(ticket)) is None
    assert store.token(digest(extra["client_token"])) is None


def test_jwt_logins_are_off_without_a_secret(store: SqliteStore, clock: Clock) -> None:
    ids = Identities(store, AuthConfig(), "gateway", clock, token_key=KEY)
    with pytest.raises(AuthFailure, match="JWT logins are off"):
        ids.authenticate("gateway", None, with_ticket(token({"sub": "alice"})))
    assert ids.authenticate("gateway", None, with_ticket(ids.issue_ticket("alice")["ticket"]))["authid"] == "alice"
