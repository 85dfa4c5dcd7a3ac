"""The gateway's server side: what runs in the Crossbar node's processes, and the command that runs the node.

One package per responsibility; each package's docstring says what it owns and what it may import
(tests/unit/test_import_rules.py holds them to it). docs/architecture.md maps the tree.

In the container workers (our components, and the bridge, ``webapp_bridge.server``):

- ``events/``   event classes, their validation and the live registry (definitions reloaded in place);
- ``query/``     the subscription query language, stage by stage (pure);
- ``auth/``     who a client is (credential rules, logins, the authenticator) and what it may do (policy);
- ``store/``    the ``Store`` protocol, its SQLite and PostgreSQL implementations and the store threads;
- ``delivery/`` the dispatcher and everything on an accepted event's way to clients;
- ``metrics/``  the Prometheus metrics every container process counts, and their totals for ``GET /metrics``;

in the router worker:

- ``router_guard/`` guards loaded into Crossbar's router as a router component (frame depth, 64-bit
  integers, slow clients, connections per address, disclosure);

in ``gateway run`` (your shell, or a process supervisor), outside the node:

- ``supervision/`` keeps the node serving: starts it, watches its workers, starts it again;

and the shared modules, beside the packages: ``uris`` (every WAMP URI), ``envelope``, ``limits`` (the
edge checks every way in applies to what a client sends: depth before parsing, integers within 64
bits), ``config`` (gateway.yaml), ``nodeconfig`` (Crossbar's node config), ``backend`` (the base of
every component session), ``arguments`` (procedures' signatures, pure), ``ratelimit`` (per-session call
buckets, pure), ``procedures`` (a procedure behind its rate, signature and error boundary),
``exceptions``, ``heap`` (a started process's objects out of the collector's full walks);
``cli`` and ``launcher`` are the ``gateway`` command (``run``, ``check-config``,
``render``), run from your shell.

May import: nothing outside this package. Nothing here imports the web-app library
(``webapp_bridge.proxy``, ``webapp_bridge.django``) nor the bridge component (``webapp_bridge.server``
imports from here, never the other way round), nor ``tests`` or ``bench``. (This rule is the shared
modules'; each package below states its own.)
"""
