"""Which refusals of events an ingest answer carries (gateway_events_refused_total{reason}): HTTP's, and
XML-RPC's, where only faults that refuse events count, not bad calls of other methods or introspection."""

from __future__ import annotations

import xmlrpc.client
from pathlib import Path
from typing import Any

import pytest

from components.config import ApiKey
from components.events import Registry
from webapp_bridge.server import xmlrpc as rpc
from webapp_bridge.server.api import Answer, BridgeLogic, error
from webapp_bridge.server.counting import refusals
from webapp_bridge.server.overload import as_fault, overloaded

REPO = Path(__file__).resolve().parents[4]
REGISTRY = Registry.load(["examples.demo_events"], ["examples/demo_events.yaml"], base_dir=REPO)
LOGIC = BridgeLogic((ApiKey(name="shop", key="key-one-12345"),), REGISTRY, 4096, max_batch=5)
MESSAGE = {"room": "lobby", "text": "hi", "author": "ann"}
ACCEPTED = {"id": "e1", "seq": 1}


def call(method: str, *params: Any) -> bytes:
    return xmlrpc.client.dumps(params, method, allow_none=True).encode()


def multicall(*calls: tuple[str, list[Any]]) -> bytes:
    return call("system.multicall", [{"methodName": m, "params": p} for m, p in calls])


def answered(body: bytes, published: list[dict[str, Any]] | Answer | None = None,
             tickets: list[dict[str, Any] | Answer] | None = None) -> Answer:
    """The answer to a POST /RPC2 body, the dispatcher answering ``published`` (each event accepted by
    default) and the tickets issued."""
    plan = rpc.plan(LOGIC, body)
    if published is None:
        published = [ACCEPTED for _ in plan.events()]
    if tickets is None:
        tickets = [{"ticket": "gt_x", "expires_at": "2030-01-01T00:00:00Z"} for _ in plan.tickets()]
    return plan.answer(published, tickets)


# -- HTTP ---------------------------------------------------------------------------


def test_an_http_refusal_counts_once_by_its_error_code() -> None:
    assert refusals(error(400, "invalid_event", "bad")) == ["invalid_event"]
    assert refusals(error(401, "unauthorized", "no key")) == ["unauthorized"]
    assert refusals(Answer(404, {})) == ["404"]


def test_an_accepted_event_is_no_refusal() -> None:
    assert refusals(Answer(202, ACCEPTED)) == []


def test_a_batch_counts_each_item_refused_in_place() -> None:
    body = {"results": [ACCEPTED, {"error": "invalid_event", "status": 400}, {"error": "unknown_event", "status": 404}]}
    assert refusals(Answer(200, body)) == ["invalid_event", "unknown_event"]


# -- XML-RPC ------------------------------------------------------------------------


def test_an_xmlrpc_answer_is_200_xml_and_says_its_refusals_itself() -> None:
    answer = answered(call("publish", "demo.unknown", {}))
    assert answer.status == 200 and answer.raw is not None
    assert refusals(answer) == ["unknown_event"]


def test_a_published_event_is_no_refusal() -> None:
    assert refusals(answered(call("publish", "demo.message", MESSAGE))) == []


def test_invalid_event_data_counts_as_invalid_event() -> None:
    assert refusals(answered(call("publish", "demo.message", {"room": 1}))) == ["invalid_event"]


def test_a_publish_with_wrong_parameters_refuses_an_event() -> None:
    assert refusals(answered(call("publish", "demo.message"))) == ["invalid_params"]
    assert refusals(answered(call("publish", "demo.message", "not a struct"))) == ["invalid_params"]


def test_a_batch_counts_its_items_refused_in_place() -> None:
    body = call("publish_batch", [{"event": "demo.message", "data": MESSAGE}, {"event": "demo.nope", "data": {}},
                                  {"event": "demo.message", "data": {}}])
    assert refusals(answered(body)) == ["unknown_event", "invalid_event"]
    too_many = call("publish_batch", [{"event": "demo.message", "data": MESSAGE}] * 6)
    assert refusals(answered(too_many)) == ["too_many_events"]


def test_the_dispatchers_refusals_count_too() -> None:
    refused = {"error": "unknown_event", "message": "gone", "id": "e1"}
    assert refusals(answered(call("publish", "demo.message", MESSAGE), [refused])) == ["unknown_event"]
    down = error(503, "unavailable", "no dispatcher")
    body = multicall(("publish", ["demo.message", MESSAGE]), ("publish_batch", [[{"event": "demo.message",
                                                                                 "data": MESSAGE}]]))
    assert refusals(answered(body, down)) == ["unavailable", "unavailable"]


@pytest.mark.parametrize("body", [
    call("system.listMethods"),
    call("system.methodHelp", "publish"),
    call("system.methodSignature", "publish"),
    call("system.methodHelp", "no.such.method"),  # introspection's own fault
    call("system.methodHelp", 42),
    call("system.listMethods", "extra"),
    call("no.such.method", 1),
    call("issue_ticket", "alice", ["Not A Role!"]),  # tickets are not events (POST /tickets is not counted)
    call("issue_ticket", 7),
    call("issue_ticket", "alice"),
    multicall(("system.listMethods", []), ("nope", [])),
    call("system.multicall", "not an array"),
    call("system.multicall", [["not", "a", "struct"]]),
    call("system.multicall", [{"methodName": "system.multicall", "params": [[]]}]),
], ids=lambda b: xmlrpc.client.loads(b)[1])
def test_faults_of_other_methods_refuse_no_event(body: bytes) -> None:
    assert refusals(answered(body)) == []


def test_a_ticket_refused_by_the_gateway_is_no_refusal_of_an_event() -> None:
    down = error(503, "unavailable", "no authenticator")
    assert refusals(answered(call("issue_ticket", "alice"), tickets=[down])) == []


def test_a_request_that_cannot_be_read_counts_once() -> None:
    assert refusals(answered(b"<methodCall><methodName>publish</methodName><params>")) == ["malformed_xmlrpc"]
    assert refusals(answered(b"not xml at all")) == ["malformed_xmlrpc"]
    deep = "<value><array><data>" * 40 + "<value><int>1</int></value>" + "</data></array></value>" * 40
    body = f"<methodCall><methodName>publish</methodName><params><param>{deep}</param></params></methodCall>"
    assert refusals(answered(body.encode())) == ["too_deep"]


def test_a_multicall_counts_its_event_calls_only() -> None:
    body = multicall(("publish", ["demo.nope", {}]), ("nope", []), ("issue_ticket", [7]),
                     ("publish", ["demo.message"]), ("publish_batch", [[{"event": "demo.message", "data": {}}]]))
    assert refusals(answered(body)) == ["unknown_event", "invalid_params", "invalid_event"]


def test_a_multicall_too_large_is_refused_whole_and_counted_once() -> None:
    assert refusals(answered(multicall(*[("system.listMethods", [])] * 6))) == ["too_many_calls"]
    body = multicall(*[("publish_batch", [[{"event": "demo.message", "data": MESSAGE}] * 3])] * 2)
    assert refusals(answered(body)) == ["too_many_events"]


def test_a_refusal_at_the_door_counts_once_as_its_code() -> None:
    fault = as_fault(overloaded(1000))
    assert fault.status == 200 and fault.raw is not None
    assert refusals(fault) == ["overloaded"]


def test_every_xmlrpc_answer_says_its_refusals() -> None:
    # Never None: the counting does not fall back to reading an XML body as JSON.
    for body in (call("system.listMethods"), call("publish", "demo.message", MESSAGE), b"junk"):
        assert answered(body).refusals is not None
