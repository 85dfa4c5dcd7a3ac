"""The status page's Cluster panel on two real cluster nodes: ``gateway.status``, called by an operator on
either node, answers the cluster as that node sees it, both nodes seen (the page itself: test_status_page.py,
on a single node, where there is no panel)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import postgresql_schema
from tests.integration.test_cluster import start_cluster, stop_cluster
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

MESSAGE = {"room": "status", "text": "t", "author": "a"}


def test_an_operator_sees_the_cluster_with_both_nodes_seen_on_either_node() -> None:
    with postgresql_schema() as store:
        nodes = start_cluster(store, ["a", "b"])
        try:
            posted = nodes[0].post_event("demo.message", MESSAGE)
            assert posted.status == 202
            seq = posted.body["seq"]
            for node, name in zip(nodes, ("a", "b")):
                with node.client("ops", ["staff"]) as ops:
                    def both_seen() -> dict[str, Any] | None:
                        cluster: dict[str, Any] | None = ops.call("gateway.status")["cluster"]
                        if cluster is None or {n["name"] for n in cluster["nodes"] if n["seen"]} != {"a", "b"}:
                            return None
                        # Each node's place as of its last heartbeat (every 2 s): past the event posted.
                        return cluster if all(n["cursor"] >= seq for n in cluster["nodes"]) else None
                    cluster = wait_for(both_seen, timeout=20, what=f"node {name} seeing both nodes past {seq}")
                    assert cluster["node"] == name and cluster["store"] is True and cluster["skipped"] == 0
                    assert [(n["name"], n["this"]) for n in cluster["nodes"]] == [("a", name == "a"),
                                                                                   ("b", name == "b")]
                    for n in cluster["nodes"]:
                        assert n["heard_of"] is not None and 0 <= n["heard_of"] <= 10
                        assert 0 <= n["behind"] == cluster["head"] - n["cursor"]
                    assert ops.call("gateway.status")["health"]["ok"] is True
        finally:
            stop_cluster(nodes)
