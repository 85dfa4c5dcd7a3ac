"""metrics.enabled: a meter switched off counts nothing, and the enabled path looks its methods up as before."""

from __future__ import annotations

from components.metrics import Meter, labels_text
from components.metrics.meter import _nothing

ACCEPTED = "gateway_events_accepted_total"
LABELS = (("event", "demo.message"),)


def test_a_meter_counts_by_default_with_no_attribute_of_its_own_in_the_way() -> None:
    meter = Meter("components-1")
    assert meter.enabled
    # The methods are the class's: nothing in the instance's dict is looked up first (no cost added).
    assert "count" not in vars(meter) and "observe" not in vars(meter)
    meter.count(ACCEPTED, LABELS)
    meter.observe("gateway_match_duration_seconds", (), 0.002)
    series = meter.series()
    assert series[(ACCEPTED, labels_text(LABELS))] == 1
    assert series[("gateway_match_duration_seconds_count", "{}")] == 1


def test_switched_off_count_and_observe_do_nothing() -> None:
    meter = Meter("components-1")
    meter.count(ACCEPTED, LABELS)
    meter.switch(False)
    assert not meter.enabled
    assert meter.count is _nothing and meter.observe is _nothing
    for _ in range(1000):
        meter.count(ACCEPTED, LABELS)
        meter.observe("gateway_match_duration_seconds", (), 0.002)
    series = meter.series()
    assert series == {(ACCEPTED, labels_text(LABELS)): 1}  # what was counted before, nothing since


def test_switched_on_again_it_counts_with_its_methods() -> None:
    meter = Meter("components-1")
    meter.switch(False)
    meter.switch(False)
    meter.switch(True)
    assert meter.enabled and "count" not in vars(meter)
    meter.count(ACCEPTED, LABELS, 2)
    assert meter.series()[(ACCEPTED, labels_text(LABELS))] == 2
    meter.switch(True)  # switching on a meter that counts changes nothing
    assert meter.enabled


def test_gauges_are_still_read_when_counting_is_off() -> None:
    # The status page's health (sessions, dispatchers...) comes from gauges, read at a snapshot only.
    meter = Meter("components-1")
    meter.switch(False)
    meter.provide("dispatcher", lambda: [("gateway_sessions", (("role", "user"),), 3)], "max")
    snapshot = meter.snapshot()
    assert snapshot.counters == {}
    assert snapshot.gauges == {("gateway_sessions", labels_text({"role": "user"})): (3.0, "max")}
