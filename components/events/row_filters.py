"""An event class's row filter read as a query, and checked when the definitions load.

A row filter (``class Rules: row_filter = "customer.id = $user"``) is part of a class's definition:
a registry whose row filters do not parse, or name fields their classes lack, is refused like any
other broken definition (``check_row_filters``, by ``live`` and ``gateway check-config``). What a
row filter does to a subscriber's queries is the dispatcher's: ``components.delivery.rowfilter``.

Pure: texts and classes in, a query or a ``DefinitionError`` out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.events.registry import Registry
from components.exceptions import DefinitionError
from components.query import Query, QueryError, check, parse

#: Values used to check a row filter when the definitions are loaded.
SAMPLE_PARAMS: dict[str, Any] = {"user": "someone", "role": "user", "roles": ("staff",)}
#: A row filter is written by the operator, not a client: only the hard cap on nesting applies.
MAX_DEPTH = 100


def parse_row_filter(name: str, row_filter: str, params: Mapping[str, Any]) -> Query:
    """Class ``name``'s row filter as the query ``<name> where <row_filter>``, parameters filled in."""
    return parse(f"{name} where {row_filter}", max_length=1_000_000, max_depth=MAX_DEPTH, params=params)


def check_row_filters(registry: Registry) -> None:
    """Refuse definitions whose row filter does not parse or names a field the class does not have."""
    problems = []
    for cls in registry:
        if cls.row_filter is None:
            continue
        try:
            check(parse_row_filter(cls.name, cls.row_filter, SAMPLE_PARAMS), [cls])
        except QueryError as exc:
            problems.append(f"class {cls.name} ({cls.source}): row_filter {cls.row_filter!r}: {exc.message}")
    if problems:
        raise DefinitionError("; ".join(problems))
