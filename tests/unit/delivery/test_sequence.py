from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, fail, succeed

from components.delivery.sequence import NoNumbers, Sequencer


class MemoryCounter:
    """The shared counter, answering at once (``held``: each take waits until ``release``)."""

    def __init__(self, held: bool = False) -> None:
        self.value = 0
        self.writes = 0
        self.held = held
        self.pending: list[tuple[int, Deferred[int]]] = []
        self.down = False

    def take(self, n: int) -> Deferred[int]:
        if self.down:
            return fail(OSError("the store is down"))
        if self.held:
            d: Deferred[int] = Deferred()
            self.pending.append((n, d))
            return d
        return succeed(self._advance(n))

    def release(self) -> None:
        pending, self.pending = self.pending, []
        for n, d in pending:
            d.callback(self._advance(n))

    def _advance(self, n: int) -> int:
        self.value += n
        self.writes += 1
        return self.value


def fired(d: Deferred[Any]) -> bool:
    results: list[object] = []
    d.addBoth(results.append)
    return bool(results)


def numbers(seq: Sequencer, n: int) -> list[int]:
    assert fired(seq.reserve(n))
    return [seq.next() for _ in range(n)]


def test_numbers_start_at_one_and_increase_by_one_within_a_run() -> None:
    counter = MemoryCounter()
    seq = Sequencer(counter.take, block=10)
    assert [n for _ in range(25) for n in numbers(seq, 1)] == list(range(1, 26))
    assert counter.writes == 4 and counter.value == 40, "each next block taken ahead, once half a block was left"


def test_a_number_is_taken_before_it_is_handed_out() -> None:
    counter = MemoryCounter()
    seq = Sequencer(counter.take, block=5)
    for _ in range(12):
        assert fired(seq.reserve(1))
        assert seq.next() <= counter.value


def test_nothing_is_taken_until_the_first_number_is_needed() -> None:
    counter = MemoryCounter()
    seq = Sequencer(counter.take)
    assert counter.writes == 0 and seq.high_water() is None
    try:
        seq.next()
    except NoNumbers:
        pass
    else:
        raise AssertionError("a number handed out without a block")


def test_the_next_block_is_taken_ahead_and_a_batch_waits_only_when_the_numbers_in_hand_run_out() -> None:
    counter = MemoryCounter(held=True)
    seq = Sequencer(counter.take, block=10)
    first = seq.reserve(3)
    assert not fired(first), "the first block: waited for"
    counter.release()
    assert fired(first)
    assert [seq.next() for _ in range(5)] == [1, 2, 3, 4, 5]
    assert counter.pending and counter.pending[0][0] == 10, "half a block left: the next one is being taken"
    assert fired(seq.reserve(5)), "the five in hand are enough: no wait"
    assert [seq.next() for _ in range(5)] == [6, 7, 8, 9, 10]
    later = seq.reserve(2)
    assert not fired(later), "none in hand: wait for the block being taken (not a second one)"
    assert len(counter.pending) == 1
    counter.release()
    assert fired(later) and [seq.next() for _ in range(2)] == [11, 12]


def test_a_batch_bigger_than_a_block_gets_its_numbers_in_one_take() -> None:
    counter = MemoryCounter()
    seq = Sequencer(counter.take, block=10)
    assert numbers(seq, 35) == list(range(1, 36))
    assert counter.writes == 2, "35 at once, then the next block ahead"


def test_a_store_that_cannot_give_a_block_fails_the_reserve_and_hands_out_nothing() -> None:
    counter = MemoryCounter()
    counter.down = True
    seq = Sequencer(counter.take, block=10)
    errors: list[Any] = []
    seq.reserve(1).addErrback(errors.append)
    assert len(errors) == 1
    try:
        seq.next()
    except NoNumbers:
        pass
    else:
        raise AssertionError("a number without a block")
    counter.down = False
    assert numbers(seq, 2) == [1, 2], "back: the next reserve takes the block"


def test_a_block_taken_ahead_that_failed_is_taken_when_needed() -> None:
    counter = MemoryCounter()
    seq = Sequencer(counter.take, block=4)
    assert numbers(seq, 1) == [1]
    counter.down = True
    assert [seq.next() for _ in range(3)] == [2, 3, 4], "taking ahead failed (logged); the block in hand lasts"
    counter.down = False
    assert numbers(seq, 2) == [5, 6]


@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 30)), min_size=1, max_size=10), st.integers(1, 7))
def test_failover_and_restarts_never_repeat_or_go_back(turns: list[tuple[int, int]], block: int) -> None:
    # Two dispatchers share one counter. In each turn one of them is active
    # and numbers some events; between turns the other may take over, and a
    # dispatcher that lost its turn died and comes back as a new instance.
    counter = MemoryCounter()
    live = [Sequencer(counter.take, block), Sequencer(counter.take, block)]
    handed: list[int] = []
    previous = None
    for who, count in turns:
        if previous is not None and previous != who:
            live[previous] = Sequencer(counter.take, block)  # the one that stopped was restarted
        handed.extend(numbers(live[who], count))
        previous = who
    assert handed == sorted(set(handed))


def test_the_high_water_mark_is_above_every_number_handed_out_and_below_every_later_one() -> None:
    counter = MemoryCounter()
    counter.value = 500
    seq = Sequencer(counter.take, block=10)
    assert seq.high_water() is None, "no block yet: the shared counter (500) is the high water"
    assert fired(seq.reserve(1))
    assert seq.high_water() == 500, "a block in hand, nothing handed out: below its first number"
    first = seq.next()
    assert first == 501 and seq.high_water() == 501
    seq.next()
    assert seq.high_water() == 502 < seq.next()
    for _ in range(7):
        seq.next()
    assert seq.high_water() == 510, "the block taken ahead (511-520) starts above it"
