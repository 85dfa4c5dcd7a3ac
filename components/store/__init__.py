"""Where the gateway keeps what must outlive a process.

- ``base``      the ``Store`` protocol, its records and ``open_store`` (the one place that picks an
                implementation from ``store:`` in gateway.yaml);
- ``sqlite``    the embedded default (one SQLite file, WAL);
- ``postgres``  PostgreSQL (psycopg 3), for several containers or nodes on one database;
- ``thread``    the store threads: each one connection, work queued from the reactor, answered as Deferreds
                (the only way components reach the store);
- ``guard``     no statement on a reactor thread: both stores refuse one (``StoreOnReactorThread``).

May import: ``components.config`` and ``components.exceptions`` only (and Twisted, in ``thread`` and
``guard``). Nothing here knows of WAMP.
"""

from components.store.base import DuplicateId, LoggedEvent, PersistentSubscription, Store, open_store

__all__ = ["DuplicateId", "LoggedEvent", "PersistentSubscription", "Store", "open_store"]
