"""Model saves and deletes as events: post_save and post_delete, sent when the transaction commits.

The data is taken when the change happens (a deleted row is gone by commit
time, and a later save in the same transaction must not change an earlier
event), and sent by ``transaction.on_commit``: a transaction that rolls back
sends nothing. Each change gets its own event id then, so the proxy's
retries of it are accepted once.

What sends no signal sends no event: ``QuerySet.update()``,
``bulk_create()``, ``bulk_update()``, raw SQL, and fixture loading
(``loaddata``, whose saves are "raw").
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save

from webapp_bridge.django.client import Change, send
from webapp_bridge.django.conf import ModelEvent
from webapp_bridge.django.registry import event_for

logger = logging.getLogger("webapp_bridge.django")
_UID = "webapp_bridge.django"


def connect() -> None:
    """Listen to every model's saves and deletes (the registry says which of them send events)."""
    post_save.connect(_saved, dispatch_uid=f"{_UID}.saved", weak=False)
    post_delete.connect(_deleted, dispatch_uid=f"{_UID}.deleted", weak=False)


def _saved(sender: Any, instance: Any, created: bool, raw: bool = False, using: str = "default",
           **kwargs: Any) -> None:
    if raw:
        return
    _changed(sender, instance, "create" if created else "update", using)


def _deleted(sender: Any, instance: Any, using: str = "default", **kwargs: Any) -> None:
    _changed(sender, instance, "delete", using)


def _changed(model: Any, instance: Any, operation: str, using: str) -> None:
    event = event_for(model)
    if event is None or operation not in event.operations:
        return
    change = make_change(event, instance, operation, using)
    if change is not None:
        transaction.on_commit(partial(send, change), using=using)


def make_change(event: ModelEvent, instance: Any, operation: str, using: str) -> Change | None:
    """The event of ``operation`` on ``instance``, or None (logged) if it cannot be made."""
    label = event.model._meta.label
    try:
        if operation != "delete":
            _load_expressions(event, instance, using)
        data = event.data(instance, operation)
        audience = None
        if event.audience is not None:
            audience = event.audience(instance, operation)
            if audience is not None and not isinstance(audience, Mapping):
                raise TypeError(f"the audience function gave {audience!r}; expected None or a dict with "
                                "'users' and/or 'roles'")
    except Exception:
        # Sending it to a wrong audience, or with half its data, would be worse than not at all.
        logger.exception("gateway: no event %s for the %s of %s pk=%r", event.name, operation, label,
                         getattr(instance, "pk", None), extra={"event": event.name, "model": label})
        return None
    return Change(event=event.name, data=data, id=uuid.uuid4().hex,
                  audience=dict(audience) if audience is not None else None, model=label, pk=data["pk"])


def _load_expressions(event: ModelEvent, instance: Any, using: str) -> None:
    """Read back fields saved as expressions (``F("stock") - 1``): the instance holds the expression."""
    stale = [f.field.attname for f in event.fields if hasattr(getattr(instance, f.field.attname, None),
                                                               "resolve_expression")]
    if stale:
        instance.refresh_from_db(using=using, fields=stale)
