"""The dispatcher: numbers accepted events and publishes them to their topics.

Events reach it from the bridge through ``gateway.internal.publish``. It gives
each a ``seq`` (strictly increasing, durable across restarts) and a ``time``,
and publishes the envelope to ``gateway.event.<class>``, asking the router to
acknowledge, so that the bridge answers 202 only for events the router took.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CloseDetails, PublishOptions, SessionDetails
from twisted.internet.defer import Deferred

from components import uris
from components.envelope import make_envelope, new_event_id
from components.events import Registry
from components.backend import BackendSession
from components.sequence import Sequencer, SqliteReservations

_ACK = PublishOptions(acknowledge=True)


class Dispatcher(BackendSession):
    _registry: Registry
    _reservations: SqliteReservations | None = None
    _sequencer: Sequencer

    async def start(self, details: SessionDetails) -> None:
        cfg = self.load_gateway_config()
        self._registry = Registry.from_modules(cfg.events.modules)
        self._reservations = SqliteReservations(cfg.store.path)
        self._sequencer = Sequencer(self._reservations.load(), self._reservations.save)
        await self.register(self._publish, uris.INTERNAL_PUBLISH)
        self.log.info(
            "dispatcher ready: {n} event classes, next seq {seq}",
            n=len(self._registry), seq=self._sequencer.last + 1,
        )

    def _publish(self, event: str, data: dict[str, Any], event_id: str | None = None) -> Deferred[dict[str, Any]]:
        if event not in self._registry:
            raise ApplicationError(uris.ERROR_UNKNOWN_EVENT, f"unknown event class {event!r}")
        seq = self._sequencer.next()
        eid = event_id or new_event_id()
        envelope = make_envelope(event, eid, seq, datetime.now(timezone.utc), data)
        d: Deferred[Any] = self.publish(uris.event_topic(event), envelope, options=_ACK)
        return d.addCallback(lambda _: {"id": eid, "seq": seq})

    def onLeave(self, details: CloseDetails) -> None:
        if self._reservations is not None:
            self._reservations.close()
            self._reservations = None
        super().onLeave(details)
