"""gateway.status: the authorizer lets only operators call it (their ticket's or JWT's roles), never cached."""

from pathlib import Path

import pytest

from components import uris
from components.auth.policy import OPERATOR_ROLE, authorize, is_operator, session_is_operator
from components.events import Registry

REGISTRY = Registry.load(["examples.demo_events"], ["examples/demo_events.yaml"],
                         base_dir=Path(__file__).resolve().parents[3])


def decide(authrole: str, roles: tuple[str, ...], operator_role: str = OPERATOR_ROLE,
           action: str = "call") -> dict[str, bool]:
    return authorize(authrole, roles, uris.STATUS, action, {}, REGISTRY, lambda key: False, operator_role)


def test_the_default_operator_role_is_staff() -> None:
    assert OPERATOR_ROLE == "staff"


def test_a_user_holding_the_operator_role_may_call_it_and_is_disclosed() -> None:
    assert decide("user", ("staff",)) == {"allow": True, "disclose": True, "cache": False}
    assert decide("user", ("red", "staff"))["allow"]


@pytest.mark.parametrize(("authrole", "roles"), [("user", ()), ("user", ("red",)), ("user", ("Staff",)),
                                                 ("user", ("staff_", "sta")), ("anonymous", ()),
                                                 ("anonymous", ("staff",))])
def test_anyone_else_is_refused(authrole: str, roles: tuple[str, ...]) -> None:
    assert decide(authrole, roles)["allow"] is False


def test_the_operator_role_is_the_configured_one() -> None:
    assert decide("user", ("ops",), operator_role="ops")["allow"]
    assert not decide("user", ("staff",), operator_role="ops")["allow"]


def test_never_cached_allowed_or_refused() -> None:
    # Crossbar keys its cache by (realm, authrole, URI, action): an operator and another user share the
    # WAMP role, so a cached answer for one would be the other's.
    assert decide("user", ("staff",))["cache"] is False
    assert decide("user", ())["cache"] is False


@pytest.mark.parametrize("action", ["subscribe", "publish", "register"])
def test_only_calling_it(action: str) -> None:
    assert not decide("user", ("staff",), action=action)["allow"]


def test_is_operator() -> None:
    assert is_operator("user", ["staff"], "staff")
    assert is_operator("member", ["staff"], "staff")  # auth.user_role may be another name
    assert not is_operator("anonymous", ["staff"], "staff")
    assert not is_operator("user", [], "staff")


def session(authrole: str, extra: object) -> dict[str, object]:
    """A session as ``wamp.session.get`` describes it (what the procedure reads of it)."""
    return {"session": 42, "authid": "x", "authrole": authrole, "authextra": extra}


def test_the_procedure_judges_a_session_by_the_same_rule() -> None:
    # gateway.status checks its caller itself too (wamp.session.get): the authorizer's rule, on the
    # router's description of the session.
    assert session_is_operator(session("user", {"user": "ops", "roles": ["red", "staff"]}), "staff")
    assert session_is_operator(session("user", {"roles": ["admin"]}), "admin")
    for refused in (session("user", {"user": "bob", "roles": ["red"]}), session("user", {"user": "carol"}),
                    session("anonymous", {"roles": ["staff"]}), session("user", {"roles": "staff"}),
                    session("user", None), {"authextra": {"roles": ["staff"]}}, None):
        assert not session_is_operator(refused, "staff"), refused
