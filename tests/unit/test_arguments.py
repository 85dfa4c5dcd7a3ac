"""The argument checker (components.arguments): every wrong call named, nothing of the code shown."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.arguments import REQUIRED, SEQ_MAX, Flag, InvalidArgument, OrNull, Param, Signature, Text, TextList, \
    WholeNumber, show
from components.delivery.signatures import CATALOG, INTERNAL_CREATE, INTERNAL_LIST, SUBSCRIBE, UNSUBSCRIBE
from components.delivery.replay import ACK, REPLAY

#: What a message must never hold: Python's own words for a bad call, type names, reprs.
PYTHON = re.compile(r"positional|keyword argument|NoneType|\bint\b|\bstr\b|\bdict\b|\bbool\b|\(\)\s+missing|"
                    r"Dispatcher|_subscribe|Traceback|<|>|\bTrue\b|\bFalse\b|\bNone\b")


def refused(signature: Signature, args: list[Any], kwargs: dict[str, Any] | None = None) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as exc:
        signature.bind(args, kwargs or {})
    assert not PYTHON.search(str(exc.value)), str(exc.value)
    return exc.value


def test_values_come_back_in_declared_order_with_defaults() -> None:
    assert REPLAY.bind(["p_1", 5], {}) == ("p_1", 5, 500)
    assert REPLAY.bind(["p_1"], {"limit": 7, "after_seq": 0}) == ("p_1", 0, 7)
    assert REPLAY.bind([], {"id": "p_1", "after_seq": SEQ_MAX}) == ("p_1", SEQ_MAX, 500)
    assert SUBSCRIBE.bind(["q"], None) == ("q", False, False)
    assert SUBSCRIBE.bind(None, {"query": "q", "persistent": True}) == ("q", True, False)
    assert SUBSCRIBE.bind(["q"], {"batch": True}) == ("q", False, True)
    assert CATALOG.bind([], {}) == ()
    assert INTERNAL_LIST.bind([], {"event": "demo.message"}) == (None, "demo.message")
    assert INTERNAL_CREATE.bind(["alice", [], "q"], {}) == ("alice", [], "q")


def test_usage_reads_like_the_documentation() -> None:
    assert REPLAY.usage == "gateway.replay(id, after_seq, limit=500)"
    assert SUBSCRIBE.usage == "gateway.subscribe(query, persistent=false, *, batch=false)"
    assert CATALOG.usage == "gateway.catalog()"


@pytest.mark.parametrize("signature,args,kwargs,argument,fragment", [
    (SUBSCRIBE, [], {}, "query", "query is missing (a string); call it as gateway.subscribe(query, persistent=false, *, batch=false)"),
    (SUBSCRIBE, [5], {}, "query", "query must be a string, not 5"),
    (SUBSCRIBE, [None], {}, "query", "not null"),
    (SUBSCRIBE, [["a"]], {}, "query", "not a list"),
    (SUBSCRIBE, ["q", 1], {}, "persistent", "persistent must be true or false, not 1"),
    (SUBSCRIBE, ["q", "true"], {}, "persistent", 'not "true"'),
    (SUBSCRIBE, ["q"], {"persistent": None}, "persistent", "not null"),
    (SUBSCRIBE, ["q", True, 3], {}, None, "takes 2 arguments by position, not 3: the third argument (3) is one too many"),
    (SUBSCRIBE, ["q"], {"batch": "yes"}, "batch", 'batch must be true or false, not "yes"'),
    (SUBSCRIBE, ["q"], {"foo": 1}, "foo", 'no argument named "foo" (its arguments: query, persistent, batch)'),
    (SUBSCRIBE, ["q"], {"query": "r"}, "query", "query was given twice, by position and by name"),
    (UNSUBSCRIBE, [""], {}, "id", "id must be a string of 1 to 128 characters, not an empty string"),
    (UNSUBSCRIBE, ["s" * 129], {}, "id", "not a string of 129 characters"),
    (UNSUBSCRIBE, [{"a": 1}], {}, "id", "not an object"),
    (REPLAY, ["p_1", -1], {}, "after_seq", f"after_seq must be a whole number from 0 to {SEQ_MAX}, not -1"),
    (REPLAY, ["p_1", SEQ_MAX + 1], {}, "after_seq", f"not {SEQ_MAX + 1}"),
    (REPLAY, ["p_1", 2**64 - 1], {}, "after_seq", f"not {2**64 - 1}"),
    (REPLAY, ["p_1", 10**40], {}, "after_seq", "not a number of more than 40 digits"),
    (REPLAY, ["p_1", True], {}, "after_seq", "not true"),
    (REPLAY, ["p_1", 3.0], {}, "after_seq", "not 3.0"),
    (REPLAY, ["p_1", "3"], {}, "after_seq", 'not "3"'),
    (REPLAY, ["p_1", 0, -5], {}, "limit", "limit must be a whole number"),
    (REPLAY, ["p_1", 0, 1, 2], {}, None, "takes 3 arguments, not 4"),
    (ACK, ["p_1"], {}, "seq", "seq is missing"),
    (ACK, ["p_1", False], {}, "seq", "not false"),
    (ACK, ["p_1", float("nan")], {}, "seq", "not NaN"),
    (ACK, [b"p_1", 1], {}, "id", "not 3 bytes of binary"),
    (CATALOG, [1, 2], {}, None, "takes no arguments, not 2: the first argument (1) and those after it are too many"),
    (CATALOG, [], {"x": 1}, "x", 'no argument named "x" (its arguments: none)'),
    (INTERNAL_CREATE, ["alice", ["staff", 3], "q"], {}, "roles", "not a list whose item 1 is 3"),
    (INTERNAL_CREATE, ["alice", ["r"] * 33, "q"], {}, "roles", "not a list of 33 items"),
    (INTERNAL_LIST, [], {"user": 5}, "user", "user must be a string of 1 to 255 characters or null, not 5"),
])
def test_each_wrong_call_names_the_argument_and_what_was_expected(
        signature: Signature, args: list[Any], kwargs: dict[str, Any], argument: str | None, fragment: str) -> None:
    exc = refused(signature, args, kwargs)
    assert exc.argument == argument
    assert fragment in str(exc), str(exc)
    assert str(exc).startswith(signature.procedure), "the procedure named first"
    if argument in {p.name for p in signature.params}:
        assert exc.expected == next(p.kind.expected for p in signature.params if p.name == argument)


def test_kinds_say_what_they_expect() -> None:
    assert Text().expected == "a string" and Text(min_length=1).expected == "a non-empty string"
    assert Text(10).expected == "a string of at most 10 characters"
    assert WholeNumber(1, 5).expected == "a whole number from 1 to 5"
    assert OrNull(Flag()).expected == "true or false or null"
    assert TextList(2, 3).fault(["abcd"]) == 'a list whose item 0 is "abcd"'
    assert OrNull(Text()).fault(None) is None and OrNull(Text()).fault(1) == "1"


def test_values_are_shown_as_json_or_described() -> None:
    assert show(None) == "null" and show(True) == "true" and show("x") == '"x"' and show(1.5) == "1.5"
    assert show([]) == "an empty list" and show({}) == "an empty object" and show((1,)) == "a list"
    assert show("x" * 41) == "a string of 41 characters"
    assert show(object()) == "a value of another kind"


def test_declarations_are_checked() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        Signature("p", Param("a", Text()), Param("a", Text()))
    with pytest.raises(ValueError, match="follows an optional one"):
        Signature("p", Param("a", Text(), ""), Param("b", Text()))
    assert Param("a", Text()).default is REQUIRED and str(Param("a", Flag(), True)) == "a=true"


ANY_VALUE = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=60)
                         | st.binary(max_size=5), lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)


@given(args=st.lists(ANY_VALUE, max_size=5), kwargs=st.dictionaries(st.text(max_size=12), ANY_VALUE, max_size=3))
def test_any_call_binds_or_raises_the_one_documented_error(args: list[Any], kwargs: dict[str, Any]) -> None:
    for signature in (SUBSCRIBE, UNSUBSCRIBE, REPLAY, ACK, CATALOG, INTERNAL_CREATE):
        try:
            values = signature.bind(args, kwargs)
        except InvalidArgument as exc:
            assert str(exc).startswith(signature.procedure)
            assert "Traceback" not in str(exc) and "NoneType" not in str(exc)
            continue
        assert len(values) == len(signature.params)
        for value, param in zip(values, signature.params):
            assert param.kind.fault(value) is None or value == param.default


def test_a_keyword_only_argument_is_given_by_name_and_a_positional_one_past_the_others_is_too_many() -> None:
    assert SUBSCRIBE.bind(["q"], {"batch": True}) == ("q", False, True)
    assert SUBSCRIBE.bind(["q", True], {}) == ("q", True, False)
    with pytest.raises(InvalidArgument) as exc:
        SUBSCRIBE.bind(["q", False, True], {})
    assert "takes 2 arguments by position, not 3" in str(exc.value)
    assert "call it as gateway.subscribe(query, persistent=false, *, batch=false)" in str(exc.value)
    with pytest.raises(ValueError):
        Signature("p", Param("a", Flag(), False, keyword_only=True), Param("b", Flag(), False))
