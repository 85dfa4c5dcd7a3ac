"""An accepted event's way to the clients, and the client procedures that shape it.

- ``dispatcher``    the WAMP component: registration, leadership, lifecycle (the procedures' bodies
                    live in the modules below);
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
