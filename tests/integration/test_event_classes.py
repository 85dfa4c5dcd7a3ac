"""Event classes at the bridge: validation shapes, batches, idempotency, catalog, OpenAPI."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.harness import API_KEY, GatewayNode, Response
from tests.support.wamp import WampClient

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MESSAGE = {"room": "lobby", "text": "hi", "author": "ann"}
ORDER = {"order_id": 7, "amount": 12.5, "country": "AR", "tags": ["new"], "customer": {"id": 1, "name": "Ann"}}


def post_batch(node: GatewayNode, events: list[Any]) -> Response:
    return node.request("POST", "/events/batch", json.dumps({"events": events}).encode(), AUTH)


def test_every_bad_field_is_listed_with_its_path(node: GatewayNode) -> None:
    bad = {"order_id": "7", "amount": "12.5", "tags": ["ok", 5], "customer": {"id": 1}, "colour": "red"}
    r = node.post_event("demo.order", bad)
    assert r.status == 400 and r.body["error"] == "invalid_event"
    by_path = {d["path"]: d for d in r.body["details"]}
    assert set(by_path) == {"data.order_id", "data.amount", "data.country", "data.tags.1", "data.customer.name",
                            "data.colour"}
    assert all(d["message"] and d["type"] for d in r.body["details"])


def test_a_yaml_defined_class_validates_too(node: GatewayNode) -> None:
    r = node.post_event("demo.alert", {"level": 3})
    assert r.status == 400
    assert {d["path"] for d in r.body["details"]} >= {"data.level", "data.text"}


def test_a_batch_accepts_the_good_and_refuses_the_bad_in_order(node: GatewayNode) -> None:
    with WampClient(node.ws_url) as client:
        client.subscribe("gateway.event.demo.message")
        r = post_batch(node, [
            {"event": "demo.message", "data": {**MESSAGE, "text": "one"}},
            {"event": "demo.nope", "data": {}},
            {"event": "demo.message", "data": {"room": 5}},
            {"event": "demo.message", "data": {**MESSAGE, "text": "two"}},
        ])
        assert r.status == 200
        results = r.body["results"]
        assert [x.get("status") for x in results] == [None, 404, 400, None]
        assert results[2]["details"][0]["path"].startswith("events.2.data.")
        assert results[0]["seq"] < results[3]["seq"]
        got = client.take(2)
    assert [e["data"]["text"] for e in got] == ["one", "two"]
    assert [e["seq"] for e in got] == [results[0]["seq"], results[3]["seq"]]


def test_an_empty_batch_is_fine(node: GatewayNode) -> None:
    r = post_batch(node, [])
    assert r.status == 200 and r.body == {"results": []}


def test_the_same_id_twice_is_one_event(node: GatewayNode) -> None:
    with WampClient(node.ws_url) as client:
        client.subscribe("gateway.event.demo.message")
        first = node.post_event("demo.message", MESSAGE, id="once-only-1")
        second = node.post_event("demo.message", {**MESSAGE, "text": "again"}, id="once-only-1")
        marker = node.post_event("demo.message", {**MESSAGE, "text": "marker"})
        got = client.take(2)
    assert first.status == 202 and "duplicate" not in first.body
    assert second.status == 202 and second.body == {"id": "once-only-1", "seq": first.body["seq"], "duplicate": True}
    assert [e["seq"] for e in got] == [first.body["seq"], marker.body["seq"]]


def test_the_same_id_twice_in_one_batch_is_one_event(node: GatewayNode) -> None:
    r = post_batch(node, [{"event": "demo.message", "data": MESSAGE, "id": "batch-dup"}] * 2)
    a, b = r.body["results"]
    assert a["seq"] == b["seq"] and b["duplicate"] is True and "duplicate" not in a


def test_an_id_reused_for_another_class_is_a_conflict(node: GatewayNode) -> None:
    assert node.post_event("demo.message", MESSAGE, id="shared-id-9").status == 202
    r = node.post_event("demo.order", ORDER, id="shared-id-9")
    assert r.status == 409 and r.body["error"] == "conflict" and "demo.message" in r.body["message"]


def test_the_bridge_catalog_lists_every_class(node: GatewayNode) -> None:
    r = node.request("GET", "/catalog", headers=AUTH)
    assert r.status == 200
    classes = {c["name"]: c for c in r.body["classes"]}
    assert set(classes) == {"demo.message", "demo.order", "demo.alert", "test.notice", "test.team"}
    assert classes["demo.order"]["visibility"] == "authenticated"
    assert classes["demo.order"]["description"] == "A customer placed an order."
    assert "customer" in json.dumps(classes["demo.order"]["schema"])
    assert r.body["version"] == node.get("/healthz").body["definitions"]
    assert node.get("/catalog").status == 401


def test_the_wamp_catalog_shows_what_the_caller_may_see(node: GatewayNode) -> None:
    with WampClient(node.ws_url) as anonymous:
        seen = anonymous.call("gateway.catalog")
    assert [c["name"] for c in seen["classes"]] == ["demo.message"]
    with node.backend_client() as backend:
        everything = backend.call("gateway.catalog")
    assert {c["name"] for c in everything["classes"]} == {"demo.message", "demo.order", "demo.alert", "test.notice",
                                                          "test.team"}
    assert seen["version"] == everything["version"]


def test_openapi_describes_the_api_and_every_reference_resolves(node: GatewayNode) -> None:
    r = node.get("/openapi.json")
    assert r.status == 200
    doc = r.body
    assert doc["openapi"] == "3.1.0"
    assert {"/events", "/events/batch", "/catalog", "/admin/reload", "/healthz"} <= set(doc["paths"])
    schemas = doc["components"]["schemas"]
    assert {"Event_demo_message", "Event_demo_order", "Event_demo_alert"} <= set(schemas)

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    all_refs = refs(doc)
    assert all_refs and all(ref.startswith("#/components/schemas/") for ref in all_refs)
    assert all(ref.removeprefix("#/components/schemas/") in schemas for ref in all_refs)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"event": st.sampled_from(["demo.message", "demo.order", "demo.alert", "x"]),
                           "data": json_values}),
    st.fixed_dictionaries({"event": st.sampled_from(["demo.message", "demo.order"]),
                           "data": st.fixed_dictionaries({}, optional={
                               "room": json_values, "text": st.text(), "author": st.text(),
                               "order_id": st.integers(), "amount": st.floats(allow_nan=False),
                               "tags": st.lists(st.text(max_size=5)), "customer": json_values})}),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_any_json_body_gets_202_or_a_4xx_with_a_json_error(node: GatewayNode, body: Any) -> None:
    r = node.request("POST", "/events", json.dumps(body).encode(), AUTH)
    assert r.status == 202 or 400 <= r.status < 500, (r.status, r.body)
    assert isinstance(r.body, dict)
    if r.status != 202:
        assert isinstance(r.body["error"], str) and isinstance(r.body["message"], str)
