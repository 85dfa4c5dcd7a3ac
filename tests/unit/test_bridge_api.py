import json
from typing import Any

import pytest

from components.events import Registry
from webapp_bridge.api import Answer, BridgeLogic, PublishRequest

LOGIC = BridgeLogic(("key-one-12345", "key-two-67890"), Registry.from_modules(["examples.demo_events"]), 1024)
MESSAGE = {"room": "lobby", "text": "hi", "author": "ann"}


def parse(doc: Any) -> PublishRequest | Answer:
    return LOGIC.parse_event(doc if isinstance(doc, bytes) else json.dumps(doc).encode())


def refused(doc: Any) -> Answer:
    result = parse(doc)
    assert isinstance(result, Answer), result
    return result


@pytest.mark.parametrize("header", ["Bearer key-one-12345", "Bearer key-two-67890", "bearer  key-one-12345 "])
def test_valid_keys_pass(header: str) -> None:
    assert LOGIC.authenticate(header) is None


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
    assert answer is not None and answer.status == 401
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
    assert answer.status == 400 and [d["path"] for d in answer.body["details"]] == ["audience", "x"]


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
