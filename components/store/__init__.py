"""Where the gateway keeps what must outlive a process.

- ``base``      the ``Store`` protocol, its records and ``open_store`` (the one place that picks an
                implementation from ``store:`` in gateway.yaml);
- ``sqlite``    the embedded default (one SQLite file, WAL);
- ``postgres``  PostgreSQL (psycopg 3), for several containers or nodes on one database;
- ``thread``    the store thread: one connection, work queued from the reactor, answered as Deferreds.

May import: ``components.config`` and ``components.exceptions`` only. Nothing here knows of WAMP.
"""

from components.store.base import DuplicateId, LoggedEvent, PersistentSubscription, Store, open_store

__all__ = ["DuplicateId", "LoggedEvent", "PersistentSubscription", "Store", "open_store"]
