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
from twisted.logger import Logger

FLUSH_INTERVAL = 0.5
log = Logger()


class AccessLog:
    def __init__(self, path: str, clock: Any = None) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._lines: list[str] = []
        self._failing = False
        self._flusher = LoopingCall(self.flush)
        if clock is not None:
            self._flusher.clock = clock
        self._flusher.start(FLUSH_INTERVAL, now=False)

    def request(self, method: str, path: str, status: int, key: str, ms: float) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self._lines.append(f"{now} {_safe(method)} {_safe(path)} {status} key={key} {ms:.1f}ms\n")

    def flush(self) -> None:
        if self._lines:
            data = "".join(self._lines).encode(errors="replace")
            self._lines.clear()
            try:
                os.write(self._fd, data)
            except OSError as exc:  # a full disk must not stop the bridge, nor fill its memory
                if not self._failing:
                    log.error("cannot write the access log {path}: {err}; lines are dropped until it can",
                              path=self.path, err=exc.strerror)
                self._failing = True
            else:
                self._failing = False

    def close(self) -> None:
        if self._flusher.running:
            self._flusher.stop()
        self.flush()
        os.close(self._fd)


def _safe(text: str) -> str:
    """The text with spaces and anything unprintable %-escaped: a request cannot forge a line or a column."""
    if text.isprintable() and " " not in text:
        return text
    return "".join(c if c.isprintable() and c != " " else "".join(f"%{b:02X}" for b in c.encode()) for c in text)
