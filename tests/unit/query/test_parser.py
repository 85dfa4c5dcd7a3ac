"""The parser: query text to ast.Query, as DESIGN.md section 7 writes queries."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.query import (
    And,
    Compare,
    Contains,
    Exists,
    In,
    Not,
    Or,
    Query,
    QueryError,
    StartsWith,
    parse,
)
from components.query.parser import source_of


def where(text: str) -> object:
    """The condition of ``x.y where <text>``."""
    return parse(f"x.y where {text}").where


# --- the examples of DESIGN.md section 7 are the contract --------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("orders.created", Query(("orders.created",))),
    ("orders.*", Query(("orders.*",))),
    ("orders.created, orders.cancelled where customer.id = 42",
     Query(("orders.created", "orders.cancelled"), Compare("=", ("customer", "id"), 42))),
    ('orders.created where amount > 100 and country in ["AR", "UY"]',
     Query(("orders.created",), And((Compare(">", ("amount",), 100), In(("country",), ("AR", "UY")))))),
    ('chat.message where room = "lobby"', Query(("chat.message",), Compare("=", ("room",), "lobby"))),
    ('sensors.reading where not (status = "ok") or value >= 99.5',
     Query(("sensors.reading",), Or((Not(Compare("=", ("status",), "ok")), Compare(">=", ("value",), 99.5))))),
    ('orders.created where tags contains "urgent" and coupon exists',
     Query(("orders.created",), And((Contains(("tags",), "urgent"), Exists(("coupon",)))))),
    ('users.* where name startswith "Al"', Query(("users.*",), StartsWith(("name",), "Al"))),
])
def test_design_examples(text: str, expected: Query) -> None:
    assert parse(text) == expected


# --- selectors ---------------------------------------------------------------------


@pytest.mark.parametrize("selector", ["demo.order", "orders.*", "**", "demo.**", "*.order", "a.**.b", "*", "x1_y.z_2"])
def test_selectors(selector: str) -> None:
    assert parse(selector).selectors == (selector,)


def test_selectors_stay_as_written_in_order_with_duplicates() -> None:
    # canonical() sorts and deduplicates; the parser reports what was written, for positions.
    assert parse("b.b ,a.a,b.b").selectors == ("b.b", "a.a", "b.b")


def test_selector_names_are_lower_case_and_keywords_are_names_there() -> None:
    assert parse("where.and where or = 1").selectors == ("where.and",)
    with pytest.raises(QueryError, match="not a class name segment"):
        parse("Demo.order")


# --- conditions: precedence and grouping ----------------------------------------------


def test_and_binds_tighter_than_or() -> None:
    a, b, c = (Compare("=", (n,), 1) for n in "abc")
    assert where("a = 1 or b = 1 and c = 1") == Or((a, And((b, c))))
    assert where("a = 1 and b = 1 or c = 1") == Or((And((a, b)), c))
    assert where("(a = 1 or b = 1) and c = 1") == And((Or((a, b)), c))


def test_not_binds_tighter_than_and_and_wraps() -> None:
    a, b = Compare("=", ("a",), 1), Compare("=", ("b",), 1)
    assert where("not a = 1 and b = 1") == And((Not(a), b))
    assert where("not (a = 1 and b = 1)") == Not(And((a, b)))
    assert where("not not a = 1") == Not(Not(a))


def test_chains_of_and_or_are_flat_as_written() -> None:
    a, b, c = (Compare("=", (n,), 1) for n in "abc")
    assert where("a = 1 and b = 1 and c = 1") == And((a, b, c))
    assert where("a = 1 or b = 1 or c = 1") == Or((a, b, c))
    # Parentheses are kept as structure; canonical() flattens them.
    assert where("a = 1 and (b = 1 and c = 1)") == And((a, And((b, c))))
    assert where("((a = 1))") == a


@pytest.mark.parametrize("text", [
    'x.y WHERE a IN [1] AND b CONTAINS "x" OR NOT c EXISTS AND d STARTSWITH "y" AND e = TRUE AND f = NULL',
    'x.y Where a In [1] And b Contains "x" Or Not c Exists And d StartsWith "y" And e = True And f = Null',
    'x.y where a in [1] and b contains "x" or not c exists and d startswith "y" and e = true and f = null',
])
def test_keywords_in_any_case(text: str) -> None:
    assert parse(text).where == Or((
        And((In(("a",), (1,)), Contains(("b",), "x"))),
        And((Not(Exists(("c",))), StartsWith(("d",), "y"), Compare("=", ("e",), True), Compare("=", ("f",), None))),
    ))


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
def test_comparison_operators(op: str) -> None:
    assert where(f"a {op} 1") == Compare(op, ("a",), 1)  # type: ignore[arg-type]
    assert where(f"a{op}1") == Compare(op, ("a",), 1)  # type: ignore[arg-type]


def test_double_equals_is_equals() -> None:
    assert where("a == 1") == Compare("=", ("a",), 1)


def test_in_list_keeps_values_as_written() -> None:
    assert where('a in [3, "x", null, true, 1.5, 3]') == In(("a",), (3, "x", None, True, 1.5, 3))


# --- paths -----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "path"), [
    ("a", ("a",)),
    ("customer.id", ("customer", "id")),
    ("Upper_Case.x_1", ("Upper_Case", "x_1")),
    ("_private", ("_private",)),
    ("a . b", ("a", "b")),
    ("`odd name`.`x.y`", ("odd name", "x.y")),
    ("`not`", ("not",)),
    ("`back``tick`", ("back`tick",)),
    ("`fünf`", ("fünf",)),
    ("x.and.where.not", ("x", "and", "where", "not")),  # after a dot only a name can come
    ("nothing", ("nothing",)),  # starts with a keyword, is not one
    ("index", ("index",)),
    ("where", ("where",)),  # after "where" only a field, "not" or "(" can come
    ("true", ("true",)),
])
def test_paths(text: str, path: tuple[str, ...]) -> None:
    assert where(f"{text} exists") == Exists(path)


# --- literals --------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [
    ("0", 0),
    ("42", 42),
    ("-7", -7),
    ("007", 7),
    ("1180591620717411303424", 2**70),
    ("-" + "9" * 100, -int("9" * 100)),
    ("1.5", 1.5),
    ("-0.25", -0.25),
    ("1e3", 1000.0),
    ("2.5E-3", 0.0025),
    ("1e+2", 100.0),
    ("1.0", 1.0),
    ("true", True),
    ("FALSE", False),
    ("Null", None),
])
def test_numbers_and_constants(text: str, value: object) -> None:
    found = where(f"a = {text}")
    assert isinstance(found, Compare)
    assert found.value == value and type(found.value) is type(value)


@pytest.mark.parametrize(("text", "value"), [
    ('""', ""),
    ("''", ""),
    ('"plain"', "plain"),
    ("'single'", "single"),
    ('"it\'s"', "it's"),
    ("'say \"hi\"'", 'say "hi"'),
    (r'"a\"b"', 'a"b'),
    (r"'a\'b'", "a'b"),
    (r'"back\\slash"', "back\\slash"),
    (r'"\n\t\r\b\f\/"', "\n\t\r\b\f/"),
    (r'"\u00e9\u00C9"', "éÉ"),
    (r'"\ud83d\ude00"', "😀"),
    ('"😀 ✓ ü 中文"', "😀 ✓ ü 中文"),
    ('"raw\nnewline"', "raw\nnewline"),
    ('"(((not and or)))"', "(((not and or)))"),
])
def test_strings(text: str, value: str) -> None:
    assert where(f"a = {text}") == Compare("=", ("a",), value)


# --- positions for the checker -------------------------------------------------------


def test_positions_of_selectors_fields_and_values() -> None:
    query = parse('a.b,  c.d where x = 1 and y.z in [2, "three"]')
    source = source_of(query)
    assert source is not None
    assert source.selectors == (1, 7)
    assert isinstance(query.where, And)
    first, second = query.where.operands
    assert (leaf := source.leaf(first)) is not None and (leaf.path, leaf.values) == (17, (21,))
    assert (leaf := source.leaf(second)) is not None and (leaf.path, leaf.values) == (27, (35, 38))


def test_positions_belong_to_their_tree_only() -> None:
    query = parse("a.b where x = 1")
    other = parse("a.b where x =  1")
    source = source_of(query)
    assert source is not None and other.where is not None
    assert source.leaf(other.where) is None  # equal node, different tree
    assert source_of(Query(("a.b",))) is None


def test_positions_are_not_part_of_equality() -> None:
    assert parse("a.b where x = 1") == Query(("a.b",), Compare("=", ("x",), 1))
    assert hash(parse("a.b where x = 1")) == hash(Query(("a.b",), Compare("=", ("x",), 1)))


def test_threads_parse_side_by_side() -> None:
    results: dict[int, int | None] = {}

    def run(n: int) -> None:
        for _ in range(50):
            query = parse(f"a.b where {'x' * n} = {n}")
            source = source_of(query)
            assert source is not None and query.where is not None
            leaf = source.leaf(query.where)
            results[n] = leaf.values[0] if leaf is not None else None

    threads = [threading.Thread(target=run, args=(n,)) for n in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: 11 + n + 3 for n in range(1, 9)}


# --- limits ----------------------------------------------------------------------------


def test_deep_nesting_is_refused_quickly_without_recursion() -> None:
    for text in ["x.y where " + "(" * 10_000, "x.y where " + "(" * 10_000 + "a = 1" + ")" * 10_000,
                 "x.y where " + "not " * 10_000 + "a = 1", "x.y where " + "a = 1 or (" * 5000 + "a = 1" + ")" * 5000]:
        started = time.perf_counter()
        with pytest.raises(QueryError, match="nested too deeply"):
            parse(text, max_length=10**6)
        assert time.perf_counter() - started < 1.0


def test_length_is_checked_before_parsing() -> None:
    with pytest.raises(QueryError, match="the query is 10010 characters long; the limit is 2000") as caught:
        parse("x.y where " + "(" * 10_000)
    assert caught.value.position is None


def test_limits_are_parameters() -> None:
    text = "x.y where ((a = 1))"
    assert parse(text, max_depth=2).where == Compare("=", ("a",), 1)
    with pytest.raises(QueryError, match="more than 1 levels"):
        parse(text, max_depth=1)
    assert parse(text, max_length=len(text)).selectors == ("x.y",)
    with pytest.raises(QueryError, match="limit is 18"):
        parse(text, max_length=len(text) - 1)


def test_a_typical_query_parses_in_well_under_a_millisecond() -> None:
    # Distinct texts, so that no cache helps; a loose bound that only catches a disaster.
    texts = [f'demo.order where amount > {n} and country in ["AR", "UY"]' for n in range(300)]
    started = time.perf_counter()
    for text in texts:
        parse(text)
    assert (time.perf_counter() - started) / len(texts) < 0.002


# --- any input parses or raises QueryError -------------------------------------------

PIECES = ["demo.order", "demo.*", "**", "a.b", ",", "where", "WHERE", "and", "Or", "not", "(", ")", "[", "]",
          "=", "==", "!=", "<", "<=", ">", ">=", "in", "contains", "startswith", "exists", "true", "false", "null",
          '"x"', "'y'", r'"\u00e9"', r'"\ud83d"', r'"\q"', r'"\u12"', "1", "-2.5e3", "1e999", "1" * 5000, "amount",
          "customer.id", "`odd name`", ".", "``", '"', "'", "`", "\\", "&&", "é", "\x00", "\ud800", "-", "*"]


@settings(max_examples=300)
@given(st.text())
def test_any_text_parses_or_raises_query_error(text: str) -> None:
    try:
        assert isinstance(parse(text), Query)
    except QueryError as exc:
        assert exc.query == text and exc.message
        assert exc.position is None or 1 <= exc.position <= len(text) + 1
        str(exc)


@settings(max_examples=500)
@given(st.lists(st.tuples(st.sampled_from(PIECES), st.sampled_from(["", " ", "  ", "\t", "\n"])), max_size=30))
def test_any_token_soup_parses_or_raises_query_error(pieces: list[tuple[str, str]]) -> None:
    text = "".join(piece + space for piece, space in pieces)
    try:
        assert isinstance(parse(text, max_length=100_000), Query)
    except QueryError as exc:
        assert exc.query == text and exc.message
        assert exc.position is None or 1 <= exc.position <= len(text) + 1
        str(exc)
