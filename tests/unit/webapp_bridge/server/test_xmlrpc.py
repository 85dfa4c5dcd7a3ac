"""XML-RPC's pure part: a body in, the plan of work, the answer out; the same rules as the HTTP API."""

import datetime
import json
import xmlrpc.client
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.config import ApiKey
from components.events import Registry
from webapp_bridge.server import xmlrpc as rpc
from webapp_bridge.server.api import Answer, BridgeLogic, PublishRequest, TicketRequest
from webapp_bridge.server.xmlrpc import Fault, Plan, Publish, Ticket, Value

REPO = Path(__file__).resolve().parents[4]
REGISTRY = Registry.load(["examples.demo_events"], ["examples/demo_events.yaml"], base_dir=REPO)
LOGIC = BridgeLogic((ApiKey(name="shop", key="key-one-12345"),), REGISTRY, 1024, max_batch=5)
MESSAGE = {"room": "lobby", "text": "hi", "author": "ann"}


def call(method: str, *params: Any) -> bytes:
    return xmlrpc.client.dumps(params, method, allow_none=True).encode()


def plan(method: str, *params: Any) -> Plan:
    return rpc.plan(LOGIC, call(method, *params))


def only(method: str, *params: Any) -> Any:
    """The one step a (non-multicall) call plans."""
    (step,) = plan(method, *params).steps
    return step


def fault(method: str, *params: Any) -> Fault:
    step = only(method, *params)
    assert isinstance(step, Fault), step
    return step


def result(answer: Answer) -> Any:
    """What xmlrpc.client makes of the answer: the result, or the Fault it raises."""
    assert answer.status == 200 and answer.content_type == "text/xml" and answer.raw == answer.encode()
    try:
        (value,), _ = xmlrpc.client.loads(answer.encode(), use_builtin_types=True)
    except xmlrpc.client.Fault as exc:
        return exc
    return value


# -- decoding ----------------------------------------------------------------------


def test_a_call_is_decoded_with_nil_and_builtin_types() -> None:
    body = call("publish", "demo.message", {"a": None, "b": [1, 2.5, True]})
    assert rpc.decode(body) == ("publish", ["demo.message", {"a": None, "b": [1, 2.5, True]}])


@pytest.mark.parametrize("body,why", [
    (b"", "no element found"),
    (b"<methodCall><methodName>publish</methodName", "unclosed token: line 1, column 31"),
    (b"{\"event\": \"demo.message\"}", "not well-formed (invalid token): line 1, column 0"),
    (xmlrpc.client.dumps((1,), methodresponse=True).encode(), "not a methodCall"),
    (xmlrpc.client.dumps(xmlrpc.client.Fault(1, "x")).encode(), "a fault is an answer, not a call"),
    (b"<methodCall><methodName>publish</methodName><params><param><value><boolean>2</boolean></value>"
     b"</param></params></methodCall>", "bad boolean value"),
    (b"<methodCall><methodName>publish</methodName><params><param><value><int>x</int></value>"
     b"</param></params></methodCall>", "invalid literal"),
    (b"<methodCall><methodName>publish</methodName><params><param><value><struct><member><value><int>1</int>"
     b"</value></member></struct></value></param></params></methodCall>", "struct member lacks"),
    (b"<methodCall><methodName>publish</methodName><params><param><value><array><data>"
     b"</param></params></methodCall>", "mismatched tag"),
])
def test_what_is_not_a_call_is_a_parse_error_saying_why(body: bytes, why: str) -> None:
    (step,) = rpc.plan(LOGIC, body).steps
    assert isinstance(step, Fault) and step.code == -32700
    assert step.message.startswith("parse error: not well-formed XML-RPC: ") and why in step.message


def test_a_struct_member_without_a_name_is_a_parse_error() -> None:
    body = (b"<methodCall><methodName>publish</methodName><params><param><value><string>demo.message</string>"
            b"</value></param><param><value><struct><member><value><int>1</int></value><value><int>2</int>"
            b"</value></member></struct></value></param></params></methodCall>")
    (step,) = rpc.plan(LOGIC, body).steps
    assert step == Fault(-32700, "parse error: not well-formed XML-RPC: a struct member at data has no name")


# -- publish -------------------------------------------------------------------


def test_publish_is_the_http_body_checked_by_the_same_rules() -> None:
    assert only("publish", "demo.message", MESSAGE) == Publish((PublishRequest("demo.message", MESSAGE),), True)
    options = {"id": "order-1", "audience": {"users": ["bob", "alice"]}}
    assert only("publish", "demo.message", MESSAGE, options) == Publish(
        (LOGIC.check_event({"event": "demo.message", "data": MESSAGE, **options}),), True)
    assert only("publish", "demo.message", MESSAGE, None) == only("publish", "demo.message", MESSAGE)


def test_invalid_data_names_every_bad_field_in_the_fault_string() -> None:
    got = fault("publish", "demo.message", {"room": 1, "txt": "typo"})
    assert got.code == 400
    assert got.message.startswith("invalid_event: the data does not match the event class demo.message: ")
    fields = dict(part.split(": ", 1) for part in got.message.split(": ", 2)[2].split("; "))
    assert sorted(fields) == ["data.author", "data.room", "data.text", "data.txt"]
    assert all(fields.values())


@pytest.mark.parametrize("params,code,text", [
    (("demo.nope", {}), 404, "unknown_event: no event class named 'demo.nope' (known: demo.alert, demo.message"),
    (("demo.message", MESSAGE, {"id": "has space"}), 400, "invalid_request: 'id' must be a string of 1 to 128"),
    (("demo.message", MESSAGE, {"id": 5}), 400, "invalid_request: 'id' must be"),
    (("demo.message", MESSAGE, {"audience": {}}), 400, "invalid_request: 'audience' names no users and no roles"),
    (("demo.message", MESSAGE, {"audience": {"users": "alice"}}), 400, "'audience.users' must be a list"),
    (("demo.message", MESSAGE, {"audience": {"roles": ["Staff"]}}), 400, "audience.roles.0"),
    (("demo.message", MESSAGE, {"ttl": 5, "id": "a"}), 400,
     "invalid_request: unknown key(s) in options: ttl (expected id, audience)"),
])
def test_every_refusal_of_the_http_api_is_a_fault_with_its_status(params: tuple[Any, ...], code: int,
                                                                  text: str) -> None:
    got = fault("publish", *params)
    assert got.code == code and text in got.message, got


@pytest.mark.parametrize("params,message", [
    (("demo.message",), "publish takes 2 or 3 parameters (event, data[, options]), not 1"),
    (("demo.message", MESSAGE, {}, {}), "publish takes 2 or 3 parameters (event, data[, options]), not 4"),
    ((5, MESSAGE), "publish: parameter 1 (event) must be a string, not an int"),
    (("demo.message", [MESSAGE]), "publish: parameter 2 (data) must be a struct, not an array"),
    (("demo.message", None), "publish: parameter 2 (data) must be a struct, not nil"),
    (("demo.message", MESSAGE, "opts"), "publish: parameter 3 (options) must be a struct or nil, not a string"),
    ((xmlrpc.client.Binary(b"x"), MESSAGE), "publish: parameter 1 (event) must be a string, not base64 binary"),
    ((True, MESSAGE), "publish: parameter 1 (event) must be a string, not a boolean"),
])
def test_wrong_parameters_are_32602_naming_which(params: tuple[Any, ...], message: str) -> None:
    assert fault("publish", *params) == Fault(-32602, message)


def test_a_datetime_becomes_an_iso_8601_string_and_a_bigdecimal_a_number() -> None:
    when = datetime.datetime(2026, 11, 28, 9, 30, 1)
    step = only("publish", "demo.message", {**MESSAGE, "text": when})
    assert isinstance(step, Publish) and step.items[0] == PublishRequest(
        "demo.message", {**MESSAGE, "text": "2026-11-28T09:30:01"})
    body = call("publish", "demo.order", {}).replace(
        b"<struct>\n</struct>", b"<struct><member><name>amount</name><value><bigdecimal>12.50</bigdecimal></value>"
                                b"</member><member><name>order_id</name><value><bigdecimal>7</bigdecimal></value>"
                                b"</member></struct>")
    (step,) = rpc.plan(LOGIC, body).steps
    assert isinstance(step, Fault)  # demo.order needs more fields; amount and order_id are not among the bad ones
    assert "data.amount" not in step.message and "data.order_id" not in step.message and "data.country" in step.message
    assert rpc._plain({"a": Decimal("7"), "b": Decimal("12.50")}) == {"a": 7, "b": 12.5}


@pytest.mark.parametrize("data,where", [
    ({**MESSAGE, "text": xmlrpc.client.Binary(b"\x00\x01")}, "data.text"),
    ({**MESSAGE, "tags": [1, {"photo": xmlrpc.client.Binary(b"x")}]}, "data.tags.1.photo"),
])
def test_binary_is_refused_naming_where(data: dict[str, Any], where: str) -> None:
    got = fault("publish", "demo.message", data)
    assert got.code == 400 and got.message.startswith(f"invalid_request: {where} is base64 binary")


def test_binary_in_the_options_is_refused_too() -> None:
    got = fault("publish", "demo.message", MESSAGE, {"audience": {"users": [xmlrpc.client.Binary(b"a")]}})
    assert got.code == 400 and "audience.users.0 is base64 binary" in got.message


def nested(levels: int) -> Any:
    deep: Any = "x"
    for _ in range(levels):
        deep = [deep]
    return deep


def test_data_nested_past_the_limit_is_refused_like_the_same_post_events_body() -> None:
    # publish(event, data) stands for {"event", "data"}: data.room's arrays start at level 3.
    at_limit = fault("publish", "demo.message", {**MESSAGE, "room": nested(LOGIC.max_depth - 2)})
    assert at_limit.message.startswith("invalid_event")  # a room is a string: the class says so, not the edge
    over = fault("publish", "demo.message", {**MESSAGE, "room": nested(LOGIC.max_depth - 1)})
    where = ".".join(["data.room"] + ["0"] * (LOGIC.max_depth - 2))
    assert over == Fault(400, f"too_deep: the event nests arrays and objects more than {LOGIC.max_depth} levels deep "
                              f"(bridge.max_depth), at {where}")
    # {"events": [{"data": {"room": ...}}]}: the room's arrays start at level 5.
    batch = fault("publish_batch", [{"event": "demo.message",
                                     "data": {**MESSAGE, "room": nested(LOGIC.max_depth - 3)}}])
    assert batch.code == 400 and batch.message.startswith("too_deep: the batch nests arrays and objects more than")


def deep_call(levels: int, inner: bytes = b"<int>1</int>") -> bytes:
    return (b"<?xml version='1.0'?><methodCall><methodName>publish</methodName><params>"
            b"<param><value><string>demo.message</string></value></param><param><value>"
            + b"<array><data><value>" * levels + inner + b"</value></data></array>" * levels
            + b"</value></param></params></methodCall>")


def test_a_call_nesting_far_too_deep_is_refused_while_it_is_read() -> None:
    (step,) = rpc.plan(LOGIC, deep_call(100_000)).steps
    limit = LOGIC.max_depth + rpc.CALL_WRAPPING
    assert isinstance(step, Fault) and step.code == 400
    assert step.message.startswith(f"too_deep: the call nests arrays and structs more than {limit} levels deep "
                                   f"(bridge.max_depth is {LOGIC.max_depth}, plus {rpc.CALL_WRAPPING}), at line 1")
    # Elements that are not values nest no deeper either.
    junk = call("publish", "demo.message", MESSAGE).replace(b"<params>", b"<params>" + b"<x>" * 100_000 + b"</x>" * 100_000)
    (step,) = rpc.plan(LOGIC, junk).steps
    assert isinstance(step, Fault) and step.message.startswith("too_deep: the call nests XML elements more than")


def number_call(xml_value: bytes, method: str = "publish") -> bytes:
    """publish("demo.order", {order_id: <the value>, amount: 1}) with the value's XML as it is."""
    body = call(method, "demo.order", {"order_id": 1, "amount": 1})
    return body.replace(b"<int>1</int>", xml_value, 1)


@pytest.mark.parametrize("xml_value,json_value", [
    (b"<i8>10000000000000000000000000000000000000000</i8>", "10000000000000000000000000000000000000000"),
    (b"<int>9223372036854775808</int>", "9223372036854775808"),
    (b"<i4>-9223372036854775809</i4>", "-9223372036854775809"),
    (b"<int>" + b"9" * 5000 + b"</int>", "9" * 5000),
    (b"<bigdecimal>1e300</bigdecimal>", "1" + "0" * 300),
    (b"<double>nan</double>", "NaN"),
    (b"<double>inf</double>", "Infinity"),
    (b"<double>-1e400</double>", "-1e400"),
])
def test_numbers_events_cannot_carry_get_the_fault_post_events_gets(xml_value: bytes, json_value: str) -> None:
    (step,) = rpc.plan(LOGIC, number_call(xml_value)).steps
    http = LOGIC.parse_event(
        b'{"event": "demo.order", "data": {"order_id": ' + json_value.encode() + b', "amount": 1}}')
    assert isinstance(http, Answer) and http.body["error"] == "invalid_number"
    assert step == Fault(400, f"invalid_number: {http.body['message']}")
    assert "data.order_id: " in step.message


def test_the_64_bit_edges_pass() -> None:
    for value in (b"<i8>9223372036854775807</i8>", b"<int>-9223372036854775808</int>"):
        (step,) = rpc.plan(LOGIC, number_call(value)).steps
        assert not (isinstance(step, Fault) and "invalid_number" in step.message), step


#: Text XML can carry (no control characters; a carriage return would arrive as a newline).
xml_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc", "Cn"]), max_size=10)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**31, 2**31 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | xml_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(xml_text, children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(event=st.sampled_from(["demo.message", "demo.order", "demo.alert", "demo.nope"]),
       data=st.fixed_dictionaries({}, optional={"room": json_values, "text": json_values, "author": xml_text,
                                                "order_id": json_values, "level": json_values, "x": json_values}),
       options=st.fixed_dictionaries({}, optional={"id": json_values | st.sampled_from(["ok-1", "a b"]),
                                                   "audience": json_values}))
def test_publish_and_post_events_agree_on_every_body(event: str, data: dict[str, Any],
                                                     options: dict[str, Any]) -> None:
    """Rule 7: the same body gets the same request, or the same status and error code, both ways."""
    http = LOGIC.parse_event(json.dumps({"event": event, "data": data, **options}).encode())
    step = only("publish", event, data, options)
    if isinstance(http, PublishRequest):
        assert step == Publish((http,), True)
    else:
        assert isinstance(step, Fault) and step.code == http.status
        assert step.message.startswith(f"{http.body['error']}: {http.body['message']}")


# -- publish_batch ----------------------------------------------------------------


def test_a_batch_is_checked_item_by_item_like_post_events_batch() -> None:
    events = [{"event": "demo.message", "data": MESSAGE}, {"event": "demo.nope", "data": {}}, "text",
              {"event": "demo.message", "data": MESSAGE, "id": "x-1"}]
    step = only("publish_batch", events)
    http = LOGIC.parse_batch(json.dumps({"events": events}).encode())
    assert isinstance(step, Publish) and not step.single and list(step.items) == http


def test_a_batch_that_is_not_an_array_or_too_long_is_refused_whole() -> None:
    assert fault("publish_batch", {"events": []}) == Fault(
        -32602, "publish_batch: parameter 1 (events) must be an array, not a struct")
    got = fault("publish_batch", [{"event": "demo.message", "data": MESSAGE}] * 6)
    assert got == Fault(400, "too_many_events: a batch holds at most 5 events; this one has 6")


def test_binary_in_a_batch_names_the_item() -> None:
    got = fault("publish_batch", [{"event": "demo.message", "data": MESSAGE},
                                  {"event": "demo.message", "data": {"text": xmlrpc.client.Binary(b"")}}])
    assert got.code == 400 and "events.1.data.text is base64 binary" in got.message


# -- issue_ticket ---------------------------------------------------------------


@pytest.mark.parametrize("params,expected", [
    (("alice",), TicketRequest("alice", [], 60)),
    (("alice", ["staff", "red"]), TicketRequest("alice", ["red", "staff"], 60)),
    (("alice", None, 5), TicketRequest("alice", [], 5)),
    (("alice", [], 2.5), TicketRequest("alice", [], 2.5)),
])
def test_issue_ticket_is_a_post_tickets_body(params: tuple[Any, ...], expected: TicketRequest) -> None:
    assert only("issue_ticket", *params) == Ticket(expected)


@pytest.mark.parametrize("params,code,text", [
    ((), -32602, "issue_ticket takes 1 to 3 parameters (user[, roles[, ttl]]), not 0"),
    ((5,), -32602, "issue_ticket: parameter 1 (user) must be a string, not an int"),
    (("alice", "staff"), -32602, "issue_ticket: parameter 2 (roles) must be an array or nil, not a string"),
    (("alice", [], "60"), -32602, "issue_ticket: parameter 3 (ttl) must be an int or a double or nil, not a string"),
    (("alice", [], True), -32602, "parameter 3 (ttl) must be an int or a double or nil, not a boolean"),
    (("",), 400, "invalid_request: user must be 1 to 255 characters"),
    (("alice", ["Staff"]), 400, "invalid_request: roles[0] ('Staff') must be a lower-case name"),
    (("alice", [], 3601), 400, "invalid_request: ttl must be a number of seconds, more than 0 and at most 3600"),
    (("alice", [], 0), 400, "invalid_request: ttl must be"),
])
def test_bad_ticket_requests_are_faults(params: tuple[Any, ...], code: int, text: str) -> None:
    got = fault("issue_ticket", *params)
    assert got.code == code and text in got.message, got


# -- introspection ---------------------------------------------------------------


def test_unknown_methods_are_32601_listing_the_methods() -> None:
    got = fault("gateway.publish", "demo.message", MESSAGE)
    assert got == Fault(-32601, "no such method 'gateway.publish' (methods: issue_ticket, publish, publish_batch, "
                                "system.listMethods, system.methodHelp, system.methodSignature, system.multicall)")


def test_introspection() -> None:
    assert only("system.listMethods") == Value(sorted(rpc.METHODS))
    help_text = only("system.methodHelp", "publish")
    assert isinstance(help_text, Value) and help_text.value.startswith("publish(event, data[, options])")
    assert only("system.methodSignature", "issue_ticket") == Value([
        ["struct", "string"], ["struct", "string", "array"], ["struct", "string", "array", "int"],
        ["struct", "string", "array", "double"]])
    assert fault("system.methodHelp", "nope").code == -32601
    assert fault("system.methodSignature", 1) == Fault(
        -32602, "system.methodSignature: parameter 1 (name) must be a string, not an int")
    assert fault("system.listMethods", "x") == Fault(-32602, "system.listMethods takes 0 parameters, not 1")


def test_every_method_has_help_a_signature_and_an_arity_that_agree() -> None:
    for name, method in rpc.METHODS.items():
        least, most = rpc._ARITY[name]
        assert {len(s) - 1 for s in method.signatures} == set(range(least, most + 1)), name
        assert method.help.startswith(name + "(")


# -- multicall ----------------------------------------------------------------------


def multicall(*calls: Any) -> Plan:
    return plan("system.multicall", list(calls))


def test_a_multicall_plans_each_call_in_order_and_publishes_them_together() -> None:
    got = multicall({"methodName": "publish", "params": ["demo.message", MESSAGE]},
                    {"methodName": "issue_ticket", "params": ["alice"]},
                    {"methodName": "nope", "params": []},
                    {"methodName": "publish_batch", "params": [[{"event": "demo.message", "data": MESSAGE,
                                                                 "id": "b-1"}]]})
    assert got.multicall and len(got.steps) == 4
    assert [r.id for r in got.events()] == [None, "b-1"]
    assert got.tickets() == [TicketRequest("alice", [], 60)]
    assert isinstance(got.steps[2], Fault) and got.steps[2].code == -32601


@pytest.mark.parametrize("item,message", [
    ("publish", "system.multicall: call 1 must be a struct {methodName, params}, not a string"),
    ({"methodName": 5, "params": []}, "system.multicall: call 1: methodName must be a string, not an int"),
    ({"methodName": "publish", "params": {}}, "system.multicall: call 1: params must be an array, not a struct"),
    ({"methodName": "publish", "params": [], "x": 1}, "call 1 has unknown member(s) x"),
    ({"methodName": "system.multicall", "params": [[]]}, "cannot be called inside system.multicall"),
])
def test_a_bad_call_in_a_multicall_is_its_own_fault(item: Any, message: str) -> None:
    got = multicall(item, {"methodName": "system.listMethods", "params": []})
    assert isinstance(got.steps[0], Fault) and got.steps[0].code == -32602 and message in got.steps[0].message
    assert got.steps[1] == Value(sorted(rpc.METHODS))


def test_a_multicall_is_limited_in_calls_and_in_events() -> None:
    one = {"methodName": "system.listMethods", "params": []}
    assert multicall(*[one] * 6).steps == (
        Fault(400, "too_many_calls: a multicall holds at most 5 calls; this one has 6"),)
    batch = {"methodName": "publish_batch", "params": [[{"event": "demo.message", "data": MESSAGE}] * 3]}
    assert multicall(batch, batch).steps == (
        Fault(400, "too_many_events: a multicall publishes at most 5 events; this one has 6"),)
    assert fault("system.multicall", "x").code == -32602


# -- answers ---------------------------------------------------------------------


def test_a_published_event_answers_its_id_and_seq_and_a_duplicate_says_so() -> None:
    got = plan("publish", "demo.message", MESSAGE)
    assert result(got.answer([{"id": "a", "seq": 3}], [])) == {"id": "a", "seq": 3}
    assert result(got.answer([{"id": "a", "seq": 3, "duplicate": True}], [])) == {"id": "a", "seq": 3,
                                                                                   "duplicate": True}


def test_a_refusal_by_the_dispatcher_is_a_fault_with_its_status() -> None:
    got = plan("publish", "demo.message", MESSAGE, {"id": "x"})
    conflict = result(got.answer([{"error": "conflict", "status": 409, "message": "id x was used by demo.order"}],
                                 []))
    assert isinstance(conflict, xmlrpc.client.Fault)
    assert (conflict.faultCode, conflict.faultString) == (409, "conflict: id x was used by demo.order")


def test_an_unreachable_dispatcher_faults_every_publishing_call_with_503() -> None:
    got = multicall({"methodName": "publish", "params": ["demo.message", MESSAGE]},
                    {"methodName": "system.methodHelp", "params": ["publish"]},
                    {"methodName": "publish_batch", "params": [[{"event": "demo.message", "data": MESSAGE}]]})
    down = Answer(503, {"error": "unavailable", "message": "no dispatcher is running; the event was not accepted"})
    results = result(got.answer(down, []))
    assert results[0] == results[2] == {"faultCode": 503, "faultString": "unavailable: no dispatcher is running; "
                                                                         "the event was not accepted"}
    assert results[1] == [rpc.METHODS["publish"].help]


def test_batch_results_are_those_of_post_events_batch() -> None:
    got = plan("publish_batch", [{"event": "demo.message", "data": MESSAGE}, {"event": "demo.nope", "data": {}},
                                 {"event": "demo.message", "data": MESSAGE}])
    assert result(got.answer([{"id": "a", "seq": 1}, {"id": "b", "seq": 2}], [])) == [
        {"id": "a", "seq": 1},
        {"error": "unknown_event", "message": "no event class named 'demo.nope' (known: demo.alert, demo.message, "
                                              "demo.order)", "status": 404},
        {"id": "b", "seq": 2}]


def test_multicall_answers_read_with_xmlrpc_clients_multicall_iterator() -> None:
    got = multicall({"methodName": "publish", "params": ["demo.message", MESSAGE]},
                    {"methodName": "issue_ticket", "params": ["alice"]},
                    {"methodName": "issue_ticket", "params": ["bob"]},
                    {"methodName": "publish", "params": ["demo.nope", {}]})
    ticket = {"ticket": "gt_x", "expires_at": "2026-11-28T10:00:00Z", "user": "alice", "roles": []}
    refused = Answer(400, {"error": "invalid_request", "message": "user is odd"})
    answers = xmlrpc.client.MultiCallIterator(result(got.answer([{"id": "a", "seq": 1}], [ticket, refused])))
    assert answers[0] == {"id": "a", "seq": 1}
    assert answers[1] == ticket
    for i, code, text in ((2, 400, "invalid_request: user is odd"), (3, 404, "unknown_event: no event class named")):
        with pytest.raises(xmlrpc.client.Fault) as exc:
            answers[i]
        assert exc.value.faultCode == code and exc.value.faultString.startswith(text)


def test_ints_past_32_bits_are_written_as_i8() -> None:
    seq = 2**31 + 5
    answer = rpc.respond(Value({"id": "a", "seq": seq, "small": 7}))
    assert b"<i8>2147483653</i8>" in answer.encode() and b"<int>7</int>" in answer.encode()
    assert result(answer) == {"id": "a", "seq": seq, "small": 7}


def test_text_xml_cannot_carry_is_escaped_so_the_answer_always_parses() -> None:
    got = result(rpc.respond(Fault(404, "unknown_event: no event class named 'a\x00b<&>'")))
    assert isinstance(got, xmlrpc.client.Fault)
    assert got.faultString == "unknown_event: no event class named 'a\\x00b<&>'"
    assert result(rpc.respond(Value(["\x1b[0m", None]))) == ["\\x1b[0m", None]


def test_the_answer_is_what_xmlrpc_client_dumps_writes() -> None:
    value = {"id": "a", "seq": 1, "duplicate": True, "roles": [], "none": None}
    assert rpc.respond(Value(value)).encode() == xmlrpc.client.dumps(
        (value,), methodresponse=True, allow_none=True).encode()
    assert rpc.respond(Fault(400, "x: y")).encode() == xmlrpc.client.dumps(
        xmlrpc.client.Fault(400, "x: y"), methodresponse=True, allow_none=True).encode()


def test_options_cannot_replace_the_event_or_its_data() -> None:
    assert fault("publish", "demo.message", MESSAGE, {"event": "demo.order", "data": {}}) == Fault(
        400, "invalid_request: unknown key(s) in options: data, event (expected id, audience)")


@pytest.mark.parametrize("number", ["1e1000000", "-1e400", "9" * 5000, "1e-400", "NaN", "Infinity"])
def test_a_bigdecimal_out_of_a_json_number_range_is_refused_at_once(number: str) -> None:
    body = call("publish", "demo.message", {}).replace(
        b"<struct>\n</struct>", b"<struct><member><name>room</name><value><bigdecimal>" + number.encode()
                                + b"</bigdecimal></value></member></struct>")
    # Refused before any conversion (int(Decimal("1e1000000")) alone would take half a minute).
    (step,) = rpc.plan(LOGIC, body).steps
    assert isinstance(step, Fault) and step.code == 400
    assert step.message.startswith("invalid_request: data.room is a bigdecimal out of range")
