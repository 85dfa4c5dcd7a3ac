"""The live query index: which query topics have (or are about to have) subscribers, and which an event goes to.

Which queries are live is the router's own knowledge: the meta events
``wamp.subscription.on_create`` / ``on_delete`` (first subscriber came, last
one left) add a query to the index and take it out (``created``,
``deleted``); at start-up the index is rebuilt by feeding it, the same way,
every subscription of ``wamp.subscription.list``. A query nobody subscribes
to costs nothing.

``gateway.subscribe`` adds the query at once (``grant``), so that an event
posted right after the client's SUBSCRIBED is matched even before the meta
event arrives; a query granted but never subscribed to leaves the index
``UNCONFIRMED_TTL`` seconds later (``expire_unconfirmed``).

How each query topic was made (its parts and the row filters of its classes, ``Made``) is the
store's; the index asks for it (``created`` names the key) and is told it (``made``) rather than
reading the store itself, so that the caller can look it up on a store thread. A topic whose last
subscriber left before the answer came is not indexed. The index keeps the record of every topic
it holds, so that ``recompile`` needs no store.

A session that unsubscribed from a query (``gateway.unsubscribe``) may still
be subscribed to its topic: it is excluded from the topic's publishes
(``exclude``) until it leaves the topic or the gateway. Crossbar can remove a
subscriber, but autobahn-python drops its connection when told so.

Each query has two topics: ``gateway.query.<key>`` and its batched twin ``gateway.batch.query.<key>``
(``batching``). The router's meta events and grants say which of the two have (or are about to have)
subscribers; an event goes to those only (``targets``). While no batched topic has one, an event's
topics are found as before, at the cost of one check.

The texts to match a topic with come from ``current(key, made)``: as the query
was made, less the classes whose row filter changed since; None when there are
none (or the store does not know the topic), and the topic stays *dormant*
(subscribed to, matching nothing) until a reload (``recompile``) brings them back.

Pure: no store, no Twisted, no I/O. Time is the ``clock`` it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from components import uris
from components.query import QueryError, parse
from components.query.compile import compile_query
from components.query.index import QueryIndex

#: A query granted but not subscribed to within this many seconds leaves the index.
UNCONFIRMED_TTL = 60.0

#: How a query topic was made, as the store keeps it: its parts (canonical texts), and the row filter
#: of each class it selects (None: not recorded, made before row filters were).
Made = tuple[list[str], dict[str, str | None] | None]
#: The texts (parts) to match the query topic ``key`` with now, from how it was made; None if none are left.
Current = Callable[[str, Made], list[str] | None]
#: (topic, sessions to exclude) of a query topic an event goes to.
Target = tuple[str, list[int]]
_NO_TARGETS: tuple[Target, ...] = ()
#: Seconds, from any fixed point: only differences are used.
Clock = Callable[[], float]
#: Told of a query that cannot be indexed: (key, texts, error). Its texts are
#: canonical ones the gateway wrote itself, so only a bug gets here.
Unindexable = Callable[[str, list[str], QueryError], None]


def _ignore(key: str, texts: list[str], error: QueryError) -> None:
    pass


class LiveQueries:
    """The query topics that have subscribers on the router, compiled into one ``QueryIndex``."""

    def __init__(self, current: Current, clock: Clock, unindexable: Unindexable = _ignore) -> None:
        self._current = current
        self._clock = clock
        self._unindexable = unindexable
        self.index: QueryIndex[str] = QueryIndex()
        #: query key -> its entries in the index (itself, or ``<key>/<n>`` per part)
        self._indexed: dict[str, list[str]] = {}
        #: index entry of a part -> the query key it belongs to
        self._part_of: dict[str, str] = {}
        #: live query keys that match nothing under the current classes (their row filters changed)
        self._dormant: set[str] = set()
        #: query key -> how it was made, for every key indexed or dormant the store knows
        self._made: dict[str, Made] = {}
        #: router subscription id -> query key, for the live query topics
        self._live: dict[int, str] = {}
        #: ... and for the live batched query topics (``gateway.batch.query.<key>``)
        self._live_batched: dict[int, str] = {}
        #: query key -> when it was added by gateway.subscribe without a subscriber yet
        self._unconfirmed: dict[str, float] = {}
        #: ... the same for its batched topic (``gateway.subscribe(query, batch=True)``)
        self._unconfirmed_batched: dict[str, float] = {}
        #: query keys whose batched topic is published to (live, or granted and not yet subscribed to)
        self._batched: set[str] = set()
        #: ... of those, the keys whose unbatched topic is not (nobody holds or was just granted it)
        self._batched_only: set[str] = set()
        #: query key -> sessions that called gateway.unsubscribe but may still be
        #: subscribed to the topic: publishes exclude them.
        self._revoked: dict[str, set[int]] = {}
        #: ... the same for the batched topics: a session may hold both topics of a key, and leaving one
        #: must not lift its exclusion from the other
        self._revoked_batched: dict[str, set[int]] = {}

    def __contains__(self, key: object) -> bool:
        """Whether the query topic ``key`` is in the index (live, or granted and not yet subscribed to)."""
        return key in self._indexed

    @property
    def subscribed(self) -> int:
        """How many queries have a subscriber on the router, on either topic (``gateway_live_queries``)."""
        return len(set(self._live.values()) | set(self._live_batched.values()))

    @property
    def batching(self) -> bool:
        """Whether any query's batched topic is published to."""
        return bool(self._batched)

    @property
    def dormant(self) -> frozenset[str]:
        """The live query topics that match nothing under the current classes."""
        return frozenset(self._dormant)

    def topics_for(self, event: str, data: dict[str, Any]) -> list[Target]:
        """(topic, sessions to exclude) for every live unbatched query topic the event matches."""
        return self.targets(event, data)[0]

    def targets(self, event: str, data: dict[str, Any]) -> tuple[list[Target], Sequence[Target]]:
        """(unbatched, batched): (topic, sessions to exclude) for every live query topic the event matches,
        the unbatched ``gateway.query.<key>`` and the batched ``gateway.batch.query.<key>`` apart."""
        matched = self.index.match(event, data)
        keys = {self._part_of.get(k, k) for k in matched} if self._part_of else matched
        if not self._batched:  # the common case: no batched subscriber anywhere
            return [(uris.query_topic(key), sorted(self._revoked.get(key, ()))) for key in keys], _NO_TARGETS
        plain: list[Target] = []
        batched: list[Target] = []
        for key in keys:
            if key not in self._batched_only:
                plain.append((uris.query_topic(key), sorted(self._revoked.get(key, ()))))
            if key in self._batched:
                batched.append((uris.batch_query_topic(key), sorted(self._revoked_batched.get(key, ()))))
        return plain, batched

    # -- the router's meta events ----------------------------------------------

    def created(self, session_id: int, subscription: Mapping[str, Any]) -> str | None:
        """``wamp.subscription.on_create``: the first subscriber of a topic arrived.

        Also each subscription of ``wamp.subscription.list`` (with ``wamp.subscription.get``'s details)
        when the index is rebuilt at start-up. Returns the key of a query topic the index does not
        hold yet: look up how it was made and tell ``made``; None if nothing is to be looked up.
        """
        found = uris.query_key(str(subscription.get("uri", "")))
        if found is None:
            return None
        key, batched = found
        (self._live_batched if batched else self._live)[int(subscription["id"])] = key
        (self._unconfirmed_batched if batched else self._unconfirmed).pop(key, None)
        self._variants(key)
        if key in self._indexed or key in self._dormant:
            return None
        return key

    def made(self, key: str, made: Made | None) -> None:
        """How the query topic ``key`` was made (None: the store does not know it), as ``created`` asked:
        indexed, unless its subscribers left before the answer came or a grant indexed it meanwhile."""
        if key in self._indexed or key in self._dormant or not self._is_live(key):
            return
        texts = self._current(key, made) if made is not None else None
        if made is not None:
            self._made[key] = made
        if texts:
            self._add(key, texts)
        else:
            self._dormant.add(key)

    def unsubscribed(self, session_id: int, subscription_id: int) -> None:
        """``wamp.subscription.on_unsubscribe``: a session left a topic; nothing to exclude any more."""
        plain = self._live.get(int(subscription_id))
        key, revoked = (plain, self._revoked) if plain is not None else \
            (self._live_batched.get(int(subscription_id)), self._revoked_batched)
        if key is not None and key in revoked:  # only from the topic it left
            revoked[key].discard(int(session_id))
            if not revoked[key]:
                del revoked[key]

    def deleted(self, session_id: int, subscription_id: int) -> None:
        """``wamp.subscription.on_delete``: the last subscriber left; the query costs nothing more."""
        key = self._live.pop(int(subscription_id), None)
        if key is None:
            key = self._live_batched.pop(int(subscription_id), None)
        if key is None:
            return
        if self._wanted(key):
            self._variants(key)
        else:
            self._forget(key)

    # -- grants ------------------------------------------------------------------

    def grant(self, key: str, session: int, made: Made, batched: bool = False) -> None:
        """``session`` may subscribe to the topic of ``key`` (made as ``made`` says), its batched one if
        ``batched``: it is no longer excluded, and the query is indexed (and that topic published to)
        until its first subscriber comes."""
        for revoked in (self._revoked, self._revoked_batched):
            revoked.get(key, set()).discard(session)
        if key in self._indexed:
            self.want(key, batched)
            return
        texts = self._current(key, made)
        if not texts:
            return
        self._made[key] = made
        self._dormant.discard(key)
        self._add(key, texts)
        (self._unconfirmed_batched if batched else self._unconfirmed)[key] = self._clock()
        self._variants(key)

    def want(self, key: str, batched: bool) -> None:
        """A session may subscribe to this topic of the indexed query ``key`` now (the authorizer said
        so): publish to it from now on, until its first subscriber comes or ``UNCONFIRMED_TTL``."""
        if key not in self._indexed:
            return
        live = self._live_batched if batched else self._live
        if key not in live.values():
            (self._unconfirmed_batched if batched else self._unconfirmed).setdefault(key, self._clock())
            self._variants(key)

    def exclude(self, key: str, session: int) -> None:
        """``session`` lost the topic of ``key`` but may still be subscribed to it: publish around it."""
        for revoked in (self._revoked, self._revoked_batched):  # whichever of its topics it holds
            revoked.setdefault(key, set()).add(session)

    def session_left(self, session_id: int) -> None:
        """The session is gone: nothing to exclude it from any more."""
        for revoked in (self._revoked, self._revoked_batched):
            for key in list(revoked):
                revoked[key].discard(int(session_id))
                if not revoked[key]:
                    del revoked[key]

    def expire_unconfirmed(self) -> None:
        """Drop the queries granted more than ``UNCONFIRMED_TTL`` seconds ago that nobody subscribed to."""
        cutoff = self._clock() - UNCONFIRMED_TTL
        for unconfirmed in (self._unconfirmed, self._unconfirmed_batched):
            for key, since in list(unconfirmed.items()):
                if since < cutoff:
                    del unconfirmed[key]
                    if self._wanted(key):
                        self._variants(key)
                    else:
                        self._forget(key)

    # -- the classes changed ---------------------------------------------------

    def recompile(self) -> None:
        """After a reload: compile every live query again, from what ``current`` says now of how it was made."""
        for key in [*self._indexed, *self._dormant]:
            made = self._made.get(key)
            if made is None:
                continue  # unknown to the store: dormant until a grant says how it was made
            texts = self._current(key, made)
            self._remove(key)
            self._dormant.discard(key)
            if texts:
                self._add(key, texts)
            else:
                self._dormant.add(key)  # still subscribed to: a later reload may bring it back

    def _add(self, key: str, texts: list[str]) -> None:
        """Index a query topic: one entry, or one per part (``<key>/<n>``) when row filters split it."""
        try:
            # Texts we stored were accepted under some config; the config caps depth at 100.
            compiled = [compile_query(parse(t, max_length=1_000_000, max_depth=100)) for t in texts]
        except QueryError as exc:
            self._unindexable(key, texts, exc)
            return
        if len(compiled) == 1:
            self.index.add(key, compiled[0])
            self._indexed[key] = [key]
            return
        entries = [f"{key}/{n}" for n in range(len(compiled))]
        for entry, part in zip(entries, compiled):
            self.index.add(entry, part)
            self._part_of[entry] = key
        self._indexed[key] = entries

    def _is_live(self, key: str) -> bool:
        return key in self._live.values() or key in self._live_batched.values()

    def _wanted(self, key: str) -> bool:
        """Whether either topic of the query has a subscriber or a grant waiting for one."""
        return key in self._unconfirmed or key in self._unconfirmed_batched or self._is_live(key)

    def _variants(self, key: str) -> None:
        """Which of the query's two topics are published to, after a change of their subscribers or grants."""
        batched = key in self._unconfirmed_batched or key in self._live_batched.values()
        plain = key in self._unconfirmed or key in self._live.values()
        if batched:
            self._batched.add(key)
        else:
            self._batched.discard(key)
        if batched and not plain:
            self._batched_only.add(key)
        else:
            self._batched_only.discard(key)

    def _forget(self, key: str) -> None:
        """Out of the index, no longer dormant, its record dropped."""
        self._remove(key)
        self._dormant.discard(key)
        self._made.pop(key, None)
        self._batched.discard(key)
        self._batched_only.discard(key)

    def _remove(self, key: str) -> None:
        for entry in self._indexed.pop(key, []):
            self.index.remove(entry)
            self._part_of.pop(entry, None)
