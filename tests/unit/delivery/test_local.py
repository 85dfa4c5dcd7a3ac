"""components.delivery.local: the active dispatcher's publish, offered in its process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.python.failure import Failure

from components.delivery import local


class Dispatcher:
    async def publish(self, items: list[list[Any]]) -> list[dict[str, Any]]:
        return [{"id": item[2], "seq": 1} for item in items]


@pytest.fixture(autouse=True)
def nothing_offered() -> Iterator[None]:
    assert local.active() is None
    yield
    local._offered = None  # a failed test leaves nothing behind for the next


def test_nothing_is_offered_until_a_dispatcher_is_active() -> None:
    assert local.active() is None


def test_the_active_dispatcher_offers_its_publish_and_withdraws_it_as_it_leaves() -> None:
    dispatcher = Dispatcher()
    local.offer(dispatcher.publish)
    assert local.active() is not None
    local.withdraw(dispatcher.publish)  # a new bound method each time: equal, not identical
    assert local.active() is None


def test_a_dispatcher_leaving_after_another_took_over_leaves_the_new_offer() -> None:
    old, new = Dispatcher(), Dispatcher()
    local.offer(old.publish)
    local.offer(new.publish)
    local.withdraw(old.publish)
    assert local._offered == new.publish
    local.withdraw(new.publish)
    assert local.active() is None


class Slow:
    """A dispatcher whose publish answers when the test says so."""

    def __init__(self) -> None:
        self.answers: list[Deferred[list[dict[str, Any]]]] = []

    def publish(self, items: list[list[Any]]) -> Deferred[list[dict[str, Any]]]:
        d: Deferred[list[dict[str, Any]]] = Deferred()
        self.answers.append(d)
        return d


def outcome(d: Deferred[Any]) -> list[Any]:
    got: list[Any] = []
    d.addBoth(got.append)
    return got


def test_a_call_gets_the_dispatchers_answer() -> None:
    dispatcher = Slow()
    local.offer(dispatcher.publish)
    publish = local.active()
    assert publish is not None
    got = outcome(ensureDeferred(_awaited(publish([["demo.message", {}, "i", None, 1]]))))
    assert got == []
    dispatcher.answers[0].callback([{"id": "i", "seq": 7}])
    assert got == [[{"id": "i", "seq": 7}]]
    local.withdraw(dispatcher.publish)


def test_a_call_under_way_fails_at_once_when_its_dispatcher_leaves_and_its_late_answer_is_dropped() -> None:
    """As the router fails a call whose callee left: the bridge calls the next dispatcher, never waits."""
    old, new = Slow(), Slow()
    local.offer(old.publish)
    publish = local.active()
    assert publish is not None
    got = outcome(ensureDeferred(_awaited(publish([["demo.message", {}, "i", None, 1]]))))
    local.offer(new.publish)
    on_new = outcome(ensureDeferred(_awaited(local.active()([["demo.message", {}, "j", None, 1]]))))  # type: ignore[misc]
    local.withdraw(old.publish)
    assert len(got) == 1 and isinstance(got[0], Failure) and got[0].check(local.DispatcherLeft), got
    assert on_new == [], "a call to another dispatcher is left alone"
    old.answers[0].errback(RuntimeError("the session left"))  # the leaving dispatcher's own failure: dropped
    new.answers[0].callback([{"id": "j", "seq": 1}])
    assert on_new == [[{"id": "j", "seq": 1}]]
    local.withdraw(new.publish)
    assert not local._under_way


async def _awaited(d: Any) -> Any:
    return await d


def test_watchers_are_told_when_a_dispatcher_here_becomes_active_and_when_it_leaves() -> None:
    told: list[bool] = []
    unwatch = local.watch(told.append)
    try:
        old, new = Dispatcher(), Dispatcher()
        local.offer(old.publish)
        local.offer(new.publish)  # took over in the same process: still active here, nothing to tell
        local.withdraw(old.publish)  # the old one leaving late: the new one stays
        assert told == [True]
        local.withdraw(new.publish)
        assert told == [True, False]
    finally:
        unwatch()
    local.offer(Dispatcher().publish)
    assert told == [True, False], "no longer watching"
    local._offered = None


def test_a_failing_watcher_keeps_neither_the_dispatcher_nor_the_other_watchers_from_going_on() -> None:
    told: list[bool] = []

    def failing(active_here: bool) -> None:
        raise RuntimeError("a watcher's bug")
    unwatch = [local.watch(failing), local.watch(told.append)]
    try:
        dispatcher = Dispatcher()
        local.offer(dispatcher.publish)
        assert local.active() is not None and told == [True]
        local.withdraw(dispatcher.publish)
        assert local.active() is None and told == [True, False]
    finally:
        for stop in unwatch:
            stop()
