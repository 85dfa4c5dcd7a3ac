"""A registry of event classes, loaded from Python modules named in gateway.yaml.

This is the simple registry of the walking skeleton: a module lists its
classes in ``EVENTS``; each pairs a name and rules with a pydantic model for
its ``data``. Validation is pure: data in, data or field errors out.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from components.exceptions import DefinitionError, UnknownEvent

_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_VISIBILITY = re.compile(r"^(public|authenticated|role:[a-z][a-z0-9_]*)$")


@dataclass(frozen=True)
class FieldError:
    """One bad field of an event's data: where, what was wrong, and its kind."""

    path: str
    message: str
    type: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message, "type": self.type}


class InvalidEventData(Exception):
    """The data of an event does not match its class; ``errors`` lists every bad field."""

    def __init__(self, event: str, errors: list[FieldError]) -> None:
        super().__init__(f"invalid data for {event}: " + "; ".join(f"{e.path}: {e.message}" for e in errors))
        self.event = event
        self.errors = errors


@dataclass(frozen=True)
class EventClass:
    """A kind of event: its name, its payload model and who may see it."""

    name: str
    model: type[BaseModel]
    visibility: str = "public"
    description: str = field(default="")

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise DefinitionError(
                f"event class name {self.name!r} must be dotted lower-case segments, e.g. 'orders.created'"
            )
        if not _VISIBILITY.match(self.visibility):
            raise DefinitionError(
                f"{self.name}: visibility {self.visibility!r} must be 'public', 'authenticated' or 'role:<name>'"
            )
        if not self.description and self.model.__doc__:
            object.__setattr__(self, "description", self.model.__doc__.strip().splitlines()[0])

    def validate(self, data: Any) -> dict[str, Any]:
        """Return the validated data, or raise InvalidEventData listing every bad field."""
        if not isinstance(data, Mapping):
            raise InvalidEventData(
                self.name, [FieldError("data", f"must be an object, not {_json_type(data)}", "type_error")]
            )
        try:
            model = self.model.model_validate(data)
        except ValidationError as exc:
            raise InvalidEventData(self.name, [_field_error(e) for e in exc.errors()]) from None
        return model.model_dump(mode="json", exclude_unset=True)


class Registry:
    """Event classes by name. Immutable once built: a reload builds a new one."""

    def __init__(self, classes: Iterable[EventClass] = ()) -> None:
        self._classes: dict[str, EventClass] = {}
        for cls in classes:
            if cls.name in self._classes:
                other = self._classes[cls.name].model
                raise DefinitionError(
                    f"event class {cls.name!r} is defined twice: by {_qualname(other)} and by {_qualname(cls.model)}"
                )
            self._classes[cls.name] = cls

    @classmethod
    def from_modules(cls, modules: Iterable[str]) -> Registry:
        """Import each module and collect the event classes it lists in ``EVENTS``."""
        found: list[EventClass] = []
        for name in modules:
            try:
                module = importlib.import_module(name)
            except Exception as exc:  # any import failure is a definition error of that module
                raise DefinitionError(f"cannot import event module {name!r}: {exc}") from exc
            events = getattr(module, "EVENTS", None)
            if not isinstance(events, (list, tuple)) or not all(isinstance(e, EventClass) for e in events):
                raise DefinitionError(f"event module {name!r} must define EVENTS, a list of EventClass")
            found.extend(events)
        return cls(found)

    def get(self, name: str) -> EventClass:
        try:
            return self._classes[name]
        except KeyError:
            raise UnknownEvent(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __iter__(self) -> Iterator[EventClass]:
        return iter(self._classes.values())

    def __len__(self) -> int:
        return len(self._classes)

    def public(self) -> list[EventClass]:
        """Classes anyone may see, anonymous clients included."""
        return [c for c in self if c.visibility == "public"]


def _field_error(err: Any) -> FieldError:
    path = ".".join(str(p) for p in err["loc"]) or "data"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown field (not in the event class)"
    elif err["type"] == "missing":
        msg = "required field is missing"
    return FieldError(path, msg, err["type"])


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array"}.get(
        type(value), type(value).__name__
    )


def _qualname(obj: type) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"
