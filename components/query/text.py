"""How the query language writes its pieces: field paths, literal values, and bits of text shown in errors.

Beside the AST, not in a stage, because every stage prints: the parser and
the checker in their messages, ``canonical`` in the canonical text. What is
written here reads back (``parse``) to the same value or path.
"""

from __future__ import annotations

import math
import re
from json.encoder import encode_basestring

from components.query.ast import Literal, Path

#: Words the grammar reads as keywords; a field of that name is written quoted.
KEYWORDS = frozenset({"where", "and", "or", "not", "in", "contains", "startswith", "exists", "true", "false",
                      "null"})

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# How much of a token an error quotes before it says "...".
_QUOTED = 24


def path_text(path: Path) -> str:
    """``customer.id``; a segment that is not a plain name, or is a keyword, in backquotes."""
    return ".".join(s if _NAME.fullmatch(s) and s.lower() not in KEYWORDS else "`" + s.replace("`", "``") + "`"
                    for s in path)


def literal_text(value: Literal) -> str:
    """A value as the query language writes it: null, true, 42, 2.5, "text"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return encode_basestring(value)  # JSON's escapes and no others; what json.dumps does, without its overhead
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value!r} is not a number the query language has")
    return repr(value)  # for a float, the shortest text that reads back exactly


def printable(text: str) -> str:
    """``text`` with one printable character per character: a space for each one that is not.

    One for one, so that a caret under the shown text stands under the fault.
    """
    return "".join(c if c.isprintable() else " " for c in text)


def quoted(text: str) -> str:
    """A piece of the query as an error names it: 'where', a lone control character as U+0007."""
    if len(text) == 1 and not text.isprintable():
        return f"U+{ord(text):04X}"
    shown = text if len(text) <= _QUOTED else text[:_QUOTED] + "..."
    return "'" + printable(shown) + "'"
