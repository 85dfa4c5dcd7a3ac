from pathlib import Path
from typing import Any

import pytest

from components.events import Registry
from components.auth.policy import authorize

REGISTRY = Registry.load(["examples.demo_events"], ["examples/demo_events.yaml"],
                         base_dir=Path(__file__).resolve().parents[3])


def decide(uri: str, action: str = "subscribe", authrole: str = "anonymous", roles: tuple[str, ...] = (),
           options: dict[str, Any] | None = None, grants: frozenset[str] = frozenset()) -> dict[str, bool]:
    return authorize(authrole, roles, uri, action, options or {}, REGISTRY, lambda key: key in grants)


def test_anonymous_may_subscribe_to_public_classes_only() -> None:
    assert decide("gateway.event.demo.message")["allow"]
    assert not decide("gateway.event.demo.order")["allow"]
    assert not decide("gateway.event.demo.alert")["allow"]
    assert not decide("gateway.event.demo.nope")["allow"]


def test_roles_see_what_their_visibility_allows() -> None:
    assert decide("gateway.event.demo.order", authrole="user")["allow"]
    assert not decide("gateway.event.demo.alert", authrole="user")["allow"]
    assert decide("gateway.event.demo.alert", authrole="user", roles=("staff",))["allow"]


def test_query_topics_need_a_grant() -> None:
    assert decide("gateway.query.abc", grants=frozenset({"abc"}))["allow"]
    assert not decide("gateway.query.abc", grants=frozenset({"other"}))["allow"]


@pytest.mark.parametrize("match", ["prefix", "wildcard"])
def test_pattern_subscriptions_are_refused(match: str) -> None:
    assert not decide("gateway.event.", options={"match": match})["allow"]


def test_clients_may_call_the_client_procedures_with_their_identity_disclosed() -> None:
    for uri in ("gateway.subscribe", "gateway.unsubscribe", "gateway.subscriptions", "gateway.catalog"):
        assert decide(uri, action="call") == {"allow": True, "disclose": True, "cache": True}
    assert not decide("gateway.internal.publish", action="call")["allow"]
    assert not decide("wamp.session.kill", action="call")["allow"]


@pytest.mark.parametrize("action", ["publish", "register"])
def test_clients_never_publish_or_register(action: str) -> None:
    assert not decide("gateway.event.demo.message", action=action)["allow"]
    assert not decide("gateway.subscribe", action=action)["allow"]


def test_answers_that_can_change_are_not_cached() -> None:
    assert decide("gateway.event.demo.message")["cache"] is False
    assert decide("gateway.query.k", grants=frozenset({"k"}))["cache"] is False


def test_a_batched_query_topic_is_allowed_exactly_when_its_unbatched_twin_is() -> None:
    """gateway.batch.query.<key> takes the same grant as gateway.query.<key>, and nothing else."""
    for grants in (frozenset({"abc"}), frozenset({"other"}), frozenset()):
        for authrole in ("anonymous", "user"):
            plain = decide("gateway.query.abc", authrole=authrole, grants=grants)
            batched = decide("gateway.batch.query.abc", authrole=authrole, grants=grants)
            assert plain == batched
    assert decide("gateway.batch.query.abc", grants=frozenset({"abc"}))["allow"]
    assert not decide("gateway.batch.query.abc", options={"match": "prefix"}, grants=frozenset({"abc"}))["allow"]
    assert not decide("gateway.batch.query.", options={"match": "prefix"})["allow"]
    assert not decide("gateway.batch.event.demo.message")["allow"], "no batched class topics"
