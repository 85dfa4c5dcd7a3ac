"""``gateway run`` keeps the node serving: it restarts the whole node when it cannot serve any more.

Crossbar 26.10 in standalone mode restarts neither a router worker nor a
container worker that was killed, and with ``shutdown_on_shutdown_requested``
its controller keeps running without them: a node that serves nothing but
looks alive. Its management API (``crossbar.start_worker``, the containers'
``start_component``) is only reachable from inside the node (the controller's
local management realm, which code in its workers may call), so what is
restarted is the whole node, the same start as the first one. Why that is the
right trade: docs/architecture.md, "What keeps running when something fails".

The loop: start ``crossbar start`` (``processes.NodeProcess``), look at it
every ``poll_interval`` and let ``policy.judge`` say whether it is starting,
serving or down; when down, stop what is left of it and start it again after
``policy.Backoff``'s delay. SIGTERM, SIGINT and SIGHUP stop the node (every
process of its group) and end ``gateway run`` with 0; a node that never served
at its first start ends it with 1.

A node that serves is drained before it is stopped (``Settings.drain_timeout``,
``bridge.drain_timeout``): ``POST /admin/drain`` to its bridge
(``processes.BridgeDrain``), which makes every bridge of the node refuse new
events (503 ``draining``, ``/healthz`` 503: a load balancer sends elsewhere)
while what they accepted goes on to its answer, asked again until nothing is in
flight or the time is up (``policy.drain_step``); then the stop as ever, whose
SIGTERM to the controller closes the clients' sessions (they move to another
node). A second stop signal during the drain cuts it short.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Protocol, TextIO

from components.supervision.policy import (Backoff, Down, Drained, DrainSeen, NodeShape, Observation, Phase, Up,
                                           drain_step, judge)
from components.supervision.processes import Endpoint, NodeProcess

log = logging.getLogger("gateway.supervisor")

#: ``gateway run``'s exit status: stopped when asked (a signal).
EXIT_STOPPED = 0
#: ``gateway run``'s exit status: the node did not serve at its first start (a port in use, a bad
#: definition, Crossbar refusing the config): restarting it would not help, the operator must look.
EXIT_START_FAILED = 1

#: The signals that stop ``gateway run`` and its node. SIGHUP too: Crossbar has no reload, and a
#: closed terminal must not leave a node behind.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass(frozen=True)
class Settings:
    """How the supervisor watches and restarts the node (seconds)."""

    #: Between two looks at the node: a dead worker is seen within this.
    poll_interval: float = 0.25
    #: A node not serving this long after its start failed to start. Generous: a loaded 2-core
    #: machine takes 5-10 s.
    start_timeout: float = 120.0
    #: Crossbar's own shutdown when asked to stop (it closes client connections properly).
    stop_grace: float = 20.0
    #: When the node failed: what is left of it serves nobody, and a graceful shutdown of a
    #: controller whose router is gone took 1 s of the 10 s the gateway has to serve again. It is
    #: killed at once: the store is crash-safe (SQLite WAL, PostgreSQL transactions), clients see
    #: their connection close either way, and a web-app retries a cut request with the same id.
    failed_grace: float = 0.0
    backoff: Backoff = field(default_factory=Backoff)
    #: ``bridge.drain_timeout``: on a stop signal, a node that serves is drained (it takes no new event and
    #: answers what it accepted) for at most this long before it is stopped; 0: stopped at once.
    drain_timeout: float = 10.0
    #: Between two questions to the draining node (each asks every bridge over the router: cheap).
    drain_interval: float = 0.1
    #: The longest one question may take (and never past the drain's end by more than a second).
    drain_request_timeout: float = 5.0


class Node(Protocol):
    """One run of the node, as the supervisor uses it (``processes.NodeProcess``; a fake in tests)."""

    @property
    def pid(self) -> int: ...

    def start(self) -> None: ...

    def observe(self, probe: tuple[Endpoint, Endpoint] | None = None) -> Observation: ...

    def stop(self, grace: float) -> None: ...


#: Makes a (not yet started) node from ``crossbar start``'s argv and environment.
NodeFactory = Callable[[Sequence[str], Mapping[str, str] | None], Node]
#: Asks the node to drain (``processes.BridgeDrain``: ``POST /admin/drain``), within a timeout; what it got.
Drainer = Callable[[float], DrainSeen]


@dataclass(frozen=True)
class _Ended:
    """How one run of the node ended: ``reason`` None means a stop was asked for."""

    reason: str | None
    #: Seconds it had been serving when it ended (None: it never served).
    served_for: float | None


class _StopRequest:
    """The signal handler: remembers the first stop signal, for the loop to act on, and counts them (a second
    one cuts a drain short)."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None
        self.count = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.signal is None:
            self.signal = signal.Signals(signum)


def supervise(argv: Sequence[str], shape: NodeShape, router: Endpoint, bridge: Endpoint,
              settings: Settings = Settings(), env: Mapping[str, str] | None = None,
              node_factory: NodeFactory = NodeProcess, drain: Drainer | None = None) -> int:
    """Run the node ``argv`` starts (``crossbar start ...``) until a stop signal; the exit status.
    ``drain``: how to drain the node before it is stopped (None: it is not drained)."""
    stop = _StopRequest()
    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        return _Supervisor(argv, shape, router, bridge, settings, env, node_factory, stop, drain).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Supervisor:
    def __init__(self, argv: Sequence[str], shape: NodeShape, router: Endpoint, bridge: Endpoint,
                 settings: Settings, env: Mapping[str, str] | None, node_factory: NodeFactory,
                 stop: _StopRequest, drain: Drainer | None = None) -> None:
        self._argv = list(argv)
        self._node_factory = node_factory
        self._shape = shape
        self._probe = (router, bridge)
        self._settings = settings
        self._env = env
        self._stop = stop
        self._drain = drain

    def run(self) -> int:
        streak = 0
        restarts = 0
        served_once = False
        failed_at: float | None = None
        while True:
            node = self._node_factory(self._argv, self._env)
            try:
                node.start()
            except OSError as exc:
                log.error("cannot start %s: %s", self._argv[0], exc)
                return EXIT_START_FAILED
            ended = self._watch(node, failed_at, restarts)
            if ended.reason is None:
                return self._stopped(node, serving=ended.served_for is not None)
            failed_at = time.monotonic()
            node.stop(self._settings.failed_grace)
            served_once = served_once or ended.served_for is not None
            if not served_once:
                log.error("%s: the node did not start, gateway run gives up (exit %d)", ended.reason,
                          EXIT_START_FAILED)
                return EXIT_START_FAILED
            streak = self._settings.backoff.streak(streak, ended.served_for)
            delay = self._settings.backoff.delay(streak)
            restarts += 1
            when = "at once" if delay == 0 else f"in {delay:g} s ({streak} failures in a row)"
            log.warning("%s; restarting the node %s (restart %d)", ended.reason, when, restarts)
            if not self._wait(delay):
                log.info("got %s: not restarting", self._stop_name())
                return EXIT_STOPPED

    def _watch(self, node: Node, failed_at: float | None, restarts: int) -> _Ended:
        """Look at the node until it is down or a stop is asked for."""
        settings = self._settings
        phase = Phase.STARTING
        started = time.monotonic()
        up_since: float | None = None
        lost: tuple[str, ...] = ()
        ever_alive: frozenset[str] = frozenset()
        while self._stop.signal is None:
            seen = node.observe(self._probe if phase is Phase.STARTING else None)
            ever_alive |= seen.workers
            now = time.monotonic()
            verdict = judge(self._shape, phase, seen, ever_alive, now - started, settings.start_timeout)
            if isinstance(verdict, Down):
                return _Ended(verdict.reason, None if up_since is None else now - up_since)
            if isinstance(verdict, Up):
                if phase is Phase.STARTING:
                    phase, up_since = Phase.UP, now
                    if failed_at is None:
                        log.info("the node serves (pid %d), %.1f s after its start", node.pid, now - started)
                    else:
                        log.info("the node serves again (pid %d), %.1f s after the failure (restart %d)",
                                 node.pid, now - failed_at, restarts)
                if verdict.lost != lost:
                    lost = verdict.lost
                    if lost:
                        log.warning("container worker %s died; the others serve (the node is restarted "
                                    "once none is left)", ", ".join(lost))
            time.sleep(settings.poll_interval)
        return _Ended(None, None if up_since is None else time.monotonic() - up_since)

    def _stopped(self, node: Node, serving: bool) -> int:
        if serving and self._drain is not None and self._settings.drain_timeout > 0:
            log.info("got %s: stopping the node, draining it first (it takes no new events; those in flight get "
                     "at most %g s)", self._stop_name(), self._settings.drain_timeout)
            self._drained(self._drain)
        else:
            log.info("got %s: stopping the node", self._stop_name())
        node.stop(self._settings.stop_grace)
        log.info("the node stopped")
        return EXIT_STOPPED

    def _drained(self, drain: Drainer) -> None:
        """Ask the node to drain until ``policy.drain_step`` says it is done (or a second signal says stop)."""
        settings = self._settings
        started = time.monotonic()
        while True:
            left = settings.drain_timeout - (time.monotonic() - started)
            seen = drain(max(0.5, min(settings.drain_request_timeout, left + 1.0)))
            step = drain_step(seen, time.monotonic() - started, settings.drain_timeout)
            if isinstance(step, Drained):
                (log.info if step.complete else log.warning)("%s", step.message)
                return
            if self._stop.count > 1:
                log.warning("got a second stop signal: stopping the node without waiting for the drain")
                return
            time.sleep(settings.drain_interval)

    def _wait(self, seconds: float) -> bool:
        """Wait, unless a stop is asked for: False then."""
        deadline = time.monotonic() + seconds
        while self._stop.signal is None and time.monotonic() < deadline:
            time.sleep(min(self._settings.poll_interval, max(0.0, deadline - time.monotonic())))
        return self._stop.signal is None

    def _stop_name(self) -> str:
        return self._stop.signal.name if self._stop.signal is not None else "a stop request"


class _CrossbarLikeFormatter(logging.Formatter):
    """Lines that sit well among Crossbar's (``--logformat standard``): time, who, message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s [Supervisor  %(process)d] %(message)s", "%Y-%m-%dT%H:%M:%S%z")


def configure_logging(stream: TextIO) -> None:
    """The supervisor's lines on ``stream`` (where Crossbar's go), INFO and up."""
    if log.handlers:
        return
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_CrossbarLikeFormatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
