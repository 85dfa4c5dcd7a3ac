"""All live queries, indexed so that matching an event does not try each of them.

Two levels, after NATS's sublist:

1. A tree of selector patterns keyed on name segments, with ``*`` and ``**``
   children. An event's class name is walked down it to the nodes whose
   pattern matches (semantics in ``interpret.py``); the walk for a name is
   cached.
2. At each pattern node, the queries with that pattern, filed by *anchor*
   (``anchors.py``): a query whose condition needs ``room = "lobby"`` is
   found by looking up the event's room, one with ``amount > 100`` by
   bisecting the bounds below the event's amount. Only queries without an
   anchor are tried on every event of their classes. Every query found is
   then matched in full by its compiled matcher.

Adding and removing a query touch only its own nodes and tables; empty
tables and nodes are removed. Not thread-safe: one thread (the reactor's)
adds, removes and matches.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, KeysView
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from components.query.anchors import Anchor, Tables
from components.query.compile import CompiledQuery

__all__ = ["IndexStats", "QueryIndex"]

K = TypeVar("K", bound=Hashable)

#: Event class names whose walk down the pattern tree is remembered. Events
#: are validated against the registry before they are matched, so the names
#: are the registered classes: tens to hundreds. The bound is a guard, with
#: room to spare, against a caller matching arbitrary names.
RESOLVE_CACHE_SIZE = 1024


class _Node:
    """One pattern segment; a pattern's queries are filed at the node of its last segment."""

    __slots__ = ("children", "parent", "segment", "tables")

    def __init__(self, parent: _Node | None, segment: str) -> None:
        self.parent = parent
        self.segment = segment
        self.children: dict[str, _Node] = {}  # "*" and "**" included, as themselves
        self.tables = Tables()


_EMPTY = _Node(None, "")  # stands for a pattern not in the tree yet, when choosing an anchor


@dataclass(frozen=True, slots=True)
class _Entry:
    compiled: CompiledQuery
    # per pattern node: the anchor the query is filed under there (None: scanned)
    placements: tuple[tuple[_Node, Anchor | None], ...]


@dataclass(frozen=True)
class IndexStats:
    """Sizes, for benchmarks and tests: how many queries are tried on every event."""

    queries: int
    nodes: int
    anchored_paths: int
    buckets: int
    scanned: int


class QueryIndex(Generic[K]):
    """The live queries by key (a topic, say); ``match`` gives the keys of the queries an event matches."""

    def __init__(self) -> None:
        self._root = _Node(None, "")
        self._entries: dict[K, _Entry] = {}
        self._resolved: dict[str, tuple[_Node, ...]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        return iter(self._entries)

    def keys(self) -> KeysView[K]:
        return self._entries.keys()

    def get(self, key: K) -> CompiledQuery | None:
        entry = self._entries.get(key)
        return entry.compiled if entry is not None else None

    def add(self, key: K, compiled: CompiledQuery) -> None:
        """File a query under a key; a query already under that key is replaced."""
        if key in self._entries:
            self.remove(key)
        # Choose every anchor before changing anything, so that a failure leaves the index as it was.
        where = compiled.query.where
        chosen = [(pattern, (self._find(pattern) or _EMPTY).tables.choose(where))
                  for pattern in dict.fromkeys(compiled.selectors)]
        placements: list[tuple[_Node, Anchor | None]] = []
        for pattern, anchor in chosen:
            node = self._node(pattern)
            node.tables.file(key, compiled.matches, anchor)
            if node.tables.size == 1:
                self._resolved.clear()  # a pattern became live: names may now reach this node
            placements.append((node, anchor))
        self._entries[key] = _Entry(compiled, tuple(placements))

    def remove(self, key: K) -> None:
        """Drop the query under a key; KeyError if there is none."""
        entry = self._entries.pop(key)
        for node, anchor in entry.placements:
            node.tables.unfile(key, anchor)
            if node.tables.size == 0:
                self._resolved.clear()
                self._prune(node)

    def match(self, event_name: str, data: dict[str, Any]) -> set[K]:
        """The keys of the queries whose selectors and condition the event matches."""
        nodes = self._resolved.get(event_name)
        if nodes is None:
            nodes = self._resolve_name(event_name)
        matched: set[K] = set()
        if nodes:
            if not isinstance(data, dict):
                data = {}
            for node in nodes:
                node.tables.match(data, matched)
        return matched

    def stats(self) -> IndexStats:
        nodes = anchored_paths = buckets = scanned = 0
        stack = [self._root]
        while stack:
            node = stack.pop()
            nodes += 1
            paths, tables, scans = node.tables.counts()
            anchored_paths += paths
            buckets += tables
            scanned += scans
            stack.extend(node.children.values())
        return IndexStats(len(self._entries), nodes, anchored_paths, buckets, scanned)

    def _node(self, pattern: str) -> _Node:
        node = self._root
        for segment in pattern.split("."):
            child = node.children.get(segment)
            if child is None:
                child = node.children[segment] = _Node(node, segment)
            node = child
        return node

    def _find(self, pattern: str) -> _Node | None:
        node: _Node | None = self._root
        for segment in pattern.split("."):
            node = node.children.get(segment) if node is not None else None
        return node

    def _prune(self, node: _Node) -> None:
        while node.parent is not None and node.tables.size == 0 and not node.children:
            del node.parent.children[node.segment]
            node = node.parent

    def _resolve_name(self, event_name: str) -> tuple[_Node, ...]:
        found: dict[_Node, None] = {}  # insertion-ordered set: match order is stable
        _descend(self._root, tuple(event_name.split(".")), 0, found)
        nodes = tuple(found)
        if len(self._resolved) >= RESOLVE_CACHE_SIZE:
            del self._resolved[next(iter(self._resolved))]  # the oldest
        self._resolved[event_name] = nodes
        return nodes


def _arrive(node: _Node, segments: tuple[str, ...], position: int, found: dict[_Node, None]) -> None:
    if position == len(segments) and node.tables.size:
        found[node] = None
    _descend(node, segments, position, found)


def _descend(node: _Node, segments: tuple[str, ...], position: int, found: dict[_Node, None]) -> None:
    """Follow the children of ``node`` that match ``segments[position:]`` onwards."""
    if position < len(segments):
        exact = node.children.get(segments[position])
        if exact is not None:
            _arrive(exact, segments, position + 1, found)
        star = node.children.get("*")
        if star is not None:
            _arrive(star, segments, position + 1, found)
    globstar = node.children.get("**")
    if globstar is not None:
        for after in range(position, len(segments) + 1):  # "**" takes zero or more segments
            if after == len(segments) and globstar.tables.size:
                found[globstar] = None
            _descend(globstar, segments, after, found)
