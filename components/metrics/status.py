"""What ``gateway.status`` answers the status page: the node's metrics (the numbers ``GET /metrics`` gives)
shaped for people, with what the bridge read beside them. Pure: series in, a JSON-able dict out.

The page polls it every second and makes the rates itself, from the difference between two answers:
the counters are the node's totals, the same whichever bridge answers, and never go back. Nothing is
computed here that ``/metrics`` does not expose, except the health verdict, which reads those numbers.

The answer (every figure a number; a family with no series yet is empty, never missing)::

    {"time", "answered_by", "metrics_enabled",
     "events": {"accepted": {class: n}, "duplicate": {class: n}, "refused": {reason: n}} | null,
     "ingest": {transport: {"count", "seconds"}} | null,   (null: metrics off, or the store did not answer)
     "sessions": {role: n}, "live_queries": {"count", "busiest": [{"query", "topic", "subscribers"}], ...},
     "persistent_subscriptions": n | null, "event_log": {"rows", "by_class", "counted_at"},
     "dispatchers": {"active", "standby"}, "authenticators": n,
     "bridges": {"count", "amqp": {state: n}}, "amqp_messages": {outcome: n} | null,
     "definitions": {"versions": [...], "reloads": {outcome: n}},
     "processes": {label: {"cpu_seconds", "rss_bytes"}}, "health": {"ok", "problems": [...]},
     "cluster": {"node", "store", "skipped", "head", "nodes": [{"name", "this", "seen", "heard_of", "cursor",
                 "behind"}]} | null}   (null: a single node, or no dispatcher answered: ``cluster_panel``)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.metrics.families import (AMQP_CONSUMERS, AMQP_MESSAGES, DEFINITIONS_INFO, DISPATCHERS,
                                         EVENT_LOG_ROWS, EVENTS_ACCEPTED, EVENTS_DUPLICATE, EVENTS_REFUSED,
                                         INGEST_DURATION, LIVE_QUERIES, PERSISTENT_SUBSCRIPTIONS, PROCESS_CPU,
                                         PROCESS_RSS, RELOADS, SESSIONS)
from components.metrics.meter import SeriesKey

#: How many live queries the page lists (the busiest first).
BUSIEST = 10
#: States of a bridge's RabbitMQ consumer that take messages (``paused``: at its in-flight limit for a while).
CONSUMING = frozenset({"connected", "paused"})


@dataclass(frozen=True)
class LiveQuery:
    """A query topic with subscribers on the router, and its canonical query (None: the store lost it)."""

    topic: str
    query: str | None
    subscribers: int


@dataclass(frozen=True)
class Seen:
    """What the bridge read besides the metrics, at the same moment."""

    #: The container that answered (``components-1``).
    answered_by: str
    #: Seconds since the epoch.
    time: float
    #: Dispatcher-counted figures of the store (``gateway.internal.stats``): ``{"event_log": {"rows",
    #: "by_class", "counted_at"}, "persistent_subscriptions"}``, with ``"cluster"`` (its view of the cluster)
    #: on a cluster node; None when no dispatcher answered.
    stats: Mapping[str, Any] | None = None
    #: Authenticators registered (none: no client can log in).
    authenticators: int = 0
    #: The live queries whose subscribers were counted (``busiest`` keeps the most subscribed).
    queries: Sequence[LiveQuery] = ()
    #: Live query topics the router holds; queries counted (fewer when there were too many to count).
    queries_live: int = 0
    queries_counted: int = 0
    #: Whether RabbitMQ ingest is configured (amqp.url): then some bridge must consume.
    amqp: bool = False
    #: Whether the store answered what the bridge asked it (the saved totals, the queries' texts).
    store_ok: bool = True


def status_payload(counters: Mapping[SeriesKey, float] | None, gauges: Mapping[SeriesKey, float], seen: Seen,
                   metrics_enabled: bool = True, busiest: int = BUSIEST) -> dict[str, Any]:
    """The status page's figures from the node's totals (``NodeTotals.counters`` and the gauges ``GET
    /metrics`` exposes) and what the bridge read beside them. ``counters`` None: the totals could not be
    made (the store did not answer for the saved ones): the counted figures are null, as with metrics off,
    rather than lower than an earlier answer's."""
    counted = metrics_enabled and counters is not None
    totals: Mapping[SeriesKey, float] = counters if counters is not None else {}
    stats = seen.stats if isinstance(seen.stats, Mapping) else {}
    found = stats.get("event_log")
    log: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    dispatchers = by_label(gauges, DISPATCHERS, "state")
    amqp_states = {state: int(n) for state, n in by_label(gauges, AMQP_CONSUMERS, "state").items() if n}
    versions = sorted(v for v, n in by_label(gauges, DEFINITIONS_INFO, "version").items() if n)
    processes: dict[str, dict[str, float]] = {}
    for label, cpu in by_label(gauges, PROCESS_CPU, "process").items():
        processes.setdefault(label, {})["cpu_seconds"] = cpu
    for label, rss in by_label(gauges, PROCESS_RSS, "process").items():
        processes.setdefault(label, {})["rss_bytes"] = rss
    ranked = sorted(seen.queries, key=lambda q: (-q.subscribers, q.query or "", q.topic))[:busiest]
    payload: dict[str, Any] = {
        "time": seen.time,
        "answered_by": seen.answered_by,
        "metrics_enabled": metrics_enabled,
        "events": {
            "accepted": by_label(totals, EVENTS_ACCEPTED, "event"),
            "duplicate": by_label(totals, EVENTS_DUPLICATE, "event"),
            "refused": by_label(totals, EVENTS_REFUSED, "reason"),
        } if counted else None,
        "ingest": _ingest(totals) if counted else None,
        "sessions": {role: int(n) for role, n in by_label(gauges, SESSIONS, "role").items()},
        "live_queries": {
            "count": int(_value(gauges, LIVE_QUERIES) or 0),
            "busiest": [{"query": q.query, "topic": q.topic, "subscribers": q.subscribers} for q in ranked],
            "topics": seen.queries_live,
            "counted": seen.queries_counted,
        },
        "persistent_subscriptions": _int_or_none(_value(gauges, PERSISTENT_SUBSCRIPTIONS)),
        "event_log": {
            "rows": _int_or_none(_value(gauges, EVENT_LOG_ROWS)),
            "by_class": {str(k): int(v) for k, v in log.get("by_class", {}).items()
                         if isinstance(v, (int, float))} if isinstance(log.get("by_class"), Mapping) else {},
            "counted_at": log.get("counted_at") if isinstance(log.get("counted_at"), (int, float, str)) else None,
        },
        "dispatchers": {"active": int(dispatchers.get("active", 0)), "standby": int(dispatchers.get("standby", 0))},
        "authenticators": seen.authenticators,
        "bridges": {"count": sum(amqp_states.values()), "amqp": amqp_states},
        "amqp_messages": by_label(totals, AMQP_MESSAGES, "outcome") if counted else None,
        "definitions": {"versions": versions, "reloads": by_label(totals, RELOADS, "outcome")
                        if counted else {}},
        "processes": dict(sorted(processes.items())),
        "cluster": cluster_panel(stats.get("cluster")),
    }
    payload["health"] = health(payload, seen.amqp, seen.store_ok)
    return payload


#: The problem the health list shows when the store did not answer the bridge.
STORE_UNAVAILABLE = ("store unavailable: the event counts and the queries' texts cannot be read "
                     "(what the router and the dispatchers know is shown)")


def health(payload: Mapping[str, Any], amqp: bool, store_ok: bool = True) -> dict[str, Any]:
    """The verdict on a status payload: ``ok`` when an event posted now would be accepted and delivered,
    and the problems an operator should look at (``ok`` may hold with problems: a lost standby)."""
    problems: list[str] = []
    down = False
    if payload["dispatchers"]["active"] < 1:
        problems.append("no active dispatcher: no event can be accepted")
        down = True
    elif payload["dispatchers"]["standby"] < 1:
        problems.append("no standby dispatcher: one more failure stops the gateway (a container died?)")
    if payload["authenticators"] < 1:
        problems.append("no authenticator: no client can connect")
        down = True
    if len(payload["definitions"]["versions"]) > 1:
        problems.append("components run different versions of the event definitions: "
                        + ", ".join(payload["definitions"]["versions"]))
    states = payload["bridges"]["amqp"]
    if amqp and not any(s in CONSUMING for s in states):
        problems.append("no bridge consumes the RabbitMQ queue (consumers: "
                        + (", ".join(f"{s} {n}" for s, n in sorted(states.items())) or "none") + ")")
    if not store_ok:
        problems.append(STORE_UNAVAILABLE)
    if (payload.get("cluster") or {}).get("store") is False:  # as /healthz: it takes no event it cannot order
        problems.append(CLUSTER_STORE_UNREACHABLE)
        down = True
    return {"ok": not down, "problems": problems}


#: The problem the health list shows when a cluster node's dispatcher cannot reach the shared store.
CLUSTER_STORE_UNREACHABLE = ("this cluster node cannot reach the shared store: it takes no events until it can "
                             "(docs/cluster.md)")


def cluster_panel(view: Any) -> dict[str, Any] | None:
    """The status page's Cluster panel from a cluster node's view of the cluster (``gateway.internal.stats``'s
    ``cluster``: ``components.delivery.cluster.LogTail.status``); None on a single node (no view) or when no
    dispatcher answered. Every node, by name, this one marked (``this``): whether it is seen (heard of
    through the shared store within 10 s), seconds since heard of, its place in the shared log and how many
    events it is behind the most advanced node (``head``, the largest place listed). This node's place is
    what its router acknowledged, from memory; the others' are as of their last heartbeat. Before this
    node's first heartbeat it is listed all the same, not heard of yet."""
    if not isinstance(view, Mapping) or not isinstance(view.get("node"), str):
        return None
    me = view["node"]
    mine = _count_or_none(view.get("acknowledged"))
    places: dict[str, dict[str, Any]] = {}
    found = view.get("nodes")
    for node in found if isinstance(found, Sequence) and not isinstance(found, str) else ():
        if not isinstance(node, Mapping) or not isinstance(node.get("name"), str):
            continue
        heard_of = node.get("heard_of")
        heard = float(heard_of) if isinstance(heard_of, (int, float)) and not isinstance(heard_of, bool) else None
        places[node["name"]] = {"name": node["name"], "this": node["name"] == me, "seen": node.get("seen") is True,
                                "heard_of": heard, "cursor": _count_or_none(node.get("cursor"))}
    if me not in places:
        places[me] = {"name": me, "this": True, "seen": False, "heard_of": None, "cursor": None}
    if mine is not None:  # fresher than what its last heartbeat saved
        cursor = places[me]["cursor"]
        places[me]["cursor"] = mine if cursor is None else max(cursor, mine)
    cursors = [p["cursor"] for p in places.values() if p["cursor"] is not None]
    head = max(cursors) if cursors else None
    nodes = [{**p, "behind": None if p["cursor"] is None or head is None else head - p["cursor"]}
             for _, p in sorted(places.items())]
    store = view.get("store")
    return {"node": me, "store": store if isinstance(store, bool) else None,
            "skipped": _count_or_none(view.get("skipped")) or 0, "head": head, "nodes": nodes}


def by_label(series: Mapping[SeriesKey, float], name: str, label: str) -> dict[str, float]:
    """``{label value: value}`` of the series of ``name``, summed over their other labels."""
    out: dict[str, float] = {}
    for (series_name, labels), value in series.items():
        if series_name != name:
            continue
        key = json.loads(labels).get(label)
        if isinstance(key, str):
            out[key] = out.get(key, 0.0) + value
    return dict(sorted(out.items()))


def _ingest(counters: Mapping[SeriesKey, float]) -> dict[str, dict[str, float]]:
    counts = by_label(counters, INGEST_DURATION + "_count", "transport")
    sums = by_label(counters, INGEST_DURATION + "_sum", "transport")
    return {t: {"count": counts[t], "seconds": sums.get(t, 0.0)} for t in counts}


def _value(series: Mapping[SeriesKey, float], name: str) -> float | None:
    return series.get((name, "{}"))


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(value)


def _count_or_none(value: Any) -> int | None:
    """A count from another process's answer: a whole number, else None."""
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
