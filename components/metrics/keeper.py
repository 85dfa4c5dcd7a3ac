"""The process's metrics over WAMP and in the store: each component offers the process's snapshot at
``gateway.internal.metrics.<session>``; the process saves its totals every few seconds on a store thread
of its own (off the reactor thread, never per event) and, when it starts, continues from what it saved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from components import uris
from components.metrics.aggregate import NODE_IDENTITY, NodeTotals
from components.metrics.meter import Meter, SeriesKey
from components.metrics.process_meter import METER
from components.store.base import Store
from components.store.thread import StoreThread

#: Seconds between two saves of the process's totals: what a killed process loses at most.
SAVE_INTERVAL = 3.0

log = Logger()

Saved = dict[str, dict[SeriesKey, float]]


def _load_totals(store: Store) -> Saved:
    return store.saved_metrics()


def _save_totals(store: Store, identity: str, series: Mapping[SeriesKey, float]) -> None:
    store.save_metrics(identity, [(name, labels, value) for (name, labels), value in series.items()])


def _save_reported(store: Store, by_identity: Mapping[str, Mapping[SeriesKey, float]]) -> None:
    for identity, series in by_identity.items():
        _save_totals(store, identity, series)


class Keeper:
    """Loads the process's saved totals once, then saves them every SAVE_INTERVAL seconds."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self._thread: StoreThread | None = None
        self._ready = False
        self._waiting: list[Deferred[None]] = []
        self._loop: LoopingCall | None = None
        self._saving = False

    def start(self, open_store: Callable[[], Store]) -> Deferred[None]:
        """Once per process (later calls wait for the first): load the saved totals, start saving."""
        if self._ready:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiting.append(waiter)
        if self._thread is None:
            self._thread = StoreThread(open_store, name="metrics-store")
            self._thread.run(_load_totals).addCallback(self._continue_from).addBoth(self._settle)
        return waiter

    def _settle(self, result: Any) -> None:
        waiting, self._waiting = self._waiting, []
        if isinstance(result, Failure):
            if self._thread is not None:
                self._thread.stop()
            self._thread = None  # the next component's start tries again
        else:
            self._ready = True
        for waiter in waiting:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(None)

    def _continue_from(self, saved: Saved) -> None:
        self.meter.add_base(saved.get(self.meter.identity, {}))
        self._loop = LoopingCall(self.save)
        self._loop.start(SAVE_INTERVAL, now=False)

    def save(self) -> Deferred[None] | None:
        """Save the totals now (skipped while a save is under way)."""
        if self._thread is None or self._saving:
            return None
        self._saving = True

        def done(result: Any) -> None:
            self._saving = False
            if isinstance(result, Failure):
                log.warn("saving the metrics failed: {err}", err=result.getErrorMessage())
        d = self._thread.run(_save_totals, self.meter.identity, self.meter.series())
        return d.addBoth(done)

    def saved(self) -> Deferred[Saved]:
        """Every process's saved totals and the node's high water (``NODE_IDENTITY``)."""
        assert self._thread is not None, "start() first"
        return self._thread.run(_load_totals)

    def raise_reported(self, totals: NodeTotals) -> Deferred[None]:
        """After a scrape: save what each live process reported and the node's totals (the high water)."""
        assert self._thread is not None, "start() first"
        return self._thread.run(_save_reported, {**totals.reported, NODE_IDENTITY: totals.counters})

    def offer(self, session: Any) -> Deferred[Any]:
        """Register ``gateway.internal.metrics.<session>`` answering the process's snapshot."""
        d: Deferred[Any] = session.register(lambda: self.meter.snapshot().to_wire(),
                                            uris.internal_metrics(session._session_id))
        return d



#: This process's keeper.
KEEPER = Keeper(METER)
