"""The base of our WAMP components: join as role ``backend`` with WAMP-CRA, fail slowly.

Crossbar restarts a component that leaves at once (restart-always). A
component that cannot start (a bad config, a port in use) would then spin;
so a failed start waits, with a growing delay, before it leaves.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from autobahn.twisted.wamp import ApplicationSession
from autobahn.wamp import auth
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import Challenge, CloseDetails, SessionDetails
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from components import uris
from components.config import GatewayConfig, load_config
from components.events import Registry
from components.exceptions import DefinitionError
from components.heap import refreeze_soon
from components.events.live import LiveRegistry
from components.metrics.families import DEFINITIONS_INFO, RELOADS
from components.metrics.keeper import KEEPER
from components.metrics.process_meter import METER
from components.store.base import open_store

#: Delays (seconds) before a component whose start failed leaves to be restarted.
START_RETRY_DELAYS = (0.5, 1, 2, 5, 10)


class BackendSession(ApplicationSession):
    log = Logger()
    _failed_starts: ClassVar[int] = 0
    _live: LiveRegistry | None = None

    def onConnect(self) -> None:
        extra = self.config.extra
        self.join(self.config.realm, authmethods=["wampcra"], authid=extra["authid"])

    def onChallenge(self, challenge: Challenge) -> str:
        if challenge.method != "wampcra":
            raise RuntimeError(f"unexpected authentication method {challenge.method!r}")
        signature: bytes = auth.compute_wcs(self.config.extra["secret"], challenge.extra["challenge"])
        return signature.decode("ascii")

    def load_gateway_config(self) -> GatewayConfig:
        """gateway.yaml (path from the node config, relative to the node directory) plus env; the process
        counts or not as ``metrics.enabled`` says, from before its components count anything."""
        cfg = load_config(self.config.extra["config_path"], os.environ)
        METER.switch(cfg.metrics.enabled)
        return cfg

    async def onJoin(self, details: SessionDetails) -> None:
        try:
            await self.start(details)
        except Exception as exc:
            type(self)._failed_starts += 1
            n = type(self)._failed_starts
            delay = START_RETRY_DELAYS[min(n, len(START_RETRY_DELAYS)) - 1]
            self.log.error(
                "{name} could not start (attempt {n}): {err}; retrying in {delay}s",
                name=type(self).__name__, n=n, err=exc, delay=delay,
            )
            await sleep(delay)
            self.leave(uris.ERROR_START_FAILED, str(exc))
            return
        type(self)._failed_starts = 0
        refreeze_soon()  # what the start built stays: out of the collector's full walks (``components.heap``)

    async def start(self, details: SessionDetails) -> None:
        """Set the component up; raising makes it leave and be restarted after a delay."""
        raise NotImplementedError

    # -- event definitions -------------------------------------------------

    def start_registry(self, cfg: GatewayConfig) -> None:
        """Load the event definitions; watch them if configured. Call from start()."""
        self._live = LiveRegistry(cfg.events.modules, cfg.events.files, on_change=self._registry_swapped)
        if cfg.events.watch:
            self._live.watch(cfg.events.watch_interval)

    @property
    def registry(self) -> Registry:
        assert self._live is not None, "start_registry() was not called"
        return self._live.current

    def _registry_swapped(self, old: Registry, new: Registry) -> None:
        try:
            self.registry_changed(old, new)
        finally:
            refreeze_soon()  # the old classes, frozen while alive, are freed then (``components.heap``)

    def registry_changed(self, old: Registry, new: Registry) -> None:
        """Called after a reload swapped in a different registry."""

    async def register_reload(self) -> None:
        """Offer ``gateway.internal.reload.<session>`` so that POST /admin/reload can reach this component."""
        assert self._session_id is not None
        await self.register(self.reload_registry, uris.internal_reload(self._session_id))

    def reload_registry(self) -> dict[str, object]:
        assert self._live is not None
        try:
            new = self._live.reload()
        except DefinitionError as exc:
            METER.count(RELOADS, (("outcome", "refused"),))
            raise ApplicationError(uris.ERROR_INVALID_DEFINITIONS, str(exc)) from None
        METER.count(RELOADS, (("outcome", "loaded"),))
        return {"version": new.version, "classes": [c.name for c in new]}

    # -- metrics -----------------------------------------------------------

    async def offer_metrics(self, cfg: GatewayConfig) -> None:
        """Offer the process's metrics at ``gateway.internal.metrics.<session>`` (components.metrics);
        the first component of a process first loads what the process saved before. Call from start().
        With ``metrics.enabled: false`` nothing is loaded or saved: only the gauges are offered (the
        status page's health)."""
        if cfg.metrics.enabled:
            await KEEPER.start(lambda: open_store(cfg.store))
        live = self._live
        if live is not None:
            METER.provide(f"definitions.{type(self).__name__}",
                          lambda: [(DEFINITIONS_INFO, (("version", live.current.version),), 1)], "max")
        await KEEPER.offer(self)

    def onLeave(self, details: CloseDetails) -> None:
        if self._live is not None:
            self._live.stop()
        super().onLeave(details)

    def onUserError(self, fail: Any, msg: str) -> None:
        """An ApplicationError from a procedure is an answer the caller gets (a bad query, a refused
        login), not a fault of ours: it is not logged here (the procedures log what matters)."""
        if isinstance(getattr(fail, "value", None), ApplicationError):
            return
        super().onUserError(fail, msg)

    def onDisconnect(self) -> None:
        # Never stop the reactor: the container hosts this component and restarts it.
        pass


def sleep(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds)

