"""Store threads: each owns a store connection, so that store work never runs on the reactor thread.

    thread = StoreThread(lambda: open_store(cfg.store))
    d = thread.run(lambda store: store.events_after(["demo.order"], 0, 500))

Each call runs, in the order asked, on the thread's one thread; the store object is created there
and never touched by any other thread (SQLite and psycopg connections are not to be shared between
threads). This is the only way our components reach the store: the store objects refuse statements
on the reactor thread (``components.store.guard``). A component may keep several store threads,
each with its own connection: calls to one thread are answered in the order they were asked, calls
to different threads in no particular order.

A store that does not answer (a statement past ``store.statement_timeout``, a connection lost or
refused, an SQLite file locked past its busy timeout) fails the call with ``StoreUnavailable``;
anything else the work raises fails it as raised.

``Inline`` runs the same work at once on the calling thread, for tests and tools with no reactor.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from components.exceptions import StoreUnavailable
from components.metrics.families import STORE_DURATION
from components.metrics.meter import Labels
from components.metrics.process_meter import METER
from components.store.base import Store

T = TypeVar("T")
P = ParamSpec("P")


class StoreRunner(Protocol):
    """Runs ``work(store, *args, **kwargs)`` where the store may be used; its result in a Deferred."""

    def run(self, work: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs) -> Deferred[T]: ...


class StoreThread:
    """One thread with its own store connection (opened on first use), answering in the order asked."""

    def __init__(self, open_store: Callable[[], Store], name: str = "store") -> None:
        self._open = open_store
        self._store: Store | None = None
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name=name)
        self._pool.start()
        self._stopped = False

    def run(self, work: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        """``work(store, *args, **kwargs)`` on the store's thread; its result (or failure) in a Deferred."""
        def call() -> T:
            try:
                if self._store is None:
                    self._store = self._open()
                started = time.perf_counter()
                try:
                    return work(self._store, *args, **kwargs)
                finally:
                    METER.observe(STORE_DURATION, _op_labels(work), time.perf_counter() - started)
            except Exception as exc:
                down = unavailable(exc)
                if down is None:
                    raise
                raise down from exc

        if self._stopped:  # the pool would drop it silently, and the Deferred would never fire
            return fail(StoreUnavailable(f"the store thread {self._pool.name} has stopped: its component left"))
        return deferToThreadPool(reactor, self._pool, call)

    def stop(self) -> None:
        """Finish what was asked, close the connection, end the thread, without waiting for it: what is
        queued (a component's last writes, as it leaves) still runs, and the process does not exit
        before it is done (each statement bounded by ``store.statement_timeout``)."""
        def close() -> None:
            if self._store is not None:
                self._store.close()
                self._store = None

        self._stopped = True
        self._pool.callInThread(close)
        # ThreadPool.stop joins the thread once the queue (close included) is done: not on the reactor's.
        threading.Thread(target=self._pool.stop, name=f"{self._pool.name}-stop").start()


def _op_labels(work: Callable[..., object]) -> Labels:
    """gateway_store_duration_seconds' ``op``: the work's function name (``other`` for a lambda)."""
    name = getattr(work, "__name__", "other").lstrip("_")
    return (("op", "other" if name.startswith("<") else name),)


class Inline:
    """A ``StoreRunner`` that runs the work at once, on the calling thread: its Deferred has fired
    when ``run`` returns. For tests and tools with no reactor (on a reactor thread, the store
    refuses: ``components.store.guard``)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def run(self, work: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        try:
            return succeed(work(self.store, *args, **kwargs))
        except Exception as exc:
            down = unavailable(exc)
            if down is None:
                return fail()  # with its traceback
            down.__cause__ = exc
            return fail(down)


def unavailable(exc: Exception) -> StoreUnavailable | None:
    """The StoreUnavailable ``exc`` amounts to if the store did not answer; None if it is anything else
    (the store refused what was asked, e.g. a duplicate id, or a bug of ours)."""
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
        return StoreUnavailable(f"the store file stayed locked by another process past the busy timeout ({exc})")
    psycopg = sys.modules.get("psycopg")  # imported only when the store is PostgreSQL
    if psycopg is not None and isinstance(exc, psycopg.OperationalError):
        if isinstance(exc, psycopg.errors.QueryCanceled):
            return StoreUnavailable(f"the PostgreSQL store did not answer within store.statement_timeout "
                                    f"({str(exc).strip()})")
        return StoreUnavailable(f"the PostgreSQL store cannot be reached ({str(exc).strip()})")
    return None
