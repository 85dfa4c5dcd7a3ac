"""Event classes: what kinds of events exist, their payload schemas and rules."""

from components.events.registry import (
    EventClass,
    FieldError,
    InvalidEventData,
    Registry,
)

__all__ = ["EventClass", "FieldError", "InvalidEventData", "Registry"]
