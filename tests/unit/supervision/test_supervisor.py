"""The supervisor's loop against scripted nodes: when it restarts, waits, gives up and stops."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator, Mapping, Sequence

import pytest

from components.supervision import EXIT_START_FAILED, EXIT_STOPPED, Backoff, Endpoint, Settings, supervise
from components.supervision.policy import (BridgeLoad, DrainReport, DrainSeen, DrainUnanswered, NodeShape,
                                           Observation, WorkerSpec)
from components.supervision.supervisor import Drainer

SHAPE = NodeShape(WorkerSpec("router", "router", "R"),
                  (WorkerSpec("components-1", "container", "C1"), WorkerSpec("components-2", "container", "C2")))
ALL = frozenset({"R", "C1", "C2"})
BOOTING = Observation(None, frozenset({"R"}), serving=False)
SERVING = Observation(None, ALL, serving=True)
RUNNING = Observation(None, ALL)
NO_ROUTER = Observation(None, frozenset({"C1", "C2"}))
NO_CONTAINER = Observation(None, frozenset({"R"}))
EXITED = Observation(1, frozenset())
#: A step of a script: send the supervisor SIGTERM (an operator stopping it).
SIGTERM = "SIGTERM"
FAST = Settings(poll_interval=0, start_timeout=60, stop_grace=7, failed_grace=0,
                backoff=Backoff(initial=0.01, factor=2, cap=0.04, stable_after=60))
ENDPOINT = Endpoint("127.0.0.1", 1)


class FakeNode:
    """Answers ``observe`` from its script, one step per call; the last step repeats."""

    def __init__(self, *script: Observation | str) -> None:
        self.script = list(script)
        self.started = False
        self.stopped_with: float | None = None
        self.probed: list[bool] = []

    @property
    def pid(self) -> int:
        return 4242

    def start(self) -> None:
        self.started = True

    def observe(self, probe: tuple[Endpoint, Endpoint] | None = None) -> Observation:
        self.probed.append(probe is not None)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if step == SIGTERM:
            signal.raise_signal(signal.SIGTERM)
            return RUNNING
        assert isinstance(step, Observation)
        return step

    def stop(self, grace: float) -> None:
        self.stopped_with = grace


def run(*nodes: FakeNode, settings: Settings = FAST, drain: Drainer | None = None) -> tuple[int, list[FakeNode]]:
    made: list[FakeNode] = []
    queue: Iterator[FakeNode] = iter(nodes)

    def factory(argv: Sequence[str], env: Mapping[str, str] | None) -> FakeNode:
        assert argv == ["crossbar", "start"]
        node = next(queue)
        made.append(node)
        return node

    code = supervise(["crossbar", "start"], SHAPE, ENDPOINT, ENDPOINT, settings, node_factory=factory, drain=drain)
    return code, made


@pytest.fixture(autouse=True)
def _logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.supervisor")


def test_a_node_that_never_serves_at_its_first_start_ends_gateway_run_with_1(
        caplog: pytest.LogCaptureFixture) -> None:
    first = FakeNode(BOOTING, EXITED)
    code, made = run(first, FakeNode(SERVING))
    assert code == EXIT_START_FAILED == 1
    assert made == [first] and first.stopped_with == 0
    assert "the Crossbar controller exited with code 1: the node did not start" in caplog.text


def test_a_dead_router_restarts_the_node_at_once_and_sigterm_stops_it(caplog: pytest.LogCaptureFixture) -> None:
    first = FakeNode(BOOTING, SERVING, RUNNING, NO_ROUTER)
    second = FakeNode(SERVING, RUNNING, SIGTERM)
    code, made = run(first, second)
    assert code == EXIT_STOPPED == 0
    assert made == [first, second]
    assert first.stopped_with == 0, "a failed node is killed at once"
    assert second.stopped_with == 7, "a node stopped on request gets its grace"
    assert "the router worker (router) died; restarting the node at once (restart 1)" in caplog.text
    assert "the node serves again (pid 4242)" in caplog.text and "(restart 1)" in caplog.text
    assert "got SIGTERM: stopping the node" in caplog.text


def test_no_container_left_restarts_the_node(caplog: pytest.LogCaptureFixture) -> None:
    code, made = run(FakeNode(SERVING, NO_CONTAINER), FakeNode(SERVING, SIGTERM))
    assert code == 0 and len(made) == 2
    assert "no component container is left (components-1, components-2 not running); restarting the node at once" \
        in caplog.text


def test_one_dead_container_is_reported_once_and_the_node_keeps_running(caplog: pytest.LogCaptureFixture) -> None:
    one_left = Observation(None, frozenset({"R", "C2"}))
    code, made = run(FakeNode(SERVING, one_left, one_left, one_left, SIGTERM))
    assert code == 0 and len(made) == 1
    assert caplog.text.count("container worker components-1 died; the others serve") == 1


def test_a_node_that_keeps_dying_is_restarted_later_each_time(caplog: pytest.LogCaptureFixture) -> None:
    code, made = run(FakeNode(SERVING, NO_ROUTER), FakeNode(BOOTING, EXITED), FakeNode(SERVING, NO_ROUTER),
                     FakeNode(EXITED), FakeNode(SERVING, SIGTERM))
    assert code == 0 and len(made) == 5
    restarts = [r.getMessage() for r in caplog.records if "restarting the node" in r.getMessage()]
    assert [m.split("restarting the node ")[1] for m in restarts] == [
        "at once (restart 1)",
        "in 0.01 s (2 failures in a row) (restart 2)",
        "in 0.02 s (3 failures in a row) (restart 3)",
        "in 0.04 s (4 failures in a row) (restart 4)",
    ]
    assert "the Crossbar controller exited with code 1; restarting" in restarts[1]


def test_the_node_is_probed_only_while_it_starts() -> None:
    node = FakeNode(BOOTING, BOOTING, SERVING, RUNNING, RUNNING, SIGTERM)
    run(node)
    assert node.probed[:5] == [True, True, True, False, False]


def test_a_stop_while_the_node_starts_stops_it_and_is_not_a_failure() -> None:
    node = FakeNode(BOOTING, SIGTERM)
    code, _ = run(node)
    assert code == EXIT_STOPPED and node.stopped_with == 7


def test_a_stop_during_the_backoff_starts_nothing_more() -> None:
    slow = Settings(poll_interval=0, failed_grace=0, backoff=Backoff(initial=30, stable_after=60))

    class StopsAfterItDies(FakeNode):
        def stop(self, grace: float) -> None:
            super().stop(grace)
            signal.raise_signal(signal.SIGTERM)  # during the wait before restart 2

    code, made = run(FakeNode(SERVING, NO_ROUTER), StopsAfterItDies(EXITED), FakeNode(SERVING), settings=slow)
    assert code == EXIT_STOPPED and len(made) == 2


def test_crossbar_that_cannot_be_run_is_a_failure_to_start(caplog: pytest.LogCaptureFixture) -> None:
    class Missing(FakeNode):
        def start(self) -> None:
            raise FileNotFoundError(2, "No such file or directory")

    code, _ = run(Missing(SERVING))
    assert code == EXIT_START_FAILED and "cannot start crossbar" in caplog.text


def test_the_signal_handlers_are_given_back() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    run(FakeNode(SERVING, SIGTERM))
    assert {sig: signal.getsignal(sig) for sig in before} == before


# -- draining before the stop ------------------------------------------------------------------------------------------


DRAINING = Settings(poll_interval=0, stop_grace=7, drain_timeout=5, drain_interval=0)


def load(*in_flight: int) -> DrainReport:
    return DrainReport(tuple(BridgeLoad(f"components-{i}", n) for i, n in enumerate(in_flight, 1)))


class FakeDrain:
    """Answers each ``POST /admin/drain`` from its script (the last step repeats); records the order of things."""

    def __init__(self, *script: DrainSeen, log: list[str]) -> None:
        self.script = list(script)
        self.log = log
        self.timeouts: list[float] = []

    def __call__(self, timeout: float) -> DrainSeen:
        self.timeouts.append(timeout)
        self.log.append("drain")
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]


class RecordingNode(FakeNode):
    def __init__(self, *script: Observation | str, log: list[str]) -> None:
        super().__init__(*script)
        self.log = log

    def stop(self, grace: float) -> None:
        super().stop(grace)
        self.log.append("stop")


def test_a_stop_signal_drains_a_serving_node_until_nothing_is_in_flight_then_stops_it(
        caplog: pytest.LogCaptureFixture) -> None:
    order: list[str] = []
    drain = FakeDrain(load(3, 1), DrainUnanswered("timed out"), load(1, 0), load(0, 0), log=order)
    node = RecordingNode(SERVING, RUNNING, SIGTERM, log=order)
    code, _ = run(node, settings=DRAINING, drain=drain)
    assert code == EXIT_STOPPED and node.stopped_with == 7
    assert order == ["drain"] * 4 + ["stop"], "asked until every bridge held nothing, then stopped"
    assert all(0.5 <= t <= DRAINING.drain_request_timeout for t in drain.timeouts)
    messages = [r.getMessage() for r in caplog.records]
    assert "got SIGTERM: stopping the node, draining it first (it takes no new events; those in flight get at " \
           "most 5 s)" in messages
    drained = [m for m in messages if m.startswith("drained in ")]
    assert len(drained) == 1 and drained[0].endswith("nothing left in flight (components-1: 0, components-2: 0)")
    assert messages[-1] == "the node stopped"


def test_a_drain_that_does_not_end_in_time_stops_the_node_anyway_and_says_what_was_left(
        caplog: pytest.LogCaptureFixture) -> None:
    order: list[str] = []
    quick = Settings(poll_interval=0, stop_grace=7, drain_timeout=0.05, drain_interval=0.01)
    code, _ = run(RecordingNode(SERVING, SIGTERM, log=order), settings=quick, drain=FakeDrain(load(2, 0), log=order))
    assert code == EXIT_STOPPED and order[-1] == "stop" and order.count("drain") >= 2
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and warning[0].getMessage() == (
        "drain_timeout (0.05 s) passed with 2 requests still in flight (components-1: 2, components-2: 0); "
        "stopping the node anyway")


def test_a_second_stop_signal_cuts_the_drain_short(caplog: pytest.LogCaptureFixture) -> None:
    order: list[str] = []

    class Impatient(FakeDrain):
        def __call__(self, timeout: float) -> DrainSeen:
            if len(self.timeouts) == 1:
                signal.raise_signal(signal.SIGINT)  # Ctrl-C again while it drains
            return super().__call__(timeout)

    code, _ = run(RecordingNode(SERVING, SIGTERM, log=order), settings=DRAINING, drain=Impatient(load(1), log=order))
    assert code == EXIT_STOPPED and order == ["drain", "drain", "stop"]
    assert "got a second stop signal: stopping the node without waiting for the drain" in caplog.text


@pytest.mark.parametrize("why", ["the node is not serving yet", "drain_timeout is 0", "no way to drain"])
def test_no_drain_when_the_node_does_not_serve_or_draining_is_off(why: str, caplog: pytest.LogCaptureFixture) -> None:
    order: list[str] = []
    script = (BOOTING, SIGTERM) if why == "the node is not serving yet" else (SERVING, SIGTERM)
    settings = Settings(poll_interval=0, stop_grace=7, drain_timeout=0) if why == "drain_timeout is 0" else DRAINING
    drain = None if why == "no way to drain" else FakeDrain(load(5), log=order)
    code, _ = run(RecordingNode(*script, log=order), settings=settings, drain=drain)
    assert code == EXIT_STOPPED and order == ["stop"]
    assert "got SIGTERM: stopping the node" in [r.getMessage() for r in caplog.records]
