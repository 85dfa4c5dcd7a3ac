"""Where a query is filed among the queries of one selector pattern, so that an event finds it unscanned.

A query's *anchor* is a few tests of which the event must pass at least
one for the ``where`` clause to hold: implied by the clause, never
equivalent to it, since every query found through its anchor is then
matched in full. One anchor test is one of:

* ``("=", path, value key)``: the field equals a value; from a top-level
  ``=`` or each value of an ``in``. Looked up by hash.
* ``("^", path, prefix)``: the field is a string that starts with the
  prefix; from ``startswith``. Looked up by the event's string cut to each
  prefix length in use.
* ``("~", path, value key)``: the field is a list holding the value, or a
  string holding it; from ``contains``. A list looks up each of its
  elements; a string tests each string value filed on the path for being a
  substring (in C, before any matcher runs).
* ``(">", path, bound)`` / ``("<", path, bound)``: the field is above
  (``>``, ``>=``) or below (``<``, ``<=``) a number or a string; found by
  bisection in the bounds kept sorted.

An ``and`` offers the anchor of any operand; an ``or`` has one only if every
operand has, and it is their union. Of the alternatives, equality is taken
first, then a prefix or ``contains``, then a range (that order is about how
many queries a lookup returns that then fail), and within a kind the one
whose tables hold the fewest queries at the time: with no statistics about
events, that spreads queries over the selective fields as they fill. A
query with no anchor (``not``, ``exists``, ``!=``, no ``where``) is tried
on every event of its classes.

Values are filed by the kind they compare as: 1 and 1.0 are one key (equal
numbers hash alike), ``true`` and ``1`` are not (bools get keys of their own).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Hashable
from typing import Any

from components.query.ast import And, Compare, Contains, Expr, In, Or, Path, StartsWith
from components.query.compile import Matcher

__all__ = ["Anchor", "Tables"]

#: Anchor tests, distinct; see the module docstring.
Anchor = tuple[tuple[str, Path, Any], ...]

_RANK = {"=": 0, "^": 1, "~": 1, ">": 2, "<": 2}


class _Bool:
    """The key of a bool: not equal to the numbers 0 and 1."""

    __slots__ = ("flag",)

    def __init__(self, flag: bool) -> None:
        self.flag = flag

    def __repr__(self) -> str:
        return f"<{self.flag}>"


_TRUE = _Bool(True)
_FALSE = _Bool(False)
_NO_KEY = _Bool(False)  # lists, objects, missing fields: a key no literal has
MISSING: Any = object()


def value_key(value: Any) -> Any:
    """The hash key a value is filed and looked up under."""
    cls = value.__class__
    if cls is str or cls is int or cls is float or value is None:
        return value
    if value is True:
        return _TRUE
    if value is False:
        return _FALSE
    return _NO_KEY


def resolve(data: dict[str, Any], path: Path) -> Any:
    """The value at a path, or ``MISSING``."""
    value: Any = data
    for segment in path:
        if not isinstance(value, dict):
            return MISSING
        value = value.get(segment, MISSING)
    return value


class _Sorted:
    """Bounds in order, with the query key and matcher of each."""

    __slots__ = ("bounds", "keys", "matchers")

    def __init__(self) -> None:
        self.bounds: list[Any] = []
        self.keys: list[Hashable] = []
        self.matchers: list[Matcher] = []

    def insert(self, bound: Any, key: Hashable, matcher: Matcher) -> None:
        at = bisect_right(self.bounds, bound)
        self.bounds.insert(at, bound)
        self.keys.insert(at, key)
        self.matchers.insert(at, matcher)

    def delete(self, bound: Any, key: Hashable) -> None:
        at = bisect_left(self.bounds, bound)
        while self.keys[at] != key:
            at += 1
        del self.bounds[at], self.keys[at], self.matchers[at]


class _Ranges:
    """The range anchors on one path: lower and upper bounds, for numbers and for strings."""

    __slots__ = ("numbers_above", "numbers_below", "strings_above", "strings_below")

    def __init__(self) -> None:
        self.numbers_above, self.numbers_below = _Sorted(), _Sorted()
        self.strings_above, self.strings_below = _Sorted(), _Sorted()

    def side(self, test: str, bound: Any) -> _Sorted:
        if isinstance(bound, str):
            return self.strings_above if test == ">" else self.strings_below
        return self.numbers_above if test == ">" else self.numbers_below

    def __len__(self) -> int:
        return sum(len(s.bounds) for s in (self.numbers_above, self.numbers_below,
                                           self.strings_above, self.strings_below))


class Tables:
    """The queries of one selector pattern, filed by anchor."""

    __slots__ = ("contained", "equal", "prefixes", "ranges", "scanned", "size")

    def __init__(self) -> None:
        # path -> value key -> query key -> matcher
        self.equal: dict[Path, dict[Any, dict[Hashable, Matcher]]] = {}
        # path -> prefix length -> prefix -> query key -> matcher
        self.prefixes: dict[Path, dict[int, dict[str, dict[Hashable, Matcher]]]] = {}
        # path -> value key -> query key -> matcher
        self.contained: dict[Path, dict[Any, dict[Hashable, Matcher]]] = {}
        self.ranges: dict[Path, _Ranges] = {}
        self.scanned: dict[Hashable, Matcher] = {}
        self.size = 0  # queries filed here, each once however many anchor tests it has

    def choose(self, where: Expr | None) -> Anchor | None:
        """The anchor to file a query with this condition under, now; None to scan it."""
        if where is None:
            return None
        choice = self._best(where)
        return choice[1] if choice is not None else None

    def file(self, key: Hashable, matcher: Matcher, anchor: Anchor | None) -> None:
        self.size += 1
        if anchor is None:
            self.scanned[key] = matcher
            return
        for test, path, value in anchor:
            if test == "=":
                self.equal.setdefault(path, {}).setdefault(value, {})[key] = matcher
            elif test == "~":
                self.contained.setdefault(path, {}).setdefault(value, {})[key] = matcher
            elif test == "^":
                by_length = self.prefixes.setdefault(path, {})
                by_length.setdefault(len(value), {}).setdefault(value, {})[key] = matcher
            else:
                self.ranges.setdefault(path, _Ranges()).side(test, value).insert(value, key, matcher)

    def unfile(self, key: Hashable, anchor: Anchor | None) -> None:
        """Take out a query filed with ``file``; empty tables go."""
        self.size -= 1
        if anchor is None:
            del self.scanned[key]
            return
        for test, path, value in anchor:
            if test == "=":
                _delete(self.equal, path, value, key)
            elif test == "~":
                _delete(self.contained, path, value, key)
            elif test == "^":
                by_length = self.prefixes[path]
                _delete(by_length, len(value), value, key)
                if not by_length:
                    del self.prefixes[path]
            else:
                ranges = self.ranges[path]
                ranges.side(test, value).delete(value, key)
                if not len(ranges):
                    del self.ranges[path]

    def match(self, data: dict[str, Any], matched: set[Any]) -> None:
        """Add to ``matched`` the keys of the queries filed here that ``data`` matches."""
        # The one-segment paths, most of them, are read inline: this is the hot loop.
        for path, by_value in self.equal.items():
            value = data.get(path[0], MISSING) if len(path) == 1 else resolve(data, path)
            bucket = by_value.get(value_key(value))
            if bucket:
                _try(bucket.items(), data, matched)
        for path, by_length in self.prefixes.items():
            value = data.get(path[0], MISSING) if len(path) == 1 else resolve(data, path)
            if value.__class__ is str:
                for length, by_prefix in by_length.items():
                    if length <= len(value):
                        bucket = by_prefix.get(value[:length])
                        if bucket:
                            _try(bucket.items(), data, matched)
        for path, by_value in self.contained.items():
            value = data.get(path[0], MISSING) if len(path) == 1 else resolve(data, path)
            if value.__class__ is list:
                for element_key in {value_key(element) for element in value}:
                    bucket = by_value.get(element_key)
                    if bucket:
                        _try(bucket.items(), data, matched)
            elif value.__class__ is str:
                for part, bucket in by_value.items():
                    if part.__class__ is str and part in value:
                        _try(bucket.items(), data, matched)
        for path, ranges in self.ranges.items():
            value = data.get(path[0], MISSING) if len(path) == 1 else resolve(data, path)
            cls = value.__class__
            if cls is int or (cls is float and value == value):  # NaN is above and below nothing
                above, below = ranges.numbers_above, ranges.numbers_below
            elif cls is str:
                above, below = ranges.strings_above, ranges.strings_below
            else:
                continue
            if above.bounds:
                end = bisect_right(above.bounds, value)
                _try(zip(above.keys[:end], above.matchers[:end]), data, matched)
            if below.bounds:
                start = bisect_left(below.bounds, value)
                _try(zip(below.keys[start:], below.matchers[start:]), data, matched)
        _try(self.scanned.items(), data, matched)

    def counts(self) -> tuple[int, int, int]:
        """(anchored paths, buckets and range tables, scanned queries)."""
        paths = len(self.equal) + len(self.contained) + len(self.prefixes) + len(self.ranges)
        buckets = (sum(len(v) for v in self.equal.values()) + sum(len(v) for v in self.contained.values())
                   + len(self.ranges)
                   + sum(len(p) for by_length in self.prefixes.values() for p in by_length.values()))
        return paths, buckets, len(self.scanned)

    def _cost(self, anchor: Anchor) -> tuple[int, int, int]:
        total = 0
        for test, path, value in anchor:
            if test == "=":
                total += len(self.equal.get(path, {}).get(value, ()))
            elif test == "~":
                total += len(self.contained.get(path, {}).get(value, ()))
            elif test == "^":
                total += len(self.prefixes.get(path, {}).get(len(value), {}).get(value, ()))
            else:
                ranges = self.ranges.get(path)
                total += len(ranges.side(test, value).bounds) if ranges is not None else 0
        return max(_RANK[test] for test, _, _ in anchor) if anchor else 0, total, len(anchor)

    def _best(self, expr: Expr) -> tuple[tuple[int, int, int], Anchor] | None:
        if isinstance(expr, Compare):
            if expr.op == "=":
                test: tuple[str, Path, Any] = ("=", expr.path, value_key(expr.value))
            elif expr.op in ("<", "<=", ">", ">=") and _orderable(expr.value):
                test = (expr.op[0], expr.path, expr.value)
            else:
                return None
            return self._cost((test,)), (test,)
        if isinstance(expr, In):
            anchor = tuple(dict.fromkeys(("=", expr.path, value_key(v)) for v in expr.values))
            return self._cost(anchor), anchor
        if isinstance(expr, StartsWith):
            if not isinstance(expr.value, str):
                return None
            anchor = (("^", expr.path, expr.value),)
            return self._cost(anchor), anchor
        if isinstance(expr, Contains):
            anchor = (("~", expr.path, value_key(expr.value)),)
            return self._cost(anchor), anchor
        if isinstance(expr, And):
            options = [choice for operand in expr.operands if (choice := self._best(operand)) is not None]
            return min(options, key=lambda choice: choice[0]) if options else None
        if isinstance(expr, Or) and expr.operands:
            union: dict[tuple[str, Path, Any], None] = {}  # an ordered set: no test filed twice
            for operand in expr.operands:
                choice = self._best(operand)
                if choice is None:
                    return None
                union.update(dict.fromkeys(choice[1]))
            anchor = tuple(union)
            return self._cost(anchor), anchor
        return None


def _orderable(value: Any) -> bool:
    # What a sorted list of bounds can hold: numbers (not bools, not NaN) or strings.
    if value.__class__ is str or value.__class__ is int:
        return True
    return value.__class__ is float and value == value


def _delete(table: dict[Any, dict[Any, dict[Hashable, Matcher]]], outer: Any, inner: Any, key: Hashable) -> None:
    by_inner = table[outer]
    bucket = by_inner[inner]
    del bucket[key]
    if not bucket:
        del by_inner[inner]
        if not by_inner:
            del table[outer]


def _try(candidates: Any, data: dict[str, Any], matched: set[Any]) -> None:
    for key, matches in candidates:
        if key not in matched and matches(data):
            matched.add(key)
