"""A parsed query against the event classes: which classes it selects, and whether its fields exist.

``check`` refuses a query that could never do what its author meant: a
selector that matches no class, a field no selected class has (naming the
closest one), a value of the wrong type for its field. What passes comes back
in canonical form with its topic key. The rules are in ``check``'s docstring.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from components.query.ast import Compare, Contains, Exists, Expr, In, Literal, Not, Path, Query, StartsWith
from components.query.canonical import canonical, to_text, topic_key
from components.query.errors import QueryError, QueryNotAuthorized
from components.query.fields import ANY, NUMBER_KINDS, FieldType, Missing, kind_of, resolve
from components.query.parser import Source, source_of
from components.query.selectors import matches
from components.query.text import literal_text

# How many class or field names a message lists before it says "...".
_LISTED = 6
_ORDERED = NUMBER_KINDS | {"string", ANY}


class EventClass(Hashable, Protocol):
    """What ``check`` reads of an event class (``components.events.EventClass`` is one).

    A protocol, so that this package imports nothing from outside it; hashable, for the schema cache.
    """

    @property
    def name(self) -> str: ...

    def json_schema(self) -> dict[str, Any]: ...


_Class = TypeVar("_Class", bound=EventClass)


@dataclass(frozen=True)
class CheckedQuery:
    """A query that passed ``check``: its canonical tree and text, the classes it selects, its topic key."""

    query: Query
    text: str
    classes: tuple[str, ...]
    topic_key: str


def check(query: Query, classes: Iterable[_Class], *,
          visible: Callable[[_Class], bool] = lambda c: True) -> CheckedQuery:
    """Check ``query`` against the event ``classes`` (a Registry) that ``visible`` lets the caller see.

    - A class named outright must exist (QueryError, with the closest name)
      and be visible (QueryNotAuthorized); a wildcard selector silently
      selects only visible classes, and must select at least one.
    - Every field in ``where`` must be in at least one selected class.
    - A value must fit its field in at least one class where the field is:
      a number for integer and number fields, a string for strings, true or
      false for booleans; null fits any field for ``=``, ``!=`` and ``in``.
      ``<``, ``<=``, ``>``, ``>=`` need a number or string field;
      ``contains`` a list (of the value's kind) or a string (and a string);
      ``startswith`` a string field.

    Positions in errors are those of the text ``parse`` read, when ``query``
    came from ``parse``; None for a query built in code.
    """
    source = source_of(query)
    text = source.text if source is not None else to_text(query)
    selected = _select(query, {c.name: c for c in classes}, visible, source, text)
    if query.where is not None:
        _check_where(query.where, selected, source, text)
    normal = canonical(query)
    normal_text = to_text(normal)
    return CheckedQuery(normal, normal_text, tuple(c.name for c in selected), topic_key(normal_text))


def _select(query: Query, by_name: dict[str, _Class], visible: Callable[[_Class], bool],
            source: Source | None, text: str) -> list[_Class]:
    if not query.selectors:
        raise QueryError("a query starts with at least one event class name", text, None)
    seen = [c for c in by_name.values() if visible(c)]
    selected: dict[str, _Class] = {}
    for index, selector in enumerate(query.selectors):
        column = source.selectors[index] if source is not None and index < len(source.selectors) else None
        if "*" not in selector:
            found = by_name.get(selector)
            if found is None:
                raise QueryError(_unknown_class(selector, seen), text, column)
            if not visible(found):
                raise QueryNotAuthorized(f"not authorized to see event class {selector!r}", text, column)
            selected[selector] = found
            continue
        matched = [c for c in seen if matches(selector, c.name)]
        if not matched:
            raise QueryError(f"{selector!r} matches no event class{_known(seen)}", text, column)
        selected.update((c.name, c) for c in matched)
    return [selected[name] for name in sorted(selected)]


def _unknown_class(name: str, seen: Sequence[EventClass]) -> str:
    close = difflib.get_close_matches(name, [c.name for c in seen], n=1)
    if close:
        return f"unknown event class {name!r} — did you mean {close[0]!r}?"
    return f"unknown event class {name!r}{_known(seen)}"


def _known(seen: Sequence[EventClass]) -> str:
    return f" (known classes: {_listing(sorted(c.name for c in seen))})" if seen else ""


def _check_where(where: Expr, selected: Sequence[EventClass], source: Source | None, text: str) -> None:
    pending = [where]  # a loop, not recursion: the tree may come from code, as deep as it likes
    while pending:
        expr = pending.pop()
        if isinstance(expr, Not):
            pending.append(expr.operand)
        elif isinstance(expr, (Compare, In, Contains, StartsWith, Exists)):
            _Leaf(expr, selected, source, text).check()
        else:
            pending.extend(reversed(expr.operands))  # the first in the text is checked first


class _Leaf:
    """One comparison, the types its field has in the selected classes, and the messages about it."""

    def __init__(self, expr: Compare | In | Contains | StartsWith | Exists, selected: Sequence[EventClass],
                 source: Source | None, text: str) -> None:
        self.expr = expr
        self.text = text
        leaf = source.leaf(expr) if source is not None else None
        self.path_column = leaf.path if leaf is not None else None
        self.value_columns = leaf.values if leaf is not None else ()
        self.types: list[tuple[str, FieldType]] = []
        missing: list[tuple[str, Missing]] = []
        for cls in selected:
            found = resolve(_schema(cls), expr.path)
            if isinstance(found, FieldType):
                self.types.append((cls.name, found))
            else:
                missing.append((cls.name, found))
        if not self.types:
            raise QueryError(_unknown_field(expr.path, missing), text, self.path_column)

    def check(self) -> None:
        expr = self.expr
        if isinstance(expr, Compare):
            if expr.op in ("=", "!="):
                if expr.value is not None:
                    self._value(expr.value, 0, lambda t: t.fits(expr.value))
            else:
                self._needs(_ORDERED, f"'{expr.op}' compares numbers or strings")
                self._value(expr.value, 0, lambda t: bool(t.kinds & _ORDERED) and t.fits(expr.value))
        elif isinstance(expr, In):
            for index, value in enumerate(expr.values):
                if value is not None:
                    self._value(value, index, lambda t: t.fits(value))  # called at once: no late binding
        elif isinstance(expr, Contains):
            self._needs({"array", "string", ANY}, "'contains' looks into a list or a string")
            self._value(expr.value, 0, lambda t: _contains_fits(t, expr.value))
        elif isinstance(expr, StartsWith):
            self._needs({"string", ANY}, "'startswith' needs a string field")

    def _needs(self, kinds: set[str] | frozenset[str], what: str) -> None:
        if not any(t.kinds & kinds for _, t in self.types):
            raise QueryError(f"{what}, but {self._field()} is {self._described()}", self.text, self.path_column)

    def _value(self, value: Literal, index: int, fits: Callable[[FieldType], bool]) -> None:
        if any(fits(t) for _, t in self.types):
            return
        message = f"cannot compare {self._field()} ({self._described()}) with {_literal(value)}"
        if isinstance(self.expr, Compare) and any("array" in t.kinds for _, t in self.types):
            message += "; to look for a value in a list, use 'contains'"
        column = self.value_columns[index] if index < len(self.value_columns) else self.path_column
        raise QueryError(message, self.text, column)

    def _field(self) -> str:
        return f"field {'.'.join(self.expr.path)!r}"

    def _described(self) -> str:
        by_type: dict[str, list[str]] = {}
        for name, field_type in self.types:
            by_type.setdefault(field_type.describe(), []).append(name)
        return " and ".join(f"{kind} in {_listing(names)}" for kind, names in by_type.items())


def _contains_fits(field_type: FieldType, value: Literal) -> bool:
    if ANY in field_type.kinds:
        return True
    if "array" in field_type.kinds and (field_type.items is None or field_type.items.fits(value)):
        return True
    return "string" in field_type.kinds and isinstance(value, str)


def _unknown_field(path: Path, missing: list[tuple[str, Missing]]) -> str:
    names = [name for name, _ in missing]
    shown = ".".join(path)
    best: tuple[float, Path] | None = None
    for _, why in missing:
        segment = path[why.at]
        for close in difflib.get_close_matches(segment, why.names, n=1):
            score = difflib.SequenceMatcher(None, segment, close).ratio()
            if best is None or score > best[0]:
                best = (score, path[:why.at] + (close,))
    message = f"unknown field {shown!r} in {_listing(names)}"
    if best is not None:
        return f"{message} — did you mean {'.'.join(best[1])!r}?"
    first = missing[0][1]
    if first.at > 0 and "object" not in first.reached.kinds:
        return f"{message}: {'.'.join(path[:first.at])!r} is {first.reached.describe()}, which has no fields"
    fields = sorted({n for _, why in missing if why.at == first.at for n in why.names})
    return f"{message} (fields there: {_listing(fields)})" if fields else message


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown if len(names) <= _LISTED else f"{shown} and {len(names) - _LISTED} more"


def _literal(value: Literal) -> str:
    kind = kind_of(value)
    if kind in ("null", "boolean"):
        return literal_text(value)
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > 40:  # a long string stays a quoted string: "xxxx..."
        text = json.dumps(value[:36], ensure_ascii=False)[:-1] + '..."' if isinstance(value, str) else text[:36] + "..."
    return f"the {kind} {text}"


# A class's schema is read on every check; json_schema() copies it each time.
# Keyed by the class, so a reload (new classes) reads the new schemas; 256
# covers any registry we expect, and the old classes of a reload fall out.
@functools.lru_cache(maxsize=256)
def _schema(cls: EventClass) -> dict[str, Any]:
    return cls.json_schema()
