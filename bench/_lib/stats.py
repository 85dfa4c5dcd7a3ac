"""Latency percentiles: from a histogram (subscribers, any event count) or from a list of samples."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

__all__ = ["BUCKETS_PER_SECOND", "histogram_percentile", "merge_histogram", "nearest_rank"]

#: Latency histogram resolution: 0.1 ms buckets keep p50/p99 exact enough and
#: the per-event cost to one dict update, whatever the event count.
BUCKETS_PER_SECOND = 10_000


def histogram_percentile(hist: Mapping[int, int], q: float) -> float:
    """Latency in ms at quantile ``q`` (0..1) of a histogram of BUCKETS_PER_SECOND buckets; NaN if empty."""
    total = sum(hist.values())
    if total == 0:
        return float("nan")
    rank = q * total
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return (bucket + 1) * 1000 / BUCKETS_PER_SECOND
    raise AssertionError("unreachable")


def merge_histogram(into: dict[int, int], hist: Mapping[int, int]) -> None:
    for bucket, n in hist.items():
        into[bucket] = into.get(bucket, 0) + n


def nearest_rank(samples: Sequence[float], q: float) -> float:
    """The sample at quantile ``q`` (0..1) by the nearest-rank rule; NaN if there are none."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
