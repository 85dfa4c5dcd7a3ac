"""``components.heap``: once started, a process's objects are left out of the collector's walks; its garbage is not,
even garbage that was frozen while it was alive (a reloaded registry's classes, a restarted component's session)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from twisted.internet.task import Clock

from components import heap
from components.heap import DELAY, refreeze, refreeze_soon


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> tuple[Node, weakref.ref[Node]]:
    """Two objects that hold each other: only the collector frees them once dropped."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the suite's process as it was


def test_what_is_alive_is_frozen_and_cycles_already_dropped_are_collected_first(unfrozen: None) -> None:
    kept = Node()
    dropped, gone = cycle()
    del dropped
    assert gc.get_freeze_count() == 0
    refreeze()
    assert gone() is None, "garbage made before the freeze was collected, not frozen"
    assert gc.get_freeze_count() > 0
    assert not any(o is kept for o in gc.get_objects()), "what was alive is out of every generation"


def test_objects_made_after_the_freeze_are_still_collected(unfrozen: None) -> None:
    refreeze()
    later, gone = cycle()
    del later
    gc.collect()
    assert gone() is None


def test_what_was_frozen_alive_and_died_since_is_freed_by_the_next_refreeze(unfrozen: None) -> None:
    old, gone = cycle()  # e.g. the event classes of the registry a reload replaces
    refreeze()
    del old
    gc.collect()
    assert gone() is not None, "frozen: no collection frees it"
    refreeze()
    assert gone() is None


def test_refreezes_asked_together_run_once_a_moment_later_when_what_was_replaced_is_let_go(
        unfrozen: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """As a reload asks it: while the old registry is still held (by the reload itself, by requests under way),
    a refreeze would freeze it again; a moment later it is let go, and freed."""
    clock = Clock()
    old, gone = cycle()
    refreeze()  # frozen while alive, as at start
    asked: list[int] = []

    def counted() -> None:
        asked.append(1)
        refreeze()
    monkeypatch.setattr(heap, "refreeze", counted)
    refreeze_soon(clock)
    refreeze_soon(clock)  # another component of the process, at the same moment
    del old  # the reload returns; the requests under way end
    assert gone() is not None and asked == []
    clock.advance(DELAY)
    assert asked == [1], "one refreeze for both"
    assert gone() is None
    refreeze_soon(clock)
    clock.advance(DELAY)
    assert asked == [1, 1], "asked again later: run again"
