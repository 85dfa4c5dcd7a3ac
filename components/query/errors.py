"""The one error of the query language: a query the gateway refuses, and where.

Parsing and checking raise QueryError and nothing else, whatever the text
(a hypothesis test holds them to it), so a caller needs one ``except``.
QueryNotAuthorized is the one case a caller maps to a different WAMP error.
"""

from __future__ import annotations

from components.exceptions import GatewayError
from components.query.text import printable

# How much of a long query the caret display shows around the fault.
_WINDOW = 72


class QueryError(GatewayError):
    """A query that cannot be parsed or does not fit the selected classes' schemas.

    ``message`` is one sentence saying what is wrong and what is expected;
    ``position`` the 1-based column of the fault in ``query`` (None when the
    fault is the whole query); ``str()`` adds the query and a caret line.
    """

    def __init__(self, message: str, query: str, position: int | None = None) -> None:
        # All three in args, so the error pickles and copies with them.
        super().__init__(message, query, position)
        self.message = message
        self.query = query
        self.position = position

    def __str__(self) -> str:
        if self.position is None:
            return self.message
        line, caret = caret_lines(self.query, self.position)
        return f"{self.message} (column {self.position})\n  {line}\n  {caret}"


class QueryNotAuthorized(QueryError):
    """A selector names a class the caller may not see (the caller's authorisation, not its syntax)."""


def caret_lines(query: str, position: int) -> tuple[str, str]:
    """The line of ``query`` holding 1-based ``position`` and a caret under it; long lines are cut."""
    offset = max(0, min(position - 1, len(query)))
    start = query.rfind("\n", 0, offset) + 1
    end = query.find("\n", offset)
    line = query[start:end if end >= 0 else len(query)]
    column = offset - start
    if len(line) > _WINDOW:
        left = max(0, min(column - _WINDOW // 2, len(line) - _WINDOW))
        cut = line[left:left + _WINDOW]
        prefix = "..." if left > 0 else ""
        suffix = "..." if left + _WINDOW < len(line) else ""
        line, column = prefix + cut + suffix, column - left + len(prefix)
    # One printable character per character of the query keeps the caret aligned.
    return printable(line), " " * column + "^"
