"""The dispatcher: numbers accepted events and publishes them to their topics.

Events reach it from the bridge through ``gateway.internal.publish``. It gives
each a ``seq`` (strictly increasing, durable across restarts) and a ``time``,
and publishes the envelope to ``gateway.event.<class>``, asking the router to
acknowledge, so that the bridge answers 202 only for events the router took.

Every container worker runs a dispatcher. They register the procedure with
the ``first`` invocation policy: one is active, the others stand by, and
when the active one's process dies the router sends the next call to a
standby at once. seq stays in order because only one numbers events at a
time and a standby takes its first block of numbers only when it takes over.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CloseDetails, PublishOptions, RegisterOptions, SessionDetails
from twisted.internet.defer import Deferred

from components import uris
from components.envelope import make_envelope, new_event_id
from components.events import Registry
from components.backend import BackendSession
from components.sequence import Sequencer, SqliteCounter

_ACK = PublishOptions(acknowledge=True)


class Dispatcher(BackendSession):
    _registry: Registry
    _counter: SqliteCounter | None = None
    _sequencer: Sequencer

    async def start(self, details: SessionDetails) -> None:
        cfg = self.load_gateway_config()
        self._registry = Registry.from_modules(cfg.events.modules)
        self._counter = SqliteCounter(cfg.store.path)
        self._sequencer = Sequencer(self._counter.take)
        await self.register(self._publish, uris.INTERNAL_PUBLISH, options=RegisterOptions(invoke="first"))
        self.log.info("dispatcher ready: {n} event classes", n=len(self._registry))

    def _publish(self, event: str, data: dict[str, Any], event_id: str | None = None) -> Deferred[dict[str, Any]]:
        if event not in self._registry:
            raise ApplicationError(uris.ERROR_UNKNOWN_EVENT, f"unknown event class {event!r}")
        seq = self._sequencer.next()
        eid = event_id or new_event_id()
        envelope = make_envelope(event, eid, seq, datetime.now(timezone.utc), data)
        d: Deferred[Any] = self.publish(uris.event_topic(event), envelope, options=_ACK)
        return d.addCallback(lambda _: {"id": eid, "seq": seq})

    def onLeave(self, details: CloseDetails) -> None:
        if self._counter is not None:
            self._counter.close()
            self._counter = None
        super().onLeave(details)
