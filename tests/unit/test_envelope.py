from datetime import datetime, timedelta, timezone

from components.envelope import make_envelope, new_event_id, rfc3339


def test_time_is_utc_rfc3339_with_milliseconds() -> None:
    moment = datetime(2026, 11, 28, 9, 30, 1, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(moment) == "2026-11-28T07:30:01.123Z"


def test_envelope_has_exactly_the_documented_keys() -> None:
    env = make_envelope("demo.message", "abc", 7, datetime.now(timezone.utc), {"x": 1})
    assert list(env) == ["event", "id", "seq", "time", "data"]
    assert env["seq"] == 7 and env["data"] == {"x": 1}


def test_generated_ids_are_unique() -> None:
    assert len({new_event_id() for _ in range(1000)}) == 1000
