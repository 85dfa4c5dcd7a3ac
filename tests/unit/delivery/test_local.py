"""components.delivery.local: the active dispatcher's publish, offered in its process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

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
    assert local.active() == dispatcher.publish
    local.withdraw(dispatcher.publish)  # a new bound method each time: equal, not identical
    assert local.active() is None


def test_a_dispatcher_leaving_after_another_took_over_leaves_the_new_offer() -> None:
    old, new = Dispatcher(), Dispatcher()
    local.offer(old.publish)
    local.offer(new.publish)
    local.withdraw(old.publish)
    assert local.active() == new.publish
    local.withdraw(new.publish)
    assert local.active() is None
