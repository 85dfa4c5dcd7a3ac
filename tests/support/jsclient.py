"""Run tests/js/subscribe.mjs (autobahn-js in Node.js) as a subscriber for a test."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

from tests.support.harness import REPO


def js_subscriber_receives(ws_url: str, topic: str, count: int, while_ready: Callable[[], None]) -> list[Any]:
    """Start the JS subscriber on ``topic`` (or ``query:<query>``), call ``while_ready`` once it is
    subscribed, and return the ``count`` envelopes it received. The process never outlives the call."""
    proc = subprocess.Popen(
        ["node", "--experimental-websocket", "tests/js/subscribe.mjs", ws_url, "gateway", topic, str(count)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        if first != "READY":
            proc.kill()
            raise AssertionError(f"the JS subscriber did not start: {first} {proc.communicate()[1]}")
        while_ready()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    return [json.loads(line) for line in out.splitlines()]
