"""The envelope every client receives: ``{"event", "id", "seq", "time", "data"}``."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any


def new_event_id() -> str:
    """An id for an event posted without one (random, 122 bits)."""
    return uuid.uuid4().hex


def rfc3339(moment: datetime) -> str:
    """UTC time with milliseconds and a Z, e.g. 2026-11-28T07:50:00.123Z."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_envelope(event: str, event_id: str, seq: int, time: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {"event": event, "id": event_id, "seq": seq, "time": rfc3339(time), "data": data}
