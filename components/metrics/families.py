"""Every metric family the gateway exposes: its name, its type and what it means (``docs/operations.md``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge", "histogram", "info"]


@dataclass(frozen=True)
class Family:
    name: str
    kind: Kind
    help: str


EVENTS_ACCEPTED = "gateway_events_accepted_total"
EVENTS_DUPLICATE = "gateway_events_duplicate_total"
EVENTS_REFUSED = "gateway_events_refused_total"
INGEST_DURATION = "gateway_ingest_duration_seconds"
PUBLISHES = "gateway_publishes_total"
MATCH_DURATION = "gateway_match_duration_seconds"
SESSIONS = "gateway_sessions"
LIVE_QUERIES = "gateway_live_queries"
PERSISTENT_SUBSCRIPTIONS = "gateway_persistent_subscriptions"
REPLAYED_EVENTS = "gateway_replayed_events_total"
REPLAY_TRUNCATIONS = "gateway_replay_truncations_total"
LOGINS = "gateway_logins_total"
RELOADS = "gateway_reloads_total"
DEFINITIONS_INFO = "gateway_definitions_info"
STORE_DURATION = "gateway_store_duration_seconds"
EVENT_LOG_ROWS = "gateway_event_log_rows"
AMQP_MESSAGES = "gateway_amqp_messages_total"
AMQP_CONSUMERS = "gateway_amqp_consumers"
DISPATCHERS = "gateway_dispatchers"
HANDOFF = "gateway_handoff_connections_total"
FORWARDED = "gateway_forwarded_requests_total"
CLUSTER_NODES = "gateway_cluster_nodes"
CLUSTER_BEHIND = "gateway_cluster_behind_events"
CLUSTER_SKIPPED = "gateway_cluster_skipped_total"
PROCESS_CPU = "gateway_process_cpu_seconds_total"
PROCESS_RSS = "gateway_process_resident_memory_bytes"

FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family(EVENTS_ACCEPTED, "counter", "Events accepted (published), by event class."),
    Family(EVENTS_DUPLICATE, "counter", "Events answered as duplicates of an id accepted before, by event class."),
    Family(EVENTS_REFUSED, "counter", "Events (or ingest requests) refused, by the error code the caller got."),
    Family(INGEST_DURATION, "histogram", "Seconds from an ingest request in to its answer, by transport."),
    Family(PUBLISHES, "counter", "Publishes to the router: class topics, query topics and batched query topics (one per batch)."),
    Family(MATCH_DURATION, "histogram", "Seconds the live query index took to match one event."),
    Family(SESSIONS, "gauge", "Connected client sessions, by WAMP role."),
    Family(LIVE_QUERIES, "gauge", "Query topics with at least one subscriber."),
    Family(PERSISTENT_SUBSCRIPTIONS, "gauge", "Persistent subscriptions in the store."),
    Family(REPLAYED_EVENTS, "counter", "Events handed out by gateway.replay."),
    Family(REPLAY_TRUNCATIONS, "counter", "Replays that could not give every missed event (retention dropped some)."),
    Family(LOGINS, "counter", "Client logins, by method (anonymous, ticket, jwt, token) and outcome."),
    Family(RELOADS, "counter", "Reloads of the event definitions by a component, by outcome."),
    Family(DEFINITIONS_INFO, "gauge", "1 for each version of the event definitions a component runs."),
    Family(STORE_DURATION, "histogram", "Seconds a unit of store work took on a store thread, by operation."),
    Family(EVENT_LOG_ROWS, "gauge", "Events in the event log, as the active dispatcher last counted them."),
    Family(AMQP_MESSAGES, "counter", "RabbitMQ messages consumed, by outcome (accepted, dead_lettered, retried)."),
    Family(AMQP_CONSUMERS, "gauge", "Bridges by the state of their RabbitMQ consumer (off, consuming, standby, ...)."),
    Family(DISPATCHERS, "gauge", "Live dispatchers, by state (active, standby)."),
    Family(HANDOFF, "counter", "HTTP connections a bridge passed to the bridge beside the active dispatcher, and what "
           "that one did with them, by outcome (passed, taken, returned, lost); kept-alive connections moved between "
           "requests (given: by the busy bridge beside the active dispatcher; called: back to it)."),
    Family(FORWARDED, "counter", "Requests whose events a bridge beside a standby dispatcher sent to the bridge beside the "
           "active one, by outcome (answered; again: sent over WAMP instead, the same ids, as their answer did not come or "
           "they could not be framed)."),
    Family(CLUSTER_NODES, "gauge", "A cluster's nodes as this node sees them, by state (seen: heard of within 10 s; unseen)."),
    Family(CLUSTER_BEHIND, "gauge", "Events of the shared log this node's router has not acknowledged yet, behind the most "
           "advanced node's place."),
    Family(CLUSTER_SKIPPED, "counter", "Events the shared log dropped before this node delivered them (it fell behind)."),
    Family(PROCESS_CPU, "counter", "CPU seconds of each process of the node (resets when the process restarts)."),
    Family(PROCESS_RSS, "gauge", "Resident memory of each process of the node, in bytes."),
)}
