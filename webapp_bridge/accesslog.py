"""The bridge's access log: one line per request, naming the API key used (never the key).

    2026-11-28T10:00:00.123Z POST /events 202 key=shop 1.4ms

Lines go to their own file, not through Crossbar's log: a log event per
request relayed through the node controller cost a fifth of single-event
throughput (bench/README.md). They are collected in memory and appended with
one ``write`` every half second (and when the bridge stops), so the bridges
of both containers can share the file without splitting each other's lines.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from twisted.internet.task import LoopingCall

FLUSH_INTERVAL = 0.5


class AccessLog:
    def __init__(self, path: str, clock: Any = None) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._lines: list[str] = []
        self._flusher = LoopingCall(self.flush)
        if clock is not None:
            self._flusher.clock = clock
        self._flusher.start(FLUSH_INTERVAL, now=False)

    def request(self, method: str, path: str, status: int, key: str, ms: float) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self._lines.append(f"{now} {method} {path} {status} key={key} {ms:.1f}ms\n")

    def flush(self) -> None:
        if self._lines:
            data = "".join(self._lines).encode(errors="replace")
            self._lines.clear()
            os.write(self._fd, data)

    def close(self) -> None:
        if self._flusher.running:
            self._flusher.stop()
        self.flush()
        os.close(self._fd)
