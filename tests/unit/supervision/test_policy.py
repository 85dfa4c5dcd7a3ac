"""What the supervisor counts as starting, serving and dead, and how long it waits before a restart."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from components.config import parse_config
from components.nodeconfig import render
from components.supervision.policy import (
    Backoff, BridgeLoad, Down, Drained, DrainReport, DrainSeen, DrainUnanswered, KeepDraining, NoBridge, NodeShape,
    Observation, Phase, Starting, Up, WorkerSpec, describe_exit, drain_step, judge, read_drain_answer)

SHAPE = NodeShape(WorkerSpec("router", "router", "gateway router"),
                  (WorkerSpec("components-1", "container", "gateway components-1"),
                   WorkerSpec("components-2", "container", "gateway components-2")))
ALL = frozenset({"gateway router", "gateway components-1", "gateway components-2"})
TIMEOUT = 120.0


def up(workers: frozenset[str], started: frozenset[str] = ALL) -> Any:
    return judge(SHAPE, Phase.UP, Observation(None, workers), started, 0, TIMEOUT)


def starting(seen: Observation, after: float = 1.0) -> Any:
    return judge(SHAPE, Phase.STARTING, seen, seen.workers, after, TIMEOUT)


# -- the node's shape -------------------------------------------------------


def test_the_shape_of_the_rendered_node_config() -> None:
    assert NodeShape.from_node_config(render(parse_config({}))) == SHAPE


@pytest.mark.parametrize(("workers", "error"), [
    ([{"type": "router", "id": "r", "options": {}}, {"type": "container", "options": {"title": "c"}}],
     r"workers\[0\] \(r\): options.title is needed"),
    ([{"type": "container", "options": {"title": "c"}}], "0 router workers"),
    ([{"type": "router", "options": {"title": "r"}}], "no container worker"),
    ([{"type": "router", "options": {"title": "x"}}, {"type": "container", "options": {"title": "x"}}],
     "share a process title"),
])
def test_a_shape_that_cannot_be_supervised_is_refused(workers: list[dict[str, Any]], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        NodeShape.from_node_config({"workers": workers})


def test_guest_workers_are_not_supervised() -> None:
    node = {"workers": [{"type": "guest", "id": "g"}, {"type": "router", "id": "r", "options": {"title": "r"}},
                        {"type": "container", "id": "c", "options": {"title": "c"}}]}
    assert NodeShape.from_node_config(node) == NodeShape(WorkerSpec("r", "router", "r"),
                                                         (WorkerSpec("c", "container", "c"),))


# -- starting ---------------------------------------------------------------


def test_a_starting_node_waits_for_its_workers_then_for_the_ports() -> None:
    assert starting(Observation(None, frozenset(), serving=False)) == Starting(
        "workers router, components-1, components-2")
    assert starting(Observation(None, ALL, serving=False)) == Starting("the router port and the bridge's /healthz")


def test_a_node_is_up_once_it_serves_even_before_its_second_container_started() -> None:
    first = frozenset({"gateway router", "gateway components-1"})
    assert starting(Observation(None, first, serving=True)) == Up(())


def test_a_node_not_serving_in_time_failed_to_start_and_says_what_it_waited_for() -> None:
    verdict = starting(Observation(None, frozenset({"gateway router"}), serving=False), after=TIMEOUT)
    assert isinstance(verdict, Down)
    assert verdict.reason == ("the node was not serving 120 s after it was started "
                              "(still waiting for workers components-1, components-2)")


@pytest.mark.parametrize("phase", list(Phase))
def test_a_controller_that_exits_is_down_whatever_the_phase(phase: Phase) -> None:
    verdict = judge(SHAPE, phase, Observation(1, frozenset()), ALL, 0, TIMEOUT)
    assert verdict == Down("the Crossbar controller exited with code 1")
    killed = judge(SHAPE, phase, Observation(-signal.SIGKILL, frozenset()), ALL, 0, TIMEOUT)
    assert killed == Down("the Crossbar controller was killed by SIGKILL")


# -- up ----------------------------------------------------------------------


def test_an_up_node_with_all_its_workers_is_up() -> None:
    assert up(ALL) == Up(())


def test_a_dead_router_worker_is_a_dead_node() -> None:
    assert up(ALL - {"gateway router"}) == Down("the router worker (router) died")


def test_one_dead_container_is_not_a_failure_the_other_one_covers() -> None:
    assert up(ALL - {"gateway components-1"}) == Up(("components-1",))


def test_a_container_not_started_yet_is_not_lost() -> None:
    first = frozenset({"gateway router", "gateway components-1"})
    assert up(first, started=first) == Up(())


def test_no_container_left_is_a_dead_node_even_if_the_second_was_not_seen_yet() -> None:
    down = Down("no component container is left (components-1, components-2 not running)")
    assert up(frozenset({"gateway router"})) == down
    assert up(frozenset({"gateway router"}), started=frozenset({"gateway router", "gateway components-1"})) == down


def test_exits_are_described_by_code_or_signal() -> None:
    assert describe_exit(0) == "exited with code 0"
    assert describe_exit(-15) == "was killed by SIGTERM"
    assert describe_exit(-200) == "was killed by signal 200"


# -- backoff -------------------------------------------------------------------


def test_the_first_restart_is_at_once_then_each_waits_longer_up_to_the_cap() -> None:
    backoff = Backoff(initial=1, factor=2, cap=30)
    assert [backoff.delay(n) for n in range(1, 9)] == [0, 1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay(10_000) == 30


def test_failures_in_a_row_count_until_the_node_served_long_enough() -> None:
    backoff = Backoff(stable_after=60)
    assert backoff.streak(0, served_for=None) == 1
    assert backoff.streak(1, served_for=5) == 2, "served a little: still failing"
    assert backoff.streak(2, served_for=None) == 3, "never served after the restart"
    assert backoff.streak(7, served_for=60) == 1, "served a minute: a new count, restarted at once"


@pytest.mark.parametrize("kw", [{"initial": 0}, {"factor": 0.5}, {"initial": 5, "cap": 1}, {"stable_after": 0}])
def test_a_backoff_that_would_spin_or_shrink_is_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="a backoff needs"):
        Backoff(**kw)


# -- draining before a stop --------------------------------------------------


def report(*loads: tuple[str, int, str], failures: tuple[str, ...] = ()) -> DrainReport:
    return DrainReport(tuple(BridgeLoad(*load) for load in loads), failures)


def test_the_drain_is_done_once_every_bridge_holds_nothing() -> None:
    step = drain_step(report(("components-1", 0, "drained"), ("components-2", 0, "off")), 0.42, 10)
    assert step == Drained("drained in 0.4 s: nothing left in flight (components-1: 0, components-2: 0)")


@pytest.mark.parametrize("seen", [
    report(("components-1", 2, "off"), ("components-2", 0, "off")),
    report(("components-1", 0, "draining")),  # its RabbitMQ batch not acked yet
    report(("components-1", 0, "off"), failures=("gateway.internal.drain.7 (timed out)",)),
    DrainUnanswered("POST /admin/drain answered 500: internal_error"),
])
def test_the_drain_goes_on_while_anything_is_in_flight_or_unknown_until_the_timeout(seen: DrainSeen) -> None:
    assert drain_step(seen, 9.9, 10) == KeepDraining()
    ended = drain_step(seen, 10.0, 10)
    assert isinstance(ended, Drained) and not ended.complete
    assert ended.message.startswith("drain_timeout (10 s) passed with") and "stopping the node anyway" in ended.message


def test_a_timed_out_drain_says_what_was_left() -> None:
    ended = drain_step(report(("components-1", 2, "draining"), ("components-2", 1, "off")), 10.2, 10)
    assert ended == Drained("drain_timeout (10 s) passed with 3 requests still in flight (components-1: 2 and a "
                            "RabbitMQ batch, components-2: 1); stopping the node anyway", complete=False)
    unanswered = drain_step(DrainUnanswered("timed out"), 11, 10)
    assert unanswered == Drained("drain_timeout (10 s) passed without a drain report (timed out); stopping the "
                                 "node anyway", complete=False)


def test_no_bridge_listening_is_nothing_to_drain() -> None:
    step = drain_step(NoBridge("127.0.0.1:8081 refuses connections"), 0.0, 10)
    assert step == Drained("no bridge answers (127.0.0.1:8081 refuses connections): nothing left to drain")


def test_the_bridges_answer_is_read_as_a_report() -> None:
    body = (b'{"status": "draining", "in_flight": 2, "bridges": [{"process": "components-1", "in_flight": 2, '
            b'"amqp": "off"}, {"process": "components-2", "in_flight": 0, "amqp": "drained"}], '
            b'"failures": [{"bridge": "gateway.internal.drain.9", "error": "canceled"}]}')
    seen = read_drain_answer(200, body)
    assert seen == report(("components-1", 2, "off"), ("components-2", 0, "drained"),
                          failures=("gateway.internal.drain.9 (canceled)",))
    assert isinstance(seen, DrainReport) and seen.in_flight == 2 and not seen.idle


@pytest.mark.parametrize(("status", "body", "says"), [
    (401, b'{"error": "unauthorized", "message": "the API key is not valid"}', "401: the API key is not valid"),
    (404, b'{"error": "not_found"}', "404: not_found"),
    (200, b"<html>", "200: <html>"),
    (200, b'{"bridges": [{"process": "components-1"}]}', "without process and in_flight"),
])
def test_anything_else_is_no_report(status: int, body: bytes, says: str) -> None:
    seen = read_drain_answer(status, body)
    assert isinstance(seen, DrainUnanswered) and says in seen.reason
