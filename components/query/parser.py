"""Query text -> syntax tree (``ast.Query``), or QueryError saying what was expected and where.

The grammar is ``grammar.lark``. lark's LALR parser runs with this module's
callbacks inline, so no parse tree is built and nothing recurses: a query
nested ten thousand levels deep is refused with a message, never a
RecursionError. Where each field and value stood is kept beside the tree
(``source_of``) for the checker's messages; the tree itself is plain ``ast``.

Parameters (``$user``) are filled in here, from ``parse``'s ``params``: the
tree holds their values as if written as literals, so nothing after the
parser knows about them, and a value is never pasted into text (a string
parameter holding quotes is one string, whatever it holds). Beside this
module: ``params`` (the values bound before parsing) and ``literals`` (what
each value token is worth, or why it is refused).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from types import MappingProxyType
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from components.query.ast import (
    And,
    Compare,
    CompareOp,
    Contains,
    Exists,
    Expr,
    In,
    Literal,
    Not,
    Or,
    Path,
    Query,
    StartsWith,
)
from components.query.errors import QueryError
from components.query.literals import column as _column
from components.query.literals import error, kind, literal, param, refuse_surrogates, string
from components.query.params import Bound, ParamValue, bind
from components.query.text import literal_text, path_text, quoted

#: Defaults of ``parse``: far above any query a person writes, low enough that
#: a hostile one costs little. The WAMP side passes its configured values.
MAX_LENGTH = 2000
MAX_DEPTH = 32

#: What an error calls each terminal, in the order an "expected ..." lists them.
TOKEN_NAMES: dict[str, str] = {
    "SELECTOR": "a class name",
    "NAME": "a field name",
    "QUOTED_NAME": "a field name",
    "STRING": "a string",
    "NUMBER": "a number",
    "TRUE": "true",
    "FALSE": "false",
    "NULL": "null",
    "PARAM": "a parameter",
    "COMPARE": "a comparison (=, !=, <, <=, >, >=)",
    "IN": "'in'",
    "CONTAINS": "'contains'",
    "STARTSWITH": "'startswith'",
    "EXISTS": "'exists'",
    "NOT": "'not'",
    "LPAR": "'('",
    "_LSQB": "'['",
    "_AND": "'and'",
    "_OR": "'or'",
    "WHERE": "'where'",
    "_COMMA": "','",
    "_DOT": "'.'",
    "_RSQB": "']'",
    "_RPAR": "')'",
    "$END": "the end of the query",
}

_SEGMENT = re.compile(r"[a-z][a-z0-9_]*|\*\*?")
# Strings and quoted names are skipped when counting parentheses; an
# unterminated one runs to the end, as the lexer would refuse it anyway.
_PAREN_SCAN = re.compile(r'"(?:[^"\\]|\\.)*"?|\'(?:[^\'\\]|\\.)*\'?|`[^`]*`?|[()]', re.DOTALL)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Leaf:
    """Where one comparison's field and values stood in the text (1-based columns)."""

    node: Expr
    path: int
    values: tuple[int, ...]


@dataclass(frozen=True)
class Source:
    """The text a Query was parsed from and where its selectors and comparisons stood."""

    text: str
    selectors: tuple[int, ...]
    leaves: Mapping[int, Leaf] = field(repr=False)

    def leaf(self, node: Expr) -> Leaf | None:
        """The positions of ``node`` if it is a comparison of this very tree."""
        found = self.leaves.get(id(node))
        # The identity check makes a stale id (a copied or unpickled tree) harmless.
        return found if found is not None and found.node is node else None


def source_of(query: Query) -> Source | None:
    """The Source of a Query that ``parse`` returned; None for one built or rewritten in code."""
    found = query.__dict__.get("_source")
    return found if isinstance(found, Source) else None


def parse(text: str, *, max_length: int = MAX_LENGTH, max_depth: int = MAX_DEPTH,
          params: Mapping[str, ParamValue] | None = None) -> Query:
    """Parse a subscription query; raise QueryError (with the column) if it is not one.

    ``max_length`` (characters) is checked before anything else;
    ``max_depth`` bounds the nesting of parentheses, ``not``, ``and`` and ``or``.
    Selectors and operands come back as written: ``canonical`` normalises.

    ``params`` gives the values of the parameters the text may use: ``$name``
    stands for ``params[name]`` wherever a literal may stand, and a tuple
    value for the whole list of an ``in`` (``team in $roles``; an empty tuple
    matches nothing). Only the names the text uses are looked up (``name in
    params``, then ``params[name]``). An unknown name, a tuple used as one
    value, a parameter with no params at all (None) are QueryErrors at the
    parameter's column; a value of another type than str, int, float, bool,
    None or a tuple of those is a TypeError (the caller's mistake, not the
    query's).
    """
    if not isinstance(text, str):
        raise QueryError(f"a query must be text, not {type(text).__name__}", repr(text))
    return _parse(text, max_length, max_depth, bind(text, params))


# Clients that subscribe to the same channel send the same text, often all at
# once (a reconnect after a restart): those parse once. The result is
# immutable, so sharing it is safe. 1024 texts cover the distinct queries a
# node serves at a time; a flood of distinct ones only evicts, never grows.
# A text with parameters is cached with their values (the parse differs with them).
@functools.lru_cache(maxsize=1024)
def _parse(text: str, max_length: int, max_depth: int, bound: Bound | None) -> Query:
    if len(text) > max_length:
        raise QueryError(f"the query is {len(text)} characters long; the limit is {max_length}", text)
    if not text.isascii():
        refuse_surrogates(text)
    if text.count("(") > max_depth:
        _check_parentheses(text, max_depth)
    state = _Parse(text, max_depth, bound)
    _local.state = state
    try:
        query = _PARSER.parse(text)  # with inline callbacks: what _Build.start returned
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc, bound) from None
    finally:
        _local.state = None
    assert isinstance(query, Query)
    # Frozen dataclasses refuse attribute writes; this one is not a field, so
    # equality, hashing and repr of the tree ignore it.
    object.__setattr__(query, "_source", Source(text, state.selector_columns, MappingProxyType(state.leaves)))
    return query


class _Parse:
    """What one call of ``parse`` collects while lark runs the callbacks."""

    __slots__ = ("text", "max_depth", "bound", "leaves", "selector_columns")

    def __init__(self, text: str, max_depth: int, bound: Bound | None) -> None:
        self.text = text
        self.max_depth = max_depth
        self.bound = bound
        self.leaves: dict[int, Leaf] = {}
        self.selector_columns: tuple[int, ...] = ()


# lark binds the callbacks once, when the parser is built; the state of the
# parse in progress is per thread so that two threads may parse at once.
_local = threading.local()

# What the callbacks hand each other: an expression, its nesting depth and its column.
_Node = tuple[Expr, int, int]


class _Build(Transformer[Token, Any]):
    """lark's callbacks, one per rule of the grammar: tokens in, ``ast`` nodes out."""

    def start(self, children: list[Any]) -> Query:
        state: _Parse = _local.state
        selectors: list[str] = []
        columns: list[int] = []
        where: Expr | None = None
        for child in children:
            if isinstance(child, Token):
                if child.type == "SELECTOR":
                    selectors.append(_selector(child, state.text))
                    columns.append(_column(child))
            else:
                where = child[0]
        state.selector_columns = tuple(columns)
        return Query(tuple(selectors), where)

    def path(self, children: list[Token]) -> tuple[Path, int]:
        segments = tuple(str(t) if t.type == "NAME" else str(t)[1:-1].replace("``", "`") for t in children)
        return segments, _column(children[0])

    def compare(self, children: list[Any]) -> _Node:
        (path, column), op, token = children
        state: _Parse = _local.state
        value = literal(token, path, state.text, state.bound)
        operator: CompareOp = "=" if op.value == "==" else op.value  # the grammar allows no other
        if operator in ("<", "<=", ">", ">=") and (value is None or isinstance(value, bool)):
            if token.type == "PARAM":
                raise _error(f"'{operator}' compares numbers or strings, but {token} is {literal_text(value)}", token)
            raise _error(f"'{operator}' compares numbers or strings, not {token.value.lower()}", token)
        return self._leaf(Compare(operator, path, value), column, _column(token))

    def in_list(self, children: list[Any]) -> _Node:
        (path, column), _, *tokens = children
        state: _Parse = _local.state
        values = tuple(literal(t, path, state.text, state.bound) for t in tokens)
        return self._leaf(In(path, values), column, *map(_column, tokens))

    def in_param(self, children: list[Any]) -> _Node:
        (path, column), _, token = children
        state: _Parse = _local.state
        values = param(token, state.text, state.bound)
        if not isinstance(values, tuple):
            raise _error(f"parameter {token} is one value, not a list: write `{path_text(path)} = {token}` or "
                         f"`{path_text(path)} in [{token}]`", token)
        return self._leaf(In(path, values), column, *(_column(token),) * len(values))

    def contains(self, children: list[Any]) -> _Node:
        (path, column), _, token = children
        state: _Parse = _local.state
        return self._leaf(Contains(path, literal(token, path, state.text, state.bound)), column, _column(token))

    def startswith(self, children: list[Any]) -> _Node:
        (path, column), _, token = children
        state: _Parse = _local.state
        if token.type == "PARAM":
            value = literal(token, path, state.text, state.bound)
            if not isinstance(value, str):
                raise _error(f"'startswith' needs a string, but {token} is {kind(value)}", token)
        else:
            value = string(token, state.text)
        return self._leaf(StartsWith(path, value), column, _column(token))

    def exists(self, children: list[Any]) -> _Node:
        (path, column), _ = children
        return self._leaf(Exists(path), column)

    def negation(self, children: list[Any]) -> _Node:
        keyword, (operand, depth, _) = children
        return _nested(Not(operand), depth + 1, _column(keyword))

    def group(self, children: list[Any]) -> _Node:
        paren, (operand, depth, _) = children
        return _nested(operand, depth + 1, _column(paren))

    def and_expr(self, children: list[_Node]) -> _Node:
        return _nested(And(tuple(c[0] for c in children)), 1 + max(c[1] for c in children), children[0][2])

    def or_expr(self, children: list[_Node]) -> _Node:
        return _nested(Or(tuple(c[0] for c in children)), 1 + max(c[1] for c in children), children[0][2])

    @staticmethod
    def _leaf(node: Expr, column: int, *values: int) -> _Node:
        state: _Parse = _local.state
        state.leaves[id(node)] = Leaf(node, column, values)
        return node, 0, column


def _nested(node: Expr, depth: int, column: int) -> _Node:
    state: _Parse = _local.state
    if depth > state.max_depth:
        raise QueryError(_too_deep(state.max_depth), state.text, column)
    return node, depth, column


def _too_deep(max_depth: int) -> str:
    return f"the query is nested too deeply (more than {max_depth} levels of parentheses, not, and, or)"


def _selector(token: Token, text: str) -> str:
    column = _column(token)
    for segment in token.value.split("."):
        if not _SEGMENT.fullmatch(segment):
            if not segment:
                raise QueryError(f"the class name {token.value!r} has an empty segment", text, column)
            raise QueryError(
                f"{segment!r} in {token.value!r} is not a class name segment: expected lower-case letters, "
                "digits and _ (starting with a letter), '*' (one segment) or '**' (any number)", text, column)
        column += len(segment) + 1
    return str(token)


def _error(message: str, token: Token) -> QueryError:
    state: _Parse = _local.state
    return error(message, token, state.text)


def _check_parentheses(text: str, max_depth: int) -> None:
    """Refuse deep parentheses before lark reads them: cheap, and says why, even if they never close."""
    depth = 0
    for match in _PAREN_SCAN.finditer(text):
        char = match[0]
        if char == "(":
            depth += 1
            if depth > max_depth:
                raise QueryError(_too_deep(max_depth), text, match.start() + 1)
        elif char == ")":
            depth = max(0, depth - 1)


def _syntax_error(text: str, exc: UnexpectedInput, bound: Bound | None) -> QueryError:
    expected = _expected(text, exc, bound)
    if isinstance(exc, UnexpectedToken):
        token: Token = exc.token
        if token.type == "PARAM" and "NAME" in expected:
            return QueryError(f"{token} is a parameter, which stands for a value: the left side of a comparison "
                              f"is a field, as in `owner = {token}`", text, _column(token))
        if token.type == "$END":
            found, position = "the end of the query", len(text) + 1
        else:
            found, position = quoted(token.value), _column(token)
        message = f"expected {_alternatives(expected)}, found {found}"
        if "STRING" in expected and token.type != "$END" and _WORD.fullmatch(token.value):
            message += f' (text needs quotes: "{token.value}")'
        elif "STRING" in expected and token.value == "]":
            message += " (a list needs at least one value)"
        return QueryError(message, text, position)
    assert isinstance(exc, UnexpectedCharacters)
    offset = exc.pos_in_stream or 0
    position = offset + 1
    char = text[offset]
    if char in "\"'":
        return QueryError(f"this string has no closing {char}", text, position)
    if char == "`":
        return QueryError("this quoted field name has no closing `", text, position)
    message = f"expected {_alternatives(expected)}, found {quoted(char)}"
    if char in "&|":
        message += " (write 'and' and 'or', not && and ||)"
    elif char == "$":
        message += " (a parameter is $ and a lower-case name: $user)"
    return QueryError(message, text, position)


def _expected(text: str, exc: UnexpectedInput, bound: Bound | None) -> set[str]:
    """The terminals that could have come where the error is: what "expected ..." lists.

    lark's own sets are off both ways: an LALR state merges lookaheads (a ')'
    with no '(' open), and by the time the parser refuses a token it may
    have reduced past the point where 'and' or 'or' were still possible. So
    replay the tokens before the fault and ask the parser there what it
    accepts (accepts() tries each terminal on a copy, without callbacks).
    Only errors pay for this. The replay fills in the parameters as the parse did.
    """
    if isinstance(exc, UnexpectedToken):
        stop = len(text) if exc.token.type == "$END" else (exc.token.start_pos or 0)
        parser = _PARSER.parse_interactive(text)
        _local.state = _Parse(text, len(text) + 1, bound)  # the callbacks run while replaying
        try:
            for token in parser.lexer_thread.lex(parser.parser_state):
                if (token.start_pos or 0) >= stop:
                    break
                parser.feed_token(token)
        except UnexpectedInput:  # the fault itself, when the lexer (not the parser) found it
            pass
        finally:
            _local.state = None
    else:
        parser = exc.interactive_parser
    accepted: set[str] = parser.accepts() if parser is not None else set()
    return accepted or set(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ())


def _alternatives(names: set[str]) -> str:
    # Where a parameter may stand, so may a literal or a list: those are what a message offers.
    names = names - {"PARAM"}
    order = list(TOKEN_NAMES)
    words = list(dict.fromkeys(TOKEN_NAMES.get(n, n) for n in sorted(names, key=lambda n: (
        order.index(n) if n in TOKEN_NAMES else len(order), n))))
    if not words:
        return "nothing more"
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


_PARSER = Lark(
    FilePath(__file__).with_name("grammar.lark").read_text(encoding="utf-8"),
    parser="lalr",
    lexer="contextual",
    transformer=_Build(),
    maybe_placeholders=False,
)
