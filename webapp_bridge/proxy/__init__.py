"""The web-app side of the gateway: publish events, issue logins, over HTTP, XML-RPC or AMQP.

::

    from webapp_bridge.proxy import GatewayProxy

    proxy = GatewayProxy.from_config("gateway.yaml")      # one per process; thread-safe
    proxy.publish(OrderCreated(order_id=1, amount=5))     # an Event instance ...
    proxy.publish("demo.message", {"room": "lobby", "text": "hi", "author": "app"})   # ... or a name and data
    proxy.ticket("alice", roles=["staff"])                # a one-time login for alice's browser
    proxy.jwt("alice")                                    # or a JWT signed here with auth.secret

The transport is gateway.yaml's ``proxy.transport`` (env
GATEWAY_PROXY_TRANSPORT); the calls are the same for all three. Events are
checked here first (by the gateway's own event classes when pydantic is
installed, else by the JSON Schemas of its catalog), sent with an
idempotency id, and retried with backoff while the gateway is away: a retry
is never a second event.

Needs the standard library and PyYAML only (pika for the amqp transport):
no Crossbar, Twisted or autobahn.

May import: ``webapp_bridge.schemacheck``. May import lazily: ``components.events`` (inside the
functions that validate with the gateway's own classes, when they are installed; importing the proxy
never imports them). Never imports: ``webapp_bridge.server``, ``twisted``, ``autobahn``, ``crossbar``.
"""

from webapp_bridge.proxy._client import GatewayProxy, Published, Ticket
from webapp_bridge.proxy._errors import (
    EventRejected,
    GatewayUnavailable,
    ProxyConfigError,
    ProxyError,
    RequestRejected,
)
from webapp_bridge.proxy._settings import ProxySettings, read_settings

__all__ = [
    "EventRejected",
    "GatewayProxy",
    "GatewayUnavailable",
    "ProxyConfigError",
    "ProxyError",
    "ProxySettings",
    "Published",
    "RequestRejected",
    "Ticket",
    "read_settings",
]
