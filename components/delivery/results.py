"""What the dispatcher answers for each event of ``gateway.internal.publish``: typed, and as sent over WAMP.

Pure: no I/O, nothing of HTTP. The dispatcher builds ``Accepted`` and ``Refused`` values and sends
them with ``to_wire()``; the bridge reads them back with ``from_wire()`` and decides what a web-app
sees (the HTTP status of each refusal code is the bridge's business: ``webapp_bridge.server.api``).

On the wire a result is a JSON object: ``{"id", "seq"}`` (plus ``"duplicate": true`` when the id
was accepted before), or ``{"error": <code>, "message": <sentence>}`` (plus ``"details"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any


class IdOrigin(IntEnum):
    """Where an item's id comes from: the fifth element of a ``gateway.internal.publish`` item
    (``[event, data, id, audience, origin]``; items of three or four elements are ``GIVEN``).

    An id the web-app gave may have been accepted before: the dispatcher looks it up in the store
    (idempotency). An id the bridge has just made for this call cannot have been: the look-up, a
    store round trip, is skipped. Every retry of a call is sent ``GIVEN``.
    """

    #: The web-app's id, or any id sent before: looked up, and remembered once accepted.
    GIVEN = 0
    #: Made by the bridge for this call: not looked up; remembered like any other (the caller learns
    #: it in the answer and may send it again, and the bridge calls again with it, as ``GIVEN``,
    #: should the dispatcher go away before answering).
    NEW = 1

    @classmethod
    def of(cls, value: object) -> IdOrigin:
        """The origin an item says; anything unknown (a newer bridge's) is ``GIVEN``: looked up."""
        return cls.NEW if value == cls.NEW else cls.GIVEN


class RefusalCode(StrEnum):
    """Every reason the dispatcher refuses an event: a closed set, each the ``error`` a web-app sees."""

    #: No event class of that name (the bridge checks first; a reload may remove it in between).
    UNKNOWN_EVENT = "unknown_event"
    #: The id was accepted before for an event of another class.
    CONFLICT = "conflict"
    #: The gateway could not take the event now (no seq, or the router did not take it): the same
    #: id later may pass.
    UNAVAILABLE = "unavailable"

    @property
    def retryable(self) -> bool:
        """Whether the same event, sent again later, may be accepted (else it never will be)."""
        return self is RefusalCode.UNAVAILABLE


@dataclass(frozen=True)
class Accepted:
    """The event was published (or had been, under the same id: ``duplicate``) with this seq."""

    id: str
    seq: int
    duplicate: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"an accepted event's id must be a non-empty string, not {self.id!r}")
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or self.seq < 1:
            raise ValueError(f"an accepted event's seq must be a whole number from 1, not {self.seq!r}")

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"id": self.id, "seq": self.seq}
        if self.duplicate:
            wire["duplicate"] = True
        return wire


@dataclass(frozen=True)
class Refused:
    """The event was not accepted: why (``code``), in a sentence (``message``), and where (``details``)."""

    code: RefusalCode
    message: str
    details: tuple[Mapping[str, Any], ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.code, RefusalCode):
            raise ValueError(f"{self.code!r} is not a refusal code (expected one of "
                             f"{', '.join(c.value for c in RefusalCode)})")

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"error": self.code.value, "message": self.message}
        if self.details is not None:
            wire["details"] = [dict(d) for d in self.details]
        return wire


PublishResult = Accepted | Refused


def from_wire(wire: Mapping[str, Any]) -> PublishResult:
    """A result as ``to_wire()`` sent it. Keys it does not know are ignored; a malformed result (our
    bug, not a web-app's) raises ValueError."""
    if "error" in wire:
        try:
            code = RefusalCode(wire["error"])
        except ValueError:
            raise ValueError(f"the dispatcher refused an event with an unknown code {wire['error']!r} "
                             f"(expected one of {', '.join(c.value for c in RefusalCode)})") from None
        details = wire.get("details")
        return Refused(code, str(wire.get("message", "")),
                       None if details is None else tuple(dict(d) for d in details))
    try:
        return Accepted(wire["id"], wire["seq"], bool(wire.get("duplicate", False)))
    except KeyError as exc:
        raise ValueError(f"the dispatcher's result lacks {exc.args[0]!r}: {dict(wire)!r}") from None
