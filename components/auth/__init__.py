"""Who a client is and what it may do.

- ``credentials``  pure rules: tickets, HS256 JWTs, client tokens (no I/O);
- ``logins``       those rules applied with the store (one login, start to end; runs on a store thread);
- ``authenticator`` the WAMP component the router asks about every connecting client;
- ``policy``       the pure authorization rules behind ``gateway.authorize``.

May import: ``components.events``, ``components.store``, ``components.metrics`` (the authenticator
counts logins and store waits, as every component does), and the shared modules ``components.uris``,
``components.config``, ``components.exceptions``, ``components.arguments``, ``components.ratelimit``,
``components.procedures``, ``components.backend``. Never ``delivery`` (it imports ``policy``).
"""
