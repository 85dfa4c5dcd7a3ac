"""The node's totals from what its processes report: the same whichever bridge sums, never going back.

- A process reports cumulative series (``Meter.series``); three components share a process, so the
  snapshots of one identity (the container's name) are merged by maximum, never added.
- A process that is gone (a container killed) reports nothing, but its last saved totals still count:
  the node's counters do not drop when a process does. A live process counts at least what it saved.
- A process killed loses what it counted since it last saved (a few seconds). So after each scrape the
  bridge saves what every live process reported (``NodeTotals.reported``): a process's saved totals are
  at least what any scrape showed of it, and its next life starts from there. And the node's totals are
  at least the *high water*, the most any scrape reported (kept in the store under ``NODE_IDENTITY``).
- Gauges come from live processes only, summed or taken at their maximum as each provider says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from components.metrics.meter import SeriesKey, Snapshot

#: The store's key of the node's high water (no container is named so).
NODE_IDENTITY = "*node*"


@dataclass(frozen=True)
class NodeTotals:
    counters: dict[SeriesKey, float]
    gauges: dict[SeriesKey, float]
    #: What each live process reported (its snapshots merged): saved after the scrape, so that a process
    #: killed later counts at least what a scrape showed of it.
    reported: dict[str, dict[SeriesKey, float]]


def node_totals(live: Iterable[Snapshot], saved: Mapping[str, Mapping[SeriesKey, float]]) -> NodeTotals:
    """The node's counters (each process: max of what it reports and what it saved; summed over processes;
    at least the high water ``saved[NODE_IDENTITY]``) and its gauges (from ``live`` alone)."""
    per_identity: dict[str, dict[SeriesKey, float]] = {
        identity: dict(series) for identity, series in saved.items() if identity != NODE_IDENTITY}
    reported: dict[str, dict[SeriesKey, float]] = {}
    gauges: dict[SeriesKey, float] = {}
    gauge_seen: dict[tuple[str, SeriesKey], float] = {}
    for snapshot in live:
        mine = per_identity.setdefault(snapshot.identity, {})
        told = reported.setdefault(snapshot.identity, {})
        for key, value in snapshot.counters.items():
            # A series at 0 counts too: whether it shows must not depend on whether it was saved yet.
            if key not in mine or value > mine[key]:
                mine[key] = value
            if key not in told or value > told[key]:
                told[key] = value
        for key, (value, mode) in snapshot.gauges.items():
            # A process answers once per component: its gauges count once (the largest reading).
            seen = gauge_seen.get((snapshot.identity, key))
            if seen is not None and seen >= value:
                continue
            gauge_seen[(snapshot.identity, key)] = value
            if mode == "max":
                gauges[key] = max(gauges.get(key, value), value)
            else:
                gauges[key] = gauges.get(key, 0) - (seen or 0) + value
    counters: dict[SeriesKey, float] = {}
    for series in per_identity.values():
        for key, value in series.items():
            counters[key] = counters.get(key, 0) + value
    for key, value in saved.get(NODE_IDENTITY, {}).items():
        if value > counters.get(key, 0):
            counters[key] = value
    return NodeTotals(counters, gauges, reported)
