"""When kept-alive HTTP connections move between the bridges of a node (pure logic: no I/O, no clock).

The hand-off (``handoff``) gives every new connection to the bridge beside the active dispatcher: one process
parses and publishes, which is the shortest path while that process keeps up. Past that, a second process
parsing halves the work of the first (its events are forwarded, ``forward``), and the node carries more.
So the bridges move kept-alive connections between requests, by how busy each one is:

- **load**: the number of requests a bridge is handling at once, averaged over ``WINDOW`` samples taken
  every ``SAMPLE`` seconds. By Little's law it is rate times latency, so it grows when requests wait and stays
  small while they don't, whatever the number of idle kept-alive connections.
- **busy**: the share of the window its reactor's thread ran or waited for a core (Linux's schedstat; its
  CPU time where there is none), and **ran**, the share it ran. Requests also wait when the router is the
  bottleneck (many subscribers), and a second process parsing then only takes CPU from the router: a bridge
  is busy when its load is high *and* its thread has work nearly all the time.
- the bridge beside the active dispatcher **gives connections** to the least loaded other bridge while its
  load is at least ``BUSY``, its busy share at least ``BUSY_SHARE``, and its load above the other's by
  ``MARGIN``;
- it **calls connections back** while the shares all the bridges' threads ran add up to at most
  ``CALM_SHARE`` and its own busy share is below it (one process would keep up alone, and this one has room:
  every connection the others serve, each at its next request, even those that are idle now; the time run
  adds up, roughly, when connections move, where loads measured while the work is split do not, nor does the
  time each waited for a core behind the other), or
  from the most loaded other bridge while that one's load is above its own by ``MARGIN`` and its own busy
  share is below ``CALM_SHARE`` (room to take them).

``MARGIN`` (3) and the gap between ``CALM_SHARE`` and ``BUSY_SHARE`` keep connections from going back and forth:
a connection busy all the time carries a load of 1, so moving one changes the two bridges' difference by 2.
Each window moves about a quarter of the difference (moving half would balance them), so sixteen busy
connections settle within a couple of seconds.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

#: Seconds between two samples of a bridge's load, and samples in one window (one decision per window).
SAMPLE = 0.1
WINDOW = 5
#: Requests handled at once, on average: the bridge beside the active dispatcher gives connections away from
#: this load on.
BUSY = 8.0
#: Shares of a window the reactor's thread had work (ran, or waited for a core): at least ``BUSY_SHARE`` to
#: give connections away; below ``CALM_SHARE`` to call any back. The shares the bridges' threads ran, together
#: at most ``CALM_SHARE``, to call every connection back.
BUSY_SHARE = 0.8
CALM_SHARE = 0.6
#: The least difference between two bridges' loads that moves a connection.
MARGIN = 3.0

Peer = TypeVar("Peer", bound=Hashable)


class Window:
    """A bridge's load over ``WINDOW`` samples: the requests it handled at once on average, and the shares of
    its time the reactor's thread ran, and had work (ran or waited for a core; 1.0: a process that can take no
    more)."""

    def __init__(self, size: int = WINDOW) -> None:
        self._size = size
        self._sum = 0
        self._count = 0
        self._since: tuple[float, float, float] | None = None

    def sample(self, handling: int, ran: float, busy: float, now: float) -> tuple[float, float, float] | None:
        """Add one sample (requests being handled now, the seconds the thread has run and has had work so far,
        and a monotonic clock); the window's (load, ran share, busy share) when it is full, else None."""
        if self._since is None:
            self._since = (ran, busy, now)
        self._sum += handling
        self._count += 1
        if self._count < self._size:
            return None
        load = self._sum / self._count
        since_ran, since_busy, since = self._since
        self._sum = self._count = 0
        self._since = (ran, busy, now)
        if now <= since:
            return load, 0.0, 0.0
        return load, _clamped((ran - since_ran) / (now - since)), _clamped((busy - since_busy) / (now - since))


def _clamped(share: float) -> float:
    return min(1.0, max(0.0, share))


@dataclass(frozen=True)
class Load:
    """What another bridge reports: its load, how many connections it serves (some may be idle), and its busy
    and ran shares."""

    load: float = 0.0
    connections: int = 0
    busy: float = 0.0
    ran: float = 0.0


@dataclass(frozen=True)
class Move(Generic[Peer]):
    """What the bridge beside the active dispatcher does until its next window: give ``count`` connections to
    ``peer``, or call ``count`` back from it."""

    peer: Peer
    count: int
    give: bool


def decide(load: float, busy: float, ran: float, connections: int, others: Mapping[Peer, Load]) -> Move[Peer] | None:
    """The move for the bridge beside the active dispatcher, whose load, busy and ran shares and connections
    are ``load``, ``busy``, ``ran`` and ``connections``, with the other bridges' last reports; None: none
    moves."""
    if not others:
        return None
    least = min(others, key=lambda peer: others[peer].load)
    if load >= BUSY and busy >= BUSY_SHARE and load - others[least].load >= MARGIN:
        return Move(least, _quarter(load - others[least].load, connections), give=True)
    if busy < CALM_SHARE and ran + sum(other.ran for other in others.values()) <= CALM_SHARE:
        serving = max(others, key=lambda peer: others[peer].connections)
        if others[serving].connections > 0:
            return Move(serving, others[serving].connections, give=False)
        return None
    most = max(others, key=lambda peer: others[peer].load)
    if others[most].load - load >= MARGIN and busy < CALM_SHARE:
        return Move(most, _quarter(others[most].load - load, others[most].connections), give=False)
    return None


def _quarter(difference: float, connections: int) -> int:
    """A quarter of the loads' difference, and of the connections there to move at most (a load far past
    what the connections carry one each says a process is swamped, not how many to move)."""
    return max(1, min(math.ceil(difference / 4), math.ceil(connections / 4)))
