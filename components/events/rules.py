"""The rules of an event class: its name, who may see it, how long it is kept.

Python classes (``class Rules:``) and YAML definitions share these checks, so
both forms accept exactly the same values and refuse the rest with the same
messages. Pure: values in, values or DefinitionError out; the caller puts the
file, module or class in front of the message.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from components.exceptions import DefinitionError

#: The role our own components join with; it sees every class.
BACKEND_ROLE = "backend"
#: The role of clients without credentials.
ANONYMOUS_ROLE = "anonymous"

NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
VISIBILITY = re.compile(r"^(public|authenticated|role:[a-z][a-z0-9_]*)$")
RETENTION = re.compile(r"^([0-9]+)([smhd])$")
Extra = Literal["forbid", "allow"]
EXTRA: tuple[Extra, ...] = ("forbid", "allow")
RULE_KEYS = ("visibility", "retention", "row_filter", "extra")

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True)
class Rules:
    """Who may see an event class, how long copies are kept, and whether unknown fields pass."""

    visibility: str = "public"
    retention: timedelta = timedelta(hours=24)
    row_filter: str | None = None
    extra: Extra = "forbid"


def check_name(name: object) -> str:
    """Return ``name`` if it is a valid event class name, else raise DefinitionError."""
    if not isinstance(name, str) or not NAME.match(name):
        raise DefinitionError(
            f"event class name {name!r} must be dotted lower-case segments (letters, digits, _), "
            "e.g. 'orders.created'"
        )
    return name


def parse_rules(values: Mapping[str, Any]) -> Rules:
    """Check rule values (any of RULE_KEYS) and return them as Rules, defaults filled in."""
    unknown = sorted(str(k) for k in values if k not in RULE_KEYS)
    if unknown:
        raise DefinitionError(
            f"unknown rule {unknown[0]!r} (expected one of: {', '.join(RULE_KEYS)})"
        )
    rules = Rules()
    visibility = values.get("visibility", rules.visibility)
    if not isinstance(visibility, str) or not VISIBILITY.match(visibility):
        raise DefinitionError(
            f"visibility {visibility!r} must be 'public', 'authenticated' or 'role:<name>'"
        )
    row_filter = values.get("row_filter")
    if row_filter is not None and not isinstance(row_filter, str):
        raise DefinitionError(f"row_filter {row_filter!r} must be a string or absent")
    extra = values.get("extra", rules.extra)
    if extra not in EXTRA:
        raise DefinitionError(f"extra {extra!r} must be 'forbid' or 'allow'")
    retention = parse_retention(values["retention"]) if "retention" in values else rules.retention
    return Rules(visibility, retention, row_filter, extra)


def parse_retention(text: object) -> timedelta:
    """Turn ``"90s"``, ``"15m"``, ``"24h"`` or ``"7d"`` into a positive timedelta."""
    match = RETENTION.match(text) if isinstance(text, str) else None
    if match is None:
        raise DefinitionError(
            f"retention {text!r} must be a whole number and a unit s, m, h or d "
            "(e.g. '90s', '15m', '24h', '7d')"
        )
    amount, unit = int(match[1]), match[2]
    if amount == 0:
        raise DefinitionError(f"retention {text!r} must be more than zero")
    try:
        return timedelta(**{_UNITS[unit]: amount})
    except OverflowError:
        raise DefinitionError(f"retention {text!r} is too long") from None


def visible_to(visibility: str, authrole: str, roles: Collection[str] = ()) -> bool:
    """Whether a caller with ``authrole`` (and extra ``roles``) may see a class with ``visibility``."""
    if authrole == BACKEND_ROLE or visibility == "public":
        return True
    if visibility == "authenticated":
        return authrole != ANONYMOUS_ROLE
    role = visibility.removeprefix("role:")
    return authrole == role or role in roles
