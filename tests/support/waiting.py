"""Waiting for a condition in integration tests: polled, bounded, failing with what was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T | None], timeout: float = 30, what: str = "condition") -> T:
    """``predicate()``'s first truthy value, asked every 0.1 s; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.1)
    raise TimeoutError(f"{what} not reached in {timeout}s")
