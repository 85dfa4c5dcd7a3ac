"""The node's totals: summed over processes, a process counted once, never below what was saved or shown."""

from __future__ import annotations

from components.metrics import NODE_IDENTITY, Meter, Snapshot, labels_text, node_totals
from components.metrics.meter import BUCKETS

ACCEPTED = ("gateway_events_accepted_total", labels_text({"event": "demo.message"}))


def snap(identity: str, n: float, gauges: dict[tuple[str, str], tuple[float, str]] | None = None) -> Snapshot:
    return Snapshot.from_wire({"identity": identity, "counters": [[*ACCEPTED, n]],
                               "gauges": [[*k, v, m] for k, (v, m) in (gauges or {}).items()]})


def test_processes_are_summed_and_each_process_counts_once() -> None:
    # Three components of components-1 answer the same process's snapshot: counted once.
    totals = node_totals([snap("components-1", 5), snap("components-1", 5), snap("components-2", 3)], {})
    assert totals.counters[ACCEPTED] == 8
    assert totals.reported == {"components-1": {ACCEPTED: 5}, "components-2": {ACCEPTED: 3}}


def test_a_series_at_zero_shows_whether_or_not_it_was_saved() -> None:
    # Two bridges aggregate the same processes; one read the store after a save of the series, one before:
    # both show it (at 0), so their totals are the same (a scrape did differ by this).
    live = [snap("components-1", 0), snap("components-2", 0)]
    assert node_totals(live, {}).counters == {ACCEPTED: 0}
    assert node_totals(live, {"components-1": {ACCEPTED: 0}}).counters == {ACCEPTED: 0}


def test_a_process_gone_still_counts_what_it_saved() -> None:
    totals = node_totals([snap("components-1", 5)], {"components-2": {ACCEPTED: 3}})
    assert totals.counters[ACCEPTED] == 8


def test_a_live_process_counts_at_least_what_was_saved_of_it() -> None:
    # Killed after a scrape showed 7 of it; its next life starts from its periodic save (4), counts 1.
    totals = node_totals([snap("components-2", 5)], {"components-2": {ACCEPTED: 7}})
    assert totals.counters[ACCEPTED] == 7


def test_the_node_never_reports_less_than_its_high_water() -> None:
    totals = node_totals([snap("components-1", 2)], {NODE_IDENTITY: {ACCEPTED: 10}})
    assert totals.counters[ACCEPTED] == 10
    assert NODE_IDENTITY not in totals.reported


def test_gauges_come_from_live_processes_summed_or_at_their_largest() -> None:
    sessions = ("gateway_sessions", labels_text({"role": "user"}))
    consumers = ("gateway_amqp_consumers", labels_text({"state": "off"}))
    live = [snap("components-1", 0, {sessions: (4, "max"), consumers: (1, "sum")}),
            snap("components-1", 0, {sessions: (4, "max"), consumers: (1, "sum")}),
            snap("components-2", 0, {sessions: (3, "max"), consumers: (1, "sum")})]
    totals = node_totals(live, {"components-3": {sessions: 99}})
    assert totals.gauges == {sessions: 4, consumers: 2}


def test_meter_series_are_cumulative_and_continue_from_the_saved_base() -> None:
    meter = Meter("components-1")
    meter.add_base({ACCEPTED: 10})
    meter.count("gateway_events_accepted_total", (("event", "demo.message"),), 2)
    meter.observe("gateway_match_duration_seconds", (), 0.003)
    meter.observe("gateway_match_duration_seconds", (), 100)
    series = meter.series()
    assert series[ACCEPTED] == 12
    buckets = [series[("gateway_match_duration_seconds_bucket", labels_text({"le": le}))]
               for le in [repr(b) for b in BUCKETS] + ["+Inf"]]
    assert buckets == sorted(buckets) and buckets[0] == 0 and buckets[-2] == 1 and buckets[-1] == 2
    assert series[("gateway_match_duration_seconds_count", "{}")] == 2
    assert series[("gateway_match_duration_seconds_sum", "{}")] == 100.003


def test_a_snapshot_travels_and_a_malformed_one_is_refused() -> None:
    meter = Meter("components-1")
    meter.count("gateway_logins_total", (("method", "ticket"), ("outcome", "accepted")))
    meter.provide("x", lambda: [("gateway_live_queries", (), 3)], "max")
    wire = meter.snapshot().to_wire()
    assert Snapshot.from_wire(wire) == meter.snapshot()
    try:
        Snapshot.from_wire({"identity": "x", "counters": [["a"]], "gauges": []})
    except ValueError as exc:
        assert "malformed" in str(exc)
    else:
        raise AssertionError("a malformed snapshot was taken")
