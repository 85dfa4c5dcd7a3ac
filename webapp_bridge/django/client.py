"""The process's one GatewayProxy, and the two things Django asks of it: send a change, log a browser in.

The proxy is made at first use from ``settings.GATEWAY`` (under a lock: web
servers run requests in threads) and closed when the process exits or the
setting changes. Sending never raises into the web-app: a change is saved
whether or not the gateway took its event, and a failure is logged on the
``webapp_bridge.django`` logger with the event class and id.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from webapp_bridge.django.registry import gateway_settings

logger = logging.getLogger("webapp_bridge.django")

_lock = threading.Lock()
_proxy: Any = None
_atexit_registered = False


@dataclass(frozen=True)
class Change:
    """One model change's event, made when the change happened and sent once its transaction commits."""

    event: str
    data: dict[str, Any]
    id: str                   # fresh per change: the proxy's retries reuse it, so a retry never duplicates
    audience: Mapping[str, Sequence[str]] | None
    model: str                # "shop.Order", for the log
    pk: Any


def get_proxy() -> Any:
    """The process's GatewayProxy (made now if needed); ImproperlyConfigured if gateway.yaml is unusable."""
    global _proxy, _atexit_registered
    with _lock:
        if _proxy is None:
            from webapp_bridge.proxy import GatewayProxy, ProxyConfigError

            conf = gateway_settings()
            if not conf.config.is_file():
                raise ImproperlyConfigured(f"settings.GATEWAY['CONFIG']: no file {str(conf.config)!r} (the "
                                           "gateway.yaml the gateway runs with)")
            try:
                _proxy = GatewayProxy.from_config(str(conf.config), transport=conf.transport)
            except ProxyConfigError as exc:
                raise ImproperlyConfigured(f"settings.GATEWAY['CONFIG']: {exc}") from exc
            if not _atexit_registered:
                atexit.register(close)
                _atexit_registered = True
        return _proxy


def close() -> None:
    """Close the proxy (the next use makes a new one, from the settings as they are then)."""
    global _proxy
    with _lock:
        proxy, _proxy = _proxy, None
    if proxy is not None:
        try:
            proxy.close()
        except Exception:  # closing is best effort: the process is leaving or the settings changed
            logger.exception("gateway: closing the proxy failed")


def send(change: Change) -> None:
    """Publish ``change``'s event; log, never raise, when that fails (the data is saved already)."""
    from webapp_bridge.proxy import EventRejected, GatewayUnavailable

    where = {"event": change.event, "event_id": change.id, "model": change.model, "pk": change.pk}
    try:
        get_proxy().publish(change.event, change.data, audience=change.audience, id=change.id)
    except EventRejected as exc:
        # A class or data the gateway does not know: the definitions file is behind the models or settings.
        hint = (" Are the event definitions out of date? Run `manage.py gateway_definitions` and let the gateway "
                "reload them.") if exc.code in ("invalid_event", "unknown_event") else ""
        logger.error("gateway: event %s id %s (%s pk=%r) was refused: %s.%s", change.event, change.id,
                     change.model, change.pk, exc, hint, extra=where)
    except GatewayUnavailable as exc:
        logger.error("gateway: event %s id %s (%s pk=%r) was not sent, the gateway is unreachable: %s",
                     change.event, change.id, change.model, change.pk, exc, extra=where)
    except Exception:  # the change is committed: whatever went wrong must not fail the request
        logger.exception("gateway: event %s id %s (%s pk=%r) was not sent", change.event, change.id,
                         change.model, change.pk, extra=where)


def client_config(user: Any) -> dict[str, Any]:
    """What a browser's WAMP client needs: url, realm and, for a logged-in ``user``, a fresh ticket or JWT.

    If the gateway cannot issue a ticket, the error is logged and the browser
    gets no credential (it connects anonymously) rather than no page.
    """
    from webapp_bridge.proxy import ProxyConfigError, ProxyError

    conf = gateway_settings()
    proxy = get_proxy()
    if user is None or not getattr(user, "is_authenticated", False):
        return dict(proxy.client_config())
    user_id = conf.user_id(user)
    if not isinstance(user_id, str) or not user_id:
        raise ImproperlyConfigured(f"settings.GATEWAY['USER_ID'] gave {user_id!r} for user pk={user.pk!r}; "
                                   "it must return the user's id as non-empty text")
    roles = conf.roles(user)
    if isinstance(roles, str) or not all(isinstance(r, str) for r in roles):
        raise ImproperlyConfigured(f"settings.GATEWAY['ROLES'] gave {roles!r} for user {user_id!r}; it must "
                                   "return a list of role names")
    try:
        return dict(proxy.client_config(user=user_id, roles=list(roles), credentials=conf.credentials))
    except ProxyConfigError as exc:
        raise ImproperlyConfigured(f"settings.GATEWAY['CREDENTIALS'] is {conf.credentials!r}: {exc}") from exc
    except ProxyError as exc:
        logger.error("gateway: no %s for user %s, the page connects anonymously: %s", conf.credentials, user_id,
                     exc, extra={"user": user_id})
        return dict(proxy.client_config())
