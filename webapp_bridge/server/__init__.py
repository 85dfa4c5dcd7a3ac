"""The bridge: the gateway's door for web-apps, a WAMP component in each container worker.

- ``component`` the WAMP side: registration, the dispatcher calls, lifecycle;
- ``http``      the Twisted HTTP adapter (routes, limits, the access log);
- ``api``       the pure rules of ``POST /events`` and friends (status and body for each request);
- ``xmlrpc``    the same API as XML-RPC at ``/RPC2`` (pure);
- ``amqp`` / ``amqp_rules`` RabbitMQ ingest (the pika adapter / its pure decisions);
- ``overload``  the in-flight limit and the API keys' rates (pure: 503 / 429 with Retry-After);
- ``openapi``   the served OpenAPI document; ``accesslog`` the access log file;
- ``counting``  which refusals of events an answer carries, for the metrics (pure);
- ``status``    what ``gateway.status`` reads besides the metrics: the live queries and their subscribers;
- ``handoff``   new connections passed to the bridge beside the active dispatcher;
- ``forward``   the events of the requests a bridge beside a standby serves, sent to that bridge.

May import: ``components.events``, ``components.config``, ``components.uris``, ``components.envelope``,
``components.limits``, ``components.exceptions``, ``components.arguments``, ``components.ratelimit``,
``components.procedures``, ``components.backend`` (the bridge is a component like the others),
``components.sending`` (answers and forwarded frames sent at once),
``components.auth.credentials`` (``POST /tickets``), ``components.auth.policy`` (who may read the
status page: the authorizer's rule), ``components.store`` (the API keys' store thread),
``components.metrics`` (``GET /metrics``, the status page), and of the dispatcher's package only what
it offers the bridge: ``components.delivery.results`` (its typed answers), ``components.delivery.local``
(its publish in the same process), ``components.delivery.coalescing`` (batches that wait together).
Never imports: ``webapp_bridge.proxy``, ``webapp_bridge.django``: the web-app library never imports
this package either.
"""
