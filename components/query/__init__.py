"""The subscription query language: parse, check against the event classes, canonical form.

    checked = check(parse(text), registry, visible=lambda c: c.visible_to(authrole, roles))
    checked.text, checked.topic_key, checked.classes

``parse(text, params={"user": "alice", "roles": ("staff",)})`` fills in
``$user`` and ``$roles``: the tree holds the values, as if written as literals.

Every mistake in a query raises QueryError (QueryNotAuthorized when it names
a class the caller may not see); nothing else. Stages, one module each:
grammar.lark + parser (text -> ast; beside it params, the values of the
``$names`` a text uses, and literals, what each value token is worth),
canonical (ast -> one tree and text per meaning), check (ast + classes ->
CheckedQuery, with fields: paths in JSON Schemas, and selectors: wildcard
matching); interpret, compile and index match events. Beside the ast, text
writes paths and values as the language does, for every stage's messages
and for the canonical text.

Pure: no I/O, no Twisted, no WAMP. May import: ``components.exceptions`` (a query error derives from the
base of every error the gateway reports), nothing else of ours. Never imports:
``twisted``, ``autobahn``, ``crossbar``.
"""

from components.query.ast import (
    And,
    Compare,
    CompareOp,
    Contains,
    Exists,
    Expr,
    In,
    Literal,
    Not,
    Or,
    Path,
    Query,
    StartsWith,
)
from components.query.canonical import canonical, to_text, topic_key
from components.query.check import CheckedQuery, check
from components.query.errors import QueryError, QueryNotAuthorized
from components.query.params import ParamValue
from components.query.parser import MAX_DEPTH, MAX_LENGTH, parse

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "And",
    "CheckedQuery",
    "Compare",
    "CompareOp",
    "Contains",
    "Exists",
    "Expr",
    "In",
    "Literal",
    "Not",
    "Or",
    "ParamValue",
    "Path",
    "Query",
    "QueryError",
    "QueryNotAuthorized",
    "StartsWith",
    "canonical",
    "check",
    "parse",
    "to_text",
    "topic_key",
]
