"""One process's metrics, counted in memory: a dict update per event, no I/O, no message.

Counters and histograms are *cumulative*: a snapshot flattens them into series (a histogram into
``<name>_bucket{le}``, ``<name>_sum``, ``<name>_count``, buckets cumulative as Prometheus has them), each
a number that only grows. The totals saved by an earlier life of the process (``add_base``) are added
in, so that a process started again continues where it was. Gauges are read when a snapshot is taken,
from the providers the components set (``provide``), each saying how the node sums them: ``sum`` (each
process counts its own) or ``max`` (each process sees the whole node, e.g. the router's sessions).

Thread-safe: the store threads record their timings here too; one uncontended lock per update.

Switched off (``metrics.enabled: false``, ``switch(False)``), ``count`` and ``observe`` are no-ops: the
instance's own attributes shadow the methods, so that the enabled path looks them up exactly as before
(no flag tested per event) and the disabled one costs a call that does nothing.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: Upper bounds (seconds) of every histogram's buckets: the same everywhere, so that the node's histogram
#: is the sum of the processes' bucket counts. From 0.5 ms (a match, a store read) to 10 s (a timeout).
BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: A series' labels as (name, value) pairs, in the order the family defines them.
Labels = tuple[tuple[str, str], ...]
#: A series as it travels and is stored: (series name, labels as canonical JSON text).
SeriesKey = tuple[str, str]
Mode = Literal["sum", "max"]
#: A gauge provider's readings: (name, labels, value).
GaugeReadings = Iterable[tuple[str, Labels, float]]


def labels_text(labels: Labels | Mapping[str, str]) -> str:
    """The canonical text of a label set (sorted keys, compact JSON): one series, one key."""
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))


def le_text(bound: float) -> str:
    """A bucket's ``le`` as Prometheus writes it."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


@dataclass(frozen=True)
class Snapshot:
    """What one process reports at a scrape: its identity, its cumulative series, its gauges (with modes)."""

    identity: str
    counters: Mapping[SeriesKey, float]
    gauges: Mapping[SeriesKey, tuple[float, Mode]] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {"identity": self.identity,
                "counters": [[n, lb, v] for (n, lb), v in self.counters.items()],
                "gauges": [[n, lb, v, m] for (n, lb), (v, m) in self.gauges.items()]}

    @staticmethod
    def from_wire(wire: Mapping[str, Any]) -> Snapshot:
        """A snapshot as ``to_wire`` sent it; a malformed one raises ValueError."""
        try:
            counters = {(str(n), str(lb)): float(v) for n, lb, v in wire["counters"]}
            gauges: dict[SeriesKey, tuple[float, Mode]] = {
                (str(n), str(lb)): (float(v), "max" if m == "max" else "sum") for n, lb, v, m in wire["gauges"]}
            return Snapshot(str(wire["identity"]), counters, gauges)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"a malformed metrics snapshot: {exc}") from None


class Meter:
    """Counters, histograms and gauge providers of one process."""

    def __init__(self, identity: str) -> None:
        self.identity = identity
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, Labels], float] = {}
        #: (name, labels) -> [count per bucket (not cumulative; the last is +Inf), sum]
        self._histograms: dict[tuple[str, Labels], tuple[list[int], list[float]]] = {}
        self._base: dict[SeriesKey, float] = {}
        self._providers: dict[str, tuple[Callable[[], GaugeReadings], Mode]] = {}

    @property
    def enabled(self) -> bool:
        return "count" not in vars(self)

    def switch(self, enabled: bool) -> None:
        """Count (the default), or not at all: ``count`` and ``observe`` then do nothing."""
        if enabled:
            vars(self).pop("count", None)
            vars(self).pop("observe", None)
        else:
            # Instance attributes shadow the methods (functions are non-data descriptors): the enabled
            # path's look-up is unchanged, the disabled one finds this no-op first.
            vars(self)["count"] = _nothing
            vars(self)["observe"] = _nothing

    def count(self, name: str, labels: Labels = (), n: float = 1) -> None:
        key = (name, labels)
        with self._lock:
            self._counters[key] = self._counters.get(key, 0) + n

    def observe(self, name: str, labels: Labels, seconds: float) -> None:
        key = (name, labels)
        with self._lock:
            hist = self._histograms.get(key)
            if hist is None:
                hist = self._histograms[key] = ([0] * (len(BUCKETS) + 1), [0.0])
            hist[0][bisect.bisect_left(BUCKETS, seconds)] += 1
            hist[1][0] += seconds

    def add_base(self, series: Mapping[SeriesKey, float]) -> None:
        """Add totals an earlier life of this process saved: counting goes on from them."""
        with self._lock:
            for key, value in series.items():
                self._base[key] = self._base.get(key, 0) + value

    def provide(self, source: str, readings: Callable[[], GaugeReadings], mode: Mode = "sum") -> None:
        """Gauges read at each snapshot (a component that starts again replaces its own)."""
        self._providers[source] = (readings, mode)

    def withdraw(self, source: str) -> None:
        self._providers.pop(source, None)

    def series(self) -> dict[SeriesKey, float]:
        """Every cumulative series: counters, histograms flattened, saved totals added."""
        with self._lock:
            counters = list(self._counters.items())
            histograms = [(key, (list(counts), total[0])) for key, (counts, total) in self._histograms.items()]
            out = dict(self._base)
        for (name, labels), value in counters:
            key = (name, labels_text(labels))
            out[key] = out.get(key, 0) + value
        for (name, labels), (counts, total) in histograms:
            running = 0
            for bound, n in zip((*BUCKETS, float("inf")), counts):
                running += n
                key = (name + "_bucket", labels_text((*labels, ("le", le_text(bound)))))
                out[key] = out.get(key, 0) + running
            for suffix, value in (("_sum", total), ("_count", running)):
                key = (name + suffix, labels_text(labels))
                out[key] = out.get(key, 0) + value
        return out

    def snapshot(self) -> Snapshot:
        gauges: dict[SeriesKey, tuple[float, Mode]] = {}
        for readings, mode in list(self._providers.values()):
            for name, labels, value in readings():
                gauges[(name, labels_text(labels))] = (float(value), mode)
        return Snapshot(self.identity, self.series(), gauges)


def _nothing(*args: Any, **kwargs: Any) -> None:
    """``count`` and ``observe`` of a meter switched off."""
