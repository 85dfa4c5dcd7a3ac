"""The canonical form of a query: one tree and one text per meaning, hence one topic.

``canonical`` rewrites only what cannot change which events match:

- ``and``/``or`` nested in their own kind are flattened, duplicate operands
  dropped, operands sorted by their canonical text, a lone operand unwrapped;
- ``not not x`` is ``x``; ``x != null`` is ``x exists`` (both: present and not null);
- ``x in [v]`` is ``x = v``, and ``x = a or x in [b, c]`` is ``x in [a, b, c]``
  (``in`` means "equal to one of");
- ``in`` values are sorted (null, booleans, numbers, strings) and deduplicated;
- a float with an integral value is an int (numbers compare as numbers:
  ``1 = 1.0``), up to 2**53 where floats stop being exact;
- selectors are sorted, deduplicated, and dropped when another covers them;
- ``x in []`` (from a list parameter with no values: ``team in $roles``),
  which matches nothing, is ``x = null and x exists``, the always-false
  condition the language can write (``in []`` is not in it). An ``and``
  with such an operand is that operand alone; an ``or`` drops it unless
  nothing else is left.

Nothing else: no De Morgan, no absorption, because ``not (x = 1)`` and
``x != 1`` differ when x is missing. ``to_text`` writes any tree (canonical
or not) in the canonical spelling, which ``parse`` reads back to the same tree.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from typing import NamedTuple, TypeAlias, TypeVar

from components.query.ast import (
    And,
    Compare,
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
from components.query.selectors import normalise_all
from components.query.text import literal_text, path_text

_EXACT = 2**53  # beyond it not every integer is a float, so 2.0**60 stays a float


def canonical(query: Query) -> Query:
    """The normalised tree of ``query``: equal meaning (as far as the rules above see), equal tree."""
    where = None if query.where is None else _fold(query.where, _canonical_leaf, _canonical_inner).node
    return Query(normalise_all(query.selectors), where)


def to_text(query: Query) -> str:
    """``query`` in the canonical spelling: lower-case keywords, single spaces, double quotes."""
    text = ", ".join(query.selectors)
    return text if query.where is None else f"{text} where {expr_text(query.where)}"


def topic_key(text: str) -> str:
    """A short stable key for a canonical text: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def expr_text(expr: Expr) -> str:
    """One condition in the canonical spelling, parenthesised only where precedence needs it."""
    return _fold(expr, _leaf_text, _inner_text)


_Leaf: TypeAlias = Compare | In | Contains | StartsWith | Exists
_T = TypeVar("_T")


def _fold(expr: Expr, leaf: Callable[[_Leaf], _T], inner: Callable[[Not | And | Or, list[_T]], _T]) -> _T:
    """Bottom-up over the tree with a stack, not recursion: the configured depth may be far
    beyond Python's recursion limit, and a query the parser took must not fail here."""
    results: list[_T] = []
    stack: list[tuple[Expr, bool]] = [(expr, False)]
    while stack:
        node, children_done = stack.pop()
        if not isinstance(node, (Not, And, Or)):
            results.append(leaf(node))
            continue
        children = (node.operand,) if isinstance(node, Not) else node.operands
        if children_done:
            cut = len(results) - len(children)
            values = results[cut:]
            del results[cut:]
            results.append(inner(node, values))
        else:
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(children))
    return results[0]


def _leaf_text(expr: _Leaf) -> str:
    path = path_text(expr.path)
    if isinstance(expr, Compare):
        return f"{path} {expr.op} {literal_text(expr.value)}"
    if isinstance(expr, In):
        if not expr.values:  # matches nothing, as what canonical() makes of it
            return f"{path} = null and {path} exists"
        return f"{path} in [{', '.join(map(literal_text, expr.values))}]"
    if isinstance(expr, Contains):
        return f"{path} contains {literal_text(expr.value)}"
    if isinstance(expr, StartsWith):
        return f"{path} startswith {literal_text(expr.value)}"
    return f"{path} exists"


def _inner_text(expr: Not | And | Or, texts: list[str]) -> str:
    if isinstance(expr, Not):
        return _not_text(expr.operand, texts[0])
    if not texts:
        raise ValueError(f"{type(expr).__name__} needs at least one operand")
    return _junction_text(expr, list(zip(expr.operands, texts)))


def _not_text(operand: Expr, text: str) -> str:
    return f"not ({text})" if isinstance(operand, (And, Or)) or _empty_in(operand) else f"not {text}"


def _junction_text(expr: And | Or, operands: list[tuple[Expr, str]]) -> str:
    if isinstance(expr, And):
        # An empty in stays one operand (canonical() takes it for the whole and).
        return " and ".join(f"({t})" if isinstance(e, Or) or _empty_in(e) else t for e, t in operands)
    return " or ".join(t for _, t in operands)


def _empty_in(expr: Expr) -> bool:
    return isinstance(expr, In) and not expr.values


def _is_never(expr: Expr) -> bool:
    """Whether ``expr`` is ``x = null and x exists``: false for every event; an empty ``in`` in canonical form."""
    if not (isinstance(expr, And) and len(expr.operands) == 2):
        return False
    first, second = expr.operands
    return (isinstance(first, Compare) and first.op == "=" and first.value is None
            and second == Exists(first.path))


class _Canonical(NamedTuple):
    """A canonical subtree, its text, and the same of its operands (to flatten into a parent)."""

    node: Expr
    text: str
    operands: tuple[_Canonical, ...] = ()


def _canonical_leaf(expr: _Leaf) -> _Canonical:
    node: _Leaf = expr
    if isinstance(expr, Compare):
        if expr.op == "!=" and expr.value is None:
            node = Exists(expr.path)
        else:
            node = Compare(expr.op, expr.path, _number(expr.value))
    elif isinstance(expr, In):
        if not expr.values:
            return _never(expr.path)
        values = _values(expr.values)
        node = Compare("=", expr.path, values[0]) if len(values) == 1 else In(expr.path, values)
    elif isinstance(expr, Contains):
        node = Contains(expr.path, _number(expr.value))
    return _Canonical(node, _leaf_text(node))


def _never(path: Path) -> _Canonical:
    """``path = null and path exists``: false for every event (how canonical form writes an empty ``in``)."""
    null, exists = Compare("=", path, None), Exists(path)
    operands = (_Canonical(null, _leaf_text(null)), _Canonical(exists, _leaf_text(exists)))
    never = And((null, exists))
    return _Canonical(never, _junction_text(never, [(p.node, p.text) for p in operands]), operands)


def _canonical_inner(expr: Not | And | Or, parts: list[_Canonical]) -> _Canonical:
    if isinstance(expr, Not):
        (part,) = parts
        if isinstance(part.node, Not):
            return part.operands[0]  # not not x: x
        return _Canonical(Not(part.node), _not_text(part.node, part.text), (part,))
    kind = type(expr)
    nevers = sorted((part for part in parts if _is_never(part.node)), key=lambda part: part.text)
    if nevers and (kind is And or len(nevers) == len(parts)):
        return nevers[0]  # false and x: false; false or false: false
    if nevers:
        parts = [part for part in parts if not _is_never(part.node)]  # false or x: x
    flat: list[_Canonical] = []
    for part in parts:
        flat.extend(part.operands if isinstance(part.node, kind) else (part,))
    if kind is And:
        # ``x = null and x exists`` among the operands of a flat ``and`` makes all of it false, as it
        # does when it stands alone: the same never, whether the query nested it or not.
        nulls = {p.node.path for p in flat if isinstance(p.node, Compare) and p.node.op == "=" and p.node.value is None}
        contradicted = [_never(p.node.path) for p in flat if isinstance(p.node, Exists) and p.node.path in nulls]
        if contradicted:
            return min(contradicted, key=lambda never: never.text)
    if kind is Or:
        flat = _merge_equalities(flat)
    by_text = {part.text: part for part in flat}  # equal text, equal meaning: keep one
    if not by_text:
        raise ValueError(f"{kind.__name__} needs at least one operand")
    ordered = tuple(by_text[text] for text in sorted(by_text))
    if len(ordered) == 1:
        return ordered[0]
    node = And(tuple(p.node for p in ordered)) if kind is And else Or(tuple(p.node for p in ordered))
    return _Canonical(node, _junction_text(node, [(p.node, p.text) for p in ordered]), ordered)


def _merge_equalities(parts: list[_Canonical]) -> list[_Canonical]:
    """``x = 1 or x in [2, 3]`` -> ``x in [1, 2, 3]``: one ``in`` per field among the operands of an or."""
    by_path: defaultdict[Path, list[Compare | In]] = defaultdict(list)
    for part in parts:
        if isinstance(part.node, (Compare, In)) and _is_equality(part.node):
            by_path[part.node.path].append(part.node)
    if all(len(group) < 2 for group in by_path.values()):
        return parts
    merged = [p for p in parts if not (isinstance(p.node, (Compare, In)) and _is_equality(p.node)
                                       and len(by_path[p.node.path]) > 1)]
    for path, group in by_path.items():
        if len(group) > 1:
            values = _values(tuple(v for e in group for v in (e.values if isinstance(e, In) else (e.value,))))
            node = Compare("=", path, values[0]) if len(values) == 1 else In(path, values)
            merged.append(_Canonical(node, _leaf_text(node)))
    return merged


def _is_equality(expr: Expr) -> bool:
    return isinstance(expr, In) or isinstance(expr, Compare) and expr.op == "="


def _values(values: tuple[Literal, ...]) -> tuple[Literal, ...]:
    """Sorted (null, false, true, numbers, strings) and without duplicates; ``1`` and ``1.0`` are one."""
    if not values:
        raise ValueError("in needs at least one value")
    ordered = sorted(map(_number, values), key=_value_key)
    unique = [ordered[0]]
    for value in ordered[1:]:
        if _value_key(value)[:2] != _value_key(unique[-1])[:2]:
            unique.append(value)
    return tuple(unique)


def _value_key(value: Literal) -> tuple[int, Literal, bool]:
    # The rank keeps kinds apart: True == 1 in Python, but not in the query language.
    if value is None:
        return (0, 0, False)
    if isinstance(value, bool):
        return (1, value, False)
    if isinstance(value, (int, float)):
        return (2, value, isinstance(value, float))
    return (3, value, False)


def _number(value: Literal) -> Literal:
    if isinstance(value, float) and value.is_integer() and -_EXACT < value < _EXACT:
        return int(value)
    return value
