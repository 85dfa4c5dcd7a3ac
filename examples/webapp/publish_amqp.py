"""Publish an event through RabbitMQ with pika: the gateway takes it from the queue, even if it is down now.

    python examples/webapp/publish_amqp.py [--amqp amqp://guest:guest@127.0.0.1:5672/%2F] [--queue gateway.events]
                                           [--cluster]

Needs ``amqp.url`` set in gateway.yaml (or env GATEWAY_AMQP_URL) for the
gateway to consume. The body is exactly a POST /events body. The broker
confirms once the message is stored (durable queue, persistent message); the
gateway acknowledges it once the event is accepted, and moves a message it can
never accept to the dead-letter queue (gateway.events.dead) with the error in
its headers. The queue is used as it is when it exists (declared by the gateway);
only a queue nobody declared yet is created, as the gateway's bridges declare
it: with single active consumer when the gateway is a cluster (``--cluster``:
``cluster.enabled`` in gateway.yaml).
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid

import pika


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/%2F", help="the broker's URL")
    parser.add_argument("--queue", default="gateway.events", help="amqp.queue in gateway.yaml")
    parser.add_argument("--text", default="hello over RabbitMQ")
    parser.add_argument("--cluster", action="store_true", help="cluster.enabled is on in gateway.yaml")
    args = parser.parse_args(argv)

    event_id = f"example-{uuid.uuid4().hex}"
    body = {"event": "demo.message", "id": event_id,
            "data": {"room": "lobby", "text": args.text, "author": "publish_amqp.py"}}
    connection = pika.BlockingConnection(pika.URLParameters(args.amqp))
    try:
        channel = connection.channel()
        try:
            # Passively: an existing queue is used as it is (a declaration differing from it would be refused).
            channel.queue_declare(args.queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 404:
                raise
            channel = connection.channel()  # the 404 closed the channel; create the queue as the gateway would
            channel.queue_declare(args.queue, durable=True,
                                  arguments={"x-single-active-consumer": True} if args.cluster else None)
        channel.confirm_delivery()  # basic_publish raises unless the broker stored the message
        channel.basic_publish("", args.queue, json.dumps(body).encode(), pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json", message_id=event_id),
            mandatory=True)
        print(f"queued {event_id} on {args.queue}")
    finally:
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
