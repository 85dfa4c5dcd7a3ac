"""The OpenAPI 3.1 description of the bridge, with every event class's schema in it."""

from __future__ import annotations

from typing import Any

from components.events import Registry

_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "a short code, e.g. invalid_event"},
        "message": {"type": "string", "description": "what was wrong, in a sentence"},
        "details": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}},
    },
}
_FIELD_ERROR = {
    "type": "object",
    "required": ["path", "message", "type"],
    "properties": {
        "path": {"type": "string", "description": "where, e.g. data.customer.id or events.3.data.amount"},
        "message": {"type": "string"},
        "type": {"type": "string", "description": "the kind of error, e.g. missing, int_type, extra_forbidden"},
    },
}
_ACCEPTED = {
    "type": "object",
    "required": ["id", "seq"],
    "properties": {
        "id": {"type": "string"},
        "seq": {"type": "integer", "format": "int64", "minimum": 0,
                "description": "strictly increasing in the order events were accepted"},
        "duplicate": {"type": "boolean", "description": "true when this id was accepted before: same seq"},
    },
}

_ALIVE = {
    "type": "object",
    "required": ["status", "process", "pid", "uptime", "in_flight", "max_in_flight", "draining", "hand_off",
                 "forward"],
    "properties": {
        "status": {"type": "string", "enum": ["alive"]},
        "process": {"type": "string", "description": "the container whose bridge answered, e.g. components-1"},
        "pid": {"type": "integer"},
        "uptime": {"type": "number", "description": "seconds since this bridge began listening"},
        "in_flight": {"type": "integer", "description": "requests this bridge holds in flight (not judged here)"},
        "max_in_flight": {"type": "integer", "description": "bridge.max_in_flight"},
        "draining": {"type": "boolean", "description": "the node is leaving (POST /admin/drain, or gateway run "
                                                       "stopping it): this bridge takes no new events"},
        "hand_off": {"type": "object", "required": ["state"], "description": (
            "where this bridge's new connections are served (bridge.hand_off): off; taking (beside the active "
            "dispatcher: other bridges pass theirs here; from: how many; with bridge.balance, load: requests handled "
            "at once over the last half second, and busy: the share of it its reactor thread ran or waited for a "
            "core); passing (to the bridge beside the "
            "active dispatcher); serving (its own: none is active, or it cannot be reached yet). given and called: "
            "kept-alive connections moved between requests (bridge.balance)"),
            "properties": {"state": {"type": "string", "enum": ["off", "taking", "passing", "serving"]},
                           "from": {"type": "integer"}, "taken": {"type": "integer"},
                           "returned": {"type": "integer"}, "passed": {"type": "integer"},
                           "given": {"type": "integer"}, "called": {"type": "integer"},
                           "load": {"type": "number"}, "busy": {"type": "number"}}},
        "forward": {"type": "object", "required": ["state"], "description": (
            "which way this bridge's events go to the active dispatcher (bridge.forward): off (false: beside a "
            "standby, a WAMP call; beside the active dispatcher, in the process); "
            "publishing (it is beside the active dispatcher: other bridges send their events here; from: their "
            "connections; listening: false while it cannot take the socket's name yet); forwarding (over a Unix socket "
            "to the bridge beside the active dispatcher; again: requests sent over WAMP instead, as their answer "
            "did not come or they could not be framed); calling (a WAMP call: none is active, or the bridge "
            "beside it cannot be reached yet)"),
            "properties": {"state": {"type": "string", "enum": ["off", "publishing", "forwarding", "calling"]},
                           "listening": {"type": "boolean"}, "from": {"type": "integer"},
                           "answered": {"type": "integer"}, "again": {"type": "integer"}}},
    },
}
_DRAIN = {
    "type": "object",
    "required": ["status", "in_flight", "bridges"],
    "properties": {
        "status": {"type": "string", "enum": ["draining", "drained"],
                   "description": "drained: no bridge of the node holds anything in flight any more"},
        "in_flight": {"type": "integer", "description": "requests the node's bridges still hold, in all"},
        "bridges": {"type": "array", "items": {
            "type": "object", "required": ["process", "in_flight", "amqp"],
            "properties": {
                "process": {"type": "string", "description": "the bridge's container, e.g. components-1"},
                "in_flight": {"type": "integer"},
                "amqp": {"type": "string", "description": "its RabbitMQ consumer: draining while it hands over "
                                                          "the batch it holds, drained after; off: none"}}}},
        "failures": {"type": "array", "description": "bridges that could not be reached (asked again next time)",
                     "items": {"type": "object", "properties": {"bridge": {"type": "string"},
                                                                "error": {"type": "string"}}}},
    },
}

_AUDIENCE = {
    "type": "object",
    "additionalProperties": False,
    "description": "only these may receive the event: the sessions of the users named and those holding one of "
                   "the roles named (leave it out to reach everyone who may see the class)",
    "properties": {
        "users": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 255}},
        "roles": {"type": "array", "items": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"}},
    },
}
_TICKET_REQUEST = {
    "type": "object",
    "required": ["user"],
    "additionalProperties": False,
    "properties": {
        "user": {"type": "string", "minLength": 1, "maxLength": 255, "description": "the user the ticket logs in"},
        "roles": {"type": "array", "items": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"},
                  "description": "the user's roles (they decide which role:<name> classes the user sees)"},
        "ttl": {"type": "number", "exclusiveMinimum": 0,
                "description": "seconds the ticket is valid (auth.ticket_ttl by default, auth.max_ticket_ttl at most)"},
    },
}
_SUBSCRIPTION_REQUEST = {
    "type": "object",
    "required": ["user", "query"],
    "additionalProperties": False,
    "properties": {
        "user": {"type": "string", "minLength": 1, "maxLength": 255},
        "query": {"type": "string", "description": "in the query language, e.g. demo.order where amount > 100"},
        "persistent": {"const": True},
        "roles": {"type": "array", "items": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"}},
    },
}
_SUBSCRIPTION = {
    "type": "object",
    "required": ["id", "topic", "query", "persistent", "last_seq"],
    "properties": {
        "id": {"type": "string"}, "topic": {"type": "string"}, "query": {"type": "string"},
        "persistent": {"type": "boolean"}, "user": {"type": ["string", "null"]},
        "owner": {"enum": ["user", "client"]}, "classes": {"type": "array", "items": {"type": "string"}},
        "last_seq": {"type": "integer", "description": "the last seq its owner acknowledged"},
    },
}
_TICKET = {
    "type": "object",
    "required": ["ticket", "expires_at", "user", "roles"],
    "properties": {
        "ticket": {"type": "string", "description": "a one-time WAMP-ticket credential"},
        "expires_at": {"type": "string", "format": "date-time"},
        "user": {"type": "string"},
        "roles": {"type": "array", "items": {"type": "string"}},
    },
}


_RPC2 = (
    "Methods: `publish(event, data[, options])` → struct {id, seq} (options: {id, audience}, as in POST /events); "
    "`publish_batch(events)` → array, one result per event as in POST /events/batch; "
    "`issue_ticket(user[, roles[, ttl]])` → struct {ticket, expires_at, user, roles}, as POST /tickets; "
    "`system.listMethods`, `system.methodHelp`, `system.methodSignature`, `system.multicall`. "
    "Answers are HTTP 200 text/xml, faults included. A fault's faultCode is the HTTP status the same mistake "
    "gets on the HTTP API (400 invalid, 404 unknown event class, 409 id reused, 503 retry), or -32700 (not "
    "well-formed XML-RPC), -32601 (no such method), -32602 (wrong number or type of parameters); 503 "
    "(overloaded; draining: the node is leaving, a call holding events goes to another node) and 429 "
    "(rate_limited) faults come with a Retry-After header. A fault's faultString starts with the error code "
    "(e.g. `invalid_event: ...`) and names every bad field. dateTime values become ISO 8601 strings; base64 "
    "values are refused. 401 and 413 stay HTTP answers."
)


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "malformed or invalid request: malformed_json, invalid_request, invalid_event; too_deep (arrays and "
                 "objects nested past bridge.max_depth); invalid_number (an integer outside the signed 64-bit "
                 "range, NaN or Infinity, anywhere in the body); invalid_unicode (a string or key holding a lone "
                 "UTF-16 surrogate, e.g. \\ud800); duplicate_key (an object naming a key twice)",
            401: "missing or wrong API key", 404: "unknown event class",
            409: "the id was used by an event of another class", 413: "body over the size limit",
            422: "the new event definitions cannot be loaded",
            429: "rate_limited: the API key is over its rate (bridge.api_keys' rate and burst); nothing was accepted. "
                 "Retry-After: the seconds until it may send again; the body names the key (its name) and the limit "
                 "(key, rate, burst, retry_after)",
            503: "cannot accept events now; nothing was accepted: retry after Retry-After seconds (overloaded: the "
                 "bridge holds bridge.max_in_flight events in flight; unavailable: no dispatcher; draining: the "
                 "node is leaving, send it to another node)"}
    return {str(c): {"description": text[c], **_json({"$ref": "#/components/schemas/Error"})} for c in codes}


def _schema_name(event: str) -> str:
    return "Event_" + event.replace(".", "_")


def openapi_document(registry: Registry) -> dict[str, Any]:
    """The document served at GET /openapi.json (pure: registry in, document out)."""
    schemas: dict[str, Any] = {"Error": _ERROR, "FieldError": _FIELD_ERROR, "Accepted": _ACCEPTED,
                               "Audience": _AUDIENCE, "TicketRequest": _TICKET_REQUEST, "Ticket": _TICKET,
                               "SubscriptionRequest": _SUBSCRIPTION_REQUEST, "Subscription": _SUBSCRIPTION}
    variants = []
    for cls in sorted(registry, key=lambda c: c.name):
        data_schema = dict(cls.json_schema())
        prefix = f"#/components/schemas/{_schema_name(cls.name)}__"
        for def_name, definition in data_schema.pop("$defs", {}).items():
            schemas[f"{_schema_name(cls.name)}__{def_name}"] = _rebase_refs(definition, prefix)
        data_schema = _rebase_refs(data_schema, prefix)
        schemas[_schema_name(cls.name)] = {
            "type": "object",
            "description": cls.description,
            "required": ["event", "data"],
            "additionalProperties": False,
            "properties": {
                "event": {"const": cls.name},
                "id": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$",
                       "description": "idempotency key: the same id posted twice is one event"},
                "data": data_schema,
                "audience": {"$ref": "#/components/schemas/Audience"},
            },
        }
        variants.append({"$ref": f"#/components/schemas/{_schema_name(cls.name)}"})
    schemas["Event"] = {"oneOf": variants, "discriminator": {"propertyName": "event"}} if variants else {}
    security: list[dict[str, list[str]]] = [{"apiKey": []}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "Events gateway: web-app interface", "version": registry.version,
                 "description": "Post server-side events; the gateway delivers them to WAMP subscribers."},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                           "description": "an API key from gateway.yaml (bridge.api_keys)"},
                                "basicApiKey": {"type": "http", "scheme": "basic",
                                                "description": "any user name, the API key as the password "
                                                               "(POST /RPC2 only)"}},
        },
        "paths": {
            "/events": {"post": {
                "summary": "Publish one event", "security": security,
                "requestBody": {"required": True, **_json({"$ref": "#/components/schemas/Event"})},
                "responses": {"202": {"description": "accepted (or accepted before, with the same id)",
                                      **_json({"$ref": "#/components/schemas/Accepted"})},
                              **_errors(400, 401, 404, 409, 413, 429, 503)}}},
            "/events/batch": {"post": {
                "summary": "Publish several events; each is accepted or refused on its own", "security": security,
                "requestBody": {"required": True, **_json({
                    "type": "object", "required": ["events"], "additionalProperties": False,
                    "properties": {"events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}}})},
                "responses": {"200": {"description": "one result per event, in order", **_json({
                    "type": "object", "properties": {"results": {"type": "array", "items": {"oneOf": [
                        {"$ref": "#/components/schemas/Accepted"},
                        {"allOf": [{"$ref": "#/components/schemas/Error"},
                                   {"type": "object", "properties": {"status": {"type": "integer"}}}]}]}}}})},
                    **_errors(400, 401, 413, 429, 503)}}},
            "/tickets": {"post": {
                "summary": "A one-time WAMP-ticket that logs a user in (for the browser of a logged-in user)",
                "security": security,
                "requestBody": {"required": True, **_json({"$ref": "#/components/schemas/TicketRequest"})},
                "responses": {"201": {"description": "the ticket", **_json({"$ref": "#/components/schemas/Ticket"})},
                              **_errors(400, 401, 413, 429, 503)}}},
            "/subscriptions": {
                "post": {
                    "summary": "A persistent subscription for a user, connected or not", "security": security,
                    "requestBody": {"required": True, **_json({"$ref": "#/components/schemas/SubscriptionRequest"})},
                    "responses": {"201": {"description": "made", **_json({"$ref": "#/components/schemas/Subscription"})},
                                  "403": {"description": "the query selects a class the user may not see",
                                          **_json({"$ref": "#/components/schemas/Error"})},
                                  "409": {"description": "limit_exceeded: the user already holds "
                                                         "queries.max_persistent_per_user persistent subscriptions",
                                          **_json({"$ref": "#/components/schemas/Error"})},
                                  **_errors(400, 401, 413, 429, 503)}},
                "get": {
                    "summary": "Persistent subscriptions of a user (?user=) or of an event class (?event=)",
                    "security": security,
                    "parameters": [{"name": "user", "in": "query",
                                    "schema": {"type": "string", "minLength": 1, "maxLength": 255}},
                                   {"name": "event", "in": "query", "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "the subscriptions", **_json({
                        "type": "object", "properties": {"subscriptions": {
                            "type": "array", "items": {"$ref": "#/components/schemas/Subscription"}}}})},
                        **_errors(400, 401, 429, 503)}}},
            "/subscriptions/{id}": {"delete": {
                "summary": "End a persistent subscription; its owner's clients are told "
                           "(gateway.meta.subscription_removed)", "security": security,
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "ended", **_json({"$ref": "#/components/schemas/Subscription"})},
                              "404": {"description": "no such subscription",
                                      **_json({"$ref": "#/components/schemas/Error"})},
                              **_errors(401, 429, 503)}}},
            "/catalog": {"get": {
                "summary": "Every event class: name, description, visibility, retention, JSON Schema",
                "security": security,
                "responses": {"200": {"description": "the catalog and the definitions' version"},
                              **_errors(401)}}},
            "/admin/reload": {"post": {
                "summary": "Reload the event definitions in every component", "security": security,
                "responses": {"200": {"description": "every component runs the new version"},
                              **_errors(401, 422)}}},
            "/admin/drain": {"post": {
                "summary": "Drain the node before it stops: every bridge takes no new events from now on",
                "description": "POST /events, /events/batch and the events of POST /RPC2 are answered 503 "
                               "draining (with Retry-After: send them to another node) and GET /healthz 503 "
                               "draining; requests already in flight go on to their answers; RabbitMQ ingest "
                               "hands over what it holds, then stops consuming. Tickets and subscriptions are "
                               "still served. For good: the node is to stop (gateway run sends this on SIGTERM). "
                               "Ask again to learn what is left in flight; drained once nothing is.",
                "security": security,
                "responses": {"200": {"description": "draining; what each bridge still holds",
                                      **_json(_DRAIN)}, **_errors(401)}}},
            "/RPC2": {"post": {
                "summary": "XML-RPC: the same calls with the same rules, for clients that speak XML-RPC",
                "description": _RPC2,
                # Basic too: many XML-RPC clients (Python's among them) only do Basic auth.
                "security": [{"apiKey": []}, {"basicApiKey": []}],
                "requestBody": {"required": True, "content": {"text/xml": {"schema": {
                    "type": "string", "description": "an XML-RPC methodCall"}}}},
                "responses": {"200": {"description": "an XML-RPC methodResponse: the result, or a fault (faultCode: "
                                                     "the HTTP status of the same mistake, or -32700/-32601/-32602)",
                                      "content": {"text/xml": {"schema": {"type": "string"}}}},
                              **_errors(401, 413)}}},
            "/healthz": {"get": {"summary": "Readiness: can an event posted now be accepted?",
                                 "description": "503 while the bridge answering is at its in-flight limit "
                                                "(overloaded), no dispatcher or authenticator is there, or the "
                                                "node is leaving (draining: for good): send traffic elsewhere "
                                                "for now, do not restart the node.",
                                 "responses": {"200": {"description": "yes"}, "503": {"description": "no"}}}},
            "/livez": {"get": {
                "summary": "Liveness: is the bridge process serving HTTP?",
                "description": "200 whenever the bridge process answers, overloaded or not (it is not under "
                               "bridge.max_in_flight and asks neither the router nor the store): restart the node "
                               "only when this fails. Readiness is /healthz.",
                "responses": {"200": {"description": "alive", **_json(_ALIVE)}}}},
            "/metrics": {"get": {
                "summary": "The node's Prometheus metrics (text format 0.0.4), summed over every component",
                "description": "No key needed unless metrics.require_key is true (then the usual Bearer key).",
                "security": [{}, {"apiKey": []}],
                "responses": {"200": {"description": "the metrics",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}},
                              "401": {"description": "metrics.require_key is on and no valid key was sent"},
                              "503": {"description": "the bridge is reconnecting to the router"}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OK"}}}},
        },
    }


def _rebase_refs(node: Any, prefix: str) -> Any:
    """Point pydantic's local ``#/$defs/X`` references at their new place under components/schemas."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
                out[key] = prefix + value.removeprefix("#/$defs/")
            else:
                out[key] = _rebase_refs(value, prefix)
        return out
    if isinstance(node, list):
        return [_rebase_refs(v, prefix) for v in node]
    return node
