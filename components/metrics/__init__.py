"""The gateway's Prometheus metrics: counted in memory by each process, summed by the bridge answering ``GET /metrics``.

- ``families.py``: every metric family (name, type, help): the one place a name is spelled;
- ``meter.py``: ``Meter``, the in-memory counters, histograms and gauges of one process (pure);
- ``aggregate.py``: the node's totals from the processes' snapshots, their saved totals and the high water (pure);
- ``exposition.py``: the totals in the Prometheus text format (prometheus_client);
- ``processes.py``: CPU and memory of the node's processes (psutil);
- ``status.py``: the node's totals shaped for the status page (``gateway.status``; pure);
- ``keeper.py``: the process's meter, its saved totals and its ``gateway.internal.metrics.<session>`` (Twisted).

May import: ``components.uris``, ``components.store`` (the keeper's saved totals); nothing of
``components.delivery`` or the bridge.
"""

from components.metrics.aggregate import NODE_IDENTITY, NodeTotals, node_totals
from components.metrics.meter import BUCKETS, Labels, Meter, SeriesKey, Snapshot, labels_text

__all__ = ["BUCKETS", "Labels", "Meter", "NODE_IDENTITY", "NodeTotals", "SeriesKey", "Snapshot", "labels_text",
           "node_totals"]
