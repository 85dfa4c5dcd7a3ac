"""The component Crossbar embeds in the router worker so that the router guards run there.

``nodeconfig`` lists it in the router worker's ``components:`` (role
``trusted``, settings in ``extra``). Crossbar constructs it after starting the
realm and before any transport listens, so the guards are in place before the
first client connects. It needs nothing from WAMP: it joins and stays.
"""

from __future__ import annotations

import sys

from autobahn.twisted.wamp import ApplicationSession
from autobahn.wamp.types import ComponentConfig, SessionDetails
from twisted.logger import Logger

from components.heap import refreeze_soon
from components.router_guard.patches import install
from components.router_guard.settings import GuardSettings


class RouterGuard(ApplicationSession):
    log = Logger()

    def __init__(self, config: ComponentConfig | None = None) -> None:
        super().__init__(config)
        settings = GuardSettings.from_extra(dict(config.extra or {}) if config is not None else {})
        raised = sys.getrecursionlimit()
        install(settings)
        cap = settings.max_connections_per_address
        self.log.info(
            "router guards on: client messages at most {depth} levels deep, at most {buffer} bytes waiting "
            "for one client, {cap} connections per client address; Python recursion limit {limit} (was {raised})",
            depth=settings.max_message_depth, buffer=settings.max_client_buffer,
            cap="no cap on" if cap is None else f"at most {cap}", limit=sys.getrecursionlimit(), raised=raised,
        )

    def onJoin(self, details: SessionDetails) -> None:
        # The router has started (realm and guards; its transports listen right after): what it has built
        # by a moment later stays, out of the collector's full walks (``components.heap``).
        refreeze_soon()
