import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from components.delivery.results import IdOrigin
from components.config import ApiKey
from components.events import Registry
from components.limits import INT_RANGE, NON_FINITE
from webapp_bridge.server.api import Answer, BridgeLogic, PublishRequest, alive, batch_results, published

REPO = Path(__file__).resolve().parents[4]
REGISTRY = Registry.load(["examples.demo_events"], ["examples/demo_events.yaml"], base_dir=REPO)
LOGIC = BridgeLogic((ApiKey(name="shop", key="key-one-12345"), ApiKey(name="blog", key="key-two-67890")),
                    REGISTRY, 1024)
MESSAGE = {"room": "lobby", "text": "hi", "author": "ann"}


def parse(doc: Any) -> PublishRequest | Answer:
    return LOGIC.parse_event(doc if isinstance(doc, bytes) else json.dumps(doc).encode())


def refused(doc: Any) -> Answer:
    result = parse(doc)
    assert isinstance(result, Answer), result
    return result


@pytest.mark.parametrize("header,name", [("Bearer key-one-12345", "shop"), ("Bearer key-two-67890", "blog"),
                                         ("bearer  key-one-12345 ", "shop")])
def test_valid_keys_pass_and_are_known_by_their_name(header: str, name: str) -> None:
    assert LOGIC.authenticate(header) == name


@pytest.mark.parametrize("header,reason", [
    (None, "missing Authorization header"),
    ("", "missing Authorization header"),
    ("Basic a2V5", "must be 'Bearer <api key>'"),
    ("Bearer", "must be 'Bearer <api key>'"),
    ("Bearer key-one-1234", "not valid"),
    ("Bearer key-one-12345x", "not valid"),
])
def test_missing_or_wrong_keys_are_401_with_a_reason(header: str | None, reason: str) -> None:
    answer = LOGIC.authenticate(header)
    assert isinstance(answer, Answer) and answer.status == 401
    assert answer.body["error"] == "unauthorized" and reason in answer.body["message"]
    assert dict(answer.headers)["WWW-Authenticate"].startswith("Bearer")


def test_a_good_event_is_parsed() -> None:
    assert parse({"event": "demo.message", "data": MESSAGE}) == PublishRequest("demo.message", MESSAGE, None)
    assert parse({"event": "demo.message", "data": MESSAGE, "id": "order-1:created"}) == PublishRequest(
        "demo.message", MESSAGE, "order-1:created")


@pytest.mark.parametrize("body,where", [
    (b"{not json", "line 1, column 2"),
    (b"", "line 1, column 1"),
    (b'{"event": "demo.message",}', "line 1, column 26"),
])
def test_malformed_json_says_where(body: bytes, where: str) -> None:
    answer = refused(body)
    assert answer.status == 400 and answer.body["error"] == "malformed_json" and where in answer.body["message"]


def test_non_utf8_is_malformed() -> None:
    assert refused(b"\xff\xfe{}").body["error"] == "malformed_json"


@pytest.mark.parametrize("doc,kind", [([1, 2], "an array"), ("text", "a string"), (3, "a number"), (None, "null")])
def test_a_body_that_is_not_an_object(doc: Any, kind: str) -> None:
    answer = refused(doc)
    assert answer.status == 400 and answer.body["message"] == f"the body must be a JSON object, not {kind}"


def test_missing_event() -> None:
    answer = refused({"data": MESSAGE})
    assert answer.status == 400 and "missing 'event'" in answer.body["message"]
    assert answer.body["details"][0]["path"] == "event"


def test_event_must_be_a_string() -> None:
    assert refused({"event": 5, "data": MESSAGE}).body["message"] == "'event' must be a string, not a number"


def test_unknown_event_is_404_and_lists_the_known_ones() -> None:
    answer = refused({"event": "demo.nope", "data": {}})
    assert answer.status == 404 and answer.body["error"] == "unknown_event"
    assert "'demo.nope'" in answer.body["message"] and "demo.message" in answer.body["message"]


def test_unknown_top_level_keys_are_refused() -> None:
    answer = refused({"event": "demo.message", "data": MESSAGE, "audience": {"users": ["a"]}, "x": 1})
    assert answer.status == 400 and [d["path"] for d in answer.body["details"]] == ["x"]


def test_missing_data() -> None:
    answer = refused({"event": "demo.message"})
    assert answer.status == 400 and answer.body["details"][0]["path"] == "data"


@pytest.mark.parametrize("event_id", ["", "a" * 129, "has space", 42])
def test_bad_ids_are_refused(event_id: Any) -> None:
    answer = refused({"event": "demo.message", "data": MESSAGE, "id": event_id})
    assert answer.status == 400 and answer.body["details"][0]["path"] == "id"


def test_invalid_data_lists_every_bad_field_under_data() -> None:
    answer = refused({"event": "demo.message", "data": {"room": 1, "txt": "typo"}})
    assert answer.status == 400 and answer.body["error"] == "invalid_event"
    paths = sorted(d["path"] for d in answer.body["details"])
    assert paths == ["data.author", "data.room", "data.text", "data.txt"]


def test_answers_encode_as_compact_json() -> None:
    assert Answer(202, {"id": "a", "seq": 1}).encode() == b'{"id":"a","seq":1}'
    assert LOGIC.too_large().status == 413 and "1024 bytes" in LOGIC.too_large().body["message"]


def batch(doc: Any) -> list[PublishRequest | Answer] | Answer:
    return LOGIC.parse_batch(json.dumps(doc).encode())


def test_a_batch_is_checked_item_by_item_in_order() -> None:
    items = batch({"events": [
        {"event": "demo.message", "data": MESSAGE},
        {"event": "demo.nope", "data": {}},
        {"event": "demo.message", "data": {"room": 1}},
        "not an object",
        {"event": "demo.message", "data": MESSAGE, "id": "x-1"},
    ]})
    assert isinstance(items, list) and len(items) == 5
    assert items[0] == PublishRequest("demo.message", MESSAGE, None)
    assert isinstance(items[1], Answer) and items[1].status == 404
    assert isinstance(items[2], Answer) and items[2].status == 400
    assert {d["path"] for d in items[2].body["details"]} == {"events.2.data.room", "events.2.data.text",
                                                            "events.2.data.author"}
    assert isinstance(items[3], Answer) and items[3].body["message"] == "events.3 must be a JSON object, not a string"
    assert items[4] == PublishRequest("demo.message", MESSAGE, "x-1")


@pytest.mark.parametrize("doc,message", [
    ([], "the body must be a JSON object, not an array"),
    ({}, "'events' must be an array of events (missing)"),
    ({"events": {}}, "'events' must be an array of events (an object, not an array)"),
    ({"events": [], "more": 1}, "unknown key(s) in the body: more"),
])
def test_a_malformed_batch_is_refused_whole(doc: Any, message: str) -> None:
    answer = batch(doc)
    assert isinstance(answer, Answer) and answer.status == 400 and answer.body["message"] == message


def test_a_batch_over_the_limit_is_refused_whole() -> None:
    small = BridgeLogic(LOGIC.api_keys, LOGIC.registry, 1024, max_batch=2)
    answer = small.parse_batch(json.dumps({"events": [{"event": "demo.message", "data": MESSAGE}] * 3}).encode())
    assert isinstance(answer, Answer) and answer.status == 400 and "at most 2 events" in answer.body["message"]


def test_batch_results_keep_refusals_in_place() -> None:
    items: list[PublishRequest | Answer] = [PublishRequest("demo.message", MESSAGE),
                                            Answer(404, {"error": "unknown_event", "message": "m"}),
                                            PublishRequest("demo.message", MESSAGE)]
    answer = batch_results(items, [{"id": "a", "seq": 1}, {"id": "b", "seq": 2, "duplicate": True}])
    assert answer.status == 200 and answer.body == {"results": [
        {"id": "a", "seq": 1}, {"error": "unknown_event", "message": "m", "status": 404},
        {"id": "b", "seq": 2, "duplicate": True}]}


def test_one_published_result_becomes_its_answer() -> None:
    assert published({"id": "a", "seq": 3}) == Answer(202, {"id": "a", "seq": 3})
    conflict = published({"error": "conflict", "message": "m", "status": 409})
    assert conflict.status == 409 and conflict.body == {"error": "conflict", "message": "m"}
    assert dict(published({"error": "unavailable", "message": "m", "status": 503}).headers)["Retry-After"] == "1"


def test_the_catalog_lists_every_class_with_its_schema() -> None:
    answer = LOGIC.catalog()
    assert answer.status == 200 and answer.body["version"] == LOGIC.registry.version
    names = [c["name"] for c in answer.body["classes"]]
    assert names == sorted(names) and {"demo.message", "demo.order", "demo.alert"} <= set(names)
    assert all("schema" in c and "visibility" in c for c in answer.body["classes"])


# -- audiences and tickets --------------------------------------------------------------


def test_an_audience_is_kept_sorted_and_deduplicated() -> None:
    request = parse({"event": "demo.message", "data": MESSAGE,
                     "audience": {"users": ["bob", "alice", "bob"], "roles": ["staff"]}})
    assert isinstance(request, PublishRequest)
    assert request.audience == {"users": ["alice", "bob"], "roles": ["staff"]}
    assert request.item("id-1") == ["demo.message", MESSAGE, "id-1", request.audience, IdOrigin.GIVEN]
    plain = parse({"event": "demo.message", "data": MESSAGE})
    assert isinstance(plain, PublishRequest)
    assert plain.item("id-2", IdOrigin.NEW) == ["demo.message", MESSAGE, "id-2", None, IdOrigin.NEW]
    assert all(type(x) is int for x in (plain.item("i")[4], plain.item("i", IdOrigin.NEW)[4])), \
        "a plain int on the wire"


def test_a_batch_item_audience_error_names_the_item() -> None:
    result = LOGIC.parse_batch(json.dumps({"events": [
        {"event": "demo.message", "data": MESSAGE, "audience": {"users": [""]}}]}).encode())
    assert isinstance(result, list) and isinstance(result[0], Answer)
    assert result[0].body["details"][0]["path"] == "events.0.audience.users.0"


def ticket(doc: Any) -> Any:
    return LOGIC.parse_ticket(json.dumps(doc).encode())


def test_a_ticket_request_with_defaults() -> None:
    request = ticket({"user": "alice"})
    assert not isinstance(request, Answer)
    assert (request.user, request.roles, request.ttl) == ("alice", [], 60)
    request = ticket({"user": "alice", "roles": ["staff", "red"], "ttl": 5})
    assert not isinstance(request, Answer)
    assert (request.roles, request.ttl) == (["red", "staff"], 5)


@pytest.mark.parametrize("body,path", [
    (b"[]", None), (b"{", None), (b'{"user": 1}', "user"), (b'{"user": "a", "roles": [1]}', "roles"),
    (b'{"user": "a", "ttl": 3601}', "ttl"), (b'{"user": "a", "ttl": -1}', "ttl"), (b'{"user": "a", "x": 1}', "x"),
    (b'{"roles": []}', "user"),
])
def test_bad_ticket_requests_name_the_field(body: bytes, path: str | None) -> None:
    answer = LOGIC.parse_ticket(body)
    assert isinstance(answer, Answer) and answer.status == 400
    if path is not None:
        assert answer.body["details"][0]["path"] == path


def every_body_kind(body: bytes) -> list[Any]:
    """What each JSON body the bridge reads makes of ``body``: POST /events, /events/batch, /tickets,
    /subscriptions (RabbitMQ messages are POST /events bodies)."""
    return [LOGIC.parse_event(body), LOGIC.parse_batch(body), LOGIC.parse_ticket(body),
            LOGIC.parse_subscription(body)]


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b"[" * 100_000, b'{"a":' * 100_000,
                                  b'{"event": "demo.message", "data": ' + b"[" * 70_000 + b"]" * 70_000 + b"}"])
def test_json_nested_too_deeply_is_a_400_too_deep_found_before_parsing(body: bytes) -> None:
    for answer in every_body_kind(body):
        assert isinstance(answer, Answer) and answer.status == 400, answer
        assert answer.body["error"] == "too_deep"
        assert "more than 32 levels deep (bridge.max_depth), at line 1, column" in answer.body["message"]


def test_the_depth_limit_is_the_configured_one_and_counts_the_body_as_level_1() -> None:
    def body(levels: int) -> bytes:  # data nested so that the body is ``levels`` deep
        return json.dumps({"event": "demo.message", "data": {**MESSAGE, "x": [[]] if levels < 3 else
                                                              json.loads("[" * (levels - 2) + "]" * (levels - 2))}}
                          ).encode()
    shallow = replace(LOGIC, max_depth=6)
    at_limit = shallow.parse_event(body(6))
    assert isinstance(at_limit, Answer) and at_limit.body["error"] == "invalid_event"  # demo.message has no x
    over = shallow.parse_event(body(7))
    assert isinstance(over, Answer) and over.body["error"] == "too_deep"
    column = body(7).index(b"[[[[[") + 5  # the body, data, then x's 5th array: level 7
    assert over.body["message"] == ("the body nests arrays and objects more than 6 levels deep (bridge.max_depth), "
                                    f"at line 1, column {column}")


@pytest.mark.parametrize("number,path,shown", [
    ("10000000000000000000000000000000000000000", "data.order_id", "not 10000000000000000000000000000000000000000"),
    ("9223372036854775808", "data.order_id", "not 9223372036854775808"),
    ("-9223372036854775809", "data.order_id", "not -9223372036854775809"),
    ("9" * 5000, "data.order_id", "not an integer of more than 256 bits"),
])
def test_integers_outside_64_bits_are_400_naming_the_field(number: str, path: str, shown: str) -> None:
    answer = LOGIC.parse_event(b'{"event": "demo.order", "data": {"order_id": ' + number.encode() + b', "amount": 1}}')
    assert isinstance(answer, Answer)
    assert (answer.status, answer.body["error"]) == (400, "invalid_number")
    assert answer.body["message"] == f"{path}: {INT_RANGE}, {shown}"
    assert answer.body["details"] == [{"path": path, "message": f"{INT_RANGE}, {shown}", "type": "int_range"}]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
def test_nan_and_infinity_are_400_naming_the_field(number: str) -> None:
    answer = refused(b'{"event": "demo.order", "data": {"order_id": 1, "amount": ' + number.encode() + b"}}")
    assert (answer.status, answer.body["error"]) == (400, "invalid_number")
    assert answer.body["message"] == f"data.amount: {NON_FINITE}"


def test_the_64_bit_edges_and_big_floats_are_fine() -> None:
    for number in (b"9223372036854775807", b"-9223372036854775808", b"1e308", b"123456789012345678901234567890.5"):
        answer = parse(b'{"event": "demo.message", "data": {"room": "r", "text": "t", "author": "a", "n": '
                       + number + b"}}")
        # demo.message has no field n: refused by the class, not at the edge.
        assert isinstance(answer, Answer) and answer.body["error"] == "invalid_event", number


def test_bad_numbers_in_a_batch_refuse_the_whole_batch_naming_the_item() -> None:
    body = json.dumps({"events": [{"event": "demo.message", "data": MESSAGE},
                                  {"event": "demo.order", "data": {"order_id": 10**40, "amount": 1,
                                                                   "tags": [1, 2**64]}}]}).encode()
    answer = LOGIC.parse_batch(body)
    assert isinstance(answer, Answer) and (answer.status, answer.body["error"]) == (400, "invalid_number")
    assert [d["path"] for d in answer.body["details"]] == ["events.1.data.order_id", "events.1.data.tags.1"]
    assert answer.body["message"].startswith("events.1.data.order_id: integers must be") and \
        answer.body["message"].endswith("(and 1 more in details)")


@pytest.mark.parametrize("body,path", [
    (b'{"user": "a", "ttl": 1e999}', "ttl"),
    (b'{"user": "a", "ttl": 100000000000000000000}', "ttl"),
    (b'{"user": "a", "roles": [NaN]}', "roles.0"),
])
def test_tickets_get_the_same_number_rule(body: bytes, path: str) -> None:
    answer = LOGIC.parse_ticket(body)
    assert isinstance(answer, Answer) and answer.body["error"] == "invalid_number"
    assert answer.body["details"][0]["path"] == path


def test_subscriptions_get_the_same_number_rule() -> None:
    answer = LOGIC.parse_subscription(b'{"user": "a", "query": "demo.order", "x": -Infinity}')
    assert isinstance(answer, Answer) and answer.body["error"] == "invalid_number"
    assert answer.body["message"] == f"x: {NON_FINITE}"



@pytest.mark.parametrize("query,expected", [
    ({}, {}),
    ({"user": ["alice"]}, {"user": "alice"}),
    ({"event": [""]}, {"event": ""}),  # no class has that name: an empty listing
])
def test_listing_subscriptions_takes_one_user_or_one_class(query: dict[str, list[str]], expected: Any) -> None:
    assert LOGIC.parse_listing(query) == expected


@pytest.mark.parametrize("query,field", [
    # ?user= reached the dispatcher, which refused it; the bridge had not expected that: a 500.
    ({"user": [""]}, "user"), ({"user": [" alice"]}, "user"), ({"user": ["a\0"]}, "user"),
    ({"user": ["u" * 256]}, "user"),
    ({"user": ["a", "b"]}, None), ({"user": ["a"], "event": ["b"]}, None), ({"who": ["a"]}, None),
])
def test_a_listing_no_user_could_have_is_a_400(query: dict[str, list[str]], field: str | None) -> None:
    answer = LOGIC.parse_listing(query)
    assert isinstance(answer, Answer) and (answer.status, answer.body["error"]) == (400, "invalid_request")
    assert [d["path"] for d in answer.body.get("details", [])] == ([field] if field else [])


@pytest.mark.parametrize("in_flight", [0, 7, 10])
def test_liveness_is_200_whatever_the_load_and_only_reports_it(in_flight: int) -> None:
    answer = alive("components-1", 4242, 12.34567, in_flight, 10)
    assert answer.status == 200, "a bridge at its in-flight limit is busy, not dead: readiness says busy"
    assert answer.body == {"status": "alive", "process": "components-1", "pid": 4242, "uptime": 12.346,
                           "in_flight": in_flight, "max_in_flight": 10, "draining": False,
                           "hand_off": {"state": "off"}, "forward": {"state": "off"}}
    assert ("X-Gateway-Process", "components-1") in answer.headers
    assert not any(name == "Retry-After" for name, _ in answer.headers)


def test_liveness_stays_200_while_the_node_drains_and_says_so() -> None:
    answer = alive("components-2", 4242, 1.0, 3, 10, draining=True)
    assert answer.status == 200 and answer.body["draining"] is True and answer.body["in_flight"] == 3
