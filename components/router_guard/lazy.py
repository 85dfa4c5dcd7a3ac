"""Log arguments formatted when a line is written, not when it is logged (pure: no Crossbar, autobahn or Twisted).

Crossbar's router and autobahn log every routed message at debug level with arguments they format
first: ``hltype(self.processPublish)``, ``hlval(cache_key)``, ``pformat(authorization)`` (terminal
colours through click, pretty-printing). Twisted's logger formats a line only once an observer wants it,
and at the default level none does, but Python evaluates the arguments before the call: 13 % of the
router's samples per event went to lines nobody reads (bench/README.md, Stop 22's profile). ``lazy(fn)``
stands in for such a function: it keeps the arguments and calls ``fn`` only when the value is formatted
(``str``, ``format``, ``repr``), so a line that is written reads as before and one that is not costs a
small object.

Only for names used as log arguments alone: a lazy value is not a ``str`` (``+`` on it fails).
``patches.install`` swaps them in the modules where every call is a log argument (checked by
tests/unit/router_guard/test_lazy.py against the installed sources).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

#: Modules of the router's per-message path whose calls of these names are all log arguments, and the
#: names swapped for lazy ones there (``patches.install``). Not autobahn.websocket.protocol's ``pformat``:
#: its Timings' ``__str__`` returns it.
LAZY_LOG_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "crossbar.router.router": ("pformat", "hlid", "hltype", "hlval"),
    "crossbar.router.broker": ("hlflag", "hlid", "hltype"),
    "crossbar.router.dealer": ("hlflag", "hlid", "hltype"),
    "crossbar.router.session": ("pformat", "hl", "hlid", "hltype", "hlval"),
    "crossbar.router.protocol": ("hlid", "hltype", "hlval"),
    "autobahn.websocket.protocol": ("hltype", "hlval"),
    "autobahn.wamp.websocket": ("hlval",),
    "autobahn.twisted.websocket": ("hltype", "hlval"),
}


class Lazy:
    """``fn(*args, **kwargs)``, called each time it is formatted."""

    __slots__ = ("_fn", "_args", "_kwargs")

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._fn = fn
        self._args = args
        self._kwargs = kwargs

    def value(self) -> Any:
        return self._fn(*self._args, **self._kwargs)

    def __format__(self, spec: str) -> str:
        return format(self.value(), spec)

    def __str__(self) -> str:
        return str(self.value())

    def __repr__(self) -> str:
        return repr(self.value())


def lazy(fn: Callable[..., Any]) -> Callable[..., Lazy]:
    """A stand-in for ``fn`` whose calls return ``Lazy`` values (``fn`` itself if it is one already). A
    ``partial`` of the class: no Python frame of its own per call (a wrapper function cost a tenth of
    what it saved, in the router's profile)."""
    if isinstance(fn, partial) and fn.func is Lazy:
        return fn
    return partial(Lazy, fn)
