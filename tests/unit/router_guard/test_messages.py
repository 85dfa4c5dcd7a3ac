"""What a client's WAMP message may hold: depth before and after decoding, and values our components can take."""

from __future__ import annotations

import datetime
import json
from typing import Any

import cbor2
import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.limits import INT64_MAX, INT64_MIN, INT_RANGE, too_deep_at
from components.router_guard.messages import (
    CALL,
    HELLO,
    PUBLISH,
    answerable,
    check_message,
    decoder_hit_its_depth_limit,
)


def nested(depth: int, leaf: Any = None) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def json_depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((json_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((json_depth(v) for v in value.values()), default=0)
    return 0


# -- JSON, before parsing (components.limits) -------------------------------------------------


@pytest.mark.parametrize("depth", [2, 63, 64, 65, 100_000])
def test_the_json_check_and_the_message_check_count_depth_alike(depth: int) -> None:
    """The router measures a JSON frame with components.limits before parsing it, and every decoded
    message with check_message: the two must agree on what 64 levels are."""
    frame = b"[" * depth + b"]" * depth
    before = too_deep_at(frame, 64) is not None
    assert before is (depth > 64)
    if depth < 1000:
        problem = check_message(json.loads(frame), 64)
        assert (problem is not None and problem.too_deep) is before


@given(st.recursive(st.none() | st.integers(min_value=0, max_value=9) | st.text(alphabet='[]{}"\\ab', max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                    max_leaves=30),
       st.integers(min_value=1, max_value=12))
def test_both_depth_checks_agree_on_any_message(value: Any, limit: int) -> None:
    problem = check_message(value, limit)
    assert (too_deep_at(json.dumps(value).encode(), limit) is not None) is (problem is not None and problem.too_deep)
    assert (json_depth(value) > limit) is (problem is not None and problem.too_deep)


# -- decoded messages ------------------------------------------------------------------------


def call(*args: Any, **kwargs: Any) -> list[Any]:
    return [CALL, 7, {}, "gateway.subscribe", list(args), kwargs]


def test_ordinary_messages_pass() -> None:
    assert check_message([HELLO, "gateway", {"roles": {"caller": {"features": {"x": True}}}}], 64) is None
    assert check_message(call("demo.message", persistent=True), 64) is None
    assert check_message(call(INT64_MIN, INT64_MAX, 1.5e300, b"\x00", None), 64) is None


def test_depth_counts_the_message_itself() -> None:
    assert check_message(call(nested(61)), 64) is None  # message, args, then 61 levels plus the None
    problem = check_message(call(nested(63)), 64)
    assert problem is not None and problem.too_deep and "64 levels" in problem.reason


@pytest.mark.parametrize("value,shown", [(2**63, "9223372036854775808"), (INT64_MIN - 1, "-9223372036854775809"),
                                         (10**40, "an integer of about 41 digits")])
def test_integers_outside_64_bits_are_named_with_their_place(value: int, shown: str) -> None:
    problem = check_message(call("q", value), 64)
    assert problem is not None and not problem.too_deep
    assert problem.reason == f"args[1]: {INT_RANGE}, not {shown}"


def reason(message: Any) -> str:
    problem = check_message(message, 64)
    assert problem is not None
    return problem.reason


def test_places_are_named_by_the_message_fields() -> None:
    assert reason(call(query={"a": [1, 2**70]})).startswith("kwargs.query.a[1]: integers must be")
    assert reason([CALL, 1, {"timeout": 2**64}, "p"]).startswith("options.timeout: integers")
    assert reason(call({"a b": 2**64})).startswith("args[0]['a b']: integers")
    assert reason([99, 2**64]).startswith("element 1: integers")


def test_a_huge_integer_is_never_printed_in_full() -> None:
    problem = check_message(call(10**5000), 64)
    assert problem is not None and len(problem.reason) < 200


def test_map_keys_must_be_strings() -> None:
    problem = check_message(call({1: "x"}), 64)
    assert problem is not None and problem.reason == "args[0] has the map key 1: map keys must be strings"


def test_values_msgpack_cannot_carry_to_our_components_are_refused() -> None:
    decoded = cbor2.loads(cbor2.dumps(call(datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc))))
    problem = check_message(decoded, 64)
    assert problem is not None and problem.reason.startswith("args[0] is a datetime, which the gateway does not take")
    decoded = msgpack.unpackb(msgpack.packb(call(msgpack.ExtType(5, b"x"))), raw=False)
    assert check_message(decoded, 64) is not None


def test_a_big_flat_message_is_checked_quickly() -> None:
    import time

    message = call(list(range(1_000_000)), ["x"] * 1_000_000)
    started = time.perf_counter()
    assert check_message(message, 64) is None
    assert time.perf_counter() - started < 2.0


def test_requests_with_an_id_are_answerable() -> None:
    assert answerable(call()) == (CALL, 7)
    assert answerable([PUBLISH, 3, {}, "t"]) == (PUBLISH, 3)
    assert answerable([HELLO, "gateway", {}]) is None
    assert answerable([CALL, 2**60, {}, "p"]) is None  # not a valid WAMP id: nothing to answer to
    assert answerable("junk") is None


def test_the_binary_decoders_own_depth_limits_are_recognised() -> None:
    with pytest.raises(Exception) as msgpack_error:
        msgpack.unpackb(b"\x91" * 2000 + b"\xc0")
    with pytest.raises(Exception) as cbor_error:
        cbor2.loads(b"\x81" * 2000 + b"\xf6")
    assert decoder_hit_its_depth_limit(msgpack_error.value)
    assert decoder_hit_its_depth_limit(cbor_error.value)
    assert not decoder_hit_its_depth_limit(ValueError("Unpack failed: incomplete input"))
