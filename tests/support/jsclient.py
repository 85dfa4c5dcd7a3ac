"""JS clients in Node.js for tests: tests/js/subscribe.mjs as a one-shot subscriber, and ``NodeLines``, a Node
process whose printed lines a test reads as they come."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
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


class NodeLines:
    """``node --experimental-websocket <argv>`` in the repo, its output lines in a queue (read by a thread);
    ``seen``: the lines the test has read so far, in order."""

    def __init__(self, argv: Sequence[str], name: str = "js-client") -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.process = subprocess.Popen(["node", "--experimental-websocket", *argv], cwd=REPO,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, name=name, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_line(self, match: Callable[[str], bool], timeout: float, what: str = "the line awaited") -> str:
        """Read lines until one matches; it is returned."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            self.seen.append(line)
            if match(line):
                return line
        raise TimeoutError(f"the JS client did not print {what} in {timeout} s; it printed: {self.seen}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._reader.join(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
