"""Publish an event over HTTP with nothing but the standard library (any language can do this).

    python examples/webapp/publish_http.py [--bridge http://127.0.0.1:8081] [--key example-key-change-me]

POST /events with the API key as a Bearer token; the answer is 202 with the
event's id and seq. The "id" makes a retry safe: posted twice, the event is
accepted once.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
import uuid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bridge", default="http://127.0.0.1:8081", help="the bridge's base URL")
    parser.add_argument("--key", default="example-key-change-me", help="an API key from gateway.yaml")
    parser.add_argument("--text", default="hello over HTTP")
    args = parser.parse_args(argv)

    body = {"event": "demo.message", "id": f"example-{uuid.uuid4().hex}",
            "data": {"room": "lobby", "text": args.text, "author": "publish_http.py"}}
    request = urllib.request.Request(f"{args.bridge}/events", data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {args.key}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            print(response.status, json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        # 400: what was wrong, field by field; 404: no such event class; 503: retry with the same id.
        print(exc.code, json.loads(exc.read()), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
