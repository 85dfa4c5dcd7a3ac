"""An accepted event's way to the clients, and the client procedures that shape it.

- ``dispatcher``    the WAMP component: start-up, every registration, the meta events, the authorizer,
                    lifecycle; the procedures' bodies live in the modules below;
- ``publishing``    the per-event path: idempotency, numbering, the event-log write, acknowledged publishes;
- ``results``       what ``gateway.internal.publish`` answers the bridge, typed (``Accepted`` / ``Refused``);
- ``replay``        ``gateway.replay`` and ``gateway.ack`` of persistent subscriptions;
- ``webapp_subscriptions`` the bridge's ``/subscriptions`` (create for a user, list, delete);
- ``housekeeping``  the periodic pruning: ids past the window, retention, orphaned subscriptions;
- ``sequence``      seq numbers, taken from the store in blocks;
- ``sessions``      the table of client sessions (from the router's meta events) and audiences;
- ``subscriptions`` query subscriptions: ``gateway.subscribe`` and friends, grants, the authorizer;
- ``live_queries`` the live query index: which query topics have subscribers, and the topics an
                    event goes to (pure);
- ``persistent``    persistent subscriptions: the book, replay, ack;
- ``rowfilter``     per-class row filters with session parameters.

May import: ``components.events``, ``components.query``, ``components.store``, ``components.auth.policy``
and the shared modules.
"""
