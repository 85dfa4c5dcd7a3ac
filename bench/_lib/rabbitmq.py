"""The machine's RabbitMQ, as the benchmarks that ingest through it use it."""

from __future__ import annotations

import sys

#: The broker on loopback (guest/guest, the default vhost).
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def delete_queues(*queues: str) -> None:
    """Best effort: the run's result stands whatever happens here; say what is left behind."""
    try:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        channel = connection.channel()
        for queue in queues:
            channel.queue_delete(queue)
        connection.close()
    except Exception as exc:
        print(f"# could not delete the queues {', '.join(queues)}: {exc}", file=sys.stderr)
