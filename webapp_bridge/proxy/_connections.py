"""Connections kept per thread and per process: what makes one proxy safe to share between threads and forks."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any


class Connections:
    """At most one connection per thread (and per process), closed by ``close`` when done with.

    A thread's connection is closed when the thread ends (a server that
    starts a thread per request leaks none) or on ``close_all``. One made
    before a fork (gunicorn's preload) is never used in the child: the child
    sees another pid, opens its own and leaves the parent's alone (closing
    it there would close it for the parent too).
    """

    def __init__(self, close: Callable[[Any], object]) -> None:
        self._close = close
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: weakref.WeakSet[_Held] = weakref.WeakSet()
        self._pid = os.getpid()

    def get(self) -> Any | None:
        """This thread's connection, or None when it has none yet (or it was made in a parent process)."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is None or held.pid != os.getpid():
            return None
        return held.value

    def keep(self, connection: Any) -> None:
        held = _Held(connection, self._close)
        self._local.held = held
        with self._locked():
            self._all.add(held)

    def forget(self, connection: Any) -> None:
        """Stop using this thread's connection (its caller closes it)."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None and held.value is connection:
            held.value = None
            self._local.held = None

    def close_all(self) -> None:
        """Close every connection this process holds, in all threads (they open new ones if used again)."""
        with self._locked():
            everyone = list(self._all)
        self._local.held = None
        for held in everyone:
            held.close()


    def _locked(self) -> threading.Lock:
        """The lock, made anew in a forked child: another thread may have held it at the fork, and
        that thread does not exist in the child to release it."""
        if self._pid != os.getpid():
            self._pid, self._lock = os.getpid(), threading.Lock()
            self._all = weakref.WeakSet()
        return self._lock


class _Held:
    """A connection and the process it belongs to; closes it when the thread holding it ends."""

    __slots__ = ("value", "pid", "_close", "__weakref__")

    def __init__(self, value: Any, close: Callable[[Any], object]) -> None:
        self.value = value
        self.pid = os.getpid()
        self._close = close

    def close(self) -> None:
        value, self.value = self.value, None
        if value is not None and self.pid == os.getpid():
            try:
                self._close(value)
            except Exception:  # best effort: the peer may be gone already
                pass

    def __del__(self) -> None:
        self.close()
