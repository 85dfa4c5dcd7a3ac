"""Which refusals of events an ingest answer carries: what ``gateway_events_refused_total{reason}`` counts.

Pure. The bridge counts each answer of ``POST /events``, ``/events/batch`` and ``/RPC2`` as the caller
got it (``component._count_answer``), by the error code the caller read:

- a JSON answer of 400 and above: one refusal, its ``error`` (a request refused whole: bad JSON, a bad
  key, overloaded, ...);
- a batch's 200: one per item refused in place;
- an XML-RPC answer (always HTTP 200, XML) says its refusals itself (``Answer.refusals``, set by
  ``xmlrpc.Plan.answer`` and ``overload.as_fault``): the faults of ``publish`` and ``publish_batch``
  (and a batch's items refused in place), a call that could not be read, a multicall refused whole for
  its size, a refusal at the door (overloaded, rate limited). Not counted: faults of other methods
  (an unknown method, introspection, ``issue_ticket``, like ``POST /tickets``), which refuse no event.
"""

from __future__ import annotations

from webapp_bridge.server.api import Answer


def refusals(answer: Answer) -> list[str]:
    """The error code of each event (or ingest request) this answer refuses, in order."""
    if answer.refusals is not None:
        return list(answer.refusals)
    if answer.raw is not None:
        return []  # a body of another format that does not say: nothing refused that we know of
    if answer.status >= 400:
        return [str(answer.body.get("error", answer.status))]
    results = answer.body.get("results") if answer.status == 200 else None
    if isinstance(results, list):  # a batch: each item refused in place
        return [str(r["error"]) for r in results if isinstance(r, dict) and "error" in r]
    return []
