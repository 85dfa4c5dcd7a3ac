"""What a procedure's arguments may be, declared once per procedure and checked before its body runs.

Pure: a ``Signature`` takes the positional and keyword arguments a call came with and returns
their values in declared order (defaults filled in), or raises ``InvalidArgument`` saying which
argument was wrong and what was expected, in the words of the procedure's documentation:

    SIGNATURE = Signature("gateway.replay", Param("id", ID), Param("after_seq", SEQ), Param("limit", COUNT, 500))
    SIGNATURE.bind(["p_1", -1], {})
    -> InvalidArgument: gateway.replay: after_seq must be a whole number from 0 to 9223372036854775807, not -1

Messages never show how the code is built (no Python names, types or reprs): values are shown
as JSON would write them, or described ("a list", "a string of 5000 characters").
``components.procedures`` wraps a procedure's body with its signature at registration.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

#: The largest seq (and count) there can be: a signed 64-bit integer, as both stores keep them.
SEQ_MAX = 2**63 - 1
#: Values longer than this (as JSON) are described, not shown.
_SHOWN = 40


class InvalidArgument(ValueError):
    """A call did not match its procedure's signature: the caller's mistake, never ours.

    ``str()`` is the whole message; ``argument`` names the argument (``None`` when the call as a
    whole is wrong, e.g. one argument too many) and ``expected`` says what it should have been.
    """

    def __init__(self, message: str, argument: str | None = None, expected: str | None = None) -> None:
        super().__init__(message)
        self.argument = argument
        self.expected = expected


class Kind(Protocol):
    """What one argument may be."""

    @property
    def expected(self) -> str:
        """In words: "a string of at most 128 characters"."""
        ...

    def fault(self, value: object) -> str | None:
        """None when ``value`` is one of these; else what it is instead ("-1", "a list")."""
        ...


@dataclass(frozen=True)
class Text:
    """A string of ``min_length`` to ``max_length`` characters."""

    max_length: int | None = None
    min_length: int = 0

    @property
    def expected(self) -> str:
        if self.max_length is None:
            return "a string" if self.min_length == 0 else "a non-empty string"
        if self.min_length > 0:
            return f"a string of {self.min_length} to {self.max_length} characters"
        return f"a string of at most {self.max_length} characters"

    def fault(self, value: object) -> str | None:
        if not isinstance(value, str):
            return show(value)
        if self.max_length is not None and len(value) > self.max_length:
            return f"a string of {len(value)} characters"
        if len(value) < self.min_length:
            return "an empty string"
        return None


@dataclass(frozen=True)
class Flag:
    """true or false (not 0 or 1, not "true")."""

    @property
    def expected(self) -> str:
        return "true or false"

    def fault(self, value: object) -> str | None:
        return None if isinstance(value, bool) else show(value)


@dataclass(frozen=True)
class WholeNumber:
    """An integer from ``low`` to ``high`` (a boolean is not a number here, nor is 3.0)."""

    low: int = 0
    high: int = SEQ_MAX

    @property
    def expected(self) -> str:
        return f"a whole number from {self.low} to {self.high}"

    def fault(self, value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int) or not self.low <= value <= self.high:
            return show(value)
        return None


@dataclass(frozen=True)
class TextList:
    """A list of at most ``max_items`` strings, each at most ``max_length`` characters."""

    max_items: int
    max_length: int

    @property
    def expected(self) -> str:
        return f"a list of at most {self.max_items} strings of at most {self.max_length} characters"

    def fault(self, value: object) -> str | None:
        if not isinstance(value, list):
            return show(value)
        if len(value) > self.max_items:
            return f"a list of {len(value)} items"
        for i, item in enumerate(value):
            if not isinstance(item, str) or len(item) > self.max_length:
                return f"a list whose item {i} is {show(item)}"
        return None


@dataclass(frozen=True)
class OrNull:
    """One of ``kind``, or null."""

    kind: Kind

    @property
    def expected(self) -> str:
        return f"{self.kind.expected} or null"

    def fault(self, value: object) -> str | None:
        return None if value is None else self.kind.fault(value)


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of an argument that has none: the call must give it.
REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Param:
    """One argument: its name (as documented, and as a keyword), its kind, and its default if optional."""

    name: str
    kind: Kind
    default: Any = REQUIRED
    #: Given by name only (``procedure(query, *, batch=false)``): a positional argument past the others
    #: stays "too many", not a value for it.
    keyword_only: bool = False

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def __str__(self) -> str:
        return self.name if self.required else f"{self.name}={_json(self.default)}"


@dataclass(frozen=True)
class Signature:
    """A procedure's arguments, in order; each may be given by position or by name (keyword-only ones,
    which come last, by name only)."""

    procedure: str
    params: tuple[Param, ...] = ()

    def __init__(self, procedure: str, *params: Param) -> None:
        object.__setattr__(self, "procedure", procedure)
        object.__setattr__(self, "params", params)
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            raise ValueError(f"{procedure}: an argument is declared twice: {names}")
        seen_optional = seen_keyword_only = False
        for p in params:
            if p.required and seen_optional:
                raise ValueError(f"{procedure}: the required argument {p.name} follows an optional one")
            if seen_keyword_only and not p.keyword_only:
                raise ValueError(f"{procedure}: the positional argument {p.name} follows a keyword-only one")
            seen_optional = seen_optional or not p.required
            seen_keyword_only = seen_keyword_only or p.keyword_only

    @property
    def positional(self) -> tuple[Param, ...]:
        """The arguments that may be given by position."""
        return tuple(p for p in self.params if not p.keyword_only)

    @property
    def usage(self) -> str:
        """How the procedure is called: ``gateway.replay(id, after_seq, limit=500)``."""
        shown = [str(p) for p in self.positional]
        keyword_only = [str(p) for p in self.params if p.keyword_only]
        return f"{self.procedure}({', '.join(shown + (['*'] + keyword_only if keyword_only else []))})"

    def bind(self, args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None) -> tuple[Any, ...]:
        """The arguments' values in declared order (defaults filled in); InvalidArgument if the call is wrong."""
        args = list(args or ())
        kwargs = dict(kwargs or {})
        positional = len(self.positional)
        if len(args) > positional:
            extra = len(args) - positional
            raise InvalidArgument(
                f"{self.procedure} takes {_count(positional)}{' by position' if positional < len(self.params) else ''}"
                f", not {len(args)}: {_ordinal(positional + 1)}"
                f" argument ({show(args[positional])}) {'and those after it are' if extra > 1 else 'is one'} too"
                f" many;"
                f" call it as {self.usage}")
        names = {p.name for p in self.params}
        unknown = sorted(k for k in kwargs if k not in names)
        if unknown:
            known = ", ".join(p.name for p in self.params) or "none"
            raise InvalidArgument(f"{self.procedure} has no argument named {_json(unknown[0])} (its arguments: {known});"
                                  f" call it as {self.usage}", unknown[0], None)
        values = []
        for i, p in enumerate(self.params):
            if i < len(args):
                if p.name in kwargs:
                    raise InvalidArgument(f"{self.procedure}: {p.name} was given twice, by position and by name",
                                          p.name, p.kind.expected)
                value = args[i]
            elif p.name in kwargs:
                value = kwargs[p.name]
            elif p.required:
                raise InvalidArgument(f"{self.procedure}: {p.name} is missing ({p.kind.expected}); call it as"
                                      f" {self.usage}", p.name, p.kind.expected)
            else:
                values.append(p.default)
                continue
            fault = p.kind.fault(value)
            if fault is not None:
                raise InvalidArgument(f"{self.procedure}: {p.name} must be {p.kind.expected}, not {fault}",
                                      p.name, p.kind.expected)
            values.append(value)
        return tuple(values)


def show(value: object) -> str:
    """A value as the caller sent it (JSON), or described when it is long or a container."""
    if isinstance(value, list | tuple):
        return "an empty list" if not value else "a list"
    if isinstance(value, dict):
        return "an empty object" if not value else "an object"
    if isinstance(value, bytes | bytearray):
        return f"{len(value)} bytes of binary"
    if isinstance(value, str) and len(value) > _SHOWN:
        return f"a string of {len(value)} characters"
    text = _json(value)
    if text is None:
        return "a value of another kind"
    if len(text) > _SHOWN:
        return "a number of more than 40 digits" if isinstance(value, int) else "a long value"
    return text


def _json(value: object) -> str | None:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError):
        return None


def _count(n: int) -> str:
    return "no arguments" if n == 0 else "1 argument" if n == 1 else f"{n} arguments"


def _ordinal(n: int) -> str:
    return {1: "the first", 2: "the second", 3: "the third", 4: "the fourth"}.get(n, f"argument {n}")
