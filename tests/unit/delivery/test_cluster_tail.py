"""A cluster node's tail of the shared log (``components.delivery.cluster.LogTail``), without a database.

The log is a list in memory behind the ``ClusterLog`` methods the tail uses, run inline; the router is a
function recording what it is handed and returning the acknowledgement as a Deferred the test fires.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from components.delivery.cluster import HEARTBEAT, TAIL_PAGE, Handed, LogTail
from components.store.base import LoggedEvent
from components.store.thread import Inline


class MemoryLog:
    """What the tail asks of the store: the log after a seq, the counter, each node's place."""

    log_channel = "test"

    def __init__(self, seqs: Sequence[int] = ()) -> None:
        self.rows = [row(s) for s in seqs]
        self.places: dict[str, tuple[str, int]] = {}
        self.reads = 0

    def taken(self, counter: str = "events") -> int:
        return self.rows[-1].seq if self.rows else 0

    def log_after(self, after_seq: int, limit: int) -> list[LoggedEvent]:
        self.reads += 1
        return [r for r in self.rows if r.seq > after_seq][:limit]

    def node_cursor(self, node: str) -> tuple[str, int] | None:
        return self.places.get(node)

    def save_node_cursor(self, node: str, run: str, cursor: int) -> None:
        self.places[node] = (run, cursor)

    def nodes(self) -> list[tuple[str, int, float]]:
        return [(n, c, 0.0) for n, (_, c) in sorted(self.places.items())]

    def append(self, rows: Any, at: float | None = None) -> list[tuple[int, str | None]]:
        raise NotImplementedError

    def announce(self, message: dict[str, Any]) -> None:
        pass


class Router:
    def __init__(self) -> None:
        self.handed: list[int] = []
        self.acks: list[tuple[int, Deferred[Any]]] = []
        self.fail = False

    def __call__(self, handed: Sequence[Handed]) -> Deferred[Any]:
        if self.fail:
            raise RuntimeError("the session is gone")
        self.handed += [h.row.seq for h in handed]
        d: Deferred[Any] = Deferred()
        self.acks.append((handed[-1].row.seq, d))
        return d

    def ack_all(self) -> None:
        acks, self.acks = self.acks, []
        for _, d in acks:
            d.callback(None)


def row(seq: int) -> LoggedEvent:
    return LoggedEvent(seq=seq, event="demo.message", id=f"id{seq}", time="t", data='{"room": "r"}', audience=None,
                       logged_at=0.0, published=True)


def tail_on(log: MemoryLog, run: str = "run-1") -> tuple[LogTail, Router]:
    router = Router()
    tail = LogTail(Inline(log), None, "n1", run, router, clock=Clock())  # type: ignore[arg-type]
    return tail, router


def started(tail: LogTail) -> LogTail:
    d = Deferred.fromCoroutine(tail.start())
    assert d.called
    return tail


def test_a_new_run_of_a_node_begins_at_the_head_of_the_log() -> None:
    log = MemoryLog([1, 2, 3])
    log.places["n1"] = ("an-old-run", 1)
    tail, router = tail_on(log)
    started(tail)
    assert tail.cursor == 3 and router.handed == [], "its router has no client of before"
    assert log.places["n1"] == ("run-1", 3)


def test_a_dispatcher_taking_over_within_the_run_goes_on_from_the_saved_place() -> None:
    log = MemoryLog([1, 2, 3, 4])
    log.places["n1"] = ("run-1", 2)
    tail, router = tail_on(log)
    started(tail)
    assert router.handed == [3, 4]


def test_its_own_turn_is_handed_at_once_when_it_comes_next_and_read_back_when_something_came_between() -> None:
    log = MemoryLog([1])
    tail, router = tail_on(log)
    started(tail)
    log.rows += [row(2), row(3)]
    reads = log.reads
    tail.offer([Handed.of(row(2)), Handed.of(row(3))])
    assert router.handed == [2, 3] and log.reads == reads, "no read back"
    log.rows += [row(4), row(5), row(6)]  # 4 is another node's; this node's turn is 5-6
    tail.offer([Handed.of(row(5)), Handed.of(row(6))])
    assert router.handed == [2, 3, 4, 5, 6], "read in seq order with what came between"
    tail.offer([Handed.of(row(6))])
    assert router.handed == [2, 3, 4, 5, 6], "nothing twice"


def test_it_reads_no_further_than_a_page_ahead_of_what_the_router_took() -> None:
    log = MemoryLog()
    tail, router = tail_on(log)
    started(tail)
    log.rows = [row(s) for s in range(1, 2 * TAIL_PAGE + 501)]
    tail.wake()
    assert router.handed == list(range(1, TAIL_PAGE + 1)), "one page, then it waits for the router"
    router.ack_all()
    assert len(router.handed) == 2 * TAIL_PAGE
    router.ack_all()
    assert router.handed == list(range(1, 2 * TAIL_PAGE + 501))
    router.ack_all()
    assert tail.acknowledged == 2 * TAIL_PAGE + 500
    tail._clock.advance(HEARTBEAT)
    assert log.places["n1"][1] == tail.acknowledged


def test_a_gap_in_the_log_is_counted_and_said() -> None:
    log = MemoryLog([1])
    tail, router = tail_on(log)
    started(tail)
    log.rows += [row(5), row(6)]  # 2-4 dropped by retention before this node read them
    tail.wake()
    assert router.handed == [5, 6] and tail.skipped == 3 and tail.status()["skipped"] == 3


def test_a_hand_the_router_refuses_at_once_is_read_again_later() -> None:
    log = MemoryLog([1])
    tail, router = tail_on(log)
    started(tail)
    log.rows += [row(2), row(3)]
    router.fail = True
    tail.wake()
    assert tail.cursor == 1 and router.handed == [], "the place did not move past what was not handed"
    router.fail = False
    tail.wake()
    assert router.handed == [2, 3] and tail.cursor == 3


def test_a_full_page_the_router_refuses_at_once_is_not_read_again_and_again_nor_its_gap_counted_twice() -> None:
    log = MemoryLog([1])
    tail, router = tail_on(log)
    started(tail)
    log.rows += [row(s) for s in range(5, TAIL_PAGE + 10)]  # 2-4 dropped, then more than a page
    router.fail = True
    reads = log.reads
    tail.wake()
    tail.wake()
    assert log.reads == reads + 2, "one read per wake-up, not a loop"
    assert tail.skipped == 0 and tail.cursor == 1
    router.fail = False
    tail.wake()
    assert tail.skipped == 3 and router.handed[0] == 5


def test_the_place_saved_is_what_the_router_acknowledged() -> None:
    log = MemoryLog([1])
    tail, router = tail_on(log)
    started(tail)
    log.rows += [row(2), row(3)]
    tail.wake()
    assert log.places["n1"] == ("run-1", 1), "handed, not yet taken"
    router.ack_all()
    assert log.places["n1"] == ("run-1", 1), "saved with the next heartbeat, not a write per acknowledgement"
    tail._clock.advance(HEARTBEAT)
    assert log.places["n1"] == ("run-1", 3)


def test_the_notification_of_its_own_commit_costs_no_read_back() -> None:
    log = MemoryLog([1])
    tail, router = tail_on(log)
    started(tail)
    reads = log.reads
    tail.hold()  # this node's turn is being appended
    log.rows += [row(2), row(3)]
    tail.wake(3)  # its notification came before the append's answer
    assert log.reads == reads and router.handed == []
    tail.offer([Handed.of(row(2)), Handed.of(row(3))])
    tail.release()
    assert router.handed == [2, 3] and log.reads == reads


def test_what_another_node_appended_meanwhile_is_read_once_the_turn_is_handed() -> None:
    log = MemoryLog([1])
    tail, router = tail_on(log)
    started(tail)
    tail.hold()
    log.rows += [row(2), row(3), row(4)]  # 2-3 this node's turn, 4 another node's, committed after it
    tail.wake(4)
    tail.offer([Handed.of(row(2)), Handed.of(row(3))])
    assert router.handed == [2, 3]
    tail.release()
    assert router.handed == [2, 3, 4]


def test_its_gauges_say_which_nodes_it_sees_and_how_far_behind_it_is() -> None:
    log = MemoryLog([1, 2, 3])
    log.places["n2"] = ("other", 7)
    tail, router = tail_on(log)
    assert tail.gauges() == [], "nothing before it follows the log"
    started(tail)  # its first heartbeat reads every node's place
    gauges = {(name, labels): value for name, labels, value in tail.gauges()}
    assert gauges[("gateway_cluster_nodes", (("state", "seen"),))] == 2
    assert gauges[("gateway_cluster_nodes", (("state", "unseen"),))] == 0
    assert gauges[("gateway_cluster_behind_events", ())] == 4, "node n2 is at 7, this one's router at 3"
