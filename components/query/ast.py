"""The syntax tree of a subscription query: frozen data, no behaviour.

    orders.created, orders.cancelled where customer.id = 42 and not (status = "ok")

is ``Query(selectors=("orders.cancelled", "orders.created"),
where=And((Compare("=", ("customer", "id"), 42), Not(Compare("=", ("status",), "ok")))))``.

Paths are tuples of segments into the event's ``data``. Literals are what
JSON has: str, int, float, bool, None. This module is the contract between
the parser (text -> tree), the canonical form, the checker, the interpreter,
the compiler and the index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal as L
from typing import TypeAlias

Literal: TypeAlias = str | int | float | bool | None
Path: TypeAlias = tuple[str, ...]
CompareOp: TypeAlias = L["=", "!=", "<", "<=", ">", ">="]


@dataclass(frozen=True)
class Compare:
    """``path <op> value``; false when the field is missing or of another type than the value."""

    op: CompareOp
    path: Path
    value: Literal


@dataclass(frozen=True)
class In:
    """``path in [v1, v2, ...]``: equal (as ``=``) to one of the values."""

    path: Path
    values: tuple[Literal, ...]


@dataclass(frozen=True)
class Contains:
    """``path contains value``: a list holding the value, or a string holding the substring."""

    path: Path
    value: Literal


@dataclass(frozen=True)
class StartsWith:
    """``path startswith "prefix"``: a string field beginning with the prefix."""

    path: Path
    value: str


@dataclass(frozen=True)
class Exists:
    """``path exists``: the field is present and not null."""

    path: Path


@dataclass(frozen=True)
class Not:
    operand: Expr


@dataclass(frozen=True)
class And:
    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Expr, ...]


Expr: TypeAlias = Compare | In | Contains | StartsWith | Exists | Not | And | Or


@dataclass(frozen=True)
class Query:
    """Selectors (class names, ``*`` one segment, ``**`` any depth) and an optional condition."""

    selectors: tuple[str, ...]
    where: Expr | None = None
