"""Batched delivery: which envelopes of a turn go together in one WAMP event.

A subscriber that called ``gateway.subscribe(query, batch=True)`` subscribes to the query's batched
topic (``gateway.batch.query.<key>``), where one WAMP event carries one or more envelopes, one per
positional argument, in seq order. Batches form under load only, with no timer: the events of one
turn of the ``Publisher`` (the requests that waited for it together, ``coalescing``) that go to the
same batched topic are published together; at a low rate a turn holds one event, and a batch is
that one envelope, sent as soon as it would be unbatched.

Events that reach different sessions never share a batch: a batch is a maximal run of
*consecutive* deliveries to its topic (in seq order) with the same restriction (audience,
visibility) and the same excluded sessions. A change starts a new batch, so that every subscriber
still gets its envelopes in seq order: batches of one topic are published in the order they begin.
A batch also ends at ``most`` envelopes or once its envelopes' data weigh ``budget`` bytes (one
envelope alone may weigh more), so that a turn of large events does not make one huge message.

Pure: deliveries in, ordered batches out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.delivery.sessions import Restriction

#: Envelopes in one batched event at most.
MOST = 500
#: What the data of one batch's envelopes weigh at most, as JSON (bytes); one envelope alone may weigh more.
BUDGET = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Delivery:
    """One envelope due to one batched topic, for whom ``restriction`` allows but ``exclude``."""

    topic: str
    restriction: Restriction
    exclude: Sequence[int]
    envelope: dict[str, Any]
    #: What its data weighs (bytes of JSON), for ``budget``.
    size: int
    #: Whose acknowledgement waits for the batch it lands in (the event's index in its turn).
    member: int


@dataclass(slots=True)
class Batch:
    """Envelopes published together to ``topic``, in seq order, as one WAMP event."""

    topic: str
    restriction: Restriction
    exclude: Sequence[int]
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    #: The ``member`` of each envelope's delivery (whose acknowledgement waits for this batch).
    members: list[int] = field(default_factory=list)
    size: int = 0


def group(deliveries: Iterable[Delivery], most: int = MOST, budget: int = BUDGET) -> list[Batch]:
    """The batches of a turn's deliveries (given in seq order), in the order to publish them.

    Per topic, consecutive deliveries with equal restrictions and exclusions go together (up to
    ``most`` envelopes and ``budget`` bytes); the batches are ordered by their first delivery, so
    each topic's batches come in seq order.
    """
    if most < 1 or budget < 1:
        raise ValueError("most and budget must be at least 1")
    batches: list[Batch] = []
    open_: dict[str, Batch] = {}
    for d in deliveries:
        batch = open_.get(d.topic)
        if (batch is None or batch.restriction != d.restriction or batch.exclude != d.exclude
                or len(batch.envelopes) >= most or batch.size + d.size > budget):
            batch = open_[d.topic] = Batch(d.topic, d.restriction, d.exclude)
            batches.append(batch)
        batch.envelopes.append(d.envelope)
        batch.members.append(d.member)
        batch.size += d.size
    return batches
