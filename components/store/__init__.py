"""Where the gateway keeps what must outlive a process.

- ``base``      the ``Store`` protocol, its records and ``open_store`` (the one place that picks an
                implementation from ``store:`` in gateway.yaml);
- ``sqlite``    the embedded default (one SQLite file, WAL);
- ``postgres``  PostgreSQL (psycopg 3), for several containers or nodes on one database;
- ``thread``    the store threads: each one connection, work queued from the reactor, answered as Deferreds
                (the only way components reach the store);
- ``guard``     no statement on a reactor thread: both stores refuse one (``StoreOnReactorThread``).

May import: ``components.config``, ``components.exceptions``, and of the metrics only the pure meter
the store threads time their work with: ``components.metrics.families``, ``components.metrics.meter``,
``components.metrics.process_meter`` (``components.metrics.keeper`` saves its totals in the store, so
the store must not depend on it). Twisted in ``thread`` and ``guard`` only. Nothing here knows of WAMP.
Never imports: ``autobahn``, ``crossbar``.
"""

from components.store.base import DuplicateId, LoggedEvent, PersistentSubscription, Store, open_store

__all__ = ["DuplicateId", "LoggedEvent", "PersistentSubscription", "Store", "open_store"]
