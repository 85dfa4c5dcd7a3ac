"""Leadership of the dispatchers, against a fake session and a fake clock (no router, no sockets)."""

from __future__ import annotations

from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.internet.task import Clock

from components import uris
from components.delivery.leadership import FIRST_RETRY, MAX_RETRY, Leadership, retry_delay


class FakeSession:
    """Registers the leadership procedure unless ``holder`` (a registration id) has it."""

    def __init__(self, holder: int | None = 7) -> None:
        self.holder = holder
        self.attempts = 0
        self.attached = True
        self.handlers: dict[str, Any] = {}

    def is_attached(self) -> bool:
        return self.attached

    def subscribe(self, handler: Any, topic: str) -> Deferred[None]:
        self.handlers[topic] = handler
        return succeed(None)

    def register(self, body: Any, procedure: str, options: Any = None) -> Deferred[None]:
        assert procedure == uris.INTERNAL_DISPATCHER_LEADER
        self.attempts += 1
        if self.holder is not None:
            return fail(ApplicationError(ApplicationError.PROCEDURE_ALREADY_EXISTS, "held"))
        self.holder = 99
        return succeed(None)

    def call(self, procedure: str, *args: Any) -> Deferred[Any]:
        assert procedure == uris.META_REGISTRATION_LOOKUP
        return succeed(self.holder)

    def holder_went(self) -> None:
        gone, self.holder = self.holder, None
        self.handlers[uris.META_REGISTRATION_ON_DELETE](1234, gone)


def started(session: FakeSession, clock: Clock, won: list[int]) -> Leadership:
    async def on_won() -> None:
        won.append(session.attempts)

    lead = Leadership(session, on_won, lambda: {}, jitter=lambda: 1.0, clock=clock)  # type: ignore[arg-type]
    ensureDeferred(lead.start())
    clock.advance(0)
    return lead


def test_a_free_leadership_is_taken_at_once() -> None:
    session, clock, won = FakeSession(holder=None), Clock(), list[int]()
    lead = started(session, clock, won)
    assert lead.held and won == [1]
    clock.advance(100)
    assert session.attempts == 1, "no more attempts once held"


def test_a_standby_backs_off_while_the_holder_lives() -> None:
    session, clock, won = FakeSession(), Clock(), list[int]()
    lead = started(session, clock, won)
    assert not lead.held and session.attempts == 1
    times = []
    for _ in range(8):
        due: Any = clock.getDelayedCalls()[0]
        clock.advance(due.getTime() - clock.seconds())
        times.append(round(clock.seconds(), 3))
    assert session.attempts == 9 and not won
    gaps = [round(b - a, 3) for a, b in zip([0.0, *times], times)]
    assert gaps == [FIRST_RETRY, 0.2, 0.4, 0.8, 1.6, MAX_RETRY, MAX_RETRY, MAX_RETRY]


def test_the_holders_going_is_taken_up_at_once() -> None:
    session, clock, won = FakeSession(), Clock(), list[int]()
    lead = started(session, clock, won)
    clock.advance(FIRST_RETRY)
    session.holder_went()
    clock.advance(0)
    assert lead.held and won == [3]


def test_another_registrations_going_changes_nothing() -> None:
    session, clock, won = FakeSession(), Clock(), list[int]()
    lead = started(session, clock, won)
    session.handlers[uris.META_REGISTRATION_ON_DELETE](1234, 12345)
    clock.advance(0)
    assert not lead.held and session.attempts == 1


def test_a_stopped_standby_tries_no_more() -> None:
    session, clock, won = FakeSession(), Clock(), list[int]()
    lead = started(session, clock, won)
    lead.stop()
    session.holder_went()
    clock.advance(100)
    assert not lead.held and session.attempts == 1 and not clock.getDelayedCalls()


@pytest.mark.parametrize("refusals, jitter, expected", [
    (1, 1.0, FIRST_RETRY), (2, 1.0, 2 * FIRST_RETRY), (1, 0.0, FIRST_RETRY / 2), (50, 1.0, MAX_RETRY),
    (50, 0.0, MAX_RETRY / 2), (0, 1.0, FIRST_RETRY),
])
def test_retry_delay(refusals: int, jitter: float, expected: float) -> None:
    assert retry_delay(refusals, jitter=jitter) == pytest.approx(expected)
