"""The status page's Cluster panel: a cluster node's view of the cluster (``gateway.internal.stats``'s
``cluster``) shaped for people; nothing of it on a single node."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from components.metrics.status import CLUSTER_STORE_UNREACHABLE, cluster_panel, status_payload
from tests.unit.metrics.test_status import SEEN, node


def view(**changes: Any) -> dict[str, Any]:
    """What ``LogTail.status()`` answers on node b of three: c fell silent 30 s ago."""
    answer: dict[str, Any] = {
        "node": "b", "cursor": 120, "acknowledged": 118, "skipped": 0, "store": True,
        "nodes": [{"name": "a", "cursor": 120, "heard_of": 0.4, "seen": True},
                  {"name": "b", "cursor": 110, "heard_of": 1.2, "seen": True},
                  {"name": "c", "cursor": 40, "heard_of": 30.5, "seen": False}]}
    answer.update(changes)
    return answer


def test_every_node_with_this_one_marked_seen_heard_of_place_and_how_far_behind() -> None:
    panel = cluster_panel(view())
    assert panel is not None
    assert (panel["node"], panel["store"], panel["skipped"], panel["head"]) == ("b", True, 0, 120)
    assert panel["nodes"] == [
        {"name": "a", "this": False, "seen": True, "heard_of": 0.4, "cursor": 120, "behind": 0},
        # This node's place is what its router acknowledged, fresher than its last heartbeat's.
        {"name": "b", "this": True, "seen": True, "heard_of": 1.2, "cursor": 118, "behind": 2},
        {"name": "c", "this": False, "seen": False, "heard_of": 30.5, "cursor": 40, "behind": 80},
    ]
    json.dumps(panel)


def test_the_most_advanced_node_may_be_this_one() -> None:
    panel = cluster_panel(view(acknowledged=125))
    assert panel is not None and panel["head"] == 125
    assert {n["name"]: n["behind"] for n in panel["nodes"]} == {"a": 5, "b": 0, "c": 85}


def test_before_its_first_heartbeat_this_node_is_listed_not_heard_of_yet() -> None:
    panel = cluster_panel(view(nodes=[], store=None, acknowledged=7))
    assert panel is not None
    assert panel["store"] is None and panel["head"] == 7
    assert panel["nodes"] == [{"name": "b", "this": True, "seen": False, "heard_of": None, "cursor": 7, "behind": 0}]


def test_skipped_events_and_an_unreachable_store_are_shown_and_the_node_is_not_serving() -> None:
    counters, gauges = node()
    seen = dataclasses.replace(SEEN, stats={**(SEEN.stats or {}), "cluster": view(skipped=12, store=False)})
    payload = status_payload(counters, gauges, seen)
    assert payload["cluster"]["skipped"] == 12 and payload["cluster"]["store"] is False
    # As /healthz: a cluster node that cannot reach the shared store takes no event.
    assert payload["health"] == {"ok": False, "problems": [CLUSTER_STORE_UNREACHABLE]}
    reached = status_payload(counters, gauges, dataclasses.replace(seen, stats={"cluster": view()}))
    assert reached["health"] == {"ok": True, "problems": []}
    assert [n["name"] for n in reached["cluster"]["nodes"]] == ["a", "b", "c"]


def test_a_single_node_or_no_dispatcher_answering_has_no_cluster_panel() -> None:
    counters, gauges = node()
    assert status_payload(counters, gauges, SEEN)["cluster"] is None  # a single node: no "cluster" in stats
    assert status_payload(counters, gauges, dataclasses.replace(SEEN, stats=None))["cluster"] is None
    assert cluster_panel(None) is None and cluster_panel({"nodes": []}) is None


def test_what_another_process_answered_is_not_trusted_blindly() -> None:
    panel = cluster_panel(view(acknowledged="x", skipped=None, store="yes", nodes=[
        {"name": "a", "cursor": "9", "heard_of": True, "seen": 1}, "junk", {"cursor": 3},
        {"name": "b", "cursor": 5, "heard_of": 2, "seen": True}]))
    assert panel is not None
    assert (panel["store"], panel["skipped"], panel["head"]) == (None, 0, 5)
    assert panel["nodes"] == [
        {"name": "a", "this": False, "seen": False, "heard_of": None, "cursor": None, "behind": None},
        {"name": "b", "this": True, "seen": True, "heard_of": 2.0, "cursor": 5, "behind": 0},
    ]
