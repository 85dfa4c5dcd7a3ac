"""What the tests share: a real node on free ports (``harness``), WAMP test clients (``wamp``,
``rawwamp``, ``jsclient``) and RabbitMQ helpers (``amqp``). Typed and checked by mypy like the code.

May import: ``components.config``, ``components.nodeconfig``, ``components.cli`` (a node is configured,
rendered and started as ``gateway run`` does). The tests themselves (``tests.unit``,
``tests.integration``) and ``bench`` import this, not the other way round. Never imports:
``autobahn.twisted`` (the test clients are autobahn's asyncio side, and txaio takes one framework per
process).
"""
