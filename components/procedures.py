"""A procedure's body, wrapped at registration: its rate, its arguments and its failures dealt with in one place.

``checked(signature, body, log, buckets)`` is what a component registers instead of ``body``
(with ``details_arg="details"``). For each call, in this order:

1. **rate**: with ``buckets``, the calling session takes one call from its bucket
   (``components.ratelimit``); none left: ``gateway.error.rate_limited`` saying the limit and
   when to retry (kwargs ``retry_after``);
2. **arguments**: ``signature.bind`` (``components.arguments``); a wrong call:
   ``gateway.error.invalid_argument`` naming the argument and what was expected (kwargs
   ``argument``, ``expected``), logged at debug: the caller's mistake is not ours;
3. **the body**, with the arguments' values in declared order (and ``details=``);
   an ``ApplicationError`` it raises is the caller's answer as it stands; a store that did not
   answer (``StoreUnavailable``) is ``gateway.error.unavailable``, saying so; anything else is our
   bug: logged once with its traceback, and the caller gets ``gateway.error.internal``, which
   says nothing of how the code is built.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallDetails
from twisted.internet.defer import CancelledError
from twisted.logger import Logger

from components import uris
from components.arguments import InvalidArgument, Signature
from components.exceptions import StoreUnavailable
from components.ratelimit import CallBuckets

#: The one message a caller gets for a fault of ours.
INTERNAL_MESSAGE = "the gateway failed to answer this call (its log says why); try again, and report it if it persists"


def checked(signature: Signature, body: Callable[..., Any], log: Logger, buckets: CallBuckets | None = None,
            limit_keys: tuple[str, str] = ("queries.calls_per_second", "queries.call_burst"),
            details: bool = True) -> Callable[..., Awaitable[Any]]:
    """``body`` behind its rate limit, its signature and the error boundary; register it with
    ``details_arg="details"``. ``details``: whether the body takes the ``details=`` keyword."""

    async def invoke(*args: Any, **kwargs: Any) -> Any:
        call: CallDetails | None = kwargs.pop("details", None)
        if buckets is not None and call is not None and call.caller is not None:
            wait = buckets.take(int(call.caller))
            if wait > 0:
                raise rate_limited(buckets, wait, limit_keys)
        try:
            values = signature.bind(args, kwargs)
        except InvalidArgument as exc:
            log.debug("{procedure}: refused a call: {why}", procedure=signature.procedure, why=str(exc))
            named = {k: v for k, v in (("argument", exc.argument), ("expected", exc.expected)) if v is not None}
            raise ApplicationError(uris.ERROR_INVALID_ARGUMENT, str(exc), **named) from None
        try:
            result = body(*values, details=call) if details else body(*values)
            if inspect.isawaitable(result):
                result = await result
        except (ApplicationError, CancelledError):
            raise  # an answer for the caller as it stands; a call the caller (or the router) gave up
        except StoreUnavailable as exc:
            log.warn("{procedure}: {err}", procedure=signature.procedure, err=str(exc))
            raise ApplicationError(uris.ERROR_UNAVAILABLE, f"the gateway's store did not answer; try again later "
                                   f"({exc})") from None
        except Exception:
            log.failure("{procedure} failed", procedure=signature.procedure)
            raise ApplicationError(uris.ERROR_INTERNAL, INTERNAL_MESSAGE) from None
        return result

    invoke.__name__ = invoke.__qualname__ = f"checked {signature.procedure}"
    return invoke


def rate_limited(buckets: CallBuckets, wait: float, keys: tuple[str, str]) -> ApplicationError:
    """The answer to a call past the session's rate."""
    retry_after = round(max(wait, 0.001), 3)
    return ApplicationError(
        uris.ERROR_RATE_LIMITED,
        f"too many calls: a session may make {buckets.rate:g} calls a second, {buckets.burst} in a burst "
        f"({keys[0]}, {keys[1]}); retry in {retry_after:g} s",
        retry_after=retry_after)
