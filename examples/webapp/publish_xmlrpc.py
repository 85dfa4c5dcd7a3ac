"""Publish an event over XML-RPC with the standard library's xmlrpc.client (PHP, Ruby, Java ... alike).

    python examples/webapp/publish_xmlrpc.py [--bridge http://127.0.0.1:8081] [--key example-key-change-me]

POST /RPC2: ``publish(event, data, {"id": ...})`` returns ``{"id", "seq"}``;
``issue_ticket(user, roles, ttl)`` a one-time login for a browser. A mistake
is a fault whose code is the HTTP status the same mistake gets from POST
/events and whose string says what was wrong, field by field.
"""

from __future__ import annotations

import argparse
import sys
import uuid
import xmlrpc.client


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bridge", default="http://127.0.0.1:8081", help="the bridge's base URL")
    parser.add_argument("--key", default="example-key-change-me", help="an API key from gateway.yaml")
    parser.add_argument("--text", default="hello over XML-RPC")
    args = parser.parse_args(argv)

    gateway = xmlrpc.client.ServerProxy(f"{args.bridge}/RPC2", allow_none=True,
                                        headers=[("Authorization", f"Bearer {args.key}")])
    try:
        print(gateway.publish("demo.message", {"room": "lobby", "text": args.text, "author": "publish_xmlrpc.py"},
                              {"id": f"example-{uuid.uuid4().hex}"}))
        print(gateway.issue_ticket("alice", ["staff"], 60))
    except xmlrpc.client.Fault as fault:
        print(f"fault {fault.faultCode}: {fault.faultString}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
