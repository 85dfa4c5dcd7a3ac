"""The node's totals in the Prometheus text format, written by prometheus_client.

Only the families of ``families.FAMILIES`` are written (a series of another name is a bug of ours and
is left out); a family with no series yet is still announced (HELP and TYPE), so dashboards find it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from components.metrics.families import FAMILIES, Family
from components.metrics.meter import SeriesKey

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render(counters: Mapping[SeriesKey, float], gauges: Mapping[SeriesKey, float]) -> bytes:
    """The exposition of these series (counters and histograms flattened as ``Meter.series`` makes them)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Totals({**counters, **gauges}))
    return generate_latest(registry)


class _Totals(Collector):
    def __init__(self, series: Mapping[SeriesKey, float]) -> None:
        self._by_name: dict[str, list[tuple[dict[str, str], float]]] = {}
        for (name, labels), value in sorted(series.items()):
            self._by_name.setdefault(name, []).append((json.loads(labels), value))

    def collect(self) -> Iterator[Metric]:
        for family in FAMILIES.values():
            yield self._family(family)

    def _family(self, family: Family) -> Metric:
        base = family.name.removesuffix("_total") if family.kind == "counter" else family.name
        if family.kind == "histogram":
            return self._histogram(family)
        rows = self._by_name.get(family.name, [])
        names = sorted({k for labels, _ in rows for k in labels})
        metric: CounterMetricFamily | GaugeMetricFamily
        if family.kind == "counter":
            metric = CounterMetricFamily(base, family.help, labels=names)
        else:
            metric = GaugeMetricFamily(base, family.help, labels=names)
        for labels, value in rows:
            metric.add_metric([labels.get(k, "") for k in names], value)
        return metric

    def _histogram(self, family: Family) -> Metric:
        buckets: dict[str, dict[str, float]] = {}
        sums: dict[str, float] = {}
        for labels, value in self._by_name.get(family.name + "_bucket", []):
            le = labels.pop("le")
            buckets.setdefault(json.dumps(labels, sort_keys=True), {})[le] = value
        for labels, value in self._by_name.get(family.name + "_sum", []):
            sums[json.dumps(labels, sort_keys=True)] = value
        names = sorted({k for text in buckets for k in json.loads(text)})
        metric = HistogramMetricFamily(family.name, family.help, labels=names)
        for text, by_le in buckets.items():
            labels = json.loads(text)
            ordered = sorted(by_le.items(), key=lambda item: float(item[0]))
            if not ordered or ordered[-1][0] != "+Inf":
                continue  # incomplete (never written so by Meter)
            metric.add_metric([labels.get(k, "") for k in names], ordered, sums.get(text, 0.0))
        return metric
