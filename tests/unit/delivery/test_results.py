"""The dispatcher's typed answers to ``gateway.internal.publish``: values, their wire form and back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.delivery.results import Accepted, IdOrigin, PublishResult, Refused, RefusalCode, from_wire


def _over_the_wire(result: PublishResult) -> PublishResult:
    """As the bridge gets it: the dispatcher's ``to_wire()``, serialized (WAMP's JSON or msgpack keep
    the same shapes), read back."""
    return from_wire(json.loads(json.dumps(result.to_wire())))


@pytest.mark.parametrize("accepted, wire", [
    (Accepted("a", 1), {"id": "a", "seq": 1}),
    (Accepted("order-7", 2**53 + 1), {"id": "order-7", "seq": 2**53 + 1}),
    (Accepted("a", 4, duplicate=True), {"id": "a", "seq": 4, "duplicate": True}),
])
def test_accepted_round_trips(accepted: Accepted, wire: dict[str, Any]) -> None:
    assert accepted.to_wire() == wire
    assert from_wire(wire) == accepted
    assert _over_the_wire(accepted) == accepted


def test_a_first_acceptance_says_nothing_of_duplicates() -> None:
    assert "duplicate" not in Accepted("a", 1).to_wire()
    assert from_wire({"id": "a", "seq": 1, "duplicate": False}) == Accepted("a", 1)


@pytest.mark.parametrize("code", list(RefusalCode))
def test_every_refusal_code_round_trips(code: RefusalCode) -> None:
    plain = Refused(code, f"refused: {code.value}")
    assert plain.to_wire() == {"error": code.value, "message": f"refused: {code.value}"}
    assert _over_the_wire(plain) == plain
    detailed = Refused(code, "see details", ({"loc": ["data", "amount"], "msg": "too big"}, {"n": 2}))
    assert detailed.to_wire()["details"] == [{"loc": ["data", "amount"], "msg": "too big"}, {"n": 2}]
    assert _over_the_wire(detailed) == detailed
    assert from_wire({"error": code.value, "message": "m"}) == Refused(code, "m")


def test_the_refusal_codes_are_a_closed_set() -> None:
    """Each is the ``error`` a web-app sees, and the bridge maps each to its HTTP status: adding one is
    a change of the API (and of this test)."""
    assert {c.value for c in RefusalCode} == {"unknown_event", "conflict", "unavailable"}
    assert [c for c in RefusalCode if c.retryable] == [RefusalCode.UNAVAILABLE]


def test_empty_details_are_kept_apart_from_none() -> None:
    assert Refused(RefusalCode.CONFLICT, "m", ()).to_wire()["details"] == []
    assert from_wire({"error": "conflict", "message": "m", "details": []}) == Refused(RefusalCode.CONFLICT, "m", ())
    assert "details" not in Refused(RefusalCode.CONFLICT, "m").to_wire()


def test_unknown_keys_are_ignored() -> None:
    assert from_wire({"id": "a", "seq": 3, "shard": 2}) == Accepted("a", 3)
    assert from_wire({"error": "unavailable", "message": "m", "retry_after": 1}) == \
        Refused(RefusalCode.UNAVAILABLE, "m")


def test_a_refusal_without_message_reads_as_an_empty_one() -> None:
    assert from_wire({"error": "conflict"}) == Refused(RefusalCode.CONFLICT, "")
    assert from_wire({"error": "conflict", "message": 7}) == Refused(RefusalCode.CONFLICT, "7")


@pytest.mark.parametrize("wire, says", [
    ({"error": "teapot", "message": "m"}, "unknown code 'teapot'"),
    ({"error": None}, "unknown code None"),
    ({"seq": 1}, "lacks 'id'"),
    ({"id": "a"}, "lacks 'seq'"),
    ({}, "lacks 'id'"),
    ({"id": "", "seq": 1}, "non-empty string"),
    ({"id": 5, "seq": 1}, "non-empty string"),
    ({"id": "a", "seq": 0}, "whole number from 1"),
    ({"id": "a", "seq": "3"}, "whole number from 1"),
    ({"id": "a", "seq": 1.0}, "whole number from 1"),
    ({"id": "a", "seq": True}, "whole number from 1"),
])
def test_a_malformed_result_raises_value_error(wire: dict[str, Any], says: str) -> None:
    """A malformed result is the gateway's own bug, not a web-app's: a ValueError naming what is wrong."""
    with pytest.raises(ValueError, match=says):
        from_wire(wire)


def test_the_values_check_themselves() -> None:
    with pytest.raises(ValueError, match="not a refusal code"):
        Refused("conflict", "m")  # type: ignore[arg-type]  # the string, not the code
    with pytest.raises(ValueError):
        Accepted("a", -1)
    with pytest.raises(AttributeError):
        Accepted("a", 1).seq = 2  # type: ignore[misc]  # frozen


def test_id_origins_on_the_wire() -> None:
    """The fifth element of a ``gateway.internal.publish`` item: a plain int on the wire."""
    assert (IdOrigin.GIVEN, IdOrigin.NEW) == (0, 1)
    assert json.loads(json.dumps([IdOrigin.NEW])) == [1]
    assert IdOrigin.of(1) is IdOrigin.NEW and IdOrigin.of(0) is IdOrigin.GIVEN
    # Anything else (a newer bridge's origin, garbage) is looked up like a given id.
    assert all(IdOrigin.of(v) is IdOrigin.GIVEN for v in (2, -1, None, "1", "new"))
