"""What becomes of a RabbitMQ message: the rules of webapp_bridge.server.amqp_rules, without a broker."""

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pika.spec import BasicProperties

from components.config import ApiKey
from components.events import Registry
from webapp_bridge.server.amqp_rules import (GATEWAY_HEADERS, Accepted, Refusal, Retry, backoff_delay, connection_name,
                                      dead_letter_headers, dead_letter_properties, details_header, judge,
                                      misdeclared, queue_arguments, read_message, valid_event_id)
from webapp_bridge.server.api import Answer, BridgeLogic, PublishRequest, error

REPO = Path(__file__).resolve().parents[4]
REGISTRY = Registry.load(["examples.demo_events"], ["examples/demo_events.yaml"], base_dir=REPO)
LOGIC = BridgeLogic((ApiKey(name="shop", key="key-one-12345"),), REGISTRY, 2048)
MESSAGE = {"room": "lobby", "text": "hi", "author": "ann"}
NOW = datetime(2026, 11, 28, 9, 30, 1, 123000, tzinfo=timezone.utc)


def body(**doc: Any) -> bytes:
    return json.dumps(doc).encode()


def read(raw: bytes, message_id: str | None = None) -> PublishRequest | Refusal:
    return read_message(LOGIC, raw, message_id, new_id=lambda: "chosen-by-the-bridge")


# -- the event and its id ------------------------------------------------------


def test_the_body_id_is_the_idempotency_id_whatever_the_message_id() -> None:
    assert read(body(event="demo.message", data=MESSAGE, id="order-1"), "other") == PublishRequest(
        "demo.message", MESSAGE, "order-1")


def test_without_a_body_id_a_valid_message_id_is_used() -> None:
    assert read(body(event="demo.message", data=MESSAGE), "order-1:created") == PublishRequest(
        "demo.message", MESSAGE, "order-1:created")


@pytest.mark.parametrize("message_id", [None, "", "has space", "x" * 129, "ünïcode"])
def test_without_a_usable_id_the_bridge_chooses_one(message_id: str | None) -> None:
    read_ = read(body(event="demo.message", data=MESSAGE), message_id)
    assert isinstance(read_, PublishRequest) and read_.id == "chosen-by-the-bridge"


def test_a_random_id_by_default() -> None:
    ids = {r.id for r in (read_message(LOGIC, body(event="demo.message", data=MESSAGE), None) for _ in range(3))
           if isinstance(r, PublishRequest)}
    assert len(ids) == 3 and all(valid_event_id(i) for i in ids)


def test_the_audience_is_kept() -> None:
    read_ = read(body(event="demo.message", data=MESSAGE, audience={"users": ["bob", "ann"]}), "m-1")
    assert isinstance(read_, PublishRequest) and read_.audience == {"users": ["ann", "bob"], "roles": []}


# -- messages that can never be accepted -----------------------------------------


@pytest.mark.parametrize("raw,status,code,says", [
    (b"{oops", 400, "malformed_json", "not valid JSON: Expecting property name"),
    (b'{"event": "\xc3\x28"}', 400, "malformed_json", "not UTF-8"),
    (b"[1, 2]", 400, "invalid_request", "must be a JSON object, not an array"),
    (b'"text"', 400, "invalid_request", "must be a JSON object, not a string"),
    (body(event="demo.nothing", data={}), 404, "unknown_event", "no event class named 'demo.nothing'"),
    (body(event="demo.message", data={**MESSAGE, "room": 5}), 400, "invalid_event",
     "does not match the event class demo.message"),
    (body(event="demo.message", data=MESSAGE, id="not a valid id"), 400, "invalid_request", "'id' must be"),
    (body(event="demo.message", data=MESSAGE, audience={"users": []}), 400, "invalid_request", "names no users"),
    (body(event="demo.message", data=MESSAGE, colour="red"), 400, "invalid_request", "unknown key(s): colour"),
    (body(event="demo.message", data={**MESSAGE, "text": "x" * 4000}), 413, "too_large", "over the limit of 2048"),
])
def test_each_bad_message_is_refused_as_post_events_would_refuse_it(raw: bytes, status: int, code: str,
                                                                    says: str) -> None:
    refusal = read(raw, "m-1")
    assert isinstance(refusal, Refusal), refusal
    assert (refusal.status, refusal.error) == (status, code) and says in refusal.message


def test_a_validation_refusal_names_each_bad_field() -> None:
    refusal = read(body(event="demo.message", data={"room": 5, "text": "t", "author": "a", "colour": "red"}))
    assert isinstance(refusal, Refusal) and refusal.details is not None
    assert sorted(d["path"] for d in refusal.details) == ["data.colour", "data.room"]


@given(st.one_of(st.binary(max_size=300), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["event", "data", "id", "audience", "x"]), inner, max_size=5),
    max_leaves=12).map(lambda doc: json.dumps(doc).encode())))
def test_any_body_is_accepted_or_refused_with_the_status_post_events_gives_it(raw: bytes) -> None:
    read_ = read(raw)
    http = LOGIC.parse_event(raw)
    if isinstance(http, Answer):
        assert isinstance(read_, Refusal) and (read_.status, read_.error) == (http.status, http.body["error"])
    else:
        assert isinstance(read_, PublishRequest) and valid_event_id(read_.id)


# -- the dispatcher's answer ---------------------------------------------------


@pytest.mark.parametrize("result,expected", [
    ({"id": "a", "seq": 4}, Accepted({"id": "a", "seq": 4})),
    ({"id": "a", "seq": 4, "duplicate": True}, Accepted({"id": "a", "seq": 4, "duplicate": True})),
    ({"error": "conflict", "status": 409, "message": "id 'a' was already used by a demo.order event (seq 3)"},
     Refusal("conflict", "id 'a' was already used by a demo.order event (seq 3)", 409)),
    ({"error": "unknown_event", "status": 404, "message": "no event class named 'x'"},
     Refusal("unknown_event", "no event class named 'x'", 404)),
    ({"error": "unavailable", "status": 503, "message": "the router did not take the event"},
     Retry("503 unavailable: the router did not take the event")),
    ({"error": "unavailable", "message": "no status"}, Retry("503 unavailable: no status")),
    (error(503, "unavailable", "no dispatcher is running"), Retry("503 unavailable: no dispatcher is running")),
    (error(400, "invalid_request", "bad"), Refusal("invalid_request", "bad", 400)),
])
def test_accepted_and_duplicates_are_acked_4xx_dead_lettered_the_rest_retried(
        result: dict[str, Any] | Answer, expected: object) -> None:
    assert judge(result) == expected


# -- the dead-lettered copy ------------------------------------------------------


def test_dead_letter_headers_keep_the_originals_and_say_what_was_wrong() -> None:
    refusal = Refusal("invalid_event", "the data does not match the event class demo.message", 400,
                      [{"path": "data.room", "message": "Input should be a valid string", "type": "string_type"}])
    headers = dead_letter_headers({"trace": "abc", "x-gateway-error": "stale"}, refusal, "orders", NOW)
    assert headers == {
        "trace": "abc",
        "x-gateway-error": "invalid_event",
        "x-gateway-message": "the data does not match the event class demo.message",
        "x-gateway-details": '[{"path":"data.room","message":"Input should be a valid string","type":"string_type"}]',
        "x-gateway-status": 400,
        "x-gateway-queue": "orders",
        "x-gateway-failed-at": "2026-11-28T09:30:01.123Z",
    }


def test_a_refusal_without_details_has_no_details_header_even_if_an_earlier_one_had() -> None:
    earlier = {h: "old" for h in GATEWAY_HEADERS}
    headers = dead_letter_headers(earlier, Refusal("malformed_json", "the body is not UTF-8 text", 400), "q", NOW)
    assert "x-gateway-details" not in headers and headers["x-gateway-error"] == "malformed_json"
    assert dead_letter_headers(None, Refusal("e", "m", 404), "q", NOW)["x-gateway-status"] == 404


def test_long_details_are_cut_to_whole_items_saying_how_many_went() -> None:
    details = [{"path": f"data.f{i}", "message": "unknown field", "type": "extra_forbidden"} for i in range(1000)]
    text = details_header(details, limit=2000)
    kept = json.loads(text)
    assert len(text.encode()) <= 2000 and kept[:-1] == details[:len(kept) - 1]
    assert kept[-1] == {"path": "", "message": f"and {1000 - len(kept) + 1} more", "type": "truncated"}
    assert json.loads(details_header(details[:3])) == details[:3]


def test_the_copy_keeps_the_properties_but_is_persistent_and_never_expires() -> None:
    original = BasicProperties(content_type="application/json", content_encoding="utf-8", delivery_mode=1,
                               priority=3, correlation_id="c", reply_to="r", expiration="60000", message_id="m-1",
                               timestamp=1700000000, type="t", user_id="someone", app_id="shop", cluster_id="x",
                               headers={"a": 1})
    copy = dead_letter_properties(original, {"b": 2})
    assert (copy.content_type, copy.content_encoding, copy.priority, copy.correlation_id, copy.reply_to,
            copy.message_id, copy.timestamp, copy.type, copy.app_id, copy.cluster_id) == (
        "application/json", "utf-8", 3, "c", "r", "m-1", 1700000000, "t", "shop", "x")
    assert copy.headers == {"b": 2} and copy.delivery_mode == 2
    assert copy.expiration is None and copy.user_id is None


# -- reconnecting ------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_with_jitter_between_half_and_all() -> None:
    full = [backoff_delay(n, 0.5, 30, 0.999999) for n in range(10)]
    assert full[:4] == pytest.approx([0.5, 1, 2, 4], rel=1e-5) and max(full) == pytest.approx(30, rel=1e-5)
    assert [backoff_delay(n, 0.5, 30, 0.0) for n in range(3)] == [0.25, 0.5, 1]
    assert backoff_delay(10_000, 0.5, 30, 0.5) == 22.5  # no overflow after days of retrying


def test_the_connection_name_says_which_gateway_and_process() -> None:
    assert connection_name("127.0.0.1", 8081, 1234) == "events-gateway bridge 127.0.0.1:8081 pid 1234"


# -- one consumer in a cluster -----------------------------------------------------

#: What RabbitMQ 3.10 answers a declare whose x-single-active-consumer differs from the existing queue's.
WITHOUT_SAC = ("PRECONDITION_FAILED - inequivalent arg 'x-single-active-consumer' for queue 'gateway.events' in "
               "vhost '/': received the value 'true' of type 'bool' but current is none")


def test_one_node_declares_the_queue_as_publishers_do_a_cluster_with_single_active_consumer() -> None:
    assert queue_arguments(False) is None
    assert queue_arguments(True) == {"x-single-active-consumer": True}


def test_a_cluster_meeting_a_queue_without_single_active_consumer_says_what_to_do() -> None:
    told = misdeclared("gateway.events", True, 406, WITHOUT_SAC)
    assert told is not None
    for words in ("'gateway.events' exists without single active consumer", "cluster.enabled",
                  "delete_queue gateway.events", "set a new amqp.queue", "publishers must declare it",
                  "406 PRECONDITION_FAILED - inequivalent arg 'x-single-active-consumer'"):
        assert words in told, (words, told)


@pytest.mark.parametrize("single_active,code,text", [
    (False, 406, WITHOUT_SAC),  # one node: its own wording, retried as before
    (True, 406, "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'gateway.events'"),
    (True, 403, "ACCESS_REFUSED - access to queue 'gateway.events' in vhost '/' refused for user 'shop'"),
])
def test_any_other_refusal_is_not_taken_for_a_queue_without_single_active_consumer(
        single_active: bool, code: int, text: str) -> None:
    assert misdeclared("gateway.events", single_active, code, text) is None
