"""Parameter binding: which ``$names`` a text uses, and their values looked up once, before parsing.

``parse(text, params={"user": "alice", "roles": ("staff",)})``: the parser
substitutes the values where ``$user`` and ``$roles`` stand (``literals``),
so the tree holds them as if written as literals. Here is what happens
before: the names the text uses are found, each looked up in ``params`` once,
its Python type checked (a wrong type is the caller's mistake: TypeError,
not QueryError), and the values wrapped so that they key the parse cache
with their exact types.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TypeAlias

from components.query.ast import Literal

#: The value of a parameter: a literal, or a tuple of literals for the list of an ``in``.
ParamValue: TypeAlias = Literal | tuple[Literal, ...]

# The parameters a text names: what the lexer reads as PARAM (grammar.lark),
# skipping strings and quoted names, the only other tokens that may hold a $.
_PARAM_SCAN = re.compile(r'"(?:[^"\\]|\\.)*"?|\'(?:[^\'\\]|\\.)*\'?|`[^`]*`?|\$([a-z_][a-z0-9_]*)(?![A-Za-z0-9_])',
                         re.DOTALL)
_SCALARS = (str, int, float, bool, type(None))


def bind(text: str, params: Mapping[str, ParamValue] | None) -> Bound | None:
    """The values of the parameters ``text`` uses; None when it uses none (or there are no params).

    Only the names the text uses are looked up (``name in params``, then
    ``params[name]``); a value of a type the query language cannot hold is a
    TypeError. An unknown name is not an error here: the parser says so at
    the parameter's column.
    """
    if params is None or "$" not in text:
        return None
    names = dict.fromkeys(m[1] for m in _PARAM_SCAN.finditer(text) if m[1] is not None)
    if not names:
        return None
    return Bound.of(names, params)


class Value:
    """A parameter's value as part of the parse cache's key.

    Equal only to the same value of the same types: ``1``, ``1.0`` and
    ``True`` are equal in Python, but not in the query language, nor are
    ``0.0`` and ``-0.0`` in the tree the parser returns.
    """

    __slots__ = ("value", "_key")

    def __init__(self, value: ParamValue) -> None:
        self.value = value
        self._key = typed(value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Value) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)


def typed(value: ParamValue) -> Hashable:
    """A key equal only for the same value of the same types (see ``Value``)."""
    if isinstance(value, tuple):
        return (tuple, tuple(typed(v) for v in value))
    if type(value) is float:
        return (float, value, math.copysign(1.0, value))
    return (type(value), value)


@dataclass(frozen=True)
class Bound:
    """The values of the parameters a text uses, looked up once: what the parser substitutes."""

    values: tuple[tuple[str, Value | None], ...]  # None: params has no such name
    known: tuple[str, ...]  # the names params has, for the message about an unknown one; () if none is

    @classmethod
    def of(cls, names: Mapping[str, None], params: Mapping[str, ParamValue]) -> Bound:
        values: list[tuple[str, Value | None]] = []
        for name in names:
            if name in params:
                value = params[name]
                check_type(name, value)
                values.append((name, Value(value)))
            else:
                values.append((name, None))
        missing = any(value is None for _, value in values)
        return cls(tuple(values), tuple(sorted(str(k) for k in params)) if missing else ())

    def get(self, name: str) -> Value | None:
        for known, value in self.values:
            if known == name:
                return value
        return None


def check_type(name: str, value: object) -> None:
    """Refuse (TypeError) a value whose Python type the query language has no literal for."""
    # Exact types: a subclass (an enum, say) could write itself or compare otherwise than its base.
    if type(value) is tuple:
        wrong = [v for v in value if type(v) not in _SCALARS]
        if not wrong:
            return
        what = f"a tuple holding {type(wrong[0]).__name__}"
    elif type(value) in _SCALARS:
        return
    else:
        what = type(value).__name__
    raise TypeError(f"parameter ${name} must be a str, int, float, bool, None or a tuple of those, not {what}")
