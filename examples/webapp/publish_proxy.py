"""A Python web-app's side, with the proxy: one import, one call, the transport chosen by gateway.yaml.

    python examples/webapp/publish_proxy.py [--config gateway.yaml]
    GATEWAY_PROXY_TRANSPORT=xmlrpc python examples/webapp/publish_proxy.py
    GATEWAY_PROXY_TRANSPORT=amqp GATEWAY_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F \
        python examples/webapp/publish_proxy.py

The code is the same whichever transport proxy.transport names (http,
xmlrpc or amqp). Events are checked here, against the same event classes the
gateway loads, before anything is sent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from webapp_bridge.proxy import EventRejected, GatewayProxy

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", default=str(REPO / "gateway.yaml"), help="the shared gateway.yaml")
    parser.add_argument("--text", default="hello from the proxy")
    args = parser.parse_args(argv)

    with GatewayProxy.from_config(args.config) as proxy:
        print(proxy.publish("demo.message", {"room": "lobby", "text": args.text, "author": "publish_proxy.py"}))

        # An event class written in Python is published as an instance (pydantic checks it as it is built).
        try:
            from examples.demo_events import Customer, Order
        except ImportError:  # pydantic is not installed: the same event as a name and a dict
            order: object = ("demo.order", {"order_id": 1, "amount": 250.0, "country": "AR", "tags": ["gift"],
                                            "customer": {"id": 7, "name": "Ann"}})
            print(proxy.publish(*order))  # type: ignore[misc]
        else:
            print(proxy.publish(Order(order_id=1, amount=250.0, country="AR", tags=["gift"],
                                      customer=Customer(id=7, name="Ann"))))

        # Checked before sending: nothing reaches the gateway.
        try:
            proxy.publish("demo.message", {"room": "lobby"})
        except EventRejected as exc:
            print("refused:", exc)

        # Several at once: one outcome per item, in order.
        print(proxy.publish_many([("demo.message", {"room": "lobby", "text": f"#{i}", "author": "batch"})
                                  for i in range(3)]))

        # A one-time login for a browser (give it to the JS client).
        print(proxy.ticket("alice", roles=["staff"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
