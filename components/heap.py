"""Long garbage-collector pauses, avoided: what a process built to start is frozen out of the collector.

CPython's full collection (generation 2) walks every tracked object of the process. A container worker
holds Crossbar, autobahn, Twisted, pydantic and our event classes: about 100 ms per full collection
on the machines of ``bench/``, several times a minute under load, during which the reactor stands
still (each such pause put about a hundred events behind it at 1,000 events/s: the p99.9 of
``bench/delivery.py`` was 120-150 ms). Once a process has started, almost none of that becomes
garbage: ``gc.freeze`` moves it to the permanent generation, which no collection walks, and a full
collection then walks only what was made since (sessions, subscriptions, events under way): 0.2-0.4 ms
in the benchmark's minutes of load, growing with what the process keeps from then on.

``refreeze_soon()`` is asked when a component has started and when event definitions were reloaded,
and in the router once it has started: a moment later (``DELAY``: the calls of a process's components
starting together go as one, and what a reload replaced is no longer held by the requests under way),
what was frozen goes back to the collector, one full collection frees what died since the last freeze
(a restarted component's old session, a reloaded registry's classes: cycles, which only the collector
frees), and what is alive is frozen again. That one collection is the pause these moments cost.
"""

from __future__ import annotations

import gc
from typing import Any

#: Seconds between the moment a refreeze is asked and the refreeze.
DELAY = 2.0

_asked: Any = None  # the DelayedCall of the refreeze asked, until it runs


def refreeze() -> None:
    """Collect everything that is garbage now, frozen before or not; then leave what is alive out of future
    collections."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def refreeze_soon(clock: Any = None) -> None:
    """``refreeze()`` in ``DELAY`` seconds, on the reactor thread (``clock``: the reactor unless given);
    asked again meanwhile, still once."""
    global _asked
    if _asked is not None and _asked.active():
        return
    if clock is None:
        from twisted.internet import reactor as clock  # only where a reactor runs: not in the unit tests

    def run() -> None:
        global _asked
        _asked = None
        refreeze()
    _asked = clock.callLater(DELAY, run)
