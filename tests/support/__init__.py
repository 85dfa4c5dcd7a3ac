"""What the tests share: a real node on free ports (``harness``), WAMP test clients (``wamp``,
``rawwamp``, ``jsclient``) and RabbitMQ helpers (``amqp``). Typed and checked by mypy like the code."""
