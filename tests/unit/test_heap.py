"""``components.heap``: once started, a process's objects are left out of the collector's walks; its garbage is not."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from components.heap import freeze_started


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the suite's process as it was


def test_what_is_alive_is_frozen_and_cycles_already_dropped_are_collected_first(unfrozen: None) -> None:
    kept = Node()
    dropped, partner = Node(), Node()
    dropped.other, partner.other = partner, dropped  # a cycle: only the collector frees it
    gone = weakref.ref(dropped)
    del dropped, partner
    assert gc.get_freeze_count() == 0
    freeze_started()
    assert gone() is None, "garbage made before the freeze was collected, not frozen"
    assert gc.get_freeze_count() > 0
    assert not any(o is kept for o in gc.get_objects()), "what was alive is out of every generation"


def test_objects_made_after_the_freeze_are_still_collected(unfrozen: None) -> None:
    freeze_started()
    later, partner = Node(), Node()
    later.other, partner.other = partner, later
    gone = weakref.ref(later)
    del later, partner
    gc.collect()
    assert gone() is None
