"""The rule that no store statement runs on the reactor thread, checked where statements are made.

A statement on the reactor thread holds up everything else in its process for its round trip
(with PostgreSQL, a network round trip: no publish, no HTTP answer, no meta event meanwhile).
Components therefore reach the store only through a store thread (``components.store.thread``);
both store implementations call ``off_the_reactor()`` before every statement, so that a call
that slipped onto the reactor thread fails at once, in the tests and in production alike,
instead of slowing everything down unnoticed (as Django refuses ORM calls from async code).

Outside a running reactor (the command line, unit tests, tools) every thread is off it.
"""

from __future__ import annotations

from twisted.python import threadable

from components.exceptions import StoreOnReactorThread


def off_the_reactor() -> None:
    """Raise StoreOnReactorThread if called on the thread of a running Twisted reactor."""
    if threadable.isInIOThread():
        raise StoreOnReactorThread(
            "a store statement on the reactor thread would hold up everything else in this process for its "
            "round trip; run it on a store thread (components.store.thread.StoreThread.run)")
