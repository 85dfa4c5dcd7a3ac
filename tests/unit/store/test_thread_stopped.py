"""components.store.thread: work asked of a stopped store thread fails at once instead of never answering."""

from __future__ import annotations

from typing import Any

from components.exceptions import StoreUnavailable
from components.store.thread import StoreThread


def never_opened() -> Any:
    raise AssertionError("a stopped thread opens no store")


def test_work_asked_after_stop_fails_at_once_as_unavailable() -> None:
    """Twisted's ThreadPool drops work given after stop() without a word: the Deferred would never fire,
    and whoever waits on it (a batch holding the dispatcher's turn) would wait for ever (review of issue 16)."""
    thread = StoreThread(never_opened, name="test-stopped")
    thread.stop()
    got: list[Any] = []
    thread.run(lambda store: store).addBoth(got.append)
    assert len(got) == 1 and got[0].check(StoreUnavailable), got
    assert "has stopped" in str(got[0].value)
