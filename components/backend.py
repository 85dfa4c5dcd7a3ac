"""The base of our WAMP components: join as role ``backend`` with WAMP-CRA, fail slowly.

Crossbar restarts a component that leaves at once (restart-always). A
component that cannot start (a bad config, a port in use) would then spin;
so a failed start waits, with a growing delay, before it leaves.
"""

from __future__ import annotations

import os
from typing import ClassVar

from autobahn.twisted.wamp import ApplicationSession
from autobahn.wamp import auth
from autobahn.wamp.types import Challenge, SessionDetails
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from components.config import GatewayConfig, load_config

#: Delays (seconds) before a component whose start failed leaves to be restarted.
START_RETRY_DELAYS = (0.5, 1, 2, 5, 10)


class BackendSession(ApplicationSession):
    log = Logger()
    _failed_starts: ClassVar[int] = 0

    def onConnect(self) -> None:
        extra = self.config.extra
        self.join(self.config.realm, authmethods=["wampcra"], authid=extra["authid"])

    def onChallenge(self, challenge: Challenge) -> str:
        if challenge.method != "wampcra":
            raise RuntimeError(f"unexpected authentication method {challenge.method!r}")
        signature: bytes = auth.compute_wcs(self.config.extra["secret"], challenge.extra["challenge"])
        return signature.decode("ascii")

    def load_gateway_config(self) -> GatewayConfig:
        """gateway.yaml (path from the node config, relative to the node directory) plus env."""
        return load_config(self.config.extra["config_path"], os.environ)

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
            self.leave("gateway.error.start_failed", str(exc))
            return
        type(self)._failed_starts = 0

    async def start(self, details: SessionDetails) -> None:
        """Set the component up; raising makes it leave and be restarted after a delay."""
        raise NotImplementedError

    def onDisconnect(self) -> None:
        # Never stop the reactor: the container hosts this component and restarts it.
        pass


def sleep(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds)

