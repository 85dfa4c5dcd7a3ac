"""Persistent subscriptions: kept with the client token (or the user), replayed from the event log.

A persistent subscription is a query topic like any other (same canonical
parts, same live topic) plus a row in the store: its owner (``token:<sha256
of the client token>``, or ``user:<id>`` for one a web-app made), the parts
and row filters it was made under, and ``last_seq``, the cursor the client
acknowledged. Every event of a class that has a persistent subscription is
written to the event log, once, before it is published (so before its 202).

Replay reads the log after a seq, in seq order and in pages, and keeps what
live delivery would have given this session: the subscription's parts (its
query, with the row filters it was made under), the class's visibility for
the session now, and the event's audience. ``truncated`` says that retention
dropped events of its classes after the requested seq.

How many there may be (``check_room``): per client token (fewer for an anonymous
client's), per user (those of the user's clients and those web-apps made for
the user), and for anonymous clients all together, as ``queries`` configures;
an anonymous client's token is stored only while one of these holds it.

No WAMP here: the dispatcher calls this with the caller's session.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from components.arguments import SEQ_MAX
from components.config import QueriesConfig
from components.events import Registry
from components.auth.credentials import digest
from components.query import parse
from components.query.compile import CompiledQuery, compile_query
from components.delivery.sessions import SessionInfo
from components.store.base import LoggedEvent, PersistentSubscription, Store

#: Ids of persistent subscriptions start with this (others' never do).
PERSISTENT_PREFIX = "p_"
#: Events per replay page, by default and at most.
PAGE = 500
MAX_PAGE = 5000
#: Transactions of 10,000 deletions per class per retention round (once a minute): 1.6M events a
#: minute at most, far above what the gateway can accept.
RETAIN_ROUNDS = 160
#: Log rows read at most per replay call (then ``more``, and ``next_after`` to go on from).
MAX_SCAN = 20_000
#: Rows read from the log per step while filling a page (most may not match).
_READ = 2000


class NotYours(LookupError):
    """No persistent subscription with this id belongs to the caller."""


class OverLimit(Exception):
    """One more persistent subscription would pass a configured bound: ``limit`` names its key."""

    def __init__(self, message: str, limit: str, maximum: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.maximum = maximum


def check_room(store: Store, limits: QueriesConfig, user: str | None, client_token: str | None) -> None:
    """Raise OverLimit if a new persistent subscription of this token (None: made by a web-app) for
    this user (None: an anonymous client) would pass a bound. Resuming one never gets here."""
    if client_token is not None:
        held = len(store.persistent_of([token_owner(client_token)]))
        if user is None:
            cap, key, who = (limits.max_persistent_per_anonymous_token, "queries.max_persistent_per_anonymous_token",
                             "an anonymous client")
        else:
            cap, key, who = limits.max_persistent_per_token, "queries.max_persistent_per_token", "a client"
        if held >= cap:
            raise OverLimit(f"this client keeps {held} persistent subscriptions; {who} may keep at most {cap} "
                            f"({key}): end one (gateway.unsubscribe) to make room", key, cap)
    if user is None:
        everyone = store.count_persistent(None)
        if everyone >= limits.max_anonymous_persistent:
            key = "queries.max_anonymous_persistent"
            raise OverLimit(f"anonymous clients keep {everyone} persistent subscriptions in all, the most this "
                            f"gateway allows ({key}); log in to keep one", key, limits.max_anonymous_persistent)
        return
    mine = store.count_persistent(user)
    if mine >= limits.max_persistent_per_user:
        key = "queries.max_persistent_per_user"
        raise OverLimit(f"this user has {mine} persistent subscriptions (made by their clients and for them); at most "
                        f"{limits.max_persistent_per_user} per user ({key}): end one to make room", key,
                        limits.max_persistent_per_user)


def owners(who: SessionInfo) -> list[str]:
    """The owners a session speaks for: its client token, and its user."""
    found = []
    if who.client_token is not None:
        found.append(token_owner(who.client_token))
    if who.user is not None:
        found.append(f"user:{who.user}")
    return found


def token_owner(client_token: str) -> str:
    return f"token:{digest(client_token)}"


@dataclass(frozen=True)
class _Compiled:
    classes: frozenset[str]
    parts: tuple[CompiledQuery, ...]

    def matches(self, event: str, data: dict[str, Any]) -> bool:
        return event in self.classes and any(
            event in part.selectors and part.matches(data) for part in self.parts)


def compile_parts(sub: PersistentSubscription, registry: Registry) -> _Compiled:
    """The subscription's parts, less classes whose row filter changed since it was made (fail closed)."""
    changed = {name for name, rule in sub.filters.items()
               if name not in registry or registry.get(name).row_filter != rule}
    parts = []
    for text in sub.parts:
        query = parse(text, max_length=1_000_000, max_depth=100)
        if any(s not in changed for s in query.selectors):
            parts.append(compile_query(query))
    return _Compiled(frozenset(sub.classes) - changed, tuple(parts))


def may_receive(who: SessionInfo, registry: Registry, event: str, audience: dict[str, Any] | None) -> bool:
    """Would live delivery give this session this event now (visibility, audience)?"""
    if event not in registry or not registry.get(event).visible_to(who.authrole, who.roles):
        return False
    if audience is None:
        return True
    if who.user is not None and who.user in audience.get("users", ()):
        return True
    held = {who.authrole, *who.roles}
    return any(role in held for role in audience.get("roles", ()))


def read_replay(store: Store, who: SessionInfo, sub: PersistentSubscription, compiled: _Compiled,
                registry: Registry, after_seq: int, limit: int = PAGE) -> dict[str, Any]:
    """The events after ``after_seq`` this session would have received on the subscription, in order.

    ``{"events": [...], "truncated": bool, "more": bool, "next_after": int, "last_seq": int}``: ``more``
    when the log may hold more (ask again with ``after_seq=next_after``, the last seq looked at, which
    may be past the last event returned); ``truncated`` when retention dropped events of its classes
    after ``after_seq``; ``last_seq`` the cursor acknowledged so far. At most MAX_SCAN log rows are
    read per call, so a selective query over a long log never holds the store thread for long.
    Only reads the store and pure values: it may run on the store thread.
    """
    classes = sorted(compiled.classes)
    found: list[dict[str, Any]] = []
    cursor = after_seq
    # An unpublished row below one published is superseded (its publish was refused, answered 503,
    # while higher seqs went out; a retry moves it to a new seq): never replayed. Those above it are
    # being published now (or their dispatcher died: the next one publishes them), and are replayed.
    superseded_below = store.last_published_seq() if classes else 0
    more = False
    scanned = 0
    while classes and len(found) < limit:
        if scanned >= MAX_SCAN:  # a selective query over a long log: the rest in the next call
            more = True
            break
        # Read about what the page still needs (twice, for rows the query skips), not a fixed chunk
        # that the next page would read again.
        rows = store.events_after(classes, cursor, min(_READ, max(64, 2 * (limit - len(found)))))
        scanned += len(rows)
        for row in rows:
            cursor = row.seq
            if not row.published and row.seq < superseded_below:
                continue
            data = json.loads(row.data)
            if not compiled.matches(row.event, data):
                continue
            audience = json.loads(row.audience) if row.audience is not None else None
            if may_receive(who, registry, row.event, audience):
                found.append({"event": row.event, "id": row.id, "seq": row.seq, "time": row.time, "data": data})
                if len(found) == limit:
                    break
        if len(found) == limit:
            more = bool(store.events_after(classes, cursor, 1))
        elif not rows:
            break
    truncated = bool(classes) and store.dropped_through(classes) > after_seq
    return {"events": found, "truncated": truncated, "more": more, "next_after": cursor, "last_seq": sub.last_seq}


def check_ack(seq: object) -> int:
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= SEQ_MAX:
        raise ValueError(f"seq must be a whole number from 0 to {SEQ_MAX}, not {seq!r}")
    return seq


class PersistentBook:
    """The persistent subscriptions, the event log's writer decisions, replay and acks, over one store
    object: made and used where that store may be used, on a store thread (the dispatcher's
    housekeeping makes one per round), or in tests and tools with no reactor."""

    def __init__(self, store: Store, registry: Callable[[], Registry], high_water: Callable[[], int],
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._registry = registry
        #: A seq no later event can have (the dispatcher's Sequencer.high_water).
        self._high_water = high_water
        self._clock = clock

    def create(self, owner: str, user: str | None, query: str, key: str, parts: list[str],
               filters: dict[str, str | None], classes: Iterable[str]) -> PersistentSubscription:
        """A new persistent subscription; its cursor starts now (no event accepted before it is replayed)."""
        sub = PersistentSubscription(id=PERSISTENT_PREFIX + secrets.token_urlsafe(12), owner=owner, user=user, query=query,
                                     key=key, parts=list(parts), filters=dict(filters),
                                     classes=sorted(set(classes)), last_seq=self._high_water(),
                                     created=self._clock())
        self._store.save_persistent(sub)
        return sub

    def of(self, who: SessionInfo) -> list[PersistentSubscription]:
        mine = owners(who)
        return self._store.persistent_of(mine) if mine else []

    def get(self, who: SessionInfo, subscription_id: object) -> PersistentSubscription:
        sub = self._store.persistent(str(subscription_id)) if isinstance(subscription_id, str) else None
        if sub is None or sub.owner not in owners(who):
            raise NotYours(f"no persistent subscription {subscription_id!r} of this client")
        return sub

    def high_water(self) -> int:
        """A seq no later event can have: where a new subscription starts."""
        return self._high_water()

    def for_user(self, user: str) -> list[PersistentSubscription]:
        """Those made for the user by a web-app, and those the user's clients made."""
        return [s for s in self._store.all_persistent() if s.user == user]

    def for_class(self, event: str) -> list[PersistentSubscription]:
        return self._store.persistent_for_class(event)

    def everyone(self) -> list[PersistentSubscription]:
        return self._store.all_persistent()

    def remove(self, subscription_id: str) -> PersistentSubscription | None:
        """End a subscription whoever owns it (the web-app's DELETE /subscriptions/<id>)."""
        return self._store.delete_persistent(subscription_id)

    def replay(self, who: SessionInfo, sub: PersistentSubscription, after_seq: int, limit: int = PAGE
               ) -> dict[str, Any]:
        """See ``read_replay`` (here on the caller's thread)."""
        registry = self._registry()
        return read_replay(self._store, who, sub, compile_parts(sub, registry), registry, after_seq, limit)

    def ack(self, who: SessionInfo, subscription_id: object, seq: object) -> int:
        sub = self.get(who, subscription_id)
        return self._store.ack(sub.id, check_ack(seq))

    def delete(self, who: SessionInfo, subscription_id: object) -> PersistentSubscription:
        sub = self.get(who, subscription_id)
        self._store.delete_persistent(sub.id)
        return sub

    def forget_orphans(self) -> list[PersistentSubscription]:
        """End the subscriptions whose client token is gone (expired, then pruned): they live as long
        as their token. Those made for a user stay until the web-app ends them."""
        gone = []
        for sub in self._store.all_persistent():
            if sub.owner.startswith("token:") and self._store.token(sub.owner.removeprefix("token:")) is None:
                self._store.delete_persistent(sub.id)
                gone.append(sub)
        return gone

    def retain(self, keep_at_most: int | None, transient: float | None = None) -> int:
        """Drop logged events past their class's retention (and past ``keep_at_most`` per class).

        ``transient`` (a cluster's ``log_retention``, where every event is logged): events of classes no
        persistent subscription selects are kept that long, those of the others at least that long."""
        registry = self._registry()
        dropped = 0
        subscribed = self._store.persistent_classes()
        # Every class that may have logged events: those of the definitions (a class whose last
        # persistent subscription is gone keeps its events until retention) and those subscribed to.
        for name in sorted({c.name for c in registry} | subscribed):
            retention = registry.get(name).retention.total_seconds() if name in registry else 0.0
            if transient is not None:
                retention = max(retention, transient) if name in subscribed else transient
            for _ in range(RETAIN_ROUNDS):  # 10,000 rows a transaction, until a short one
                n = self._store.drop_events(name, self._clock() - retention, keep_at_most)
                dropped += n
                if n < 10_000:
                    break
        return dropped
