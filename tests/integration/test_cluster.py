"""A cluster of gateway nodes (docs/cluster.md): two real nodes sharing a PostgreSQL store.

Any node takes events, every node delivers them, in one cluster-wide seq order; idempotency,
tickets, client tokens and persistent subscriptions are the cluster's; a node SIGKILLed while
events flow loses nothing that was answered 202.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.integration.conftest import postgresql_schema
from tests.integration.test_access_property import run_scenario, scenarios
from tests.integration.test_persistent import replay_all
from tests.support.harness import API_KEY, GatewayNode, remove_workdir, temp_workdir
from tests.support.tcpproxy import CuttableProxy
from tests.support.waiting import wait_for
from tests.support.wamp import WampClient


def start_cluster(store: dict[str, Any], names: list[str]) -> list[GatewayNode]:
    """Nodes of one cluster on one store, started together; all stopped if one fails to start."""
    nodes = [GatewayNode(temp_workdir(f"gw-{name}-"), extra_config={
        "store": store, "cluster": {"enabled": True, "node_name": name}}) for name in names]
    with ThreadPoolExecutor(len(nodes)) as pool:
        futures = [pool.submit(n.start) for n in nodes]
        errors = [f.exception() for f in futures]
    if any(errors):
        stop_cluster(nodes)
        raise next(e for e in errors if e is not None)
    return nodes


def stop_cluster(nodes: list[GatewayNode]) -> None:
    for n in nodes:
        n.stop()
        remove_workdir(n.workdir)


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[GatewayNode]]:
    with postgresql_schema() as store:
        nodes = start_cluster(store, ["a", "b"])
        try:
            yield nodes
        finally:
            stop_cluster(nodes)


def message(i: int, room: str = "lobby") -> dict[str, Any]:
    return {"room": room, "text": f"m{i}", "author": "cluster"}


ORDER = {"order_id": 1, "amount": 10, "country": "AR", "tags": [], "customer": {"id": 1, "name": "Ana"}}
TOPIC = "gateway.event.demo.message"


def test_any_node_takes_events_and_every_node_delivers_them_in_one_order(cluster: list[GatewayNode]) -> None:
    a, b = cluster
    with a.client() as on_a, b.client() as on_b:
        on_a.subscribe(TOPIC)
        on_b.subscribe(TOPIC)
        answers = []
        for i in range(20):
            node = (a, b)[i % 2]
            r = node.post_event("demo.message", message(i))
            assert r.status == 202, r.body
            answers.append(r.body)
        seen_a = on_a.take(20, timeout=20)
        seen_b = on_b.take(20, timeout=20)
    seqs = [x["seq"] for x in answers]
    assert seqs == sorted(seqs) and len(set(seqs)) == 20, "one cluster-wide seq, increasing as the posts were answered"
    assert [e["seq"] for e in seen_a] == seqs
    assert [e["seq"] for e in seen_b] == seqs
    assert seen_a == seen_b, "both nodes' clients see the same envelopes"
    assert [e["id"] for e in seen_a] == [x["id"] for x in answers]


def test_the_same_id_posted_to_two_nodes_is_one_event(cluster: list[GatewayNode]) -> None:
    a, b = cluster
    event_id = uuid.uuid4().hex
    first = a.post_event("demo.message", message(1), id=event_id)
    again = b.post_event("demo.message", message(1), id=event_id)
    assert first.status == 202 and again.status == 202, (first.body, again.body)
    assert again.body["seq"] == first.body["seq"] and again.body.get("duplicate") is True
    other = b.post_event("demo.order", ORDER, id=event_id)
    assert other.status == 409, other.body
    assert "demo.message" in json.dumps(other.body)


def test_concurrent_posts_of_one_id_to_both_nodes_make_one_event(cluster: list[GatewayNode]) -> None:
    a, b = cluster
    ids = [uuid.uuid4().hex for _ in range(30)]
    with a.client() as watcher:
        watcher.subscribe(TOPIC)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda pair: pair[0].post_event("demo.message", message(0), id=pair[1]),
                                    [(node, i) for i in ids for node in (a, b)]))
        assert all(r.status == 202 for r in answers), [r.body for r in answers if r.status != 202]
        by_id: dict[str, set[int]] = {}
        for r in answers:
            by_id.setdefault(r.body["id"], set()).add(r.body["seq"])
        assert all(len(s) == 1 for s in by_id.values()), "each id has one seq, whichever node answered"
        last = b.post_event("demo.message", message(-1), id="sentinel-" + uuid.uuid4().hex)
        seen = watcher.take(31, timeout=20)  # the sentinel comes after every one of them: nothing twice
    assert seen[-1]["id"] == last.body["id"]
    assert sorted(e["id"] for e in seen[:-1]) == sorted(ids)


def test_a_ticket_works_once_on_any_node_and_a_client_token_on_every_node(cluster: list[GatewayNode]) -> None:
    a, b = cluster
    ticket = a.ticket("carol", ["staff"])
    with WampClient(b.ws_url, ticket=ticket) as client:
        assert client.call("gateway.whoami")["user"] == "carol"
    again = WampClient(a.ws_url, ticket=ticket)
    try:
        with pytest.raises(RuntimeError):
            again.connect()
    finally:
        again.close()
    assert again.leave_reason == "gateway.error.authentication_failed", "a ticket works once, on any node"
    # A client token one node gave is recognised on the other (a renewed one would be new).
    with WampClient(b.ws_url) as anonymous:
        token = anonymous.authextra_welcome["client_token"]
    with WampClient(a.ws_url, authextra={"client_token": token}) as back:
        assert back.authextra_welcome["client_token"] == token


def test_a_query_subscription_on_one_node_gets_events_posted_to_the_other(cluster: list[GatewayNode]) -> None:
    a, b = cluster
    with b.client() as client:
        made = client.call("gateway.subscribe", "demo.message where room = 'kitchen'")
        client.subscribe(made["topic"])
        for i, room in enumerate(["lobby", "kitchen", "hall", "kitchen"]):
            assert a.post_event("demo.message", message(i, room)).status == 202
        got = client.take(2, timeout=20)
    assert [e["data"]["text"] for e in got] == ["m1", "m3"]


def test_a_persistent_subscription_made_on_one_node_is_replayed_on_another(cluster: list[GatewayNode]) -> None:
    a, b = cluster
    with WampClient(a.ws_url) as client:
        made = client.call("gateway.subscribe", "demo.message where room = 'attic'", persistent=True)
        token = client.authextra_welcome["client_token"]
    posted = [b.post_event("demo.message", message(i, "attic")).body["seq"] for i in range(3)]
    with WampClient(b.ws_url, authextra={"client_token": token}) as again:
        (listed,) = [s for s in again.call("gateway.subscriptions") if s["persistent"]]
        assert (listed["id"], listed["topic"]) == (made["id"], made["topic"])
        replayed = again.call("gateway.replay", listed["id"], listed["last_seq"])
        assert [e["seq"] for e in replayed["events"]] == posted
        assert again.call("gateway.ack", listed["id"], posted[-1])["last_seq"] == posted[-1]
    with WampClient(a.ws_url, authextra={"client_token": token}) as back:
        (listed,) = [s for s in back.call("gateway.subscriptions") if s["persistent"]]
        assert listed["last_seq"] == posted[-1], "acknowledged on b, seen so on a"


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios)
def test_every_subscription_on_every_node_gets_exactly_the_events_it_may_see(cluster: list[GatewayNode],
                                                                              scenario: Any) -> None:
    """The single node's property test of who receives what (visibility, wildcards, row filters,
    queries, audiences), its clients spread over both nodes and its events posted to both."""
    run_scenario(cluster, scenario)


def test_a_subscription_a_web_app_removes_on_one_node_ends_for_its_user_on_another(
        cluster: list[GatewayNode]) -> None:
    a, b = cluster
    user = f"erin-{uuid.uuid4().hex[:6]}"
    made = a.request("POST", "/subscriptions", json.dumps({"user": user, "query": "test.notice",
                                                           "persistent": True}).encode(),
                     {"Authorization": f"Bearer {API_KEY}"})
    assert made.status == 201, made.body
    listed = b.request("GET", f"/subscriptions?user={user}", headers={"Authorization": f"Bearer {API_KEY}"})
    assert [s["id"] for s in listed.body["subscriptions"]] == [made.body["id"]], "listed on the other node"
    with b.client(user) as erin:
        (mine,) = [s for s in erin.call("gateway.subscriptions") if s["persistent"]]
        erin.subscribe(mine["topic"])
        erin.subscribe("gateway.meta.subscription_removed")
        first = a.post_event("test.notice", {"user": user, "text": "one"}).body["seq"]
        assert [e["seq"] for e in erin.take(1, timeout=20)] == [first]
        gone = a.request("DELETE", f"/subscriptions/{made.body['id']}", headers={"Authorization": f"Bearer {API_KEY}"})
        assert gone.status == 200, gone.body
        (notice,) = erin.take(1, timeout=20)
        assert notice["id"] == made.body["id"] and "removed" in notice["reason"], notice
        # Its topic no longer delivers to erin's session on b: the next notice does not come, the marker does.
        a.post_event("test.notice", {"user": user, "text": "after"})
        marker = erin.call("gateway.subscribe", f"demo.message where room = '{user}'")
        erin.subscribe(marker["topic"])
        last = a.post_event("demo.message", message(9, user)).body["seq"]
        assert [e["seq"] for e in erin.take(1, timeout=20)] == [last]


def test_a_node_without_clustering_refuses_a_clusters_store(cluster: list[GatewayNode]) -> None:
    """It would number events on its own, below what the cluster delivered: its dispatcher refuses to
    take over, saying what to do, and the node never says it is ready."""
    store = cluster[0].extra_config["store"]
    alone = GatewayNode(temp_workdir("gw-alone-"), extra_config={"store": store})
    try:
        alone.launch()
        wait_for(lambda: "the store is a cluster's" in alone.log_text() or None, timeout=60,
                 what="the lone node refusing the cluster's store")
        assert "GATEWAY_CLUSTER=1" in alone.log_text()
        def readiness() -> int | None:
            try:
                return alone.get("/healthz", timeout=2).status
            except OSError:  # its bridge is not listening yet
                return None

        assert wait_for(readiness, timeout=30, what="the lone node's bridge answering") == 503, "it takes no event"
    finally:
        alone.stop()
        remove_workdir(alone.workdir)


def test_an_operator_sees_the_cluster_with_both_nodes_seen_on_either_node(cluster: list[GatewayNode]) -> None:
    """The status page's Cluster panel: ``gateway.status``, called by an operator on either node, answers the
    cluster as that node sees it, both nodes seen (the page itself: test_status_page.py, on a single node)."""
    nodes = cluster
    posted = nodes[0].post_event("demo.message", message(0, "status"))
    assert posted.status == 202
    seq = posted.body["seq"]
    for node, name in zip(nodes, ("a", "b")):
        with node.client("ops", ["staff"]) as ops:
            def both_seen() -> dict[str, Any] | None:
                view: dict[str, Any] | None = ops.call("gateway.status")["cluster"]
                if view is None or {n["name"] for n in view["nodes"] if n["seen"]} != {"a", "b"}:
                    return None
                # Each node's place as of its last heartbeat (every 2 s): past the event posted.
                return view if all(n["cursor"] >= seq for n in view["nodes"]) else None
            panel = wait_for(both_seen, timeout=20, what=f"node {name} seeing both nodes past {seq}")
            assert panel["node"] == name and panel["store"] is True and panel["skipped"] == 0
            assert [(n["name"], n["this"]) for n in panel["nodes"]] == [("a", name == "a"),
                                                                           ("b", name == "b")]
            for n in panel["nodes"]:
                assert n["heard_of"] is not None and 0 <= n["heard_of"] <= 10
                assert 0 <= n["behind"] == panel["head"] - n["cursor"]
            assert ops.call("gateway.status")["health"]["ok"] is True


def test_readiness_says_which_nodes_a_node_sees(cluster: list[GatewayNode]) -> None:
    a, b = cluster

    def both_seen(node: GatewayNode) -> dict[str, Any] | None:
        r = node.get("/healthz")
        cluster_view = r.body.get("cluster") if r.status == 200 else None
        if cluster_view is None:
            return None
        seen = {n["name"] for n in cluster_view["nodes"] if n["seen"]}
        return cluster_view if seen >= {"a", "b"} else None

    view = wait_for(lambda: both_seen(a), timeout=20, what="node a seeing both nodes")
    assert view["node"] == "a" and view["store"] is True
    assert wait_for(lambda: both_seen(b), timeout=20, what="node b seeing both nodes")["node"] == "b"
    assert a.get("/livez").status == 200


def test_a_node_that_loses_the_store_refuses_events_and_comes_back_by_itself() -> None:
    """Node a reaches PostgreSQL through a proxy that is cut: a's ingest answers 503 (it never accepts
    what it cannot order and keep) and its readiness says so, while b goes on; once the proxy lets
    connections through again, a accepts events again and its clients get what b took meanwhile."""
    with postgresql_schema() as store, CuttableProxy(("127.0.0.1", 5432)) as proxy:
        through = {**store, "url": store["url"].replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"),
                   "statement_timeout": 2, "connect_timeout": 2}
        assert through["url"] != store["url"]
        a = GatewayNode(temp_workdir("gw-oa-"), extra_config={"store": through,
                                                               "cluster": {"enabled": True, "node_name": "oa"}})
        b = GatewayNode(temp_workdir("gw-ob-"), extra_config={"store": store,
                                                               "cluster": {"enabled": True, "node_name": "ob"}})
        try:
            with ThreadPoolExecutor(2) as pool:
                for f in [pool.submit(a.start), pool.submit(b.start)]:
                    f.result()
            with a.client() as on_a:
                on_a.subscribe(TOPIC)
                assert a.post_event("demo.message", message(0)).status == 202
                assert on_a.take(1, timeout=20)[0]["data"]["text"] == "m0"
                proxy.cut()
                refused = a.post_event("demo.message", message(1))
                assert refused.status == 503, refused.body
                assert "retry" in json.dumps(refused.body)
                wait_for(lambda: a.get("/healthz").status == 503 or None, timeout=20, what="a not ready")
                meanwhile = [b.post_event("demo.message", message(i)) for i in range(2, 5)]
                assert all(r.status == 202 for r in meanwhile), [r.body for r in meanwhile]
                proxy.restore()
                back = wait_for(lambda: (r := a.post_event("demo.message", message(5))).status == 202 and r or None,
                                timeout=30, what="a accepting events again")
                wait_for(lambda: a.get("/healthz").status == 200 or None, timeout=20, what="a ready again")
                got = on_a.take(4, timeout=20)
            assert [e["data"]["text"] for e in got] == ["m2", "m3", "m4", "m5"]
            assert got[-1]["seq"] == back.body["seq"]
        finally:
            stop_cluster([a, b])


def test_a_rolling_restart_of_both_nodes_loses_nothing() -> None:
    """Two nodes started with ``gateway run`` and env alone (GATEWAY_STORE_URL, GATEWAY_CLUSTER=1,
    GATEWAY_NODE_DIR and the ports: the contract's start) join, named from the host and node directory.
    Then one node at a time: SIGTERM (it drains), started again in its place, ready, then the next; a
    web-app posting all along (to either node, retrying a refusal on the other, as a load balancer and
    the proxy do) has every event it was answered 202 for kept for a persistent subscription, once, in
    seq order."""
    from tests.integration.test_supervision import gateway_run, launch_gateway_run

    with postgresql_schema() as store:
        env = {"GATEWAY_STORE_URL": store["url"], "GATEWAY_STORE_SCHEMA": store["schema_name"], "GATEWAY_CLUSTER": "1"}
        with gateway_run(env_extra=env) as one, gateway_run(env_extra=env) as two:
            one.wait_serving()
            two.wait_serving()
            names = [re.search(r"cluster node (\S+)", run.log_text()) for run in (one, two)]
            assert all(names) and names[0].group(1) != names[1].group(1), [run.log_tail() for run in (one, two)]
            with WampClient(one.api.ws_url) as client:
                made = client.call("gateway.subscribe", "demo.message where room = 'rolling'", persistent=True)
                token = client.authextra_welcome["client_token"]
                client.subscribe(made["topic"])
                first = two.api.post_event("demo.message", message(0, "rolling"), id="roll-0")
                assert first.status == 202, first.body
                assert client.take(1, timeout=20)[0]["id"] == "roll-0", "posted to one node, delivered by the other"
            accepted: list[dict[str, Any]] = [first.body]
            stop = threading.Event()

            def post() -> None:
                i = 0
                while not stop.is_set():
                    i += 1
                    for node in ((one, two) if i % 2 else (two, one)):  # the other one if refused
                        try:
                            r = node.api.post_event("demo.message", message(i, "rolling"), id=f"roll-{i}")
                        except OSError:
                            continue
                        if r.status == 202:
                            accepted.append(r.body)
                            break
                        assert r.status == 503, r.body

            poster = threading.Thread(target=post)
            poster.start()
            try:
                for run in (one, two):
                    wait_for(lambda: len(accepted) >= 20 or None, timeout=60, what="events flowing")
                    before = len(accepted)
                    run.process.send_signal(signal.SIGTERM)
                    assert run.process.wait(60) == 0
                    assert "drained" in run.log_text()
                    started = launch_gateway_run(run.workdir, run.api, env)
                    run.process = started.process
                    run.wait_serving()
                    wait_for(lambda b=before: len(accepted) >= b + 20 or None, timeout=60, what="events after")
            finally:
                stop.set()
                poster.join(30)
            with WampClient(two.api.ws_url, authextra={"client_token": token}) as back:
                (listed,) = [s for s in back.call("gateway.subscriptions") if s["persistent"]]
                assert listed["id"] == made["id"]
                replayed = replay_all(back, listed["id"], listed["last_seq"])
    seqs = [e["seq"] for e in replayed]
    assert seqs == sorted(set(seqs)), "in seq order, each once"
    assert sorted(e["id"] for e in replayed) == sorted(x["id"] for x in accepted), "every 202, nothing else"
    assert len(accepted) >= 60


def test_a_node_killed_while_events_flow_loses_nothing_answered(tmp_path: Any) -> None:
    """SIGKILL of a whole node (its process group) while two threads post to both nodes: every event
    answered 202 by either reaches the subscriber on the surviving node, in strictly increasing seq."""
    with postgresql_schema() as store:
        a, b = start_cluster(store, ["ka", "kb"])
        try:
            with b.client() as watcher:
                watcher.subscribe(TOPIC)
                accepted: list[dict[str, Any]] = []
                lock = threading.Lock()
                stop = threading.Event()
                killed = threading.Event()

                def post(node: GatewayNode) -> None:
                    i = 0
                    while not stop.is_set():
                        i += 1
                        try:
                            r = node.post_event("demo.message", message(i))
                        except OSError:
                            if node is a:
                                return  # a is gone: nothing it did not answer counts
                            raise
                        if r.status == 202:
                            with lock:
                                accepted.append(r.body)
                                if len(accepted) == 60 and not killed.is_set():
                                    killed.set()
                        if len(accepted) >= 200:
                            stop.set()

                threads = [threading.Thread(target=post, args=(n,)) for n in (a, b)]
                for t in threads:
                    t.start()
                killed.wait(60)
                a.kill()
                for t in threads:
                    t.join(60)
                assert len(accepted) >= 200
                seen = wait_for(lambda: _drain_until(watcher, {x["id"] for x in accepted}), timeout=30,
                                what="every accepted event on the surviving node")
            seqs = [e["seq"] for e in seen]
            assert seqs == sorted(set(seqs)), "strictly increasing seq, nothing twice"
            assert {x["id"] for x in accepted} <= {e["id"] for e in seen}
        finally:
            stop_cluster([a, b])


_seen: dict[int, list[dict[str, Any]]] = {}


def _drain_until(client: WampClient, wanted: set[str]) -> list[dict[str, Any]] | None:
    got = _seen.setdefault(id(client), [])
    while not client.events.empty():
        got.append(client.events.get_nowait()[1])
    return got if wanted <= {e["id"] for e in got} else None
