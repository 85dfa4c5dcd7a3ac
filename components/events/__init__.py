"""Event classes: what kinds of events exist, their payload schemas and rules.

Define them in Python (subclasses of ``Event``) or in YAML files
(``yaml_definitions``); ``Registry.load`` gathers both, checked by pydantic
(``validation``). ``live`` holds a component's current registry and reloads it
in place, refusing row filters that do not hold as queries (``row_filters``).
See docs/event-definitions.md.

May import: ``components.query`` (row filters are queries, checked when the definitions
load), ``components.limits`` (the edge rules data must keep), ``components.config``,
``components.exceptions``. Pure but for ``live`` and the loaders, which read files.
"""

from components.events.event import Event, event_class_of
from components.events.eventclass import EventClass
from components.events.registry import Registry
from components.events.validation import FieldError, InvalidEventData

__all__ = ["Event", "EventClass", "FieldError", "InvalidEventData", "Registry", "event_class_of"]
