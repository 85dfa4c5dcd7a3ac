"""What a path such as ``customer.id`` is in an event class's JSON Schema, and which values fit it.

``resolve`` walks ``properties``, follows ``$ref`` into ``$defs``, takes
``anyOf``/``oneOf`` (so ``Optional[str]`` is "a string or null") and looks
inside lists through ``items``. A schema that says nothing about a value
(``Any``, or the unknown fields of a class with ``extra = "allow"``) fits
every value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from components.query.ast import Literal, Path

ANY = "any"
NUMBER_KINDS = frozenset({"integer", "number"})

# $ref chains longer than this are a cycle with no field in between.
_MAX_REFS = 32

_ONE = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true/false",
        "null": "null", "object": "an object", ANY: "any value"}
_MANY = {"string": "strings", "integer": "integers", "number": "numbers", "boolean": "true/false values",
         "null": "nulls", "object": "objects", ANY: "values", "array": "lists"}


@dataclass(frozen=True)
class FieldType:
    """The kinds of JSON value a field may hold and, for a list, those of its items."""

    kinds: frozenset[str]
    items: FieldType | None = None

    def fits(self, value: Literal) -> bool:
        """Whether ``value`` is of a kind this field may hold (an int fits a number field and vice versa)."""
        if ANY in self.kinds:
            return True
        kind = kind_of(value)
        return bool(self.kinds & NUMBER_KINDS) if kind == "number" else kind in self.kinds

    def describe(self) -> str:
        """``a number``, ``a string or null``, ``a list of strings``."""
        if not self.kinds:  # a schema of `false`: no value is allowed
            return "never present"
        words = []
        for kind in sorted(self.kinds, key=_ORDER.index):
            if kind == "array":
                items = self.items or FieldType(frozenset({ANY}))
                words.append("a list of " + " or ".join(_MANY[k] for k in sorted(items.kinds, key=_ORDER.index)))
            else:
                words.append(_ONE[kind])
        return " or ".join(words)


_ORDER = ["string", "integer", "number", "boolean", "array", "object", ANY, "null"]
_KINDS = frozenset(_ORDER) - {ANY}


@dataclass(frozen=True)
class Missing:
    """Why a path is not in a schema: segment ``at`` is not a field of what the path reached."""

    at: int
    names: tuple[str, ...]  # the fields there are at that point, sorted
    reached: FieldType  # what the path before segment ``at`` is


def kind_of(value: Literal) -> str:
    """The JSON kind of a literal: null, boolean, number, string."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "string"


def resolve(schema: Mapping[str, Any], path: Path) -> FieldType | Missing:
    """The type of the value at ``path`` in data following ``schema``, or why there is none."""
    nodes: list[Any] = [schema]
    for index, segment in enumerate(path):
        children: list[Any] = []
        names: set[str] = set()
        for node in _alternatives(nodes, schema):
            if node.get("type") != "object":
                if node.get("type") == ANY:
                    children.append(True)
                continue
            properties = node.get("properties") or {}
            names.update(properties)
            if segment in properties:
                children.append(properties[segment])
            elif node.get("patternProperties"):  # names by pattern: any name may be one
                children.append(True)
            elif node.get("additionalProperties", True) is not False:
                children.append(node.get("additionalProperties", True))
        if not children:
            return Missing(index, tuple(sorted(names)), _type(nodes, schema))
        nodes = children
    return _type(nodes, schema)


def _type(nodes: list[Any], root: Mapping[str, Any]) -> FieldType:
    kinds: set[str] = set()
    items: list[Any] = []
    for node in _alternatives(nodes, root):
        kind = node["type"]
        kinds.add(kind)
        if kind == "array":
            items.extend(node.get("prefixItems") or ())
            items.append(node.get("items", True))
    return FieldType(frozenset(kinds), _type(items, root) if items else None)


def _alternatives(nodes: list[Any], root: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Each node as schemas of one ``type`` each (``type: "any"`` for a schema that allows anything)."""
    for node in nodes:
        yield from _expand(node, root, 0)


def _expand(node: Any, root: Mapping[str, Any], refs: int) -> Iterator[dict[str, Any]]:
    if node is True or node == {}:
        yield {"type": ANY}
        return
    if not isinstance(node, dict):  # False, or something that is not a schema: nothing fits
        return
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = _follow(ref, root)
        if target is None or refs >= _MAX_REFS:
            yield {"type": ANY}
        else:
            yield from _expand(target, root, refs + 1)
        return
    for key in ("anyOf", "oneOf", "allOf"):
        # allOf is read as a union too: pydantic writes it only to wrap a $ref.
        if isinstance(node.get(key), list):
            for sub in node[key]:
                yield from _expand(sub, root, refs)
            return
    kind = node.get("type")
    if isinstance(kind, str):
        yield node if kind in _KINDS else {"type": ANY}
    elif isinstance(kind, list):
        for one in kind:
            yield {**node, "type": one} if one in _KINDS else {"type": ANY}
    elif "enum" in node or "const" in node:
        values = node["enum"] if "enum" in node else [node["const"]]
        for found in {kind_of(v) if v is None or isinstance(v, (bool, int, float, str)) else ANY for v in values}:
            yield {"type": found}
    elif "properties" in node:
        yield {**node, "type": "object"}
    else:
        yield {"type": ANY}


def _follow(ref: str, root: Mapping[str, Any]) -> Any:
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
