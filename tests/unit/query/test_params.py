"""Session parameters: ``$user`` and friends, filled in by ``parse(text, params=...)``.

The values go into the tree, never into text: the rest of the query
language (canonical, check, interpret, compile, index) sees literals.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.events import Registry
from components.query import (
    And,
    Compare,
    Contains,
    Exists,
    Expr,
    In,
    Literal,
    Not,
    Or,
    ParamValue,
    Query,
    QueryError,
    StartsWith,
    canonical,
    check,
    parse,
    to_text,
)
from components.query.text import literal_text
from components.query.compile import compile_query
from components.query.index import QueryIndex
from components.query.interpret import evaluate, evaluate_where
from tests.unit.query.test_canonical import SELECTORS
from tests.unit.query.test_canonical import data as canonical_data
from tests.unit.query.test_canonical import leaves as canonical_leaves
from tests.unit.query.test_canonical import names as canonical_names
from tests.unit.query.test_canonical import paths as canonical_paths

PARAMS: dict[str, ParamValue] = {"user": "alice", "role": "user", "roles": ("staff", "ops")}
NO_ROLES: dict[str, ParamValue] = {"user": "alice", "role": "user", "roles": ()}
REGISTRY = Registry.load(["examples.demo_events"], ["examples/demo_events.yaml"],
                         base_dir=Path(__file__).resolve().parents[3])


def where(text: str, params: Mapping[str, ParamValue] | None = PARAMS) -> Expr | None:
    return parse(f"x.y where {text}", params=params).where


def refused(text: str, params: Mapping[str, ParamValue] | None = PARAMS) -> QueryError:
    with pytest.raises(QueryError) as caught:
        parse(text, params=params)
    return caught.value


class Recording(Mapping[str, ParamValue]):
    """Parameters that remember which names were read (as the gateway's row filters do)."""

    def __init__(self, values: Mapping[str, ParamValue]) -> None:
        self._values = values
        self.read: list[str] = []

    def __getitem__(self, key: str) -> ParamValue:
        self.read.append(key)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


# --- where a parameter may stand --------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("demo.order where customer.id = $user", Query(("demo.order",), Compare("=", ("customer", "id"), "alice"))),
    ("chat.message where to = $user or to = null",
     Query(("chat.message",), Or((Compare("=", ("to",), "alice"), Compare("=", ("to",), None))))),
    ("demo.alert where team in $roles", Query(("demo.alert",), In(("team",), ("staff", "ops")))),
    ('x.y where to in [$user, "bob"]', Query(("x.y",), In(("to",), ("alice", "bob")))),
    ("x.y where to in [$user]", Query(("x.y",), In(("to",), ("alice",)))),
    ("x.y where tags contains $role", Query(("x.y",), Contains(("tags",), "user"))),
    ("x.y where name startswith $user", Query(("x.y",), StartsWith(("name",), "alice"))),
    ("x.y where name >= $user and name != $role",
     Query(("x.y",), And((Compare(">=", ("name",), "alice"), Compare("!=", ("name",), "user"))))),
    ("x.y where not (a = $user) and b = $user",
     Query(("x.y",), And((Not(Compare("=", ("a",), "alice")), Compare("=", ("b",), "alice"))))),
])
def test_a_parameter_stands_for_its_value(text: str, expected: Query) -> None:
    assert parse(text, params=PARAMS) == expected


@pytest.mark.parametrize("value", [0, -7, 2.5, 1e300, True, False, None, "", "é 🙂", 10**30])
def test_any_literal_value(value: Literal) -> None:
    assert where("a = $v", {"v": value}) == Compare("=", ("a",), value)
    assert where("a in [$v, 1]", {"v": value}) == In(("a",), (value, 1))
    assert where("a in $v", {"v": (value,)}) == In(("a",), (value,))


def test_none_is_null() -> None:
    query = parse("chat.message where to = $user", params={"user": None})
    assert query.where == Compare("=", ("to",), None)
    assert to_text(canonical(query)) == "chat.message where to = null"


def test_values_of_equal_python_value_and_another_type_are_kept_apart() -> None:
    # 1, 1.0 and True are equal (and hash alike) in Python; the parse cache must not mix them up.
    for value in (1, True, 1.0, -0.0, 0.0, 0, False):
        got = where("a = $v", {"v": value})
        assert isinstance(got, Compare) and type(got.value) is type(value) and repr(got.value) == repr(value)
    assert where("a in $v", {"v": (1,)}) == In(("a",), (1,))
    tree = where("a in $v", {"v": (True,)})
    assert isinstance(tree, In) and tree.values[0] is True


def test_the_canonical_text_holds_the_values_and_reads_back_without_parameters() -> None:
    query = parse('demo.alert where team in $roles and (owner = $user or owner = "root")', params=PARAMS)
    text = to_text(canonical(query))
    assert text == 'demo.alert where owner in ["alice", "root"] and team in ["ops", "staff"]'
    assert "$" not in text
    assert canonical(parse(text)) == canonical(query)


def test_a_dollar_in_a_string_or_a_quoted_field_name_is_no_parameter() -> None:
    recording = Recording(PARAMS)
    assert parse('x.y where `$user` = "$user"', params=recording).where == Compare("=", ("$user",), "$user")
    assert parse("x.y where a = '$role' or b = \"\\\"$user\"").where is not None  # no params needed at all
    assert recording.read == []


def test_only_the_names_used_are_read_on_every_parse() -> None:
    for _ in range(2):  # the second parse is answered from the cache, and still reads
        recording = Recording(PARAMS)
        parse("x.y where a = $user or b = $user or c in $roles", params=recording)
        assert sorted(set(recording.read)) == ["roles", "user"]
    recording = Recording(PARAMS)
    parse("x.y where a = 1", params=recording)
    assert recording.read == []


def test_the_values_differ_the_trees_differ() -> None:
    text = "x.y where a = $user"
    assert parse(text, params={"user": "a"}) != parse(text, params={"user": "b"})
    assert parse(text, params={"user": "a"}) == parse(text, params={"user": "a", "role": "r"})


# --- what a parameter cannot do -----------------------------------------------------------


def test_a_parameter_is_never_the_left_side() -> None:
    error = refused("demo.alert where $user = owner")
    assert error.message == ("$user is a parameter, which stands for a value: the left side of a comparison is a "
                             "field, as in `owner = $user`")
    assert error.position == 18
    assert refused("demo.alert where a = 1 and not $user exists").position == 32


@pytest.mark.parametrize(("text", "position"), [
    ("x.y where team = $roles", 18),
    ("x.y where team contains $roles", 25),
    ('x.y where team in ["a", $roles]', 25),
    ("x.y where team startswith $roles", 27),
    ("x.y where team > $roles", 18),
])
def test_a_list_is_only_the_list_of_an_in(text: str, position: int) -> None:
    error = refused(text)
    assert error.message == "parameter $roles is a list; use it with `in`, e.g. `team in $roles`"
    assert error.position == position


def test_the_list_message_names_the_field() -> None:
    assert "e.g. `customer.id in $roles`" in refused("x.y where customer.id = $roles").message


def test_one_value_is_not_the_list_of_an_in() -> None:
    error = refused("x.y where team in $user")
    assert error.message == "parameter $user is one value, not a list: write `team = $user` or `team in [$user]`"
    assert error.position == 19


def test_an_unknown_name_lists_the_known_ones() -> None:
    error = refused("x.y where a = 1 or b = $foo")
    assert error.message == "unknown parameter $foo (known: $role, $roles, $user)"
    assert error.position == 24
    assert "^" in str(error) and "(column 24)" in str(error)
    assert refused("x.y where a = $foo", {}).message == "unknown parameter $foo (known: none)"


def test_no_parameters_at_all() -> None:
    error = refused("x.y where a = 1 or b in $roles", None)
    assert error.message == "parameters such as $roles are not available here"
    assert error.position == 25
    with pytest.raises(QueryError, match="not available here"):
        parse("x.y where a = $user")  # params left out


def test_the_first_fault_in_the_text_is_the_one_reported() -> None:
    assert refused("x.y where a = = 1 or b = $foo").position == 15
    assert refused("x.y where b = $foo or a = = 1").message.startswith("unknown parameter $foo")


def test_a_syntax_error_after_parameters_is_that_error() -> None:
    # The "expected ..." of a syntax error replays the text up to the fault, parameters included.
    error = refused("x.y where a = $user or = 1")
    assert (error.message, error.position) == ("expected a field name, 'not' or '(', found '='", 24)
    error = refused("x.y where a in $roles and b = $user c", NO_ROLES)
    assert (error.message, error.position) == ("expected 'and', 'or' or the end of the query, found 'c'", 37)


@pytest.mark.parametrize(("value", "what"), [(5, "a number"), (2.5, "a number"), (None, "null"), (True, "true")])
def test_startswith_needs_a_string(value: ParamValue, what: str) -> None:
    error = refused("x.y where name startswith $p", {"p": value})
    assert error.message == f"'startswith' needs a string, but $p is {what}"
    assert error.position == 27


@pytest.mark.parametrize("value", [None, True, False])
def test_order_comparisons_need_a_number_or_a_string(value: Literal) -> None:
    error = refused("x.y where n < $p", {"p": value})
    assert error.message == f"'<' compares numbers or strings, but $p is {literal_text(value)}"
    assert error.position == 15


@pytest.mark.parametrize("text", ["x.y where a = $User", "x.y where a = $1", "x.y where a = $userX", "x.y where a = $",
                                  "x.y where a = $ user"])
def test_a_parameter_name_is_dollar_and_lower_case(text: str) -> None:
    error = refused(text)
    assert error.position == 15
    assert error.message.endswith("found '$' (a parameter is $ and a lower-case name: $user)")


def test_error_messages_without_parameters_do_not_offer_them() -> None:
    assert refused("x.y where a >").message == "expected a string, a number, true, false or null, found the end of " \
                                              "the query"
    assert refused('x.y where a in "b"').message == "expected '[', found '\"b\"'"
    assert refused("x.y where a startswith 5").message == "expected a string, found '5'"


@pytest.mark.parametrize(("value", "message"), [
    (float("nan"), "parameter $p is nan, not a number the query language has"),
    (float("inf"), "parameter $p is inf, not a number the query language has"),
    (("a", float("-inf")), "parameter $p is -inf, not a number the query language has"),
    ("a\ud800", "parameter $p holds U+D800, half of a surrogate pair, which is not text"),
    (10**5000, "parameter $p is a number with too many digits"),
], ids=["nan", "inf", "-inf in a list", "surrogate", "huge int"])
def test_values_the_language_cannot_write_are_refused(value: ParamValue, message: str) -> None:
    text = "x.y where a in $p" if isinstance(value, tuple) else "x.y where a = $p"
    error = refused(text, {"p": value})
    assert error.message == message
    assert error.position == (16 if isinstance(value, tuple) else 15)


class Name(str):
    pass


@pytest.mark.parametrize(("value", "what"), [
    (["staff"], "list"), ({"a": 1}, "dict"), (("a", ["b"]), "a tuple holding list"), (Name("x"), "Name"),
    (frozenset({"a"}), "frozenset"),
])
def test_a_value_of_another_type_is_the_callers_mistake(value: Any, what: str) -> None:
    with pytest.raises(TypeError, match=f"parameter \\$p must be a str, int, float, bool, None or a tuple of those, "
                                        f"not {what}$"):
        parse("x.y where a = $p", params={"p": value})


# --- no injection: a value is one literal, whatever it holds -----------------------------

TRICKY = ['x" or 1 = 1 or y = "', "x' or 1 = 1 or y = '", 'back\\slash\\', 'new\nline', '"', "\\\"", "$user",
          "`", "a\u2028b", "\x00", '"] or a in ["']


@pytest.mark.parametrize("value", TRICKY)
def test_a_string_value_is_one_string(value: str) -> None:
    query = parse("demo.order where customer.id = $user", params={"user": value})
    assert query.where == Compare("=", ("customer", "id"), value)
    text = to_text(canonical(query))
    assert text == f"demo.order where customer.id = {literal_text(value)}"
    assert parse(text) == query  # no parameter to fill in, and the same single comparison
    listed = parse("demo.alert where team in $roles", params={"roles": (value, "ops")})
    assert listed.where == In(("team",), (value, "ops"))
    assert canonical(parse(to_text(canonical(listed)))) == canonical(listed)


def test_an_injection_looking_value_matches_only_itself() -> None:
    value = 'x" or 1 = 1 or y = "'
    compiled = compile_query(canonical(parse("demo.order where customer.id = $user", params={"user": value})))
    assert compiled.matches({"customer": {"id": value}})
    assert not compiled.matches({"customer": {"id": "x"}})
    assert not compiled.matches({"customer": {"id": 1}, "y": ""})


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_a_string_parameter_is_the_quoted_literal(value: str) -> None:
    by_param = parse("demo.order where customer.id = $user", params={"user": value})
    by_text = parse(f"demo.order where customer.id = {literal_text(value)}")
    assert by_param == by_text
    assert to_text(canonical(by_param)) == to_text(canonical(by_text))


class EveryName(Mapping[str, ParamValue]):
    """Holds whatever name is asked for."""

    def __getitem__(self, key: str) -> ParamValue:
        return 1

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


STARTS = ["x.y where a = ", "x.y where a in [", "x.y where a in ", "x.y where ", "x.y where a startswith ",
          "x.y where a = $a", "x.y where a in $b_2", "x.y where a in [$a, "]
PIECES = ["$a", "$b_2", "$", "$A", '"', "'", "`", "\\", '"$a"', "'$b'", "`$a`", " ", ",", "]", " or b = ", " and ",
          "1", "c", " startswith ", " in ", "=", "(", ")"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(STARTS), st.lists(st.sampled_from(PIECES), max_size=8).map("".join))
def test_every_parameter_the_parser_reads_was_looked_up(start: str, rest: str) -> None:
    text = start + rest
    # parse() looks the names up before lark runs (to key its cache); a name the lexer
    # reads that the lookup missed would be reported unknown.
    try:
        parse(text, params=EveryName())
    except QueryError as exc:
        assert "unknown parameter" not in exc.message and "not available" not in exc.message


# --- an empty list: `team in $roles` for a user with no roles matches nothing --------------



def test_an_empty_list_is_an_empty_in() -> None:
    assert parse("demo.alert where team in $roles", params=NO_ROLES).where == In(("team",), ())


@pytest.mark.parametrize(("text", "expected"), [
    ("x.y where team in $roles", "x.y where team = null and team exists"),
    ("x.y where team in $roles or owner = $user", 'x.y where owner = "alice"'),
    ("x.y where team in $roles and owner = $user", "x.y where team = null and team exists"),
    ("x.y where not team in $roles", "x.y where not (team = null and team exists)"),
    ("x.y where team = 1 or team in $roles", "x.y where team = 1"),
    ("x.y where team in $roles or a in $roles", "x.y where a = null and a exists"),
    ("x.y where (team in $roles or a = 1) and b = 2", "x.y where a = 1 and b = 2"),
])
def test_the_canonical_form_of_an_empty_in(text: str, expected: str) -> None:
    query = parse(text, params=NO_ROLES)
    assert to_text(canonical(query)) == expected
    assert canonical(parse(expected)) == canonical(query)
    assert canonical(parse(to_text(query))) == canonical(query)  # to_text of the tree as parsed reads back too


def test_an_empty_in_passes_check() -> None:
    checked = check(parse("demo.order where country in $roles", params=NO_ROLES), REGISTRY)
    assert checked.text == "demo.order where country = null and country exists"
    assert check(parse(checked.text), REGISTRY).text == checked.text
    with pytest.raises(QueryError, match="unknown field 'team'"):  # the field is still checked
        check(parse("demo.order where team in $roles", params=NO_ROLES), REGISTRY)


def test_check_points_at_the_parameter() -> None:
    error = pytest.raises(QueryError, check, parse("demo.order where customer.id = $user", params=PARAMS),
                          REGISTRY).value
    assert error.message == "cannot compare field 'customer.id' (an integer in demo.order) with the string \"alice\""
    assert error.position == 32
    error = pytest.raises(QueryError, check, parse('demo.order where country in $roles', params={"roles": ("AR", 5)}),
                          REGISTRY).value
    assert error.message.startswith("cannot compare field 'country'") and error.position == 29
    assert check(parse("demo.order where customer.id = $user", params={"user": 7}), REGISTRY).text == \
        "demo.order where customer.id = 7"


# --- matching: interpreter, compiled matcher and index agree ------------------------------

EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("demo.alert", {"team": "staff", "owner": "alice"}),
    ("demo.alert", {"team": "ops", "owner": "bob"}),
    ("demo.alert", {"team": None, "owner": None}),
    ("demo.alert", {"owner": "alice"}),
    ("demo.alert", {"team": ["staff"]}),
    ("demo.alert", {}),
    ("demo.order", {"team": "staff", "owner": "alice"}),
]

QUERIES = [
    "demo.alert where team in $roles",
    "demo.alert where team in $roles or owner = $user",
    "demo.alert where team in $roles and owner = $user",
    "demo.alert where not (team in $roles)",
    "demo.alert where owner = $user",
    'demo.alert where owner in [$user, "bob"]',
    "demo.alert where owner startswith $user",
    "demo.alert where team contains $role",
]


@pytest.mark.parametrize("params", [PARAMS, NO_ROLES, {"user": None, "role": "staff", "roles": ("ops",)}])
def test_interpreter_compiled_and_index_agree(params: Mapping[str, ParamValue]) -> None:
    # `startswith $user` without a user is an error (test_startswith_needs_a_string)
    trees = [parse(text, params=params) for text in QUERIES if params["user"] is not None or "startswith" not in text]
    for query in trees:
        canonical_query = canonical(query)
        reread = parse(to_text(canonical_query))
        for name, data in EVENTS:
            expected = evaluate(query, name, data)
            assert evaluate(canonical_query, name, data) == expected
            assert evaluate(reread, name, data) == expected
            if name == "demo.alert":  # the compiled matcher tests the condition, not the selectors
                assert compile_query(query).matches(data) == expected
                assert compile_query(canonical_query).matches(data) == expected
    for form in (lambda q: q, canonical):
        index: QueryIndex[int] = QueryIndex()
        for key, query in enumerate(trees):
            index.add(key, compile_query(form(query)))
        for name, data in EVENTS:
            assert index.match(name, data) == {k for k, q in enumerate(trees) if evaluate(q, name, data)}


def test_what_the_examples_match() -> None:
    def matching(text: str, params: Mapping[str, ParamValue]) -> list[int]:
        index: QueryIndex[str] = QueryIndex()
        index.add("q", compile_query(canonical(parse(text, params=params))))
        return [i for i, (name, data) in enumerate(EVENTS) if index.match(name, data)]

    assert matching("demo.alert where team in $roles", PARAMS) == [0, 1]
    assert matching("demo.alert where team in $roles", NO_ROLES) == []
    assert matching("demo.alert where not team in $roles", NO_ROLES) == [0, 1, 2, 3, 4, 5]
    assert matching("demo.alert where team in $roles or owner = $user", NO_ROLES) == [0, 3]
    assert matching("demo.alert where owner = $user", {"user": None}) == [2]


# --- the canonical form with empty ins, on random trees ------------------------------------

leaves_with_empty_in = st.one_of(canonical_leaves, st.builds(In, canonical_paths, st.just(())))
exprs = st.recursive(leaves_with_empty_in, lambda inner: st.one_of(
    st.builds(Not, inner),
    st.builds(And, st.lists(inner, min_size=1, max_size=4).map(tuple)),
    st.builds(Or, st.lists(inner, min_size=1, max_size=4).map(tuple)),
), max_leaves=10)
queries = st.builds(Query, st.lists(st.sampled_from(SELECTORS), min_size=1, max_size=2).map(tuple), exprs)


@settings(max_examples=150, deadline=None)
@given(queries)
def test_canonical_with_empty_ins_is_idempotent_and_reads_back(query: Query) -> None:
    tree = canonical(query)
    assert canonical(tree) == tree
    text = to_text(tree)
    assert canonical(parse(text, max_length=10**6, max_depth=10**4)) == tree
    assert to_text(canonical(parse(text, max_length=10**6, max_depth=10**4))) == text
    assert canonical(parse(to_text(query), max_length=10**6, max_depth=10**4)) == tree


@settings(max_examples=150, deadline=None)
@given(queries, canonical_names, canonical_data)
def test_canonical_with_empty_ins_matches_the_same_events(query: Query, name: str, data: dict[str, Any]) -> None:
    assert evaluate(canonical(query), name, data) == evaluate(query, name, data)
    assert query.where is not None
    expected = evaluate_where(query.where, data)
    assert compile_query(query).matches(data) == expected
    assert compile_query(canonical(query)).matches(data) == expected
