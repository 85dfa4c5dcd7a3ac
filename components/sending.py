"""Send what a connection has queued now, instead of after everything else the reactor has to do.

Twisted queues what a protocol writes (``transport.write``) and sends it once the reactor next polls and
finds the socket writable: after every other socket that was ready in the same poll has been served. Under
load that turns a pipeline into a convoy. The bridge beside the active dispatcher reads sixteen requests
in one turn of the reactor, numbers and publishes each, and only then sends the sixteen publishes to the
router. The router works through them while this process sits idle waiting for the acknowledgements, and the
clients get their sixteen answers together, then send their next sixteen requests together. Each process
waits for the others in turn, none is saturated, and the node carries what the sum of their costs allows
rather than what the slowest of them does (``bench/README.md``, "Stop 26").

``send_now(transport)`` after a unit of work (a turn's publishes, an answer) sends it at once, with one
system call, while the reactor goes on with the rest: the router, the clients and this process then work at
the same time.
"""

from __future__ import annotations

from typing import Any


def send_now(transport: Any) -> None:
    """Send what ``transport`` (a Twisted TCP or Unix connection) has queued, as much as the kernel takes now;
    the rest, if any, goes when the reactor finds the socket writable, as usual. Nothing for a transport that
    is closing (the reactor finishes that, and tells its protocol) or is not a socket's (a test's)."""
    if transport is None or not getattr(transport, "connected", False) or getattr(transport, "disconnecting", True) \
            or getattr(transport, "_writeDisconnecting", True):
        return  # (lost: its socket is gone, what was queued with it)
    if not (getattr(transport, "_tempDataBuffer", None) or getattr(transport, "dataBuffer", None)):
        return
    # A failure (the peer went away) is returned, not raised, and the data stays queued: the reactor meets it
    # again on its next write and ends the connection as it always does.
    transport.doWrite()
