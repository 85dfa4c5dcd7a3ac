"""QueryError: messages a person can act on, with the column and a caret under it."""

from __future__ import annotations

import copy
import pickle
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.exceptions import GatewayError
from components.query import QueryError, QueryNotAuthorized, parse
from components.query.errors import caret_lines
from components.query.parser import TOKEN_NAMES


def error_of(text: str, **limits: int) -> QueryError:
    with pytest.raises(QueryError) as caught:
        parse(text, **limits)
    return caught.value


def test_str_has_the_message_the_column_the_query_and_a_caret() -> None:
    error = error_of("demo.order where amount > 100 and")
    assert error.message == "expected a field name, 'not' or '(', found the end of the query"
    assert error.position == 34
    assert str(error) == (
        "expected a field name, 'not' or '(', found the end of the query (column 34)\n"
        "  demo.order where amount > 100 and\n"
        "                                   ^"
    )


def test_the_caret_is_under_the_fault() -> None:
    error = error_of('demo.order where country = AR')
    _, line, caret = str(error).split("\n")
    assert line[caret.index("^")] == "A"
    assert error.message == "expected a string, a number, true, false or null, found 'AR' (text needs quotes: \"AR\")"


def test_whole_query_errors_have_no_position_and_no_caret() -> None:
    error = error_of("x.y where a = 1", max_length=5)
    assert error.position is None
    assert str(error) == error.message == "the query is 15 characters long; the limit is 5"


def test_messages_use_human_names_never_lark_terminals() -> None:
    terminals = re.compile(r"\b(" + "|".join(re.escape(n) for n in TOKEN_NAMES) + r"|__ANON\w*|RULE)\b")
    for text in ["", "x.y where", "x.y where a", "x.y where a =", "x.y where a in", "x.y where a in [1",
                 "x.y where (a = 1", "x.y where a = 1)", "x.y where a.", "x.y,", "x.y where a = 1 b", "x.y ]",
                 "x.y where a startswith", "x.y where a in [1 2]", "x.y where a exists =", "x.y where not"]:
        message = error_of(text).message
        assert message.startswith("expected ")
        assert not terminals.search(message), message


@pytest.mark.parametrize(("text", "expected"), [
    ("x.y where", "expected a field name, 'not' or '(', found the end of the query"),
    ("x.y where a", "expected a comparison (=, !=, <, <=, >, >=), 'in', 'contains', 'startswith', 'exists' or '.', "
                    "found the end of the query"),
    ("x.y where a in", "expected '[', found the end of the query"),
    ("x.y where a in [1", "expected ',' or ']', found the end of the query"),
    ("x.y where a = 1 b", "expected 'and', 'or' or the end of the query, found 'b'"),
    ("x.y where (a = 1 b", "expected 'and', 'or' or ')', found 'b'"),
    ("x.y where a.", "expected a field name, found the end of the query"),
    ("x.y q", "expected 'where', ',' or the end of the query, found 'q'"),
    ("x.y where a startswith 1", "expected a string, found '1'"),
    ("x.y where a = 1 ! b", "expected 'and', 'or' or the end of the query, found '!'"),
])
def test_expected_lists_exactly_what_may_come(text: str, expected: str) -> None:
    assert error_of(text).message == expected


def test_non_printable_characters_are_named() -> None:
    error = error_of("x.y where a = 1 \x00")
    assert error.message.endswith("found U+0000")
    assert "\x00" not in str(error)


def test_long_queries_show_a_window_around_the_fault() -> None:
    text = "x.y where " + " and ".join(f"f{i} = {i}" for i in range(60)) + " and ?"
    error = error_of(text)
    _, line, caret = str(error).split("\n")
    assert len(line) < 100 and line.startswith("  ...")
    assert line[caret.index("^")] == "?"


def test_the_caret_line_of_a_multi_line_query() -> None:
    line, caret = caret_lines("x.y\nwhere a = ?\nand b = 1", 15)
    assert line == "where a = ?" and caret == "          ^"


def test_tabs_keep_the_caret_aligned() -> None:
    line, caret = caret_lines("x.y\twhere\ta = ?", 15)
    assert line == "x.y where a = ?" and caret.index("^") == 14


@pytest.mark.parametrize(("text", "message"), [
    (123, "a query must be text, not int"),
    (None, "a query must be text, not NoneType"),
    (b"x.y", "a query must be text, not bytes"),
])
def test_a_query_that_is_not_text(text: object, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse(text)  # type: ignore[arg-type]


def test_half_a_surrogate_pair_is_not_text() -> None:
    error = error_of('x.y where a = "\ud800"')
    assert error.position == 16 and "U+D800" in error.message


def test_a_number_with_too_many_digits() -> None:
    error = error_of("x.y where a = " + "1" * 5000, max_length=10_000)
    assert error.position == 15 and "too many digits" in error.message


def test_the_error_classes() -> None:
    assert issubclass(QueryError, GatewayError)
    assert issubclass(QueryNotAuthorized, QueryError)
    error = QueryNotAuthorized("not authorized to see event class 'a.b'", "a.b", 1)
    assert (error.message, error.query, error.position) == ("not authorized to see event class 'a.b'", "a.b", 1)


def test_errors_pickle_and_copy() -> None:
    error = error_of("x.y where a = ")
    for again in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
        assert type(again) is QueryError
        assert (again.message, again.query, again.position) == (error.message, error.query, error.position)
        assert str(again) == str(error)


@settings(max_examples=200)
@given(st.text(max_size=60), st.integers(min_value=1, max_value=80))
def test_the_caret_display_never_fails(query: str, position: int) -> None:
    error = QueryError("bad", query, position)
    _, line, caret = str(error).split("\n")
    assert caret.strip() == "^" and "\n" not in line
