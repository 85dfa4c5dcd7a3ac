"""The dispatcher's table of client sessions and the audiences it resolves."""

from typing import Any

from components.delivery.sessions import Restriction, SessionInfo, Sessions


def details(session: int, authrole: str = "user", user: str | None = None, roles: Any = (), **extra: Any) -> dict[
        str, Any]:
    return {"session": session, "authid": user or f"anon-{session}", "authrole": authrole,
            "authextra": {"user": user, "roles": list(roles), "client_token": f"ct_{session}", **extra}}


def table() -> Sessions:
    s = Sessions()
    s.joined(details(1, "anonymous"))
    s.joined(details(2, user="alice", roles=["staff"]))
    s.joined(details(3, user="alice"))
    s.joined(details(4, user="bob", roles=["red"]))
    s.joined(details(5, "backend", user="dispatcher"))
    return s


def test_audiences_are_the_union_of_users_and_roles() -> None:
    s = table()
    assert s.audience(users=["alice"]) == [2, 3]
    assert s.audience(roles=["staff"]) == [2]
    assert s.audience(users=["bob"], roles=["staff"]) == [2, 4]
    assert s.audience(roles=["user"]) == [2, 3, 4], "the WAMP role counts too"
    assert s.audience(roles=["anonymous"]) == [1]
    assert s.audience(users=["nobody"], roles=["none"]) == []


def test_our_own_components_are_never_an_audience() -> None:
    s = table()
    assert s.get(5) is None and s.audience(roles=["backend"]) == [] and len(s) == 4


def test_sessions_that_leave_are_forgotten_everywhere() -> None:
    s = table()
    s.left(2)
    s.left(99)
    assert s.audience(users=["alice"]) == [3] and s.audience(roles=["staff"]) == []
    s.keep_only([3])
    assert len(s) == 1 and s.audience(roles=["user", "anonymous", "red"]) == [3]


def test_identity_comes_from_what_the_authenticator_said() -> None:
    info = SessionInfo.from_details(details(7, user="carol", roles=["blue"]))
    assert (info.user, info.roles, info.authrole, info.client_token) == ("carol", ("blue",), "user", "ct_7")
    odd = SessionInfo.from_details({"session": 8, "authextra": "nonsense"})
    assert (odd.user, odd.roles, odd.client_token) == (None, (), None)


def test_delivery_is_restricted_to_who_may_see_the_class_now() -> None:
    s = table()
    assert s.restriction("public") == Restriction()
    assert s.restriction("authenticated") == Restriction(eligible_authrole=["user"])
    assert s.restriction("role:staff") == Restriction(eligible=[2])
    assert s.restriction("role:nobody") == Restriction(eligible=[])
    member = Sessions(user_role="member")
    assert member.restriction("authenticated") == Restriction(eligible_authrole=["member"])


def test_an_audience_is_cut_down_to_those_who_may_see_the_class() -> None:
    s = table()
    assert s.restriction("public", {"roles": ["anonymous", "red"]}) == Restriction(eligible=[1, 4])
    assert s.restriction("authenticated", {"roles": ["anonymous", "red"]}) == Restriction(eligible=[4])
    assert s.restriction("role:staff", {"users": ["alice", "bob"]}) == Restriction(eligible=[2])
    assert s.restriction("role:staff", {"users": ["bob"]}) == Restriction(eligible=[])
