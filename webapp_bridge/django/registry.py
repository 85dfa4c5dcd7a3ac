"""Which models send events: those in ``settings.GATEWAY['MODELS']`` and those given to ``publish_model``.

The settings are read at first use (the app's ``ready()`` makes that start-up)
and again after ``override_settings(GATEWAY=...)``; ``publish_model`` may run
before the models are all loaded (as a class decorator), so its declarations
wait until then.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured

from webapp_bridge.django.conf import OPERATIONS, Audience, GatewaySettings, ModelEvent, model_event, parse_settings

M = TypeVar("M")

_lock = threading.RLock()
_settings: GatewaySettings | None = None
_declared: list[tuple[Any, dict[str, Any], str]] = []   # (model, options, where) from publish_model
_resolved: dict[Any, ModelEvent] = {}                   # publish_model's, once the models are loaded
_events: dict[Any, ModelEvent] | None = None           # by model class: the settings' and publish_model's


def gateway_settings() -> GatewaySettings:
    """``settings.GATEWAY``, checked (ImproperlyConfigured when it is wrong)."""
    global _settings
    with _lock:
        if _settings is None:
            from django.conf import settings

            _settings = parse_settings(getattr(settings, "GATEWAY", None))
        return _settings


def events() -> dict[Any, ModelEvent]:
    """Every model that sends events, with its event class."""
    global _events
    with _lock:
        if _events is None:
            from django.apps import apps

            apps.check_models_ready()
            for model, options, where in _declared:
                _resolved[model] = model_event(model, options, where)
            _declared.clear()
            found: dict[Any, ModelEvent] = {}
            names: dict[str, Any] = {}
            for event in (*gateway_settings().models, *_resolved.values()):
                label = event.model._meta.label
                if event.model in found:
                    raise ImproperlyConfigured(f"{label} is declared twice (in settings.GATEWAY['MODELS'] and "
                                               "with publish_model): keep one")
                if event.name in names:
                    raise ImproperlyConfigured(f"{label} and {names[event.name]._meta.label} both send the event "
                                               f"class {event.name!r}: give one of them another 'name'")
                found[event.model] = event
                names[event.name] = event.model
            _events = found
        return _events


def event_for(model: Any) -> ModelEvent | None:
    """The event class of ``model``, or None if its changes send nothing."""
    return events().get(model)


def reset() -> None:
    """Forget the settings (read again at next use): after ``override_settings(GATEWAY=...)``."""
    global _settings, _events
    with _lock:
        _settings = None
        _events = None


def publish_model(model: Any = None, *, fields: Sequence[str] | str, operations: Sequence[str] = OPERATIONS,
                  name: str | None = None, audience: Audience | str | None = None, visibility: str = "public",
                  retention: str | None = None, row_filter: str | None = None,
                  description: str | None = None) -> Any:
    """Send an event for every save and delete of ``model``; also a class decorator.

    ::

        publish_model(Order, fields=["status", "total"])

        @publish_model(fields="__all__", operations=["create"])
        class Order(models.Model): ...

    The options are those of ``settings.GATEWAY['MODELS']`` (see
    ``webapp_bridge.django.conf``); mistakes raise ImproperlyConfigured once the
    models are loaded (at start-up).
    """
    options: dict[str, Any] = {"fields": fields, "operations": operations, "name": name, "audience": audience,
                               "visibility": visibility, "retention": retention, "row_filter": row_filter,
                               "description": description}
    options = {k: v for k, v in options.items() if v is not None}

    def declare(cls: M) -> M:
        from django.apps import apps

        where = f"publish_model({getattr(cls, '__name__', cls)})"
        if not hasattr(cls, "_meta"):
            raise ImproperlyConfigured(f"{where}: {cls!r} is not a Django model")
        with _lock:
            global _events
            if cls in _resolved or any(cls is m for m, _, _ in _declared):
                raise ImproperlyConfigured(f"{where}: {cls._meta.label} is declared twice with publish_model")
            if apps.models_ready:
                # After start-up (an AppConfig.ready): checked now, in use from the next change.
                _resolved[cls] = model_event(cls, options, where)
                _events = None
            else:
                _declared.append((cls, options, where))
        return cls

    decorator: Callable[[M], M] = declare
    return decorator if model is None else decorator(model)
