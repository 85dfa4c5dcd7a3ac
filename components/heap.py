"""Long garbage-collector pauses, avoided: what a process built to start is frozen out of the collector.

CPython's full collection (generation 2) walks every tracked object of the process. A container worker
holds Crossbar, autobahn, Twisted, pydantic and our event classes: about 100 ms per full collection
on the machines of ``bench/``, several times a minute under load, during which the reactor stands
still (each such pause put about a hundred events behind it at 1,000 events/s, and was most of the p99).
Once a process has started, almost none of that ever becomes garbage: ``gc.freeze`` moves it to the
permanent generation, which no collection walks, and a full collection then walks only what was made
since (sessions, subscriptions, events under way).

A process calls ``freeze_started()`` when a component has started (again after each start: what that
start made is frozen too). Garbage made before the freeze that only the collector can free (cycles)
stays: one collection runs first, so that is only what was still in use then and dropped later, as a
component restarting drops its old session: a few objects per restart.
"""

from __future__ import annotations

import gc


def freeze_started() -> None:
    """Collect what is garbage now, then leave everything still alive out of future collections."""
    gc.collect()
    gc.freeze()
