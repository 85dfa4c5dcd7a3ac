"""The active dispatcher's ``gateway.internal.publish``, offered in its own process.

Every container worker runs a bridge beside a dispatcher, and one dispatcher is active
(``leadership``). An HTTP request, XML-RPC call or RabbitMQ message that reaches the bridge in the
active dispatcher's container needs no WAMP call: the bridge hands the events to the dispatcher's
publish in the process. That spares the router two routed messages per call (the call and its
result), both sides a serialization, and the event a trip through the router before its publish.
A bridge in another container calls ``gateway.internal.publish`` as before. Either way the one
active dispatcher numbers every event, so there is still one order.

The dispatcher offers its publish here once it has registered ``gateway.internal.publish`` (it
holds leadership and has published what its predecessor left), and withdraws it as its session
leaves, before its store threads stop. What it answers is what the WAMP procedure answers (a list
of ``components.delivery.results`` on the wire); a failure is the bridge's to handle as it would
handle a dispatcher that went away during a call: call again with the same ids.

Nothing here does I/O: one module-level slot per process (a container runs one dispatcher).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

#: ``gateway.internal.publish``'s body: items in, one result (on the wire) each out.
Publish = Callable[[list[list[Any]]], Awaitable[list[dict[str, Any]]]]

_offered: Publish | None = None


def offer(publish: Publish) -> None:
    """This process's dispatcher is active: bridges here may hand it events directly."""
    global _offered
    _offered = publish


def withdraw(publish: Publish) -> None:
    """The dispatcher that offered ``publish`` is leaving (a newer offer is left in place)."""
    global _offered
    if _offered == publish:  # bound methods: equal, not identical, each time they are taken
        _offered = None


def active() -> Publish | None:
    """The active dispatcher's publish if it runs in this process, else None (call over WAMP)."""
    return _offered
