"""Row filters: a condition an event class imposes on every subscriber, in the query language.

    class OrderPlaced(Event, name="orders.placed"):
        class Rules:
            visibility = "authenticated"
            row_filter = "customer.id = $user"

is ANDed with every query that selects the class, with the subscriber's
session parameters (``$user``, ``$role``, ``$roles``) filled in: whatever
alice subscribes to, she only ever gets her own orders. A query selecting
several classes with different row filters becomes several *parts* (one per
distinct filter), all delivered on the query's one topic.

A class whose row filter reads ``$user`` is invisible to anonymous clients:
they have no user to compare with, and ``customer.id = null`` must not show
them the events that have no customer.

Pure: classes, queries and parameters in; canonical texts or errors out.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

from components.events import EventClass, Registry
from components.events.row_filters import SAMPLE_PARAMS, parse_row_filter
from components.query import And, CheckedQuery, Expr, Query, canonical, to_text, topic_key


def session_params(user: str | None, role: str, roles: tuple[str, ...]) -> dict[str, Any]:
    """The parameters a client's queries and the row filters see."""
    return {"user": user, "role": role, "roles": tuple(roles)}


class _Recording(Mapping[str, Any]):
    """The parameters, remembering which ones a text read."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = values
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _parse(cls: EventClass, params: Mapping[str, Any]) -> Query:
    assert cls.row_filter is not None
    return parse_row_filter(cls.name, cls.row_filter, params)


@functools.lru_cache(maxsize=1024)
def _reads(name: str, row_filter: str) -> frozenset[str]:
    recording = _Recording(SAMPLE_PARAMS)
    parse_row_filter(name, row_filter, recording)
    return frozenset(recording.read)


def reads(cls: EventClass) -> frozenset[str]:
    """The parameters a class's row filter uses (none without a row filter)."""
    if cls.row_filter is None:
        return frozenset()
    return _reads(cls.name, cls.row_filter)


def visible_with_row_filter(cls: EventClass, user: str | None) -> bool:
    """False when the row filter compares with ``$user`` and there is no user (an anonymous client)."""
    return user is not None or "user" not in reads(cls)


def row_filter(cls: EventClass, params: Mapping[str, Any]) -> Expr | None:
    """The class's row filter with the session's parameters filled in."""
    if cls.row_filter is None:
        return None
    return _parse(cls, params).where


def parts(checked: CheckedQuery, registry: Registry, params: Mapping[str, Any]) -> list[str]:
    """The canonical texts events are matched with for this subscriber: the query ANDed with each row filter.

    Classes without a row filter (or sharing one) stay together in one part;
    the texts are sorted, so the same query and parameters give the same parts.
    """
    groups: dict[str, tuple[Expr | None, list[str]]] = {}
    for name in checked.classes:
        extra = row_filter(registry.get(name), params)
        label = "" if extra is None else to_text(canonical(Query(("x.y",), extra)))
        groups.setdefault(label, (extra, []))[1].append(name)
    where = checked.query.where
    texts = []
    for extra, names in groups.values():
        condition = where if extra is None else extra if where is None else And((where, extra))
        texts.append(to_text(canonical(Query(tuple(sorted(names)), condition))))
    return sorted(set(texts))


def parts_key(texts: list[str]) -> str:
    """The topic key of a subscription matched by these parts (one part: the key of its text)."""
    return topic_key(texts[0]) if len(texts) == 1 else topic_key("\n".join(texts))
