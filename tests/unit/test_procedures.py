"""A procedure behind its signature (components.procedures.checked), without a router."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.request import Registration
from autobahn.wamp.types import CallDetails
from twisted.logger import ILogObserver, Logger, LogLevel, globalLogPublisher

from components import uris
from components.arguments import Param, Signature, Text, WholeNumber
from components.procedures import INTERNAL_MESSAGE, checked
from components.ratelimit import CallBuckets

ECHO = Signature("gateway.test", Param("id", Text(8)), Param("n", WholeNumber(), 1))
REGISTRATION = Registration(session=None, registration_id=1, procedure="gateway.test", endpoint=None)


def details(session: int = 7) -> CallDetails:
    return CallDetails(registration=REGISTRATION, caller=session, caller_authrole="anonymous")


def call(procedure: Any, *args: Any, **kwargs: Any) -> Any:
    return asyncio.run(procedure(*args, **kwargs))


class Captured:
    """The log events emitted meanwhile (twisted's global publisher)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._observer = cast(ILogObserver, self.events.append)

    def __enter__(self) -> Captured:
        globalLogPublisher.addObserver(self._observer)
        return self

    def __exit__(self, *exc: object) -> None:
        globalLogPublisher.removeObserver(self._observer)

    def at(self, level: LogLevel) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("log_level") == level]


def test_the_body_gets_the_values_and_the_details() -> None:
    seen: list[Any] = []

    async def body(id: str, n: int, details: CallDetails | None) -> dict[str, Any]:
        seen.append(details)
        return {"id": id, "n": n}

    d = details()
    assert call(checked(ECHO, body, Logger()), "a", details=d) == {"id": "a", "n": 1}
    assert seen == [d]
    plain = checked(ECHO, lambda id, n: [id, n], Logger(), details=False)
    assert call(plain, "b", n=3) == ["b", 3], "a plain function, no details"


def test_a_wrong_call_is_invalid_argument_naming_it_and_logged_at_debug_only() -> None:
    with Captured() as log, pytest.raises(ApplicationError) as exc:
        call(checked(ECHO, lambda id, n, details: None, Logger()), "a", -1, details=details())
    assert exc.value.error == uris.ERROR_INVALID_ARGUMENT
    assert exc.value.args[0] == "gateway.test: n must be a whole number from 0 to 9223372036854775807, not -1"
    assert exc.value.kwargs == {"argument": "n", "expected": "a whole number from 0 to 9223372036854775807"}
    assert not log.at(LogLevel.critical) and not log.at(LogLevel.error) and not log.at(LogLevel.warn)
    assert not any(e.get("log_failure") for e in log.events), "no traceback for a caller's mistake"


def test_an_application_error_of_the_body_goes_to_the_caller_as_it_is() -> None:
    def body(id: str, n: int, details: CallDetails | None) -> None:
        raise ApplicationError(uris.ERROR_NO_SUCH_SUBSCRIPTION, "no such one")

    with Captured() as log, pytest.raises(ApplicationError) as exc:
        call(checked(ECHO, body, Logger()), "a", details=details())
    assert exc.value.error == uris.ERROR_NO_SUCH_SUBSCRIPTION and not log.events


def test_a_fault_of_ours_is_internal_saying_nothing_and_logged_once_with_its_traceback() -> None:
    async def body(id: str, n: int, details: CallDetails | None) -> None:
        raise KeyError("Dispatcher._secret_detail")

    with Captured() as log, pytest.raises(ApplicationError) as exc:
        call(checked(ECHO, body, Logger()), "a", details=details())
    assert exc.value.error == uris.ERROR_INTERNAL and exc.value.args == (INTERNAL_MESSAGE,)
    assert "Dispatcher" not in str(exc.value.args) and not exc.value.kwargs
    failures = [e for e in log.events if e.get("log_failure") is not None]
    assert len(failures) == 1 and failures[0]["log_level"] == LogLevel.critical
    assert failures[0]["log_failure"].check(KeyError) and failures[0]["procedure"] == "gateway.test"


def test_calls_past_the_sessions_rate_are_refused_saying_the_limit_and_when_to_retry() -> None:
    now = [0.0]
    buckets = CallBuckets(rate=2, burst=3, clock=lambda: now[0])
    procedure = checked(ECHO, lambda id, n, details: "ok", Logger(), buckets)
    assert [call(procedure, "a", details=details(1)) for _ in range(3)] == ["ok"] * 3
    with pytest.raises(ApplicationError) as exc:
        call(procedure, "a", details=details(1))
    assert exc.value.error == uris.ERROR_RATE_LIMITED
    assert exc.value.kwargs == {"retry_after": 0.5}
    assert exc.value.args[0] == ("too many calls: a session may make 2 calls a second, 3 in a burst "
                                 "(queries.calls_per_second, queries.call_burst); retry in 0.5 s")
    assert call(procedure, "a", details=details(2)) == "ok", "another session is not affected"
    with pytest.raises(ApplicationError) as bad:
        call(procedure, details=details(1))
    assert bad.value.error == uris.ERROR_RATE_LIMITED, "counted before the arguments: bad calls cost too"
    now[0] += 0.5
    assert call(procedure, "a", details=details(1)) == "ok"
