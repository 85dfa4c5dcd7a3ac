"""A thread that owns a store connection, so that store work never blocks the reactor.

    thread = StoreThread(lambda: open_store(cfg.store))
    d = thread.run(lambda store: store.events_after(["demo.order"], 0, 500))

Each call runs, in order, on the one thread; the store object is created
there and never touched by any other thread (SQLite and psycopg connections
are not to be shared between threads). A component keeps its own thread,
with its own connection, beside any connection the reactor thread still
uses for quick lookups.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from components.store.base import Store

T = TypeVar("T")


class StoreThread:
    def __init__(self, open_store: Callable[[], Store], name: str = "store") -> None:
        self._open = open_store
        self._store: Store | None = None
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name=name)
        self._pool.start()

    def run(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> Deferred[T]:
        """``work(store, *args, **kwargs)`` on the store's thread; its result (or failure) in a Deferred."""
        def call() -> T:
            if self._store is None:
                self._store = self._open()
            return work(self._store, *args, **kwargs)

        return deferToThreadPool(reactor, self._pool, call)

    def stop(self) -> None:
        """Finish what was asked, close the connection, end the thread."""
        def close() -> None:
            if self._store is not None:
                self._store.close()
                self._store = None

        self._pool.callInThread(close)
        self._pool.stop()  # joins the thread once the queue (close included) is done
