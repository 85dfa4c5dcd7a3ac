"""The event the benchmarks send: demo.message, with the send time in ``data.text``.

Subscribers measure latency from that stamp (CLOCK_MONOTONIC is system-wide
on Linux, so it compares across processes) to the moment the bytes arrived.
"""

from __future__ import annotations

from components import uris

__all__ = ["EVENT", "REALM", "TOPIC", "event_data"]

EVENT = "demo.message"
TOPIC = uris.event_topic(EVENT)
REALM = "gateway"


def event_data(room: str, stamp: float, author: str = "bench") -> dict[str, str]:
    """demo.message's data, stamped with the monotonic send time."""
    return {"room": room, "text": f"{stamp:.6f}", "author": author}
