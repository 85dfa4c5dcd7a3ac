"""Render the Crossbar node configuration from the gateway configuration.

Crossbar reads a static file; the gateway's ports, bind addresses and secrets
live in gateway.yaml (and env). This module is the one place that turns the
latter into the former. It is pure: config in, a dict out.

The committed ``.crossbar/config.yaml`` is this rendering of the default
gateway.yaml (a test keeps the two in sync), so ``crossbar start`` from the
repo root works once installed. ``gateway run`` and the test harness render a
fresh one with env overrides and a random backend secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components import uris
from components.config import GatewayConfig
from components.router_guard.origins import ANY, allow_list
from components.router_guard.settings import GuardSettings

#: Our components reach the router over this unix socket, relative to the
#: node directory: only processes of this user can connect to it at all.
BACKEND_SOCKET = "backend.sock"

#: Container workers, each running every component. Two: one may die
#: (even by SIGKILL, which Crossbar does not restart) without an outage.
COMPONENT_CONTAINERS = 2

#: The component Crossbar embeds in the router worker: it applies our guards
#: (components/router_guard/) in the router process, before any transport listens.
ROUTER_GUARD = "components.router_guard.component.RouterGuard"

#: Crossbar paths are relative to the node directory; the repo is its parent.
DEFAULT_PATHS = {
    "config": "../gateway.yaml",
    "page": "../examples/page",
    "vendor": "../node_modules/autobahn-browser",
    "lib": "../clients/js/src",
    "status": "../clients/status/page",
    "uplot": "../node_modules/uplot/dist",
}
#: The router's path of the status page (``/status/``) and of uPlot's files, which the page charts with.
STATUS_PATH = "status"
UPLOT_PATH = "uplot"


@dataclass(frozen=True)
class RenderPaths:
    """Paths as Crossbar and our components will see them (absolute, or relative to the node dir)."""

    config: str = DEFAULT_PATHS["config"]
    page: str = DEFAULT_PATHS["page"]
    vendor: str = DEFAULT_PATHS["vendor"]
    #: The JS client (an ES module), served at /lib/ for the demo page and your own pages.
    lib: str = DEFAULT_PATHS["lib"]
    #: The status page (clients/status/page/), served at /status/, and uPlot's dist files at /uplot/.
    status: str = DEFAULT_PATHS["status"]
    uplot: str = DEFAULT_PATHS["uplot"]

    @classmethod
    def in_repo(cls, repo: Path, config: Path) -> RenderPaths:
        """Absolute paths into a checkout at ``repo`` (where npm installed node_modules/), for ``config``."""
        return cls(config=str(config), page=str(repo / "examples" / "page"),
                   vendor=str(repo / "node_modules" / "autobahn-browser"), lib=str(repo / "clients" / "js" / "src"),
                   status=str(repo / "clients" / "status" / "page"), uplot=str(repo / "node_modules" / "uplot" / "dist"))


def render(cfg: GatewayConfig, paths: RenderPaths = RenderPaths(), backend_secret: str | None = None
           ) -> dict[str, Any]:
    """The Crossbar node configuration (version 2) for this gateway configuration."""
    secret = backend_secret or cfg.backend.secret
    origins = allow_list(cfg.router.host, cfg.router.port, cfg.router.public_url, cfg.router.allowed_origins)
    backend_transport = {
        "type": "rawsocket",
        "endpoint": {"type": "unix", "path": BACKEND_SOCKET},
        "serializer": "msgpack",
    }

    def component(cid: str, classname: str, authid: str) -> dict[str, Any]:
        return {
            "type": "class",
            "id": cid,
            "classname": classname,
            "realm": cfg.router.realm,
            "transport": backend_transport,
            "extra": {"authid": authid, "secret": secret, "config_path": paths.config},
        }

    def container(name: str) -> dict[str, Any]:
        # Each container runs a dispatcher and a bridge: one dispatcher is
        # active and the other stands by; both bridges accept HTTP on the same
        # port. Killing either process leaves a working gateway behind.
        return {
            "type": "container",
            "id": name,
            "options": {
                # A component that fails or leaves is started again at once,
                # inside the same container, while the router keeps every
                # client session open. (Crossbar 26.10 has no retry setting
                # for a component's transport: one that cannot reach the
                # router is not tried again. The router gone, `gateway run`
                # restarts the whole node: components/supervision/.)
                "restart": "restart-always",
                # How `gateway run` finds this worker's process.
                "title": f"gateway {name}",
            },
            # Started in this order, each once joined. The dispatcher (our authorizer) comes
            # before the authenticator: no client can join before its calls and subscriptions
            # can be authorized (else a client coming back while the node starts has its
            # subscriptions refused, for good).
            "components": [
                component("dispatcher", "components.delivery.dispatcher.Dispatcher", uris.DISPATCHER_AUTHID),
                component("authenticator", "components.auth.authenticator.Authenticator", uris.AUTHENTICATOR_AUTHID),
                component("bridge", "webapp_bridge.server.component.Bridge", uris.BRIDGE_AUTHID),
            ],
        }

    return {
        "version": 2,
        "controller": {
            "options": {
                # Crossbar's default shuts the whole node down (dropping every
                # client) when any worker exits; only an explicit shutdown may.
                "shutdown": ["shutdown_on_shutdown_requested"],
            },
        },
        "workers": [
            {
                "type": "router",
                "id": "router",
                "options": {"title": "gateway router"},
                # Our guards in the router process (what each works around: components/router_guard/).
                "components": [{
                    "type": "class",
                    "id": "guard",
                    "classname": ROUTER_GUARD,
                    "realm": cfg.router.realm,
                    "role": "trusted",
                    "extra": GuardSettings(
                        max_message_depth=cfg.router.max_message_depth,
                        max_client_buffer=cfg.router.max_client_buffer,
                        max_connections_per_address=cfg.router.max_connections_per_address,
                        trusted_proxies=cfg.router.trusted_proxies,
                    ).to_extra(),
                }],
                "realms": [{
                    "name": cfg.router.realm,
                    "options": {"enable_meta_api": True},
                    "roles": [
                        {
                            "name": "backend",
                            "permissions": [{
                                "uri": "",
                                "match": "prefix",
                                "allow": {"call": True, "register": True, "publish": True, "subscribe": True},
                                # Our components see who calls them (caller); clients never learn
                                # which of our sessions published an event (publisher).
                                "disclose": {"caller": True, "publisher": False},
                                "cache": True,
                            }],
                        },
                        # Every client role asks our authorizer (components/auth/policy.py):
                        # what a client may see depends on event classes, which reload,
                        # and on the query topics it was granted.
                        {"name": "anonymous", "authorizer": uris.AUTHORIZE},
                        {"name": cfg.auth.user_role, "authorizer": uris.AUTHORIZE},
                    ],
                }],
                "transports": [
                    {
                        "type": "rawsocket",
                        "id": "backend",
                        "endpoint": {"type": "unix", "path": BACKEND_SOCKET},
                        "serializers": ["msgpack"],
                        "auth": {
                            "wampcra": {
                                "type": "static",
                                "users": {
                                    authid: {"secret": secret, "role": "backend"}
                                    for authid in (uris.AUTHENTICATOR_AUTHID, uris.DISPATCHER_AUTHID, uris.BRIDGE_AUTHID)
                                },
                            },
                        },
                    },
                    {
                        "type": "web",
                        "id": "web",
                        "endpoint": {"type": "tcp", "interface": cfg.router.host, "port": cfg.router.port},
                        "paths": {
                            "/": {"type": "static", "directory": paths.page,
                                  "options": {"enable_directory_listing": False}},
                            "vendor": {"type": "static", "directory": paths.vendor,
                                       "options": {"enable_directory_listing": False}},
                            "lib": {"type": "static", "directory": paths.lib,
                                    "options": {"enable_directory_listing": False}},
                            # The live status page: its data only for operators (gateway.status).
                            STATUS_PATH: {"type": "static", "directory": paths.status,
                                          "options": {"enable_directory_listing": False}},
                            UPLOT_PATH: {"type": "static", "directory": paths.uplot,
                                         "options": {"enable_directory_listing": False}},
                            cfg.router.ws_path: {
                                "type": "websocket",
                                "serializers": ["json", "msgpack", "cbor"],
                                "options": {
                                    "auto_ping_interval": 10000,
                                    "auto_ping_timeout": 5000,
                                    "max_message_size": 4 * 1024 * 1024,
                                    # Browsers' pages: the gateway's own and router.allowed_origins
                                    # (checked by autobahn on the handshake; no Origin header: not checked).
                                    "allowed_origins": origins,
                                    "allow_null_origin": origins == [ANY],
                                },
                                # Both ask our authenticator (components/auth/authenticator.py), which
                                # hands every client its token: no credentials -> anonymous;
                                # a ticket from POST /tickets or a JWT -> the user.
                                "auth": {method: {"type": "dynamic", "authenticator": uris.AUTHENTICATE,
                                                  "authenticator-realm": cfg.router.realm}
                                         for method in ("anonymous", "ticket")},
                            },
                        },
                    },
                ],
            },
            *(container(f"components-{i}") for i in range(1, COMPONENT_CONTAINERS + 1)),
        ],
    }
