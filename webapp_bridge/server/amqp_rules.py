"""The rules of RabbitMQ ingest, without I/O: what becomes of each message.

A message's body is a ``POST /events`` body and gets exactly the same checks
(``BridgeLogic.parse_event``, the body size limit included). Then one of
three things happens to it, decided here and carried out by
``webapp_bridge.server.amqp``:

- accepted by the dispatcher (or a duplicate of an accepted event): ack;
- refused for good (bad JSON, unknown class, invalid data, an id already used
  by another class, ...): a copy goes to the dead-letter queue with the error
  in its headers (``dead_letter_headers``), then the original is acked;
- refused for now (no dispatcher, the router did not take it: a 503): kept
  unacknowledged and tried again after a pause (``backoff_delay``).

The idempotency id of a message is, in this order: the body's ``id``; the
message's ``message_id`` property when it is a valid event id (publishers of
the gateway's proxy always set it); else a random one. There is no
deterministic fallback: a classic queue gives a message nothing that is
stable across redeliveries yet unique per publish, and a hash of the body
would merge two identical events posted on purpose (two "+1" clicks). So a
message with neither id is delivered *at least once*: should a bridge die
after the dispatcher accepted it and before the ack reached the broker, the
redelivered copy is published again. Give messages a ``message_id`` (or an
``id``) for exactly once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pika.spec import BasicProperties

from components.delivery import results
from components.envelope import new_event_id, rfc3339
from webapp_bridge.server.api import EVENT_ID, Answer, BridgeLogic, PublishRequest, refusal_answer


#: Headers a dead-lettered copy carries besides the original's own.
HEADER_ERROR = "x-gateway-error"  # the error code, as in the HTTP answer's "error"
HEADER_MESSAGE = "x-gateway-message"  # a readable sentence saying what was wrong
HEADER_DETAILS = "x-gateway-details"  # JSON text of the "details" list (absent when there are none)
HEADER_STATUS = "x-gateway-status"  # the HTTP status POST /events answers for the same body
HEADER_QUEUE = "x-gateway-queue"  # the queue the message came from
HEADER_FAILED_AT = "x-gateway-failed-at"  # RFC 3339 UTC time of the refusal
GATEWAY_HEADERS = (HEADER_ERROR, HEADER_MESSAGE, HEADER_DETAILS, HEADER_STATUS, HEADER_QUEUE, HEADER_FAILED_AT)

#: The details header is cut to this many bytes of JSON (dropping whole items, saying how many):
#: a message's properties must fit in one AMQP frame (128 KiB by default), and an event with
#: thousands of bad fields would not.
MAX_DETAILS_HEADER = 16 * 1024


@dataclass(frozen=True)
class Refusal:
    """Why a message can never be accepted, as POST /events would say it."""

    error: str
    message: str
    status: int
    details: list[dict[str, Any]] | None = None

    @classmethod
    def from_answer(cls, answer: Answer) -> Refusal:
        body = answer.body
        return cls(str(body.get("error", "refused")), str(body.get("message", "")), answer.status,
                   body.get("details"))

    @classmethod
    def from_refused(cls, refused: results.Refused) -> Refusal:
        """A dispatcher's refusal of one event, with the status POST /events answers it with."""
        return cls.from_answer(refusal_answer(refused))


@dataclass(frozen=True)
class Accepted:
    """The dispatcher took the event (or had taken it before, under the same id): ack."""

    result: dict[str, Any]


@dataclass(frozen=True)
class Retry:
    """The gateway cannot take the event right now: keep the message, try again later."""

    reason: str


Outcome = Accepted | Refusal | Retry


def read_message(logic: BridgeLogic, body: bytes, message_id: str | None,
                 new_id: Callable[[], str] = new_event_id) -> PublishRequest | Refusal:
    """The event a message carries, with its idempotency id settled, or why it can never be accepted."""
    if len(body) > logic.max_body_bytes:
        return Refusal.from_answer(logic.too_large())
    parsed = logic.parse_event(body)
    if isinstance(parsed, Answer):
        return Refusal.from_answer(parsed)
    if parsed.id is not None:
        return parsed
    return replace(parsed, id=message_id if valid_event_id(message_id) else new_id())


def valid_event_id(value: Any) -> bool:
    return isinstance(value, str) and EVENT_ID.match(value) is not None


def judge(result: Mapping[str, Any] | Answer) -> Outcome:
    """What to do with a message given the dispatcher's answer for its event.

    ``result`` is that event's item of the dispatcher's results (as it came
    over WAMP), or the one Answer the call as a whole got (the bridge's 503
    when no dispatcher runs). An Answer's 4xx is the event's fault and final;
    a refusal by the dispatcher is retried if its code says it may pass later.
    """
    if isinstance(result, Answer):
        if 400 <= result.status < 500:
            return Refusal.from_answer(result)
        return Retry(f"{result.status} {result.body.get('error', '')}: {result.body.get('message', '')}".strip())
    outcome = results.from_wire(result)
    if isinstance(outcome, results.Accepted):
        return Accepted(outcome.to_wire())
    if not outcome.code.retryable:
        return Refusal.from_refused(outcome)
    answer = refusal_answer(outcome)
    return Retry(f"{answer.status} {outcome.code.value}: {outcome.message}")


def dead_letter_headers(original: Mapping[str, Any] | None, refusal: Refusal, queue: str,
                        failed_at: datetime) -> dict[str, Any]:
    """The headers of a dead-lettered copy: the original's, with the gateway's (and only the latest) added.

    A message that was dead-lettered before, put back by hand and refused again
    carries this refusal only, not a mix of two.
    """
    headers = {k: v for k, v in (original or {}).items() if k not in GATEWAY_HEADERS}
    headers[HEADER_ERROR] = refusal.error
    headers[HEADER_MESSAGE] = refusal.message
    if refusal.details is not None:
        headers[HEADER_DETAILS] = details_header(refusal.details)
    headers[HEADER_STATUS] = refusal.status
    headers[HEADER_QUEUE] = queue
    headers[HEADER_FAILED_AT] = rfc3339(failed_at)
    return headers


def dead_letter_properties(original: BasicProperties, headers: dict[str, Any]) -> BasicProperties:
    """The original message's properties for its dead-lettered copy, with ``headers``, except:

    persistent whatever the original was, and no ``expiration`` (the copy is the only record of
    the event: it must not vanish from the dead-letter queue), and no ``user_id`` (the broker
    refuses one that is not the publishing connection's user; the bridge is not the original
    publisher).
    """
    return BasicProperties(
        content_type=original.content_type, content_encoding=original.content_encoding, headers=headers,
        delivery_mode=2, priority=original.priority, correlation_id=original.correlation_id,
        reply_to=original.reply_to, message_id=original.message_id, timestamp=original.timestamp,
        type=original.type, app_id=original.app_id, cluster_id=original.cluster_id)


def details_header(details: list[dict[str, Any]], limit: int = MAX_DETAILS_HEADER) -> str:
    """The details as compact JSON, cut to whole items within ``limit`` bytes; a last item says how many went."""
    text = _compact(details)
    if len(text.encode()) <= limit:
        return text
    kept = list(details)
    while kept:
        kept.pop()
        note = {"path": "", "message": f"and {len(details) - len(kept)} more", "type": "truncated"}
        text = _compact([*kept, note])
        if len(text.encode()) <= limit:
            return text
    return _compact([{"path": "", "message": f"{len(details)} details, too long to show", "type": "truncated"}])


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def backoff_delay(attempt: int, first: float, cap: float, jitter: float) -> float:
    """Seconds to wait before attempt ``attempt + 1``: doubling from ``first`` up to ``cap``, then
    drawn between half and all of it (``jitter`` in [0, 1)), so that bridges that lost the broker
    together do not all come back in the same instant."""
    full = min(cap, first * 2.0 ** min(attempt, 32))
    return float(full * (0.5 + 0.5 * jitter))


#: The queue argument by which RabbitMQ delivers to one consumer of the queue at a time (its *single active
#: consumer*), whichever connection the others come by, and makes the next one active when it goes
#: (its channel or connection closed, or the broker lost it). RabbitMQ 3.8 and later; a queue argument only
#: (no policy sets it), fixed when the queue is created.
SINGLE_ACTIVE_CONSUMER = "x-single-active-consumer"


def queue_arguments(single_active: bool) -> dict[str, Any] | None:
    """The arguments the ingest queue is declared with: none for one gateway node (as publishers declare
    it); single active consumer in a cluster (``cluster.enabled``), so that of the bridges consuming it on
    every node only one gets messages: queue order stays seq order."""
    return {SINGLE_ACTIVE_CONSUMER: True} if single_active else None


def misdeclared(queue: str, single_active: bool, reply_code: int, reply_text: str) -> str | None:
    """What to tell the operator when, in a cluster, the broker refused to declare the ingest queue because it
    exists without single active consumer (``406 PRECONDITION_FAILED - inequivalent arg``): a state only a
    person can change, retried quietly. None for any other refusal (and for every refusal of a single node:
    it keeps its own wording)."""
    if not single_active or reply_code != 406 or SINGLE_ACTIVE_CONSUMER not in reply_text:
        return None
    return (f"the queue {queue!r} exists without single active consumer ({SINGLE_ACTIVE_CONSUMER}: true), which "
            "a cluster of gateway nodes (cluster.enabled) needs so that one bridge in the whole cluster consumes "
            "it, in order; RabbitMQ cannot change the arguments of an existing queue: once it is drained, delete "
            f"it (rabbitmqctl delete_queue {queue}) and the gateway declares it again, or set a new amqp.queue; "
            "publishers must declare it with the same argument, or not at all. This node consumes nothing from "
            f"it meanwhile (the broker said: {reply_code} {reply_text})")


def connection_name(host: str, port: int, pid: int | None = None) -> str:
    """The ``connection_name`` a bridge shows the broker (management UI, ``rabbitmqctl list_connections``):
    which gateway (its bridge address) and which process."""
    return f"events-gateway bridge {host}:{port} pid {os.getpid() if pid is None else pid}"
