"""An accepted event's way to the clients, and the client procedures that shape it.

- ``dispatcher``    the WAMP component: start-up, every registration, the meta events, the authorizer,
                    lifecycle; the procedures' bodies live in the modules below;
- ``leadership``    which dispatcher is active: the one holding a ``single`` registration registers what
                    writes or orders; the others stand by and take over when its session ends;
- ``publishing``    the per-event path: idempotency, numbering, the event-log write, acknowledged publishes
                    (marked in the log), and a takeover's publishing of what its predecessor left unpublished;
- ``cluster``       a cluster node's per-event path (one append to the shared log per turn) and its tail of
                    that log (every node publishes every event to its own router, in seq order);
- ``local``         the active dispatcher's publish, offered to the bridge in the same process (no WAMP call);
- ``coalescing``    batches that come while one is worked on go together next (one turn, one look-up);
- ``batching``      which envelopes of a turn share one WAMP event on a batched query topic (pure);
- ``results``       what ``gateway.internal.publish`` answers the bridge, typed (``Accepted`` / ``Refused``);
- ``replay``        ``gateway.replay`` and ``gateway.ack`` of persistent subscriptions;
- ``webapp_subscriptions`` the bridge's ``/subscriptions`` (create for a user, list, delete);
- ``housekeeping``  the periodic pruning: ids past the window, retention, orphaned subscriptions;
- ``sequence``      seq numbers, taken from the store in blocks, the next ahead of need;
- ``sessions``      the table of client sessions (from the router's meta events) and audiences;
- ``subscriptions`` query subscriptions: ``gateway.subscribe`` and friends, grants, the authorizer;
- ``live_queries`` the live query index: which query topics have subscribers, and the topics an
                    event goes to (pure);
- ``persistent``    persistent subscriptions: the book, replay, ack;
- ``rowfilter``     per-class row filters with session parameters (checked at load by
                    ``components.events.row_filters``).

May import: ``components.events``, ``components.query``, ``components.store``, ``components.auth.policy``,
``components.auth.credentials`` (the client token's hash: sessions' and persistent subscriptions'
owners), ``components.metrics`` (what the dispatcher counts), and the shared modules ``components.uris``,
``components.envelope``, ``components.limits``, ``components.config``, ``components.exceptions``,
``components.arguments``, ``components.ratelimit``, ``components.procedures``, ``components.backend``,
``components.sending`` (a turn's publishes sent at once).
"""
