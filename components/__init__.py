"""The gateway's server side: everything that runs inside the Crossbar node's container workers.

One package per responsibility; each package's docstring says what it owns and what it may import.

- ``events/``   event classes, their validation and the live registry (definitions reloaded in place);
- ``query/``     the subscription query language, stage by stage (pure);
- ``auth/``     who a client is (credential rules, logins, the authenticator) and what it may do (policy);
- ``store/``    the ``Store`` protocol, its SQLite and PostgreSQL implementations and the store thread;
- ``delivery/`` the dispatcher and everything on an accepted event's way to clients;
- the shared modules: ``uris`` (every WAMP URI), ``envelope``, ``limits`` (the edge checks every way in
  applies to what a client sends: depth before parsing, integers within 64 bits), ``config`` (gateway.yaml),
  ``nodeconfig`` (Crossbar's node config), ``backend`` (the base of every component session),
  ``arguments`` (procedures' signatures, pure), ``ratelimit`` (per-session call buckets, pure),
  ``procedures`` (a procedure behind its rate, signature and error boundary),
  ``exceptions``, ``cli`` and ``launcher`` (the ``gateway`` command).

Nothing here imports the web-app library (``webapp_bridge.proxy``, ``webapp_bridge.django``); the
bridge component (``webapp_bridge.server``) imports from here, never the other way round.
"""
