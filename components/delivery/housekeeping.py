"""The dispatcher's housekeeping, every ``store.prune_interval``: what the store may forget.

Ids past the idempotency window, logged events past their class's retention, persistent
subscriptions whose client token expired (ended, their sessions told), and query grants nobody
subscribed to. On the store thread, in short transactions: delivery never waits for it.

``Housekeeping`` holds no WAMP session: the dispatcher gives it the store thread, the query
subscriptions, the registry, and what to do with a subscription that ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

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
                 end: Callable[[PersistentSubscription, str], None]) -> None:
        self._thread: StoreThread | None = thread
        self._queries = queries
        self._registry = registry
        self._window = window
        self._max_logged = max_logged
        self._end = end
        self._pruner = LoopingCall(self.prune)

    def start(self, interval: float) -> None:
        """Prune now, then every ``interval`` seconds."""
        self._pruner.start(interval, now=True)

    def stop(self) -> None:
        """No more pruning (the dispatcher is leaving: its store thread stops next)."""
        if self._pruner.running:
            self._pruner.stop()
        self._thread = None

    def prune(self) -> None:
        """Forget ids past the idempotency window, drop events past their retention, end the
        persistent subscriptions of expired client tokens."""
        self._queries.expire_unconfirmed()
        registry, window, most = self._registry(), self._window, self._max_logged

        def prune(store: Store) -> tuple[list[PersistentSubscription], int]:
            store.forget_before(time.time() - window)
            book = PersistentBook(store, lambda: registry, lambda: 0)
            return book.forget_orphans(), book.retain(most)

        def done(counts: tuple[list[PersistentSubscription], int]) -> None:
            orphans, dropped = counts
            for sub in orphans:
                self._end(sub, "its client token expired")
            if orphans:
                log.info("{n} persistent subscriptions ended with their expired client tokens", n=len(orphans))
            if dropped:
                log.info("event log: {n} events past their class's retention dropped", n=dropped)

        def failed(failure: Any) -> None:
            log.error("pruning the store failed: {err}", err=failure.getErrorMessage())

        if self._thread is not None:
            self._thread.run(prune).addCallbacks(done, failed)
