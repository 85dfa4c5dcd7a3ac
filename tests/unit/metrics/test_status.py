"""The status page's figures: the node's metrics (the series GET /metrics exposes) shaped for people."""

from __future__ import annotations

import json

from components.metrics import Meter, Snapshot, labels_text, node_totals
from components.metrics.families import (AMQP_CONSUMERS, DEFINITIONS_INFO, DISPATCHERS, EVENT_LOG_ROWS,
                                         EVENTS_ACCEPTED, EVENTS_DUPLICATE, EVENTS_REFUSED, INGEST_DURATION,
                                         LIVE_QUERIES, PERSISTENT_SUBSCRIPTIONS, PROCESS_CPU, PROCESS_RSS, RELOADS,
                                         SESSIONS)
from components.metrics.meter import SeriesKey
from components.metrics.status import STORE_UNAVAILABLE, LiveQuery, Seen, by_label, health, status_payload


def key(name: str, **labels: str) -> SeriesKey:
    return (name, labels_text(labels))


def node() -> tuple[dict[SeriesKey, float], dict[SeriesKey, float]]:
    """A node's totals as the bridge sums them: two processes' meters, summed by ``node_totals``."""
    one, two = Meter("components-1"), Meter("components-2")
    for meter, n in ((one, 3), (two, 2)):
        meter.count(EVENTS_ACCEPTED, (("event", "demo.message"),), n)
        meter.observe(INGEST_DURATION, (("transport", "http"),), 0.01)
    one.count(EVENTS_ACCEPTED, (("event", "demo.order"),))
    one.count(EVENTS_DUPLICATE, (("event", "demo.message"),))
    two.count(EVENTS_REFUSED, (("reason", "invalid_event"),), 4)
    one.count(RELOADS, (("outcome", "loaded"),), 3)
    for meter in (one, two):
        meter.provide("dispatcher", lambda: [(SESSIONS, (("role", "user"),), 2), (SESSIONS, (("role", "anonymous"),), 1),
                                             (LIVE_QUERIES, (), 2)], "max")
        meter.provide("bridge", lambda: [(AMQP_CONSUMERS, (("state", "off"),), 1)], "sum")
        meter.provide("definitions", lambda: [(DEFINITIONS_INFO, (("version", "abc123"),), 1)], "max")
    live = [Snapshot.from_wire(m.snapshot().to_wire()) for m in (one, two)]
    totals = node_totals(live, {})
    gauges = dict(totals.gauges)
    # What the bridge adds at a scrape (component._node_gauges).
    gauges.update({key(DISPATCHERS, state="active"): 1, key(DISPATCHERS, state="standby"): 1,
                   key(EVENT_LOG_ROWS): 7, key(PERSISTENT_SUBSCRIPTIONS): 2,
                   key(PROCESS_CPU, process="router"): 1.5, key(PROCESS_RSS, process="router"): 1e8})
    return totals.counters, gauges


SEEN = Seen("components-2", 1_700_000_000.5, {"event_log": {"rows": 7, "by_class": {"demo.order": 7},
                                                             "counted_at": 1_699_999_990.0},
                                               "persistent_subscriptions": 2},
            authenticators=2, queries=(LiveQuery("gateway.query.k1", "demo.message", 1),
                                       LiveQuery("gateway.query.k2", "demo.order where amount > 5", 4)),
            queries_live=2, queries_counted=2)


def test_the_events_are_the_node_totals_by_class_and_by_reason() -> None:
    counters, gauges = node()
    payload = status_payload(counters, gauges, SEEN)
    assert payload["events"] == {"accepted": {"demo.message": 5, "demo.order": 1},
                                 "duplicate": {"demo.message": 1}, "refused": {"invalid_event": 4}}
    assert payload["ingest"]["http"]["count"] == 2 and abs(payload["ingest"]["http"]["seconds"] - 0.02) < 1e-9
    assert payload["definitions"] == {"versions": ["abc123"], "reloads": {"loaded": 3}}
    assert payload["time"] == SEEN.time and payload["answered_by"] == "components-2"
    assert payload["metrics_enabled"] is True


def test_the_gauges_become_sessions_queries_log_dispatchers_bridges_processes() -> None:
    counters, gauges = node()
    payload = status_payload(counters, gauges, SEEN)
    # Every dispatcher sees the node's sessions: taken at their largest, not added.
    assert payload["sessions"] == {"anonymous": 1, "user": 2}
    assert payload["live_queries"]["count"] == 2
    assert payload["persistent_subscriptions"] == 2
    assert payload["event_log"] == {"rows": 7, "by_class": {"demo.order": 7}, "counted_at": 1_699_999_990.0}
    assert payload["dispatchers"] == {"active": 1, "standby": 1}
    assert payload["bridges"] == {"count": 2, "amqp": {"off": 2}}
    assert payload["processes"] == {"router": {"cpu_seconds": 1.5, "rss_bytes": 1e8}}
    assert payload["authenticators"] == 2
    assert payload["health"] == {"ok": True, "problems": []}


def test_the_busiest_queries_come_first_and_only_so_many() -> None:
    counters, gauges = node()
    payload = status_payload(counters, gauges, SEEN, busiest=1)
    assert payload["live_queries"]["busiest"] == [
        {"query": "demo.order where amount > 5", "topic": "gateway.query.k2", "subscribers": 4}]
    assert payload["live_queries"]["topics"] == 2 and payload["live_queries"]["counted"] == 2


def test_the_payload_is_json() -> None:
    counters, gauges = node()
    payload = status_payload(counters, gauges, SEEN)
    assert json.loads(json.dumps(payload)) == payload


def test_metrics_off_gives_no_counters_but_the_health() -> None:
    _, gauges = node()
    payload = status_payload({}, gauges, SEEN, metrics_enabled=False)
    assert payload["metrics_enabled"] is False
    assert payload["events"] is None and payload["ingest"] is None and payload["amqp_messages"] is None
    assert payload["definitions"]["reloads"] == {}
    assert payload["sessions"] == {"anonymous": 1, "user": 2} and payload["health"]["ok"]


def test_a_store_that_does_not_answer_leaves_what_the_router_and_dispatchers_know() -> None:
    # The saved totals could not be read (counters None): no counted figure rather than one lower than
    # an earlier answer's; sessions, queries, the log's size and the dispatchers as ever; the problem said.
    _, gauges = node()
    seen = Seen("components-1", 1.0, SEEN.stats, authenticators=2, queries=SEEN.queries, queries_live=2,
                queries_counted=2, store_ok=False)
    payload = status_payload(None, gauges, seen)
    assert payload["metrics_enabled"] is True
    assert payload["events"] is None and payload["ingest"] is None and payload["amqp_messages"] is None
    assert payload["definitions"]["reloads"] == {}
    assert payload["sessions"] == {"anonymous": 1, "user": 2}
    assert payload["dispatchers"] == {"active": 1, "standby": 1} and payload["event_log"]["rows"] == 7
    assert len(payload["live_queries"]["busiest"]) == 2
    assert payload["health"]["ok"] is True and STORE_UNAVAILABLE in payload["health"]["problems"]
    assert json.loads(json.dumps(payload)) == payload
    # Only the queries' texts missing: the counts stand, the problem is said.
    counters, _ = node()
    partly = status_payload(counters, gauges, seen)
    assert partly["events"] is not None and STORE_UNAVAILABLE in partly["health"]["problems"]
    assert STORE_UNAVAILABLE not in status_payload(counters, gauges, SEEN)["health"]["problems"]


def test_a_node_that_cannot_serve_says_why() -> None:
    payload = status_payload({}, {}, Seen("components-1", 0.0))
    assert payload["health"]["ok"] is False
    assert any("no active dispatcher" in p for p in payload["health"]["problems"])
    assert any("no authenticator" in p for p in payload["health"]["problems"])
    assert payload["persistent_subscriptions"] is None and payload["event_log"]["rows"] is None
    assert payload["sessions"] == {} and payload["live_queries"]["busiest"] == []


def test_warnings_that_leave_the_node_serving() -> None:
    counters, gauges = node()
    gauges[key(DISPATCHERS, state="standby")] = 0
    gauges[key(DEFINITIONS_INFO, version="def456")] = 1
    gauges[key(AMQP_CONSUMERS, state="off")] = 0
    gauges[key(AMQP_CONSUMERS, state="standby")] = 2
    seen = Seen("components-1", 0.0, authenticators=1, amqp=True)
    verdict = health(status_payload(counters, gauges, seen), amqp=True)
    assert verdict["ok"] is True
    problems = " | ".join(verdict["problems"])
    assert "no standby dispatcher" in problems
    assert "abc123, def456" in problems
    assert "no bridge consumes the RabbitMQ queue (consumers: standby 2)" in problems
    gauges[key(AMQP_CONSUMERS, state="paused")] = 1  # at its in-flight limit: still the consumer
    assert not any("RabbitMQ" in p for p in health(status_payload(counters, gauges, seen), amqp=True)["problems"])


def test_by_label_sums_over_the_other_labels() -> None:
    series = {key("x", a="1", b="p"): 1.0, key("x", a="1", b="q"): 2.0, key("x", a="2"): 5.0, key("y", a="1"): 9.0,
              key("x", b="r"): 4.0}
    assert by_label(series, "x", "a") == {"1": 3.0, "2": 5.0}
