"""The exposition parses as Prometheus text, histograms included; the dashboard asks only for what exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from components.metrics import Meter, labels_text
from components.metrics.exposition import render
from components.metrics.families import FAMILIES

DASHBOARD = Path(__file__).resolve().parents[3] / "docs" / "grafana" / "gateway.json"


def test_the_totals_render_as_prometheus_text() -> None:
    meter = Meter("components-1")
    meter.count("gateway_events_refused_total", (("reason", "too_large"),), 3)
    meter.observe("gateway_ingest_duration_seconds", (("transport", "http"),), 0.02)
    gauges = {("gateway_sessions", labels_text({"role": "anonymous"})): 2.0}
    text = render(meter.series(), gauges).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert set(families) == {f.name.removesuffix("_total") for f in FAMILIES.values()}
    (refused,) = families["gateway_events_refused"].samples
    assert refused.labels == {"reason": "too_large"} and refused.value == 3
    ingest = families["gateway_ingest_duration_seconds"]
    assert ingest.type == "histogram"
    count = [s for s in ingest.samples if s.name.endswith("_count")]
    assert count[0].value == 1 and count[0].labels == {"transport": "http"}
    assert families["gateway_sessions"].samples[0].value == 2


def _metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers before a selector or range, minus functions."""
    without_labels = re.sub(r"\{[^}]*\}", "{}", expr)
    without_by = re.sub(r"\b(by|without)\s*\([^)]*\)", "", without_labels)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b\s*(?=\{|\[|\)|$|\s|,|/|\*|\+|-)", without_by))
    return {n for n in names if n.startswith("gateway_")}


def test_every_metric_the_dashboard_queries_is_exposed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exposed = set()
    for family in FAMILIES.values():
        exposed.add(family.name)
        if family.kind == "histogram":
            exposed |= {family.name + suffix for suffix in ("_bucket", "_sum", "_count")}
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert exprs, "the dashboard queries nothing"
    used: set[str] = set()
    for expr in exprs:
        names = _metric_names(expr)
        assert names, f"no gateway metric found in {expr!r}"
        used |= names
    assert used <= exposed, used - exposed
