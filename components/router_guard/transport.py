"""How much waits to be written to a client: what Twisted holds for a peer that does not read.

Twisted's TCP transport (``twisted.internet.abstract.FileDescriptor``) gathers
writes in ``_tempDataBuffer`` (``_tempDataLen`` bytes) and hands them to the
socket when the socket is writable (``doWrite``); what the socket does not
take stays in ``dataBuffer`` (from ``offset`` on). Both grow without bound
while the client does not read: once its kernel buffers are full the socket
is never writable again. Under TLS (``TLSMemoryBIOProtocol``) the cleartext
held back in ``_appSendBuffer`` counts too, above the TCP transport beneath.

A client that reads also has bytes waiting, for a moment: whatever the
router wrote to it since the socket last took data (one reactor turn: the
events of one read from our components, a call result). So the limit must be
well above the largest such burst, and above the largest call result.

These are private attributes: the unit tests pin them to the installed
Twisted, and a transport without them counts as 0 (never disconnected for it).
"""

from __future__ import annotations

from typing import Any


def pending_bytes(transport: Any) -> int:
    """Bytes written to ``transport`` that have not reached the socket yet (0 if it cannot be told)."""
    total = 0
    levels = 0
    while transport is not None and levels < 4:  # a TLS wrapper over TCP is two levels; no loops
        levels += 1
        cleartext = getattr(transport, "_appSendBuffer", None)
        if cleartext:
            total += sum(map(len, cleartext))
        buffered = getattr(transport, "dataBuffer", None)
        if isinstance(buffered, bytes):
            return (total + len(buffered) - int(getattr(transport, "offset", 0))
                    + int(getattr(transport, "_tempDataLen", 0)))
        transport = getattr(transport, "transport", None)
    return total
