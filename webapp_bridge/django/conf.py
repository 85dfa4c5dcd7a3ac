"""The ``GATEWAY`` setting and model declarations, checked once into immutable objects.

::

    GATEWAY = {
        "CONFIG": BASE_DIR / "gateway.yaml",      # required: the gateway.yaml the gateway runs with
        "TRANSPORT": None,                        # http | xmlrpc | amqp; None: gateway.yaml's proxy.transport
        "CREDENTIALS": "ticket",                  # what the template tag gives a logged-in user: ticket | jwt
        "USER_ID": None,                          # dotted path of f(user) -> str; default str(user.pk)
        "ROLES": None,                            # dotted path of f(user) -> list[str]; default []
        "DEFINITIONS": "django_events.yaml",      # the YAML file `manage.py gateway_definitions` writes,
                                                  # relative to CONFIG's folder (like events.files)
        "MODELS": {
            "shop.Order": {
                "fields": ["status", "total", "customer"],   # required: a list, or "__all__"
                "operations": ["create", "update", "delete"],  # the default
                "name": None,                     # default "<app_label>.<model_name>": shop.order
                "audience": None,                 # dotted path of f(instance, operation) -> {"users", "roles"} | None
                "visibility": "public",           # public | authenticated | role:<name>
                "retention": None,                # e.g. "7d"; default the gateway's (24h)
                "row_filter": None,               # e.g. "customer_id = $user"
                "description": None,              # default "Order created, updated or deleted (Django model …)"
            },
        },
    }

Every mistake is an ImproperlyConfigured naming the setting and the value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from webapp_bridge.django.fields import RESERVED, DataField, all_fields, data_field, pk_field

OPERATIONS = ("create", "update", "delete")
TRANSPORTS = ("http", "xmlrpc", "amqp")
CREDENTIALS = ("ticket", "jwt")
SETTING_KEYS = ("CONFIG", "TRANSPORT", "CREDENTIALS", "USER_ID", "ROLES", "DEFINITIONS", "MODELS")
MODEL_KEYS = ("fields", "operations", "name", "audience", "visibility", "retention", "row_filter", "description")

# The gateway's own rules (components.events.rules), repeated here because the
# web-app side must not need the gateway's packages; the gateway checks them
# again when it loads the generated file.
_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_VISIBILITY = re.compile(r"^(public|authenticated|role:[a-z][a-z0-9_]*)$")
_RETENTION = re.compile(r"^[0-9]+[smhd]$")

Audience = Callable[[Any, str], "Mapping[str, Sequence[str]] | None"]


@dataclass(frozen=True)
class ModelEvent:
    """The event class of one model: what its events carry and which changes send one."""

    model: Any
    name: str
    pk: DataField
    fields: tuple[DataField, ...]
    operations: tuple[str, ...]
    audience: Audience | None
    visibility: str
    description: str
    retention: str | None
    row_filter: str | None

    def definition(self) -> dict[str, Any]:
        """The class's YAML definition (the value under its name in the file's ``events``)."""
        spec: dict[str, Any] = {"description": self.description, "visibility": self.visibility}
        if self.retention is not None:
            spec["retention"] = self.retention
        if self.row_filter is not None:
            spec["row_filter"] = self.row_filter
        fields: dict[str, Any] = {"pk": self.pk.spec(),
                                  "operation": {"type": "string", "enum": list(self.operations)}}
        fields.update((f.key, f.spec()) for f in self.fields)
        spec["fields"] = fields
        return spec

    def data(self, instance: Any, operation: str) -> dict[str, Any]:
        """The event data for ``operation`` on ``instance``: pk, operation, then the chosen fields."""
        data = {"pk": self.pk.value(instance), "operation": operation}
        data.update((f.key, f.value(instance)) for f in self.fields)
        return data


@dataclass(frozen=True)
class GatewaySettings:
    """``settings.GATEWAY``, checked."""

    config: Path
    transport: str | None
    credentials: str
    user_id: Callable[[Any], str]
    roles: Callable[[Any], Sequence[str]]
    definitions: Path | None
    models: tuple[ModelEvent, ...]


def parse_settings(raw: Any) -> GatewaySettings:
    """``settings.GATEWAY`` as GatewaySettings, or ImproperlyConfigured saying what is wrong and where."""
    where = "settings.GATEWAY"
    if raw is None:
        raise ImproperlyConfigured(f"{where} is missing: webapp_bridge.django needs at least "
                                   "GATEWAY = {'CONFIG': '<path to gateway.yaml>'}")
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured(f"{where} must be a dict, not {type(raw).__name__}")
    _no_unknown(raw, SETTING_KEYS, where)
    if raw.get("CONFIG") in (None, ""):
        raise ImproperlyConfigured(f"{where}['CONFIG'] is missing: the path of the gateway.yaml the gateway "
                                   "runs with (the proxy reads the bridge's address and API key from it)")
    config = _path(raw["CONFIG"], f"{where}['CONFIG']")
    transport = raw.get("TRANSPORT")
    if transport is not None and transport not in TRANSPORTS:
        raise ImproperlyConfigured(f"{where}['TRANSPORT'] is {transport!r}; expected one of: "
                                   f"{', '.join(TRANSPORTS)}, or None for gateway.yaml's proxy.transport")
    credentials = raw.get("CREDENTIALS", "ticket")
    if credentials not in CREDENTIALS:
        raise ImproperlyConfigured(f"{where}['CREDENTIALS'] is {credentials!r}; expected 'ticket' or 'jwt'")
    definitions = raw.get("DEFINITIONS")
    if definitions is not None:
        definitions = config.parent / _path(definitions, f"{where}['DEFINITIONS']")
    models = raw.get("MODELS", {})
    if not isinstance(models, Mapping):
        raise ImproperlyConfigured(f"{where}['MODELS'] must be a dict of 'app_label.ModelName' to options, "
                                   f"not {type(models).__name__}")
    events = []
    for label, options in models.items():
        model = _model(label, f"{where}['MODELS']")
        events.append(model_event(model, options, f"{where}['MODELS'][{label!r}]"))
    return GatewaySettings(
        config=config,
        transport=transport,
        credentials=credentials,
        user_id=_callable(raw.get("USER_ID"), f"{where}['USER_ID']", _default_user_id),
        roles=_callable(raw.get("ROLES"), f"{where}['ROLES']", _no_roles),
        definitions=definitions,
        models=tuple(events),
    )


def model_event(model: Any, options: Any, where: str) -> ModelEvent:
    """The event class of ``model`` from its options (MODEL_KEYS), or ImproperlyConfigured."""
    if not isinstance(options, Mapping):
        raise ImproperlyConfigured(f"{where} must be a dict of options ({', '.join(MODEL_KEYS)}), "
                                   f"not {type(options).__name__}")
    _no_unknown(options, MODEL_KEYS, where)
    label = model._meta.label
    name = options.get("name")
    if name is None:
        name = f"{model._meta.app_label.lower()}.{model._meta.model_name}"
        if not _NAME.match(name):
            raise ImproperlyConfigured(f"{where}: the event name {name!r} made from {label} is not a valid event "
                                       "class name; give 'name' (dotted lower-case parts, e.g. 'shop.order')")
    elif not isinstance(name, str) or not _NAME.match(name):
        raise ImproperlyConfigured(f"{where}['name'] is {name!r}; an event class name is two or more dotted "
                                   "lower-case parts of letters, digits and _, each starting with a letter "
                                   "(e.g. 'shop.order')")
    operations = _operations(options.get("operations", OPERATIONS), f"{where}['operations']")
    fields = _fields(model, options, where)
    visibility = options.get("visibility", "public")
    if not isinstance(visibility, str) or not _VISIBILITY.match(visibility):
        raise ImproperlyConfigured(f"{where}['visibility'] is {visibility!r}; expected 'public', "
                                   "'authenticated' or 'role:<name>'")
    retention = options.get("retention")
    if retention is not None and (not isinstance(retention, str) or not _RETENTION.match(retention)
                                  or int(retention[:-1]) == 0):
        raise ImproperlyConfigured(f"{where}['retention'] is {retention!r}; expected a whole number above 0 "
                                   "and a unit s, m, h or d (e.g. '7d')")
    row_filter = options.get("row_filter")
    if row_filter is not None and not isinstance(row_filter, str):
        raise ImproperlyConfigured(f"{where}['row_filter'] must be a query condition as text, "
                                   f"not {type(row_filter).__name__}")
    description = options.get("description")
    if description is None:
        verbose = str(model._meta.verbose_name)
        description = f"{verbose[:1].upper()}{verbose[1:]} {_phrase(operations)} (Django model {label})."
    elif not isinstance(description, str):
        raise ImproperlyConfigured(f"{where}['description'] must be text, not {type(description).__name__}")
    audience = options.get("audience")
    return ModelEvent(
        model=model, name=name, pk=pk_field(model), fields=tuple(fields), operations=operations,
        audience=None if audience is None else _callable(audience, f"{where}['audience']", None),
        visibility=visibility, description=description, retention=retention, row_filter=row_filter,
    )


def _fields(model: Any, options: Mapping[str, Any], where: str) -> list[DataField]:
    if "fields" not in options:
        # As with a ModelForm: every column of a table is rarely meant for every browser.
        raise ImproperlyConfigured(f"{where}: 'fields' is missing: list the fields the events carry, "
                                   "or say '__all__'")
    wanted = options["fields"]
    if wanted == "__all__":
        fields = all_fields(model)
    elif isinstance(wanted, (list, tuple)) and all(isinstance(n, str) for n in wanted):
        fields = [data_field(model, n, f"{where}['fields']") for n in wanted]
    else:
        raise ImproperlyConfigured(f"{where}['fields'] must be a list of field names or '__all__', "
                                   f"not {wanted!r}")
    seen: dict[str, str] = {}
    for f in fields:
        if f.key in RESERVED:
            raise ImproperlyConfigured(f"{where}['fields']: {model._meta.label}.{f.field.name} would be sent as "
                                       f"{f.key!r}, which every model event has already ({', '.join(RESERVED)}); "
                                       "leave it out")
        if f.key in seen:
            raise ImproperlyConfigured(f"{where}['fields']: {f.field.name!r} is listed twice")
        seen[f.key] = f.field.name
    return fields


def _operations(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ImproperlyConfigured(f"{where} must be a non-empty list of: {', '.join(OPERATIONS)} "
                                   f"(not {value!r})")
    for op in value:
        if op not in OPERATIONS:
            raise ImproperlyConfigured(f"{where}: unknown operation {op!r}; expected one of: {', '.join(OPERATIONS)}")
        if list(value).count(op) > 1:
            raise ImproperlyConfigured(f"{where}: {op!r} is listed twice")
    return tuple(op for op in OPERATIONS if op in value)


def _phrase(operations: tuple[str, ...]) -> str:
    words = [{"create": "created", "update": "updated", "delete": "deleted"}[op] for op in operations]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _model(label: Any, where: str) -> Any:
    from django.apps import apps

    if not isinstance(label, str) or label.count(".") != 1:
        raise ImproperlyConfigured(f"{where}: {label!r} is not a model label; expected 'app_label.ModelName'")
    try:
        return apps.get_model(label)
    except LookupError as exc:
        raise ImproperlyConfigured(f"{where}: no model {label!r} ({exc})") from None


def _path(value: Any, where: str) -> Path:
    if not isinstance(value, (str, Path)) or not str(value):
        raise ImproperlyConfigured(f"{where} must be a file path, not {value!r}")
    return Path(value)


def _callable(value: Any, where: str, default: Any) -> Any:
    if value is None:
        return default
    if callable(value):
        return value
    if not isinstance(value, str):
        raise ImproperlyConfigured(f"{where} must be the dotted path of a function, not {value!r}")
    try:
        found = import_string(value)
    except ImportError as exc:
        raise ImproperlyConfigured(f"{where}: cannot import {value!r} ({exc})") from None
    if not callable(found):
        raise ImproperlyConfigured(f"{where}: {value!r} is not a function")
    return found


def _no_unknown(raw: Mapping[Any, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in raw:
        if key not in allowed:
            raise ImproperlyConfigured(f"{where}: unknown key {key!r} (expected one of: {', '.join(allowed)})")


def _default_user_id(user: Any) -> str:
    return str(user.pk)


def _no_roles(user: Any) -> list[str]:
    return []
