"""The base class of event classes written in Python.

A web-app (or the gateway's own examples) defines an event class as a
pydantic model::

    class OrderCreated(Event, name="orders.created"):
        \"\"\"A customer placed an order.\"\"\"      # first line: the description
        order_id: int
        amount: Decimal
        class Rules:                             # all optional, defaults shown
            visibility = "public"                # | "authenticated" | "role:<name>"
            retention = "24h"                    # "90s", "15m", "24h", "7d"; > 0
            row_filter = None                    # e.g. "customer = $user": ANDed with every query
            extra = "forbid"                     # | "allow": unknown data fields

The naming rule: without ``name=``, an event class is named after its module
and its class, the class name in snake_case: class ``OrderCreated`` in module
``shop.events`` is ``shop.events.order_created``. A name must be dotted
lower-case segments, so a class in a module such as ``__main__`` needs
``name=``.

Mistakes in the name or the rules raise DefinitionError when the class
statement runs, naming ``module:Class``.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from components.events.eventclass import EventClass
from components.events.rules import Rules, check_name, parse_rules
from components.exceptions import DefinitionError

# A boundary before an upper-case letter that follows a lower-case letter or
# digit, or that starts a word after an acronym: HTTPRequestSent -> http_request_sent.
_WORD = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@dataclass(frozen=True)
class _Definition:
    """What a class statement declared, kept on the class until a registry loads it."""

    name: str
    description: str
    rules: Rules


class Event(BaseModel):
    """Base of the event classes a web-app defines in Python; see the module docstring."""

    # Unknown fields are refused unless Rules.extra says "allow"; NaN and
    # Infinity are refused because JSON has neither.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    __event_definition__: ClassVar[_Definition | None] = None

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any) -> None:
        # ``name`` is for __pydantic_init_subclass__; object.__init_subclass__ takes no arguments.
        super().__init_subclass__(**kwargs)

    @classmethod
    def __pydantic_init_subclass__(cls, name: str | None = None, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        source = source_of(cls)
        try:
            event_name = check_name(name if name is not None else derived_name(cls.__module__, cls.__name__))
        except DefinitionError as exc:
            hint = "" if name is not None else " (derived from module and class; pass name=... to choose one)"
            raise DefinitionError(f"{source}: {exc}{hint}") from None
        try:
            rules = parse_rules({"extra": "allow" if cls.model_config.get("extra") == "allow" else "forbid",
                                 **_rule_values(cls)})
        except DefinitionError as exc:
            raise DefinitionError(f"{source}: Rules: {exc}") from None
        if cls.model_config.get("extra") != rules.extra:
            cls.model_config = {**cls.model_config, "extra": rules.extra}
            # An incomplete class (forward references) picks the config up when pydantic completes it.
            cls.model_rebuild(force=True, raise_errors=False)
        cls.__event_definition__ = _Definition(event_name, _summary(cls), rules)


def event_class_of(cls: type[Event]) -> EventClass:
    """The EventClass a Python event class declares."""
    definition = cls.__dict__.get("__event_definition__")
    if not isinstance(definition, _Definition):
        raise DefinitionError(f"{cls!r} is not an event class (a subclass of components.events.Event)")
    source = source_of(cls)
    try:
        cls.model_rebuild()  # resolves forward references, or says which name is missing
    except Exception as exc:  # pydantic raises several kinds; all mean a broken class
        reason = str(exc).split("\n")[0]  # without pydantic's doc link
        raise DefinitionError(f"{source}: {reason}") from exc
    rules = definition.rules
    return EventClass(definition.name, definition.description, rules.visibility, rules.retention,
                      rules.row_filter, cls, source)


def derived_name(module: str, class_name: str) -> str:
    """The name of a class without ``name=``: ``shop.events`` + ``OrderCreated`` -> ``shop.events.order_created``."""
    return f"{module}.{_WORD.sub('_', class_name).lower()}"


def source_of(cls: type) -> str:
    """Where a Python class is defined: ``module:QualifiedName``."""
    return f"{cls.__module__}:{cls.__qualname__}"


def _rule_values(cls: type) -> dict[str, Any]:
    rules = getattr(cls, "Rules", None)
    if rules is None:
        return {}
    if not isinstance(rules, type):
        raise DefinitionError(f"Rules must be a class holding the rules, not {rules!r}")
    values: dict[str, Any] = {}
    for klass in reversed(rules.__mro__[:-1]):  # a Rules may extend another; skip object
        values.update({k: v for k, v in vars(klass).items() if not k.startswith("__")})
    return values


def _summary(cls: type) -> str:
    doc = cls.__dict__.get("__doc__")
    return inspect.cleandoc(doc).partition("\n")[0].strip() if isinstance(doc, str) else ""
