from hypothesis import given
from hypothesis import strategies as st

from components.delivery.sequence import Sequencer


class MemoryCounter:
    def __init__(self) -> None:
        self.value = 0
        self.writes = 0

    def take(self, n: int) -> int:
        self.value += n
        self.writes += 1
        return self.value


def test_numbers_start_at_one_and_increase_by_one_within_a_run() -> None:
    counter = MemoryCounter()
    seq = Sequencer(counter.take, block=10)
    assert [seq.next() for _ in range(25)] == list(range(1, 26))
    assert counter.writes == 3 and counter.value == 30


def test_a_number_is_taken_before_it_is_handed_out() -> None:
    counter = MemoryCounter()
    seq = Sequencer(counter.take, block=5)
    for _ in range(12):
        assert seq.next() <= counter.value


def test_nothing_is_taken_until_the_first_number_is_needed() -> None:
    counter = MemoryCounter()
    Sequencer(counter.take)
    assert counter.writes == 0


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
        handed.extend(live[who].next() for _ in range(count))
        previous = who
    assert handed == sorted(set(handed))


def test_the_high_water_mark_is_above_every_number_handed_out_and_below_every_later_one() -> None:
    counter = {"taken": 500}

    def take(n: int) -> int:
        counter["taken"] += n
        return counter["taken"]

    seq = Sequencer(take, block=10)
    assert seq.high_water(lambda: counter["taken"]) == 500, "no block yet: the next starts above 500"
    first = seq.next()
    assert first == 501 and seq.high_water(lambda: counter["taken"]) == 501
    seq.next()
    assert seq.high_water(lambda: counter["taken"]) == 502 < seq.next()
