"""Batches that arrive while one is worked on go together next (``coalescing``), without a reactor."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred

from components.delivery.coalescing import Coalescer


class Work:
    """Records each group it is given; a group is done when the test says so."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.pending: list[Deferred[list[int]]] = []

    async def __call__(self, items: list[int]) -> list[int]:
        self.groups.append(list(items))
        d: Deferred[list[int]] = Deferred()
        self.pending.append(d)
        return await d

    def finish(self, fail: bool = False) -> None:
        d = self.pending.pop(0)
        if fail:
            d.errback(RuntimeError("the store did not answer"))
        else:
            d.callback([10 * n for n in self.groups[len(self.groups) - len(self.pending) - 1]])


def outcome(d: Deferred[Any]) -> list[Any]:
    got: list[Any] = []
    d.addBoth(got.append)
    return got


def test_a_lone_batch_starts_at_once() -> None:
    work = Work()
    together = Coalescer(work, most=100)
    first = outcome(together([1, 2]))
    assert work.groups == [[1, 2]] and first == []
    work.finish()
    assert first == [[10, 20]]


def test_batches_that_come_meanwhile_go_together_each_getting_its_own_results() -> None:
    work = Work()
    together = Coalescer(work, most=100)
    first = outcome(together([1]))
    second, third, fourth = outcome(together([2, 3])), outcome(together([4])), outcome(together([5, 6]))
    assert work.groups == [[1]], "one group at a time"
    work.finish()
    assert first == [[10]] and work.groups == [[1], [2, 3, 4, 5, 6]]
    work.finish()
    assert second == [[20, 30]] and third == [[40]] and fourth == [[50, 60]]


def test_a_group_holds_at_most_so_many_items_unless_one_batch_brings_more() -> None:
    work = Work()
    together = Coalescer(work, most=3)
    together([0])
    together([1, 2])
    together([3, 4])  # would make 4: the next group
    together([5, 6, 7, 8])  # alone, more than 3
    work.finish()
    work.finish()
    work.finish()
    assert work.groups == [[0], [1, 2], [3, 4], [5, 6, 7, 8]]


def test_a_group_weighs_at_most_its_budget_unless_one_call_weighs_more() -> None:
    work = Work()
    together = Coalescer(work, most=100, budget=10)
    together([0], weight=1)
    together([1], weight=6)
    together([2], weight=4)  # 10: still fits
    together([3], weight=1)  # would make 11: the next group
    together([4], weight=50)  # alone, more than the budget
    together([5], weight=0)  # a group over its budget takes nothing more
    for _ in range(5):
        work.finish()
    assert work.groups == [[0], [1, 2], [3], [4], [5]]


def test_a_failure_fails_its_group_and_the_next_group_still_runs() -> None:
    work = Work()
    together = Coalescer(work, most=100)
    together([1])
    failed_a, failed_b = outcome(together([2])), outcome(together([3]))
    work.finish()
    work.finish(fail=True)
    assert all(len(f) == 1 and f[0].check(RuntimeError) for f in (failed_a, failed_b))
    later = outcome(together([4]))
    work.finish()
    assert later == [[40]]


def test_a_caller_that_gave_up_leaves_the_others_their_results() -> None:
    work = Work()
    together = Coalescer(work, most=100)
    together([1])
    gave_up = together([2])
    kept = outcome(together([3]))
    gave_up.addErrback(lambda f: None)
    gave_up.cancel()
    work.finish()
    work.finish()
    assert kept == [[30]]


def test_most_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Coalescer(Work(), most=0)


def test_concurrent_groups_start_at_once_up_to_the_limit_and_a_slow_one_holds_up_only_its_own() -> None:
    work = Work()
    together = Coalescer(work, most=100, concurrent=2)
    slow = outcome(together([1]))
    fast = outcome(together([2]))
    later = [outcome(together([3])), outcome(together([4]))]
    assert work.groups == [[1], [2]], "two at once; the rest wait, together"
    d = work.pending.pop(1)  # the second group ends first
    d.callback([20])
    assert fast == [[20]] and slow == []
    assert work.groups == [[1], [2], [3, 4]], "the waiting group starts as soon as one ends"
    work.pending.pop(1).callback([30, 40])
    assert later == [[[30]], [[40]]] and slow == []
    work.pending.pop(0).callback([10])
    assert slow == [[10]]


def test_concurrent_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Coalescer(Work(), most=1, concurrent=0)
