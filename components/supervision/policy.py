"""What ``gateway run`` decides about its node, as pure functions of what it observed.

No processes, no sockets, no clock: the supervisor (``supervisor.py``) looks at
the node (``processes.py``) and asks these functions what it sees and what to
do next, so that every rule is unit-tested in microseconds.
"""

from __future__ import annotations

import enum
import json
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class WorkerSpec:
    """One worker process of the node, as the node configuration declares it."""

    id: str
    kind: Literal["router", "container"]
    #: The process title Crossbar gives the worker (``options.title``): how its process is found.
    title: str


@dataclass(frozen=True)
class NodeShape:
    """The workers the node runs: what "alive" means for this node."""

    router: WorkerSpec
    containers: tuple[WorkerSpec, ...]

    @classmethod
    def from_node_config(cls, node: Mapping[str, Any]) -> NodeShape:
        """The shape of a rendered Crossbar node configuration (``components.nodeconfig.render``).

        Every worker needs a distinct ``options.title``: a worker's process is only known by it.
        """
        routers: list[WorkerSpec] = []
        containers: list[WorkerSpec] = []
        for i, worker in enumerate(node.get("workers", [])):
            kind = worker.get("type")
            if kind not in ("router", "container"):
                continue
            title = (worker.get("options") or {}).get("title")
            wid = str(worker.get("id", f"worker {i}"))
            if not isinstance(title, str) or not title:
                raise ValueError(f"in workers[{i}] ({wid}): options.title is needed to find its process")
            (routers if kind == "router" else containers).append(WorkerSpec(wid, kind, title))
        if len(routers) != 1:
            raise ValueError(f"the node configuration has {len(routers)} router workers; one is supervised")
        if not containers:
            raise ValueError("the node configuration has no container worker to supervise")
        titles = [w.title for w in (*routers, *containers)]
        if len(set(titles)) != len(titles):
            raise ValueError(f"two workers share a process title: {titles}")
        return cls(routers[0], tuple(containers))


@dataclass(frozen=True)
class Observation:
    """One look at the node."""

    #: The controller's exit status (negative: killed by that signal); None while it runs.
    controller_exit: int | None
    #: Titles of the worker processes that are alive (not zombies).
    workers: frozenset[str]
    #: The router port accepts connections and the bridge's ``/healthz`` answers 200; None: not probed
    #: (the supervisor probes only while the node starts).
    serving: bool | None = None


class Phase(enum.Enum):
    STARTING = "starting"
    UP = "up"


@dataclass(frozen=True)
class Starting:
    """Not serving yet; ``waiting_for`` says what is missing."""

    waiting_for: str


@dataclass(frozen=True)
class Up:
    """Serving. ``lost`` names the containers that died (the others carry the load)."""

    lost: tuple[str, ...] = ()


@dataclass(frozen=True)
class Down:
    """The node cannot serve any more (or never started): stop what is left of it."""

    reason: str


Verdict = Starting | Up | Down


def describe_exit(code: int) -> str:
    """``exited with code 1`` / ``was killed by SIGKILL``, from a Popen return code."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def judge(shape: NodeShape, phase: Phase, seen: Observation, started: frozenset[str], starting_for: float,
          start_timeout: float) -> Verdict:
    """What the node is doing, given one observation.

    ``started``: titles of the workers seen alive at least once since the node was started (the
    node starts its containers one after the other, the second after the first serves);
    ``starting_for``: seconds since the node was started (only looked at while it starts). A
    starting node is up once it serves; an up node is down once its controller exits, its router
    worker dies or no component container is left. One dead container is not a failure: the
    other one covers (docs/architecture.md), and a restart would drop every client.
    """
    if seen.controller_exit is not None:
        return Down(f"the Crossbar controller {describe_exit(seen.controller_exit)}")
    if phase is Phase.STARTING:
        if seen.serving:
            return Up(_lost(shape, seen, started))
        waiting = [w.id for w in (shape.router, *shape.containers) if w.title not in seen.workers]
        waiting_for = f"workers {', '.join(waiting)}" if waiting else "the router port and the bridge's /healthz"
        if starting_for >= start_timeout:
            return Down(f"the node was not serving {start_timeout:g} s after it was started "
                        f"(still waiting for {waiting_for})")
        return Starting(waiting_for)
    if shape.router.title not in seen.workers:
        return Down(f"the router worker ({shape.router.id}) died")
    if not any(c.title in seen.workers for c in shape.containers):
        return Down(f"no component container is left ({', '.join(c.id for c in shape.containers)} not running)")
    return Up(_lost(shape, seen, started))


def _lost(shape: NodeShape, seen: Observation, started: frozenset[str]) -> tuple[str, ...]:
    """Containers that were alive and are not any more (not those still to be started)."""
    return tuple(c.id for c in shape.containers if c.title in started and c.title not in seen.workers)


@dataclass(frozen=True)
class Backoff:
    """How long to wait before starting the node again, after it failed.

    The first restart is at once (the gateway must serve again within seconds). Each failure in
    a row waits longer, ``initial`` then growing by ``factor`` up to ``cap``, so that a node that
    dies at every start does not spin. A node that served ``stable_after`` seconds before it
    failed starts a new count.
    """

    initial: float = 1.0
    factor: float = 2.0
    cap: float = 30.0
    stable_after: float = 60.0

    def __post_init__(self) -> None:
        if not (self.initial > 0 and self.factor >= 1 and self.cap >= self.initial and self.stable_after > 0):
            raise ValueError(f"a backoff needs initial > 0, factor >= 1, cap >= initial and stable_after > 0: {self}")

    def streak(self, previous: int, served_for: float | None) -> int:
        """Failures in a row, counting the one just seen.

        ``previous``: the count before it; ``served_for``: how long the node that just failed had
        been serving (None: it never served).
        """
        if served_for is not None and served_for >= self.stable_after:
            return 1
        return previous + 1

    def delay(self, streak: int) -> float:
        """Seconds to wait before the next start, after ``streak`` failures in a row (at least 1)."""
        if streak <= 1:
            return 0.0
        # Bounded exponent: a node failing for days must not overflow the float.
        return min(self.cap, self.initial * self.factor ** min(streak - 2, 64))


# -- draining the node before it stops ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BridgeLoad:
    """One bridge process, as ``POST /admin/drain`` reports it."""

    process: str
    #: Requests it still holds (events, or other work for our components), not answered yet.
    in_flight: int
    #: Its RabbitMQ consumer's state: ``draining`` while it hands over the batch it holds.
    amqp: str = "off"

    @property
    def idle(self) -> bool:
        return self.in_flight == 0 and self.amqp != "draining"


@dataclass(frozen=True)
class DrainReport:
    """One answer of ``POST /admin/drain``: every bridge it reached drains; what each still holds."""

    bridges: tuple[BridgeLoad, ...]
    #: Bridges the one answering could not reach (asked again at the next look).
    failures: tuple[str, ...] = ()

    @property
    def in_flight(self) -> int:
        return sum(b.in_flight for b in self.bridges)

    @property
    def idle(self) -> bool:
        return not self.failures and all(b.idle for b in self.bridges)

    def describe(self) -> str:
        """``components-1: 2, components-2: 0`` (and what could not be reached)."""
        text = ", ".join(f"{b.process}: {b.in_flight}" + (" and a RabbitMQ batch" if b.amqp == "draining" else "")
                         for b in self.bridges) or "no bridge"
        return text + (f"; not reached: {'; '.join(self.failures)}" if self.failures else "")


@dataclass(frozen=True)
class NoBridge:
    """Nothing listens on the bridge port (connection refused): no bridge is left to hold anything."""

    reason: str


@dataclass(frozen=True)
class DrainUnanswered:
    """The bridge answered something other than a drain report, or not in time."""

    reason: str


#: What one ``POST /admin/drain`` got.
DrainSeen = DrainReport | NoBridge | DrainUnanswered


def read_drain_answer(status: int, body: bytes) -> DrainReport | DrainUnanswered:
    """``POST /admin/drain``'s answer (``webapp_bridge.server.overload.drain_answer``) as a report."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("bridges"), list):
        what = doc.get("message", doc.get("error")) if isinstance(doc, dict) else body[:200].decode(errors="replace")
        return DrainUnanswered(f"POST /admin/drain answered {status}: {what}")
    try:
        bridges = tuple(BridgeLoad(str(b["process"]), int(b["in_flight"]), str(b.get("amqp", "off")))
                        for b in doc["bridges"])
    except (KeyError, TypeError, ValueError):
        return DrainUnanswered(f"POST /admin/drain answered a report without process and in_flight: {doc}")
    failures = tuple(f"{f.get('bridge', '?')} ({f.get('error', '?')})" if isinstance(f, dict) else str(f)
                     for f in doc.get("failures") or ())
    return DrainReport(bridges, failures)


@dataclass(frozen=True)
class Drained:
    """Done draining (or nothing to drain): stop the node now. ``message`` says how it went, for the log."""

    message: str
    #: False: it ended without every request answered (timed out): logged as a warning.
    complete: bool = True


@dataclass(frozen=True)
class KeepDraining:
    """Something is still in flight: look again."""


def drain_step(seen: DrainSeen, elapsed: float, timeout: float) -> Drained | KeepDraining:
    """What to do after one look at a draining node, ``elapsed`` seconds after its drain began.

    Done once every bridge holds nothing (and each was reached), or at once when no bridge listens any more;
    else look again until ``timeout`` (``bridge.drain_timeout``) has passed, then stop anyway, saying what
    was left: the node is stopped within the time an operator configured, whatever it holds.
    """
    if isinstance(seen, NoBridge):
        return Drained(f"no bridge answers ({seen.reason}): nothing left to drain")
    if isinstance(seen, DrainReport) and seen.idle:
        return Drained(f"drained in {elapsed:.1f} s: nothing left in flight ({seen.describe()})")
    if elapsed < timeout:
        return KeepDraining()
    if isinstance(seen, DrainReport):
        return Drained(f"drain_timeout ({timeout:g} s) passed with {seen.in_flight} requests still in flight "
                       f"({seen.describe()}); stopping the node anyway", complete=False)
    return Drained(f"drain_timeout ({timeout:g} s) passed without a drain report ({seen.reason}); stopping the "
                   "node anyway", complete=False)
