"""XML-RPC on the bridge (``POST /RPC2``), pure: a request body in, a plan of work, an answer out.

Methods: ``publish(event, data[, options])``, ``publish_batch(events)``,
``issue_ticket(user[, roles[, ttl]])`` and the standard ``system.listMethods``,
``system.methodHelp``, ``system.methodSignature`` and ``system.multicall``.
They follow the HTTP API's rules exactly: a call is turned into the document
the HTTP API would get (``{"event", "data", "id"?, "audience"?}``, a ticket
request) and checked by ``BridgeLogic``. There are no ``gateway.*`` aliases:
one name per method, and WAMP's ``gateway.*`` URIs are another interface.

Every answer is HTTP 200 ``text/xml``, results and faults alike (the XML-RPC
convention). A fault's code is the HTTP status the same mistake gets on the
HTTP API (400, 404, 409, 503...), or -32700 (not a well-formed call), -32601
(no such method), -32602 (wrong number or type of parameters). Its string
starts with the error code and, for invalid data, names every bad field.

The component runs a ``Plan``: it publishes ``plan.events()`` in one
dispatcher call, issues ``plan.tickets()``, and hands both back to
``plan.answer``. The answer names the refusals of events it carries
(``Answer.refusals``, what ``gateway_events_refused_total`` counts): the faults
of ``publish`` and ``publish_batch`` and their batches' items refused in place,
and a request refused whole before any method ran (unreadable, too deep, a
multicall too large). Other methods' faults refuse no event and are not counted.
"""

from __future__ import annotations

import datetime
import json
import re
import xmlrpc.client
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from components.delivery.results import Refused, from_wire
from components.limits import EdgeError, Limits
from webapp_bridge.server.api import (Answer, BridgeLogic, PublishRequest, TicketRequest, batch_results, refusal_answer,
                                      refused)

PARSE_ERROR = -32700
NO_SUCH_METHOD = -32601
INVALID_PARAMS = -32602
CONTENT_TYPE = "text/xml"
#: Levels of arrays and structs a call may nest beyond ``bridge.max_depth`` while it is read: the
#: limit holds for the document each call stands for (``publish(event, data)`` is the POST /events
#: body ``{"event", "data"}``), and a multicall wraps its calls' parameters two levels deeper.
CALL_WRAPPING = 2
#: The most digits a ``<bigdecimal>`` may have: a JSON number's range is the limit anyway.
MAX_DIGITS = 400
#: What ``publish``'s options may hold: the keys of a POST /events body besides event and data.
OPTION_KEYS = ("id", "audience")


@dataclass(frozen=True)
class Fault:
    """An XML-RPC fault: ``code`` (an HTTP status or a -327xx code) and a readable sentence."""

    code: int
    message: str

    @property
    def reason(self) -> str:
        """The error code the caller reads (the metrics' ``reason``): the word its message starts with
        (``invalid_event``, ``too_deep``...), or the protocol's fault by name."""
        protocol = _PROTOCOL_REASONS.get(self.code)
        return protocol if protocol is not None else self.message.partition(":")[0]


@dataclass(frozen=True)
class Publish:
    """Events to publish: one (``publish``, answered with its result) or a batch's items, refusals in place."""

    items: tuple[PublishRequest | Answer, ...]
    single: bool


@dataclass(frozen=True)
class Ticket:
    request: TicketRequest


@dataclass(frozen=True)
class Value:
    """A result known without asking another component."""

    value: Any


Step = Publish | Ticket | Fault | Value


@dataclass(frozen=True)
class Method:
    params: str
    signatures: tuple[tuple[str, ...], ...]
    help: str


METHODS: dict[str, Method] = {
    "publish": Method(
        "event, data[, options]", (("struct", "string", "struct"), ("struct", "string", "struct", "struct")),
        "publish(event, data[, options]) -> {id, seq}: publish one event of class `event` with payload `data`. "
        "options: {id: idempotency key (the same id twice is one event; the answer then has duplicate: true), "
        "audience: {users: [...], roles: [...]}}. The rules of POST /events; dateTime values become "
        "ISO 8601 strings, base64 values are refused."),
    "publish_batch": Method(
        "events", (("array", "array"),),
        "publish_batch(events) -> [result, ...]: events is an array of structs {event, data, id?, audience?}; "
        "each is accepted ({id, seq}) or refused ({error, message, details?, status}) on its own, in order. "
        "The rules of POST /events/batch."),
    "issue_ticket": Method(
        "user[, roles[, ttl]]",
        (("struct", "string"), ("struct", "string", "array"), ("struct", "string", "array", "int"),
         ("struct", "string", "array", "double")),
        "issue_ticket(user[, roles[, ttl]]) -> {ticket, expires_at, user, roles}: a one-time WAMP-ticket "
        "that logs `user` in, valid `ttl` seconds. nil for roles or ttl means the default. "
        "The rules of POST /tickets."),
    "system.listMethods": Method("", (("array",),), "system.listMethods() -> the names of every method."),
    "system.methodHelp": Method("name", (("string", "string"),), "system.methodHelp(name) -> what a method does."),
    "system.methodSignature": Method(
        "name", (("array", "string"),),
        "system.methodSignature(name) -> [[return type, parameter types...], ...] for each way to call it."),
    "system.multicall": Method(
        "calls", (("array", "array"),),
        "system.multicall([{methodName, params}, ...]) -> [[result] or {faultCode, faultString}, ...]: "
        "several calls in one request, answered in order; their events are published together, in order."),
}
#: The methods whose faults are refusals of events (counted by the metrics).
EVENT_METHODS = frozenset({"publish", "publish_batch"})
#: A request's own fault, before any method ran (unreadable, too deep, a multicall too large): counted too.
WHOLE = None
#: The error code of each protocol fault, as the metrics name it.
_PROTOCOL_REASONS = {PARSE_ERROR: "malformed_xmlrpc", NO_SUCH_METHOD: "no_such_method", INVALID_PARAMS: "invalid_params"}
#: Parameters each method takes: (least, most).
_ARITY = {"publish": (2, 3), "publish_batch": (1, 1), "issue_ticket": (1, 3), "system.listMethods": (0, 0),
          "system.methodHelp": (1, 1), "system.methodSignature": (1, 1), "system.multicall": (1, 1)}


@dataclass(frozen=True)
class Plan:
    """The work one request asks for, and how its results become the answer."""

    steps: tuple[Step, ...]
    #: The method each step is a call of; ``WHOLE`` for the request's own fault.
    methods: tuple[str | None, ...]
    multicall: bool = False

    def events(self) -> list[PublishRequest]:
        """Every event to publish, in the order of the calls: one dispatcher call takes them all."""
        return [item for step in self.steps if isinstance(step, Publish)
                for item in step.items if isinstance(item, PublishRequest)]

    def tickets(self) -> list[TicketRequest]:
        return [step.request for step in self.steps if isinstance(step, Ticket)]

    def answer(self, published: Sequence[Mapping[str, Any]] | Answer, tickets: Sequence[dict[str, Any] | Answer]
               ) -> Answer:
        """The HTTP answer, given the dispatcher's results for ``events()`` (or the Answer it failed with)
        and one result or refusal per ``tickets()``."""
        results = iter([] if isinstance(published, Answer) else published)
        issued = iter(tickets)
        outcomes: list[Any] = []  # a value, or a Fault
        refusals: list[str] = []
        for step, method in zip(self.steps, self.methods, strict=True):
            if isinstance(step, (Fault, Value)):
                outcomes.append(step)
            elif isinstance(step, Ticket):
                outcomes.append(_outcome(next(issued)))
            elif isinstance(published, Answer):  # the dispatcher could not be reached: nothing was published
                outcomes.append(fault_of(published))
            else:
                mine = [next(results) for item in step.items if isinstance(item, PublishRequest)]
                if step.single:
                    outcomes.append(_outcome(_published(mine[0])))
                else:
                    outcomes.append(Value(batch_results(list(step.items), mine).body["results"]))
            if method is WHOLE or method in EVENT_METHODS:
                refusals.extend(_refused(outcomes[-1], method))
        if self.multicall:
            answer = respond(Value([[o.value] if isinstance(o, Value) else {"faultCode": o.code, "faultString":
                                                                           o.message} for o in outcomes]))
        else:
            answer = respond(outcomes[0])
        return replace(answer, refusals=tuple(refusals))


def plan(logic: BridgeLogic, body: bytes) -> Plan:
    """What a POST /RPC2 body asks for. Never raises: anything wrong becomes a Fault step."""
    call = decode(body, logic.limits)
    if isinstance(call, Fault):
        return Plan((call,), (WHOLE,))
    method, params = call
    if method != "system.multicall":
        return Plan((step(logic, method, params),), (method,))
    calls = _arguments(method, params)
    if isinstance(calls, Fault):
        return Plan((calls,), (method,))
    (items,) = calls
    if not isinstance(items, list):
        return Plan((Fault(INVALID_PARAMS, f"system.multicall: parameter 1 (calls) must be an array, "
                                           f"not {_kind(items)}"),), (method,))
    if len(items) > logic.max_batch:
        return Plan((Fault(400, f"too_many_calls: a multicall holds at most {logic.max_batch} calls; "
                                f"this one has {len(items)}"),), (WHOLE,))
    steps = tuple(_multicall_step(logic, i, item) for i, item in enumerate(items))
    count = sum(len(s.items) for s in steps if isinstance(s, Publish))
    if count > logic.max_batch:
        return Plan((Fault(400, f"too_many_events: a multicall publishes at most {logic.max_batch} events; "
                                f"this one has {count}"),), (WHOLE,))
    methods = tuple(item.get("methodName") if isinstance(item, dict) and isinstance(item.get("methodName"), str)
                    else method for item in items)
    return Plan(steps, methods, multicall=True)


def decode(body: bytes, limits: Limits = Limits()) -> tuple[str, list[Any]] | Fault:
    """The method name and parameters of a methodCall, or the -32700 fault saying why it is not one
    (a 400 ``too_deep`` when it nests far past ``limits.max_depth``: found while it is read)."""
    try:
        params, method = limits.loads_xmlrpc(body, CALL_WRAPPING)
    except EdgeError as exc:
        return fault_of(refused(exc))
    except xmlrpc.client.Fault:
        return Fault(PARSE_ERROR, "parse error: not well-formed XML-RPC: a fault is an answer, not a call")
    except Exception as exc:  # the parser is tolerant and fails in many ways; each is the caller's bad XML
        return Fault(PARSE_ERROR, f"parse error: not well-formed XML-RPC: {_why(exc)}")
    if method is None:
        return Fault(PARSE_ERROR, "parse error: not well-formed XML-RPC: the document is not a methodCall "
                                  "(no methodName)")
    return method, list(params)


def step(logic: BridgeLogic, method: str, params: list[Any]) -> Step:
    """One call (not a multicall): the work it needs, or its result, or its fault."""
    args = _arguments(method, params)
    if isinstance(args, Fault):
        return args
    if method == "publish":
        return _publish(logic, args)
    if method == "publish_batch":
        return _publish_batch(logic, args[0])
    if method == "issue_ticket":
        return _issue_ticket(logic, args)
    if method == "system.listMethods":
        return Value(sorted(METHODS))
    name = args[0]
    if not isinstance(name, str):
        return Fault(INVALID_PARAMS, f"{method}: parameter 1 (name) must be a string, not {_kind(name)}")
    if name not in METHODS:
        return _no_such_method(name)
    if method == "system.methodHelp":
        return Value(METHODS[name].help)
    return Value([list(s) for s in METHODS[name].signatures])  # system.methodSignature


def respond(outcome: Value | Fault) -> Answer:
    """The HTTP answer carrying one result or one fault: 200, text/xml, either way."""
    params: tuple[Any, ...] | xmlrpc.client.Fault
    if isinstance(outcome, Fault):
        params = xmlrpc.client.Fault(outcome.code, _xml_text(outcome.message))
    else:
        params = (_xml_safe(outcome.value),)
    xml = "<?xml version='1.0'?>\n<methodResponse>\n" + _Marshaller("utf-8", True).dumps(params) + \
        "</methodResponse>\n"
    return Answer(200, {}, raw=xml.encode(), content_type=CONTENT_TYPE)


def fault_of(answer: Answer) -> Fault:
    """The fault for what the HTTP API answers with a 4xx/5xx: its status, its code, its message, and for
    invalid data every bad field (``data.text: Field required; data.room: ...``)."""
    code = str(answer.body.get("error", "error"))
    message = str(answer.body.get("message", ""))
    text = f"{code}: {message}"
    # Other errors' messages name their field already; invalid data's lists them only in details.
    fields = [d for d in answer.body.get("details", []) if code == "invalid_event" and
              d.get("path") and f"'{d['path']}'" not in message]
    if fields:
        text += ": " + "; ".join(f"{d['path']}: {d['message']}" for d in fields)
    return Fault(answer.status, text)


# -- the methods -----------------------------------------------------------------


def _publish(logic: BridgeLogic, args: list[Any]) -> Step:
    event, data, options = (*args, None) if len(args) == 2 else args
    wrong = (_wrong_type("publish", 1, "event", event, str) or _wrong_type("publish", 2, "data", data, dict) or
             _wrong_type("publish", 3, "options", options, dict, nil=True))
    if wrong is not None:
        return wrong
    # Options are the rest of a POST /events body, so their paths are the same (id, audience.users.0).
    extra = _plain(options or {})
    if isinstance(extra, Fault):
        return extra
    unknown = sorted(set(extra) - set(OPTION_KEYS))
    if unknown:
        return Fault(400, f"invalid_request: unknown key(s) in options: {', '.join(unknown)} "
                          f"(expected {', '.join(OPTION_KEYS)})")
    doc = _plain({"event": event, "data": data})
    if isinstance(doc, Fault):
        return doc
    doc = {**doc, **extra}
    over = _over_limits(logic, doc, "the event")
    if over is not None:
        return over
    checked = logic.check_event(doc)
    return fault_of(checked) if isinstance(checked, Answer) else Publish((checked,), single=True)


def _publish_batch(logic: BridgeLogic, events: Any) -> Step:
    wrong = _wrong_type("publish_batch", 1, "events", events, list)
    if wrong is not None:
        return wrong
    if len(events) > logic.max_batch:
        return Fault(400, f"too_many_events: a batch holds at most {logic.max_batch} events; "
                          f"this one has {len(events)}")
    docs = []
    for i, item in enumerate(events):
        doc = _plain(item, f"events.{i}")
        if isinstance(doc, Fault):
            return doc
        docs.append(doc)
    # As POST /events/batch: a number out of range anywhere refuses the whole batch, like bad JSON would.
    over = _over_limits(logic, {"events": docs}, "the batch")
    if over is not None:
        return over
    return Publish(tuple(logic.check_event(doc, f"events.{i}.") for i, doc in enumerate(docs)), single=False)


def _issue_ticket(logic: BridgeLogic, args: list[Any]) -> Step:
    user, roles, ttl = (*args, None, None)[:3]
    wrong = (_wrong_type("issue_ticket", 1, "user", user, str) or
             _wrong_type("issue_ticket", 2, "roles", roles, list, nil=True) or
             _wrong_type("issue_ticket", 3, "ttl", ttl, (int, float), nil=True))
    if wrong is not None:
        return wrong
    doc = {k: v for k, v in (("user", user), ("roles", roles), ("ttl", ttl)) if v is not None}
    plain = _plain(doc)
    if isinstance(plain, Fault):
        return plain
    over = _over_limits(logic, plain, "the ticket request")
    if over is not None:
        return over
    # The ticket rules read a POST /tickets body; this is that body, so every rule is the same.
    checked = logic.parse_ticket(json.dumps(plain).encode())
    return fault_of(checked) if isinstance(checked, Answer) else Ticket(checked)


def _multicall_step(logic: BridgeLogic, i: int, call: Any) -> Step:
    where = f"system.multicall: call {i + 1}"
    if not isinstance(call, dict):
        return Fault(INVALID_PARAMS, f"{where} must be a struct {{methodName, params}}, not {_kind(call)}")
    unknown = sorted(map(str, set(call) - {"methodName", "params"}))
    if unknown:
        return Fault(INVALID_PARAMS, f"{where} has unknown member(s) {', '.join(unknown)} "
                                     "(expected methodName, params)")
    method, params = call.get("methodName"), call.get("params", [])
    if not isinstance(method, str):
        return Fault(INVALID_PARAMS, f"{where}: methodName must be a string, not {_kind(method)}")
    if not isinstance(params, list):
        return Fault(INVALID_PARAMS, f"{where}: params must be an array, not {_kind(params)}")
    if method == "system.multicall":
        return Fault(INVALID_PARAMS, f"{where}: system.multicall cannot be called inside system.multicall")
    return step(logic, method, params)


# -- parameters --------------------------------------------------------------------


def _arguments(method: str, params: list[Any]) -> list[Any] | Fault:
    if method not in METHODS:
        return _no_such_method(method)
    least, most = _ARITY[method]
    if least <= len(params) <= most:
        return params
    count = str(least) if least == most else f"{least} to {most}" if most - least > 1 else f"{least} or {most}"
    takes = f"{count} parameter{'s' if most != 1 else ''}"
    signature = f" ({METHODS[method].params})" if METHODS[method].params else ""
    return Fault(INVALID_PARAMS, f"{method} takes {takes}{signature}, not {len(params)}")


def _no_such_method(name: str) -> Fault:
    return Fault(NO_SUCH_METHOD, f"no such method {name!r} (methods: {', '.join(sorted(METHODS))})")


def _wrong_type(method: str, n: int, name: str, value: Any, kind: type | tuple[type, ...],
                nil: bool = False) -> Fault | None:
    if (value is None and nil) or (isinstance(value, kind) and not isinstance(value, bool)):
        return None
    expected = {str: "a string", dict: "a struct", list: "an array"}.get(kind, "an int or a double")  # type: ignore[call-overload]
    return Fault(INVALID_PARAMS, f"{method}: parameter {n} ({name}) must be {expected}"
                                 f"{' or nil' if nil else ''}, not {_kind(value)}")


def _over_limits(logic: BridgeLogic, doc: dict[str, Any], what: str) -> Fault | None:
    """The fault when the document a call stands for breaks the limits its JSON body would
    (``components.limits``: depth, integers within 64 bits, finite numbers), in the same words."""
    try:
        logic.limits.check(doc, what)
    except EdgeError as exc:
        return fault_of(refused(exc))
    return None


class _Refused(Exception):
    def __init__(self, fault: Fault) -> None:
        self.fault = fault


def _plain(value: Any, where: str = "") -> Any:
    """The value as JSON would have given it, or the fault naming where it cannot be.

    dateTime becomes an ISO 8601 string (what a date field takes); a bigdecimal a number.
    Binary is refused: an event is JSON, and silently turning bytes into text would
    publish something the web-app did not mean.
    """
    try:
        return _walk(value, where)
    except _Refused as exc:
        return exc.fault


def _walk(value: Any, path: str) -> Any:
    # Recursive: decode() bounded the nesting (bridge.max_depth + CALL_WRAPPING) while reading the call.
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Refused(Fault(PARSE_ERROR, "parse error: not well-formed XML-RPC: a struct member "
                                                  f"at {path or 'the top'} has no name"))
            out[key] = _walk(item, f"{path}.{key}" if path else key)
        return out
    if isinstance(value, list):
        return [_walk(item, f"{path}.{i}" if path else str(i)) for i, item in enumerate(value)]
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        # Refused before any conversion: int(Decimal("1e1000000")) alone takes half a minute.
        if not value.is_finite() or len(value.as_tuple().digits) > MAX_DIGITS or abs(value.adjusted()) > 308:
            raise _Refused(Fault(400, f"invalid_request: {path or 'a parameter'} is a bigdecimal out of range "
                                      f"(at most {MAX_DIGITS} digits and magnitude 1e308, as a JSON number)"))
        # As JSON reads a number: 5 an int, 5.0 or 5.25 a float.
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
    if isinstance(value, (bytes, bytearray)):
        raise _Refused(Fault(400, f"invalid_request: {path or 'a parameter'} is base64 binary, which events "
                                  "cannot hold (they are JSON); send text, e.g. the base64 as a string"))
    return value


def _kind(value: Any) -> str:
    """An XML-RPC value's type, as a caller would name it."""
    if value is None:
        return "nil"
    return {bool: "a boolean", int: "an int", float: "a double", str: "a string", list: "an array",
            dict: "a struct", bytes: "base64 binary", bytearray: "base64 binary",
            datetime.datetime: "a dateTime", Decimal: "a bigdecimal"}.get(type(value), type(value).__name__)


def _why(exc: Exception) -> str:
    if isinstance(exc, xmlrpc.client.ResponseError):
        return str(exc) or "the document ends before the methodCall does"
    if isinstance(exc, IndexError):
        return "a struct member lacks its name or its value"
    return str(exc) or type(exc).__name__


# -- results -------------------------------------------------------------------


def _published(result: Mapping[str, Any]) -> dict[str, Any] | Answer:
    """One dispatcher result: the struct POST /events answers 202 with, or its refusal."""
    outcome = from_wire(result)
    return refusal_answer(outcome) if isinstance(outcome, Refused) else outcome.to_wire()


def _outcome(result: dict[str, Any] | Answer) -> Value | Fault:
    return fault_of(result) if isinstance(result, Answer) else Value(result)


def _refused(outcome: Value | Fault, method: str | None) -> list[str]:
    """The refusals of events in one call's outcome: its fault, or a batch's items refused in place."""
    if isinstance(outcome, Fault):
        return [outcome.reason]
    if method == "publish_batch" and isinstance(outcome.value, list):
        return [str(r["error"]) for r in outcome.value if isinstance(r, dict) and "error" in r]
    return []


#: Characters XML 1.0 cannot carry, even escaped.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _xml_safe(value: Any) -> Any:
    """The value with every string XML can carry (a fault or a result must always be readable)."""
    if isinstance(value, str):
        return _xml_text(value)
    if isinstance(value, dict):
        return {_xml_text(str(k)): _xml_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_xml_safe(v) for v in value]
    return value


def _dump_int(marshaller: xmlrpc.client.Marshaller, value: Any, write: Callable[[str], object]) -> None:
    tag = "int" if xmlrpc.client.MININT <= value <= xmlrpc.client.MAXINT else "i8"
    write(f"<value><{tag}>{value:d}</{tag}></value>\n")


class _Marshaller(xmlrpc.client.Marshaller):
    """xmlrpc.client's marshaller, writing ints past 32 bits as ``<i8>`` (seq gets there) instead of failing."""

    dispatch = {**xmlrpc.client.Marshaller.dispatch, int: _dump_int}
