"""The accepted ids and "published" marks are written one write at a time (``Publisher._save``): under load a
write takes what came during the one before, instead of a store-thread round trip per reactor turn; a failed
write is asked again after a pause, not in a loop; the dispatcher leaving writes what waits, a write under way
or not."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, ensureDeferred

from components.delivery.publishing import SAVE_RETRY, Publisher
from components.store.sqlite import SqliteStore
from components.store.thread import Inline
from tests.unit.delivery.inline import publisher_on
from tests.unit.delivery.test_review_publishing import MESSAGE, REGISTRY, Router


class Held(Inline):
    """Runs the id writes (``Publisher._save``'s work) only when the test says; the rest at once."""

    def __init__(self, store: SqliteStore) -> None:
        super().__init__(store)
        self.writes: list[tuple[Any, Deferred[Any]]] = []

    def run(self, work: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        if getattr(work, "__name__", "") != "save":
            return super().run(work, *args, **kwargs)
        d: Deferred[Any] = Deferred()
        self.writes.append((work, d))
        return d

    def finish(self, i: int) -> None:
        work, d = self.writes[i]
        d.callback(work(self.store))

    def fail(self, i: int) -> None:
        self.writes[i][1].errback(RuntimeError("the store did not answer"))


@pytest.fixture
def world(tmp_path: Path) -> Any:
    store = SqliteStore(tmp_path / "s.sqlite3")
    held = Held(store)
    router = Router()
    publisher, _ = publisher_on(held, REGISTRY, router)
    yield store, held, router, publisher
    if publisher._flush is not None and publisher._flush.active():
        publisher._flush.cancel()
    store.close()


def accept(publisher: Publisher, router: Router, event_id: str) -> None:
    ensureDeferred(publisher.publish([["demo.message", MESSAGE, event_id]]))
    router.ack_all()


def end_of_turn(publisher: Publisher) -> None:
    """What the reactor does at the end of the turn if a write was asked (``_flush``)."""
    assert publisher._flush is not None, "a write was asked"
    publisher._flush.cancel()
    publisher._save()


def test_ids_accepted_during_a_write_go_together_in_the_next_one(world: Any) -> None:
    store, held, router, publisher = world
    accept(publisher, router, "k1")
    end_of_turn(publisher)
    assert len(held.writes) == 1
    accept(publisher, router, "k2")
    accept(publisher, router, "k3")
    assert publisher._flush is None and len(held.writes) == 1, "no second write while the first is under way"
    assert set(publisher._unsaved) == {"k1", "k2", "k3"}, "looked up here until written"
    held.finish(0)
    assert store.accepted("k1") == ("demo.message", 1) and set(publisher._unsaved) == {"k2", "k3"}
    end_of_turn(publisher)  # the write that ended asked for the next
    held.finish(1)
    assert len(held.writes) == 2 and publisher._unsaved == {} and publisher._flush is None
    assert store.accepted("k3") == ("demo.message", 3)


def test_a_failed_write_is_asked_again_after_a_pause_with_what_came_meanwhile(world: Any) -> None:
    store, held, router, publisher = world
    accept(publisher, router, "k1")
    end_of_turn(publisher)
    accept(publisher, router, "k2")  # during the write that is about to fail
    held.fail(0)
    assert len(held.writes) == 1, "not asked again at once"
    assert {"k1", "k2"} <= set(publisher._unsaved), "still found by look-ups"
    retry = publisher._flush
    assert retry is not None and retry.active() and retry.getTime() - time.time() > SAVE_RETRY / 2, "after a pause"
    end_of_turn(publisher)  # the pause is over
    held.finish(1)
    assert store.accepted("k1") == ("demo.message", 1) and store.accepted("k2") == ("demo.message", 2)
    assert publisher._unsaved == {}


def test_leaving_writes_what_waits_for_a_write_under_way(world: Any) -> None:
    store, held, router, publisher = world
    accept(publisher, router, "k1")
    end_of_turn(publisher)
    accept(publisher, router, "k2")
    publisher.close()
    assert len(held.writes) == 2, "k2 is written as the dispatcher leaves, though k1's write is under way"
    held.finish(1)
    held.finish(0)
    assert store.accepted("k2") == ("demo.message", 2) and store.accepted("k1") == ("demo.message", 1)
