"""The values a query writes, from lark's tokens: numbers, strings with their escapes, true/false/null, parameters.

The grammar only says where a literal stands and roughly what it looks like;
what it is worth, and whether the query language has it, is decided here:
a number too large for a float or with too many digits for an int, an
unknown escape, half a surrogate pair (written as an escape, in the text
itself or in a parameter's value) are QueryErrors at their column. ``text``
is the whole query, for the error; ``bound`` the parameters' values
(``params.bind``), None when the caller gave none.
"""

from __future__ import annotations

import math
import re

from lark import Token

from components.query.ast import Literal, Path
from components.query.errors import QueryError
from components.query.params import Bound, ParamValue
from components.query.text import literal_text, path_text

_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "n": "\n", "t": "\t", "r": "\r", "b": "\b",
                   "f": "\f"}


def column(token: Token) -> int:
    """The 1-based column where ``token`` starts (lark types start_pos as optional; ours are all set)."""
    return (token.start_pos or 0) + 1


def error(message: str, token: Token, text: str, offset: int = 0) -> QueryError:
    """The QueryError about ``token`` of the query ``text``, ``offset`` characters into the token."""
    return QueryError(message, text, column(token) + offset)


def literal(token: Token, path: Path, text: str, bound: Bound | None) -> Literal:
    """The one value ``token`` writes (a STRING, NUMBER, TRUE, FALSE, NULL or PARAM compared with ``path``)."""
    kind = token.type
    if kind == "STRING":
        return string(token, text)
    if kind == "NUMBER":
        return number(token, text)
    if kind == "PARAM":
        value = param(token, text, bound)
        if isinstance(value, tuple):
            raise error(f"parameter {token} is a list; use it with `in`, e.g. `{path_text(path)} in {token}`",
                        token, text)
        return value
    return {"TRUE": True, "FALSE": False}.get(kind)  # NULL: None


def param(token: Token, text: str, bound: Bound | None) -> ParamValue:
    """The value of the parameter ``token`` names, checked to be one the query language can write."""
    name = str(token)[1:]
    if bound is None:
        raise error(f"parameters such as {token} are not available here", token, text)
    found = bound.get(name)
    if found is None:
        known = ", ".join(f"${k}" for k in bound.known) or "none"
        raise error(f"unknown parameter {token} (known: {known})", token, text)
    value = found.value
    for scalar in value if isinstance(value, tuple) else (value,):
        check_value(token, scalar, text)
    return value


def check_value(token: Token, value: Literal, text: str) -> None:
    """Refuse what the canonical text could not write, or the parser read back."""
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise error(f"parameter {token} holds U+{ord(value[exc.start]):04X}, half of a surrogate pair, "
                            "which is not text", token, text) from None
    elif isinstance(value, float) and not math.isfinite(value):
        raise error(f"parameter {token} is {value!r}, not a number the query language has", token, text)
    elif isinstance(value, int) and not isinstance(value, bool):
        try:
            repr(value)
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
            raise error(f"parameter {token} is a number with too many digits", token, text) from None


def kind(value: Literal) -> str:
    """What a message calls a value: null, true, false, a number, a string."""
    if value is None or isinstance(value, bool):
        return literal_text(value)
    return "a number" if isinstance(value, (int, float)) else "a string"


def number(token: Token, text: str) -> int | float:
    """A NUMBER token's value: an int unless it has a point or an exponent."""
    written = str(token)
    if "." in written or "e" in written or "E" in written:
        value = float(written)
        if not math.isfinite(value):
            raise error(f"the number {written} is too large (the largest is about 1.8e308)", token, text)
        return value
    try:
        return int(written)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        raise error(f"the number starting {written[:12]}... has too many digits", token, text) from None


def string(token: Token, text: str) -> str:
    """A STRING token's value, its quotes taken off and its escapes (JSON's, and \\') resolved."""
    body = str(token)[1:-1]
    if "\\" not in body:
        return body
    parts: list[str] = []
    last = 0
    surrogate: int | None = None  # the offset of the first \u escape of a surrogate, if any
    for match in _ESCAPE.finditer(body):
        parts.append(body[last:match.start()])
        code = match[1]
        if len(code) == 5:
            char = chr(int(code[1:], 16))
            if surrogate is None and "\ud800" <= char <= "\udfff":
                surrogate = match.start()
            parts.append(char)
        elif code in _SIMPLE_ESCAPES:
            parts.append(_SIMPLE_ESCAPES[code])
        else:
            what = "\\u needs four hex digits (\\u00e9)" if code == "u" else f"unknown escape \\{code} in a string"
            raise error(f"{what}; the escapes are \\\\ \\\" \\' \\/ \\n \\t \\r \\b \\f \\uXXXX", token, text,
                        1 + match.start())
        last = match.end()
    parts.append(body[last:])
    value = "".join(parts)
    if surrogate is not None:
        try:  # a high and a low surrogate escape make one character, as in JSON
            value = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
        except UnicodeDecodeError:
            raise error("a \\u escape of half a surrogate pair must be followed by the other half "
                        "(\\ud83d\\ude00), or write the character itself", token, text, 1 + surrogate) from None
    return value


def refuse_surrogates(text: str) -> None:
    """Refuse a query holding half a surrogate pair (not text: it cannot be encoded, nor published)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise QueryError(f"the query holds U+{ord(text[exc.start]):04X}, half of a surrogate pair, "
                         "which is not text", text, exc.start + 1) from None
