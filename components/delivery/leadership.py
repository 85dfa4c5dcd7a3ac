"""Leadership of a node's dispatchers: one active, the others standing by.

Everything that writes or orders (numbering and publishing events, query and persistent
subscriptions, replay, ack, the bridge's ``/subscriptions``, housekeeping) is done by one
dispatcher at a time: the one holding ``uris.INTERNAL_DISPATCHER_LEADER``, a registration with
the ``single`` invocation policy. The router refuses a second registration of it while the
holder's session lives, and drops it when that session ends (its process killed, its session
killed, or it left), in the same step as every other registration of that session. So at most
one dispatcher holds it, and one that holds it has no rival's procedures beside its own.

A dispatcher registers the procedures that write or order only once it holds leadership (and
has published what its predecessor logged but may not have published; see
``Publisher.take_over``): per-procedure ``invoke: first`` could let registrations interleave,
one dispatcher serving ``gateway.subscribe`` while the other publishes. Read-only procedures
(the catalog, the authorizer) are registered by every dispatcher, ``roundrobin``.

The others retry taking it: at once when the router says the holder's registration was deleted
(``wamp.registration.on_delete``), and otherwise every so often, backing off from
``FIRST_RETRY`` to ``MAX_RETRY`` with jitter, so that a missed meta event costs at most that
and standbys do not ask in step. This mirrors the bridge's AMQP consumer lease
(``webapp_bridge.server.amqp.WampLease``).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from autobahn.wamp.exception import ApplicationError
from twisted.internet import reactor
from twisted.internet.base import DelayedCall
from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger

from components import uris

if TYPE_CHECKING:  # not at run time: importing autobahn.twisted chooses Twisted for txaio in the process
    from autobahn.twisted.wamp import ApplicationSession

#: Seconds before a standby first asks again, doubling on each refusal up to MAX_RETRY. The
#: meta event makes a takeover immediate; these bound it when the event was missed.
FIRST_RETRY = 0.1
MAX_RETRY = 2.0
#: What the router answers a registration held by another session: the same policy, or another
#: one (a gateway of another version registered it with ``first``, say).
HELD_ELSEWHERE = (ApplicationError.PROCEDURE_ALREADY_EXISTS, ApplicationError.PROCEDURE_EXISTS_INVOCATION_POLICY_CONFLICT)

log = Logger()
_REACTOR: Any = reactor  # the installed reactor; its module-level typing is not the reactor's


def retry_delay(refusals: int, first: float = FIRST_RETRY, most: float = MAX_RETRY, jitter: float = 1.0) -> float:
    """Seconds to wait after ``refusals`` refusals in a row (1 or more): ``first`` doubling up to ``most``,
    times a ``jitter`` in [0, 1] scaled to [0.5, 1]."""
    return float(min(most, first * 2 ** max(refusals - 1, 0)) * (0.5 + jitter / 2))


class Leadership:
    """Take leadership and keep trying until it is held; ``won()`` then runs once.

    ``info()`` is what calling the leadership procedure answers (who holds it).
    """

    def __init__(self, session: ApplicationSession, won: Callable[[], Awaitable[None]],
                 info: Callable[[], dict[str, Any]], jitter: Callable[[], float] = random.random,
                 clock: Any = None) -> None:
        self._clock = clock if clock is not None else _REACTOR
        self._session = session
        self._won = won
        self._info = info
        self._jitter = jitter
        self._held = False
        self._stopped = False
        #: The holder's registration, as last looked up: its on_delete means a chance to take over.
        self._holder: int | None = None
        self._refusals = 0
        self._timer: DelayedCall | None = None
        self._trying = False
        self._again = False

    @property
    def held(self) -> bool:
        return self._held

    async def start(self) -> None:
        """Follow the holder's going, and try now (in the background: ``won`` may take a while)."""
        await self._session.subscribe(self._deleted, uris.META_REGISTRATION_ON_DELETE)
        self._schedule(0)

    def stop(self) -> None:
        """No more attempts (the session is leaving; the router drops the registration with it)."""
        self._stopped = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _deleted(self, session_id: int, registration_id: int, *rest: Any) -> None:
        """``wamp.registration.on_delete``: if it was the holder's, try at once."""
        if self._held or self._stopped or (self._holder is not None and registration_id != self._holder):
            return
        self._refusals = 0
        self._schedule(0)

    def _schedule(self, delay: float) -> None:
        if self._stopped:
            return
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self._clock.callLater(delay, lambda: ensureDeferred(self._try()))

    async def _try(self) -> None:
        """Attempt (again at once if the holder went meanwhile); once held, ``won()``; else the next attempt later."""
        self._timer = None
        if self._trying:
            self._again = True
            return
        self._trying = True
        held = False
        try:
            while not self._stopped:
                self._again = False
                held = await self._attempt()
                if held or not self._again:
                    break
        except Exception as exc:  # the session is going, or the router said something unexpected
            if self._session.is_attached() and not self._stopped:
                log.warn("taking dispatcher leadership failed: {err}; trying again", err=exc)
        finally:
            self._trying = False
        if held:
            try:
                await self._won()
            except Exception as exc:  # won() handles its own failures; this is a last resort
                log.failure("after taking dispatcher leadership: {err}", err=exc)
        elif not self._stopped:
            self._schedule(retry_delay(max(self._refusals, 1), jitter=self._jitter()))

    async def _attempt(self) -> bool:
        if not self._session.is_attached():
            return False
        try:
            await self._session.register(self._info, uris.INTERNAL_DISPATCHER_LEADER)  # invoke: single
        except ApplicationError as exc:
            if exc.error not in HELD_ELSEWHERE:
                raise
            self._refusals += 1
            self._holder = await self._session.call(uris.META_REGISTRATION_LOOKUP, uris.INTERNAL_DISPATCHER_LEADER)
            if self._holder is None:  # it went between the refusal and the look-up
                self._again = True
            return False
        self._held = True
        return True
