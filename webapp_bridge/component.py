"""The bridge component: the HTTP interface web-apps post events to.

It runs inside a Crossbar container worker, listens on the bridge port,
validates each request (``webapp_bridge.api``) and hands accepted events to
the dispatcher over WAMP.

Every container worker runs a bridge, all on the same port (SO_REUSEPORT):
the kernel spreads connections over them, so HTTP parsing and validation use
every core, and a bridge whose process dies leaves the others serving.
"""

from __future__ import annotations

import socket
from typing import Any, cast

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CloseDetails, SessionDetails
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.tcp import Port

from components import uris
from components.backend import BackendSession, sleep
from components.events import Registry
from webapp_bridge.api import Answer, BridgeLogic, PublishRequest, accepted, error
from webapp_bridge.http import BridgeSite

#: While the dispatcher is (re)starting its procedure is missing; the bridge
#: waits this long in all before answering 503, so that a component restart
#: is invisible to web-apps.
DISPATCHER_WAIT = (0.1, 0.2, 0.4, 0.8, 1.5)


class Bridge(BackendSession):
    _port: Port | None

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._port = None

    async def start(self, details: SessionDetails) -> None:
        # Loading refuses a non-loopback host while the example API key is configured.
        cfg = self.load_gateway_config()
        host = cfg.bridge.host
        registry = Registry.from_modules(cfg.events.modules)
        logic = BridgeLogic(cfg.bridge.api_keys, registry, cfg.bridge.max_body_bytes)
        site = BridgeSite(logic, self._forward, self._health)
        self._port = listen_shared(host, cfg.bridge.port, site)
        self.log.info("bridge listening on http://{host}:{port}/", host=host, port=cfg.bridge.port)

    async def _forward_async(self, req: PublishRequest) -> Answer:
        for delay in (*DISPATCHER_WAIT, None):
            try:
                result = await self.call(uris.INTERNAL_PUBLISH, req.event, req.data, req.id)
            except ApplicationError as exc:
                if exc.error == ApplicationError.NO_SUCH_PROCEDURE and delay is not None:
                    await sleep(delay)  # a dispatcher is (re)starting
                    continue
                return _dispatch_failed(exc)
            return accepted(result["id"], result["seq"])
        raise AssertionError("unreachable: the last attempt returns")

    def _forward(self, req: PublishRequest) -> Deferred[Answer]:
        if not self.is_attached():
            return _now(error(503, "unavailable", "the bridge is reconnecting to the router; retry",
                              headers=(("Retry-After", "1"),)))
        return Deferred.fromCoroutine(self._forward_async(req))

    def _health(self) -> Deferred[Answer]:
        """200 when an event posted now would be accepted; says how many dispatchers stand ready."""
        if not self.is_attached():
            return _now(Answer(503, {"status": "unavailable", "router": False, "dispatchers": 0}))

        async def check() -> Answer:
            registration = await self.call("wamp.registration.lookup", uris.INTERNAL_PUBLISH)
            callees = [] if registration is None else await self.call(
                "wamp.registration.list_callees", registration)
            n = len(callees)
            return Answer(200 if n else 503, {"status": "ok" if n else "unavailable", "router": True,
                                              "dispatchers": n})

        return Deferred.fromCoroutine(check())

    def onLeave(self, details: CloseDetails) -> None:
        if self._port is not None:
            self._port.stopListening()
            self._port = None
        super().onLeave(details)


def _dispatch_failed(exc: ApplicationError) -> Answer:
    retry = (("Retry-After", "1"),)
    if exc.error == ApplicationError.NO_SUCH_PROCEDURE:
        return error(503, "unavailable", "no dispatcher is running; the event was not accepted", headers=retry)
    if exc.error == ApplicationError.CANCELED:
        # The dispatcher died between taking the event and answering: it may
        # have been delivered. Retrying with the same id is the safe move.
        return error(503, "unavailable", "the dispatcher stopped while publishing this event; it may or may not "
                     "have been delivered: retry with the same id", headers=retry)
    if exc.error == uris.ERROR_UNKNOWN_EVENT:
        return error(404, "unknown_event", str(exc.args[0]) if exc.args else exc.error)
    raise exc


def listen_shared(host: str, port: int, factory: Any) -> Port:
    """Listen on host:port with SO_REUSEPORT, so that every bridge process can accept on it.

    Linux only lets sockets of the same user share a port this way.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
        listening = cast(Port, reactor.adoptStreamPort(sock.fileno(), family, factory))
    finally:
        sock.close()  # adoptStreamPort keeps its own duplicate of the descriptor
    return listening


def _now(answer: Answer) -> Deferred[Answer]:
    d: Deferred[Any] = Deferred()
    d.callback(answer)
    return d
