from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from components.sequence import Sequencer, SqliteReservations


class MemoryReservations:
    def __init__(self) -> None:
        self.reserved = 0
        self.writes = 0

    def save(self, n: int) -> None:
        self.reserved = n
        self.writes += 1


def test_numbers_start_at_one_and_increase_by_one_within_a_run() -> None:
    store = MemoryReservations()
    seq = Sequencer(store.reserved, store.save, block=10)
    assert [seq.next() for _ in range(25)] == list(range(1, 26))
    assert store.writes == 3 and store.reserved == 30


def test_a_number_is_reserved_before_it_is_handed_out() -> None:
    store = MemoryReservations()
    seq = Sequencer(0, store.save, block=5)
    for _ in range(12):
        n = seq.next()
        assert n <= store.reserved


@given(st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=8), st.integers(1, 7))
def test_restarts_never_repeat_or_go_back(runs: list[int], block: int) -> None:
    # Each run is a process lifetime that hands out some numbers, then dies.
    store = MemoryReservations()
    handed: list[int] = []
    for count in runs:
        seq = Sequencer(store.reserved, store.save, block=block)
        handed.extend(seq.next() for _ in range(count))
    assert handed == sorted(set(handed))


def test_sqlite_reservations_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    first = SqliteReservations(path)
    seq = Sequencer(first.load(), first.save, block=100)
    used = [seq.next() for _ in range(3)]
    first.close()
    second = SqliteReservations(path)
    assert second.load() == 100
    assert Sequencer(second.load(), second.save).next() > max(used)
    second.close()
