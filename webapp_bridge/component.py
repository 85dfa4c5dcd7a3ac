"""The bridge component: the HTTP interface web-apps post events to.

It runs inside a Crossbar container worker, listens on the bridge port,
validates each request (``webapp_bridge.api``) and hands accepted events to
the dispatcher over WAMP.
"""

from __future__ import annotations

from typing import Any

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CloseDetails, SessionDetails
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort

from components import uris
from components.backend import BackendSession, _sleep
from components.config import is_loopback
from components.events import Registry
from components.exceptions import ConfigError
from webapp_bridge.api import Answer, BridgeLogic, PublishRequest, accepted, error
from webapp_bridge.http import BridgeSite

#: While the dispatcher is (re)starting its procedure is missing; the bridge
#: waits this long in all before answering 503, so that a component restart
#: is invisible to web-apps.
DISPATCHER_WAIT = (0.1, 0.2, 0.4, 0.8, 1.5)


class Bridge(BackendSession):
    _port: IListeningPort | None = None

    async def start(self, details: SessionDetails) -> None:
        cfg = self.load_gateway_config()
        host = cfg.bridge.host
        # Checked again here (not only in config validation) because this is
        # the last moment before the key becomes reachable from elsewhere.
        if not is_loopback(host) and any(k.startswith("example-") for k in cfg.bridge.api_keys):
            raise ConfigError(f"refusing to listen on {host}: the example API key is still configured")
        registry = Registry.from_modules(cfg.events.modules)
        logic = BridgeLogic(cfg.bridge.api_keys, registry, cfg.bridge.max_body_bytes)
        site = BridgeSite(logic, self._forward, self._health)
        self._port = reactor.listenTCP(cfg.bridge.port, site, interface=host)  # type: ignore[attr-defined]
        self.log.info("bridge listening on http://{host}:{port}/", host=host, port=cfg.bridge.port)

    async def _forward_async(self, req: PublishRequest) -> Answer:
        for delay in (*DISPATCHER_WAIT, None):
            try:
                result = await self.call(uris.INTERNAL_PUBLISH, req.event, req.data, req.id)
            except ApplicationError as exc:
                if exc.error == ApplicationError.NO_SUCH_PROCEDURE and delay is not None:
                    await _sleep(delay)
                    continue
                if exc.error == ApplicationError.NO_SUCH_PROCEDURE:
                    return error(503, "unavailable", "the dispatcher is not running; the event was not accepted",
                                 headers=(("Retry-After", "1"),))
                if exc.error == uris.ERROR_UNKNOWN_EVENT:
                    return error(404, "unknown_event", str(exc.args[0]) if exc.args else exc.error)
                raise
            return accepted(result["id"], result["seq"])
        raise AssertionError("unreachable")

    def _forward(self, req: PublishRequest) -> Deferred[Answer]:
        if not self.is_attached():
            return _now(error(503, "unavailable", "the bridge is reconnecting to the router; retry",
                              headers=(("Retry-After", "1"),)))
        return Deferred.fromCoroutine(self._forward_async(req))

    def _health(self) -> Deferred[Answer]:
        """200 when an event posted now would be accepted: attached, and the dispatcher registered."""
        if not self.is_attached():
            return _now(Answer(503, {"status": "unavailable", "router": False, "dispatcher": False}))

        async def check() -> Answer:
            registration = await self.call("wamp.registration.lookup", uris.INTERNAL_PUBLISH)
            ok = registration is not None
            return Answer(200 if ok else 503, {"status": "ok" if ok else "unavailable", "router": True,
                                               "dispatcher": ok})

        return Deferred.fromCoroutine(check())

    def onLeave(self, details: CloseDetails) -> None:
        if self._port is not None:
            self._port.stopListening()
            self._port = None
        super().onLeave(details)


def _now(answer: Answer) -> Deferred[Answer]:
    d: Deferred[Any] = Deferred()
    d.callback(answer)
    return d
