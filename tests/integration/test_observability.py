"""Metrics on a real node, beyond test_metrics.py: XML-RPC faults counted as refusals only when they refuse
events; both bridges answer scrapes (each names its container) with the same totals, never going back;
metrics.enabled: false counts nothing and GET /metrics answers 404, while the status page keeps its health."""

from __future__ import annotations

import time
import xmlrpc.client
from collections.abc import Iterator
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_metrics import Samples, assert_not_below, scrape, value
from tests.support.harness import API_KEY, GatewayNode, running_node

pytestmark = pytest.mark.integration

MESSAGE = {"room": "r", "text": "t", "author": "a"}
AUTH = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "text/xml"}
PROCESS_HEADER = "X-Gateway-Process"
#: The counters that move only when someone posts, logs in or reloads: equal in two scrapes in between.
STILL = ("gateway_events_accepted_total", "gateway_events_duplicate_total", "gateway_events_refused_total",
         "gateway_publishes_total", "gateway_ingest_duration_seconds_count", "gateway_reloads_total")


@pytest.fixture(scope="module")
def node() -> Iterator[GatewayNode]:
    # Without the hand-off: new connections reach both bridges, and each is asked.
    with running_node({"bridge": {"hand_off": False}}) as n:
        yield n


def rpc(node: GatewayNode, method: str, *params: Any) -> Any:
    """One XML-RPC call on POST /RPC2: the result, or the Fault."""
    return rpc_body(node, xmlrpc.client.dumps(params, method, allow_none=True).encode())


def rpc_body(node: GatewayNode, body: bytes) -> Any:
    r = node.request("POST", "/RPC2", body, AUTH)
    assert r.status == 200, (r.status, r.body)
    try:
        (result,), _ = xmlrpc.client.loads(r.body.encode())
    except xmlrpc.client.Fault as fault:
        return fault
    return result


def refused(samples: Samples) -> dict[str, float]:
    return {dict(labels)["reason"]: v for (name, labels), v in samples.items() if name == "gateway_events_refused_total"}


def test_xmlrpc_faults_count_as_refusals_only_when_they_refuse_events(node: GatewayNode) -> None:
    before = scrape(node)
    # Introspection, unknown methods, bad calls of other methods, tickets: no event refused.
    assert isinstance(rpc(node, "system.listMethods"), list)
    assert rpc(node, "system.methodHelp", "no.such.method").faultCode == -32601
    assert rpc(node, "no.such.method").faultCode == -32601
    assert rpc(node, "system.listMethods", "extra").faultCode == -32602
    assert rpc(node, "issue_ticket", "alice", ["Not A Role"]).faultCode == 400
    assert isinstance(rpc(node, "issue_ticket", "alice"), dict)
    middle = scrape(node)
    assert refused(middle) == refused(before)
    assert value(middle, "gateway_ingest_duration_seconds_count", transport="xmlrpc") >= \
        value(before, "gateway_ingest_duration_seconds_count", transport="xmlrpc") + 6
    # Refusals of events: each fault of publish, each batch item refused, an unreadable request.
    assert rpc(node, "publish", "demo.unknown", {}).faultCode == 404
    assert rpc(node, "publish", "demo.message", {"room": 1}).faultCode == 400
    assert rpc(node, "publish", "demo.message").faultCode == -32602
    results = rpc(node, "publish_batch", [{"event": "demo.message", "data": MESSAGE},
                                          {"event": "demo.message", "data": {}}])
    assert "seq" in results[0] and results[1]["error"] == "invalid_event"
    assert rpc_body(node, b"<methodCall><methodName>publish").faultCode == -32700
    assert isinstance(rpc(node, "publish", "demo.message", MESSAGE), dict)
    after = scrape(node)
    grew = {reason: n - refused(middle).get(reason, 0) for reason, n in refused(after).items()
            if n != refused(middle).get(reason, 0)}
    assert grew == {"unknown_event": 1, "invalid_event": 2, "invalid_params": 1, "malformed_xmlrpc": 1}
    assert value(after, "gateway_events_accepted_total", event="demo.message") == \
        value(middle, "gateway_events_accepted_total", event="demo.message") + 2


def test_both_bridges_answer_scrapes_each_naming_itself_with_the_same_totals(node: GatewayNode) -> None:
    for i in range(5):
        assert node.post_event("demo.message", MESSAGE, id=f"both-bridges-{i}").status == 202
    assert node.post_event("demo.message", MESSAGE, id="both-bridges-0").status == 202  # a duplicate
    assert node.post_event("demo.nope", {}).status == 404
    by_process: dict[str, Samples] = {}
    health_from: set[str] = set()
    last: Samples | None = None
    deadline = time.monotonic() + 60
    # Each request on a new connection: the kernel spreads them over the two bridges sharing the port.
    while (len(by_process) < 2 or len(health_from) < 2) and time.monotonic() < deadline:
        r = node.request("GET", "/metrics", timeout=30)
        assert r.status == 200, (r.status, r.body)
        samples: Samples = {(s.name, frozenset(s.labels.items())): s.value
                            for family in text_string_to_metric_families(r.body) for s in family.samples}
        if last is not None:
            assert_not_below(last, samples)  # never back, whichever answered
        last = samples
        by_process[r.headers[PROCESS_HEADER]] = samples
        h = node.get("/healthz")
        assert h.status == 200
        health_from.add(h.headers[PROCESS_HEADER])
    assert set(by_process) == {"components-1", "components-2"}, f"only {sorted(by_process)} answered /metrics"
    assert health_from == {"components-1", "components-2"}, f"only {sorted(health_from)} answered /healthz"
    one, two = (by_process[p] for p in ("components-1", "components-2"))
    still = {k: v for k, v in one.items() if k[0] in STILL}
    assert still == {k: v for k, v in two.items() if k[0] in STILL}
    assert value(one, "gateway_events_accepted_total", event="demo.message") >= 5
    assert value(one, "gateway_events_duplicate_total", event="demo.message") >= 1


def test_metrics_disabled_counts_nothing_and_metrics_answers_404() -> None:
    with running_node({"metrics": {"enabled": False}, "status": {"operator_role": "ops"}}) as off:
        for i in range(3):
            assert off.post_event("demo.message", MESSAGE).status == 202  # the gateway works as ever
        assert off.post_event("demo.nope", {}).status == 404
        r = off.get("/metrics")
        assert r.status == 404
        assert r.headers["Content-Type"] == "application/json"
        assert r.body["error"] == "metrics_disabled" and "metrics.enabled" in r.body["message"]
        assert r.headers[PROCESS_HEADER].startswith("components-")
        # Every process's own meter counted nothing (what each offers at gateway.internal.metrics.<session>).
        with off.backend_client().connect() as backend:
            snapshots = [backend.call(p) for p in metrics_procedures(backend)]
            assert len(snapshots) == 6  # three components in each of two containers
            assert all(s["counters"] == [] for s in snapshots), [s["counters"] for s in snapshots]
            status = backend.call("gateway.status")
        # The status page keeps the health (gauges cost nothing per event): no counters, no rates.
        assert status["metrics_enabled"] is False and status["events"] is None
        assert status["health"]["ok"] is True and status["dispatchers"]["active"] == 1
        # The operator role is the configured one.
        with off.client("olga", ["ops"]) as olga:
            assert olga.call("gateway.status")["metrics_enabled"] is False
        with off.client("sam", ["staff"]) as sam:
            with pytest.raises(ApplicationError) as caught:
                sam.call("gateway.status")
            assert caught.value.error == "wamp.error.not_authorized"


def metrics_procedures(backend: Any) -> list[str]:
    found = []
    for registration in backend.call("wamp.registration.list")["exact"]:
        try:
            uri = backend.call("wamp.registration.get", registration)["uri"]
        except ApplicationError:
            continue
        if uri.startswith("gateway.internal.metrics."):
            found.append(uri)
    return found
