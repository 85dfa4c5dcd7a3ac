"""The active dispatcher's housekeeping, every ``store.prune_interval``: what the store may forget.

Only the dispatcher holding leadership runs it (``leadership``), from when it took over: one round
at a time, and one notice to a session whose subscription ended, not one per dispatcher.

Ids past the idempotency window, logged events past their class's retention, persistent
subscriptions whose client token expired (ended, their sessions told), and query grants nobody
subscribed to. On the store thread, in short transactions: delivery never waits for it. Each
round then counts the event log's rows by class (``event_log``: what ``gateway.internal.stats``
answers), a read of the log's class index, as retention's count bound makes anyway.

``Housekeeping`` holds no WAMP session: the dispatcher gives it the store thread, the query
subscriptions, the registry, and what to do with a subscription that ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from components.delivery.persistent import PersistentBook
from components.delivery.subscriptions import QuerySubscriptions
from components.events import Registry
from components.store.base import PersistentSubscription, Store
from components.store.thread import StoreThread

log = Logger()


class Housekeeping:
    def __init__(self, thread: StoreThread, queries: QuerySubscriptions, registry: Callable[[], Registry],
                 window: float, max_logged: int | None,
                 end: Callable[[PersistentSubscription, str], object], transient: float | None = None) -> None:
        """``transient``: in a cluster, how long the shared log keeps events no persistent subscription
        selects (``cluster.log_retention``)."""
        self._thread: StoreThread | None = thread
        self._transient = transient
        self._queries = queries
        self._registry = registry
        self._window = window
        self._max_logged = max_logged
        self._end = end
        self._pruner = LoopingCall(self.prune)
        #: The event log as the last round left it: ``{"rows", "by_class", "counted_at"}``.
        self.event_log: dict[str, Any] = {"rows": None, "by_class": {}, "counted_at": None}

    def start(self, interval: float) -> None:
        """Prune now, then every ``interval`` seconds."""
        self._pruner.start(interval, now=True)

    def stop(self) -> None:
        """No more pruning (the dispatcher is leaving: its store thread stops next)."""
        if self._pruner.running:
            self._pruner.stop()
        self._thread = None

    def prune(self) -> Deferred[None] | None:
        """Forget ids past the idempotency window, drop events past their retention, end the
        persistent subscriptions of expired client tokens. The next round is not due before this one
        is done (the LoopingCall waits for the Deferred): on a slow store, rounds never pile up."""
        self._queries.expire_unconfirmed()
        registry, window, most, transient = self._registry(), self._window, self._max_logged, self._transient

        def prune(store: Store) -> tuple[list[PersistentSubscription], int, dict[str, int]]:
            store.forget_before(time.time() - window)
            book = PersistentBook(store, lambda: registry, lambda: 0)
            return book.forget_orphans(), book.retain(most, transient), store.event_log_rows()

        def done(counts: tuple[list[PersistentSubscription], int, dict[str, int]]) -> None:
            orphans, dropped, rows = counts
            self.event_log = {"rows": sum(rows.values()), "by_class": rows, "counted_at": time.time()}
            for sub in orphans:
                self._end(sub, "its client token expired")
            if orphans:
                log.info("{n} persistent subscriptions ended with their expired client tokens", n=len(orphans))
            if dropped:
                log.info("event log: {n} events past their class's retention dropped", n=dropped)

        def failed(failure: Any) -> None:
            log.error("pruning the store failed: {err}", err=failure.getErrorMessage())

        if self._thread is None:
            return None
        return self._thread.run(prune).addCallbacks(done, failed)
