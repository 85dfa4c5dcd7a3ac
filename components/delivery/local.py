"""The active dispatcher's ``gateway.internal.publish``, offered in its own process.

Every container worker runs a bridge beside a dispatcher, and one dispatcher is active
(``leadership``). An HTTP request, XML-RPC call or RabbitMQ message that reaches the bridge in the
active dispatcher's container needs no WAMP call: the bridge hands the events to the dispatcher's
publish in the process. That spares the router four routed messages per call (the call, its
invocation, the yield and the result), both sides a serialization, and the event a trip through the
router before its publish. A bridge in another container sends the events to the bridge beside the
active dispatcher (``webapp_bridge.server.forward``), or calls ``gateway.internal.publish`` over WAMP
when it cannot. Either way the one
active dispatcher numbers every event, so there is still one order.

The dispatcher offers its publish here once it has registered ``gateway.internal.publish`` (it
holds leadership and has published what its predecessor left), and withdraws it as its session
leaves, before its store threads stop. What it answers is what the WAMP procedure answers (a list
of ``components.delivery.results`` on the wire). As it withdraws, every call still under way fails
at once with ``DispatcherLeft``, as the router fails a call whose callee left (CANCELED): the
bridge calls the next active dispatcher over WAMP with the same ids, sent as ``GIVEN`` (the ones
the leaving dispatcher did accept were remembered: they are answered as duplicates, not published
again).

The bridge watches the slot (``watch``): the bridge beside the active dispatcher publishes the events
the other bridges parsed (``webapp_bridge.server.forward``), and takes the HTTP connections they
accept with the hand-off on (``webapp_bridge.server.handoff``).

Nothing here does I/O: one module-level slot per process (a container runs one dispatcher).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

_log = Logger()

#: ``gateway.internal.publish``'s body: items in, one result (on the wire) each out.
Publish = Callable[[list[list[Any]]], Awaitable[list[dict[str, Any]]]]


class DispatcherLeft(Exception):
    """The dispatcher left before answering a call made here: call the active one over WAMP."""


_offered: Publish | None = None
#: Told True when a dispatcher here becomes active, False when it leaves (``watch``).
_watchers: list[Callable[[bool], None]] = []
#: Each call under way (what its caller waits on) and the publish it went to.
_under_way: dict[Deferred[list[dict[str, Any]]], Publish] = {}


def offer(publish: Publish) -> None:
    """This process's dispatcher is active: bridges here may hand it events directly."""
    global _offered
    was, _offered = _offered, publish
    if was is None:
        _tell(True)


def withdraw(publish: Publish) -> None:
    """The dispatcher that offered ``publish`` is leaving (a newer offer is left in place); every call
    still under way to it fails with ``DispatcherLeft``."""
    global _offered
    if _offered == publish:  # bound methods: equal, not identical, each time they are taken
        _offered = None
        _tell(False)
    for waiting, went_to in list(_under_way.items()):
        if went_to == publish:
            del _under_way[waiting]
            waiting.errback(DispatcherLeft("the dispatcher in this process left before answering"))


def watch(callback: Callable[[bool], None]) -> Callable[[], None]:
    """Call ``callback(True)`` whenever a dispatcher here becomes active, ``callback(False)`` when it leaves;
    returns what stops it."""
    _watchers.append(callback)
    return lambda: _watchers.remove(callback) if callback in _watchers else None


def _tell(active_here: bool) -> None:
    for callback in list(_watchers):
        try:
            callback(active_here)
        except Exception as exc:  # one watcher's failure must not keep the dispatcher from starting or leaving
            _log.failure("a watcher of the active dispatcher failed: {err}", err=exc)


def active() -> Publish | None:
    """The active dispatcher's publish if it runs in this process, else None (call over WAMP)."""
    return _call if _offered is not None else None


def _call(items: list[list[Any]]) -> Deferred[list[dict[str, Any]]]:
    publish = _offered
    if publish is None:
        raise DispatcherLeft("no dispatcher is active in this process")
    waiting: Deferred[list[dict[str, Any]]] = Deferred()
    _under_way[waiting] = publish

    def answered(outcome: list[dict[str, Any]] | Failure) -> None:
        if _under_way.pop(waiting, None) is not None:  # else: failed already, as the dispatcher left
            if isinstance(outcome, Failure):
                waiting.errback(outcome)
            else:
                waiting.callback(outcome)

    ensureDeferred(_awaited(publish(items))).addBoth(answered)
    return waiting


async def _awaited(work: Awaitable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return await work
