"""Both sides of the web-app link.

- ``proxy/``, ``django/``, ``schemacheck``: the library that runs *inside the web-app*. Standard
  library and PyYAML only (pika for AMQP, Django for ``django``); it never imports ``components`` or
  ``server`` unless the gateway's own classes are installed for local validation.
- ``server/``: the bridge component that runs *inside the gateway's Crossbar node* (HTTP, XML-RPC,
  RabbitMQ ingest). It imports ``components``.

Each subpackage states its own rule. This one's is ``schemacheck``'s, the web-app library's module
here: May import: nothing of ours (the standard library only). Never imports: ``components``,
``webapp_bridge.server``, ``twisted``, ``autobahn``, ``crossbar``.
"""
