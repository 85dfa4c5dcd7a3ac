"""Django model fields as event data: which YAML type each one gets, and its value as JSON.

A field is looked up by ``get_internal_type()``, so a custom field that
subclasses a built-in one (and most third-party fields do) maps like its
base. The table, and why:

=========================================  ========  =================================
Django field                               YAML      value in the event data
=========================================  ========  =================================
CharField, TextField, EmailField,          string    the text
SlugField, URLField, GenericIPAddressField,
FilePathField
UUIDField                                  string    ``"5f0c…"`` with hyphens
FileField, ImageField                      string    the stored name (``"docs/a.pdf"``)
IntegerField and every *IntegerField,      integer   the number
AutoField, BigAutoField, SmallAutoField
FloatField                                 number    the number
DecimalField                               string    the exact digits, ``"19.90"``: a JSON
                                                     number would be a binary float
                                                     (``19.9``, or worse past 15 digits),
                                                     and the gateway publishes Python
                                                     ``Decimal`` fields as text too
BooleanField                               boolean   ``true`` / ``false``
DateTimeField                              datetime  ISO 8601, with its UTC offset when
                                                     USE_TZ is on
DateField                                  date      ISO 8601 (``"2025-01-31"``)
TimeField                                  string    ISO 8601 (``"09:30:00"``)
DurationField                              string    ISO 8601 (``"P1DT02H00M00S"``)
JSONField                                  string    the value as JSON text: the YAML
                                                     definitions have no "any JSON" type
ForeignKey, OneToOneField                  as the    the related row's key, under the
                                           target's  column name (``customer_id``)
                                           key
=========================================  ========  =================================

A field with ``null=True`` is not required (it may be ``null``).
BinaryField, GeneratedField, many-to-many and reverse relations have no
mapping: naming one is an error; ``"__all__"`` leaves them out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.db.backends.utils import format_number
from django.utils.duration import duration_iso_string

#: The data keys every model event has besides its fields.
RESERVED = ("pk", "operation")

_KINDS: dict[str, str] = {
    **dict.fromkeys(("CharField", "TextField", "EmailField", "SlugField", "URLField", "GenericIPAddressField",
                     "IPAddressField", "FilePathField", "UUIDField", "FileField", "ImageField", "DecimalField",
                     "TimeField", "DurationField", "JSONField"), "string"),
    **dict.fromkeys(("IntegerField", "BigIntegerField", "SmallIntegerField", "PositiveIntegerField",
                     "PositiveBigIntegerField", "PositiveSmallIntegerField", "AutoField", "BigAutoField",
                     "SmallAutoField"), "integer"),
    "FloatField": "number",
    "BooleanField": "boolean",
    "DateTimeField": "datetime",
    "DateField": "date",
}
_RELATIONS = ("ForeignKey", "OneToOneField")


@dataclass(frozen=True)
class DataField:
    """One model field as a key of the event data."""

    key: str            # the data key: the field's name, or its column name for a relation (customer_id)
    field: Any          # the Django field
    target: Any         # the field whose type the value has: ``field``, or the related key for a relation
    kind: str           # the YAML type

    @property
    def required(self) -> bool:
        return not self.field.null

    def spec(self) -> str | dict[str, Any]:
        """The field's YAML definition: a type name, or a mapping when it says more."""
        spec: dict[str, Any] = {"type": self.kind}
        help_text = str(self.field.help_text or "").strip()
        if help_text:
            spec["description"] = help_text
        if not self.required:
            spec["required"] = False
        return spec if len(spec) > 1 else self.kind

    def value(self, instance: Any) -> Any:
        """The field's value on ``instance`` as JSON (None for NULL)."""
        return to_json(self.target, getattr(instance, self.field.attname), self.field.null)


def mappable(field: Any) -> bool:
    """Whether ``field`` has a YAML type (so ``"__all__"`` includes it)."""
    try:
        _target(field)
    except _Unmappable:
        return False
    return True


def data_field(model: Any, name: str, where: str) -> DataField:
    """The model's field called ``name`` (its name or its column name) as event data, or ImproperlyConfigured."""
    label = model._meta.label
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        known = ", ".join(f.name for f in model._meta.concrete_fields)
        raise ImproperlyConfigured(f"{where}: {label} has no field {name!r} (its fields: {known})") from None
    generated = getattr(field, "generated", False)
    if not getattr(field, "concrete", False) or field.many_to_many or generated:
        what = "a many-to-many field" if field.many_to_many else \
            "a generated field" if generated else "not a column of its table"
        raise ImproperlyConfigured(f"{where}: {label}.{name} is {what}: only concrete fields that are not "
                                   "many-to-many or generated can be sent")
    try:
        target = _target(field)
    except _Unmappable as exc:
        raise ImproperlyConfigured(f"{where}: {label}.{name} is a {exc}, which has no event field type "
                                   "(see webapp_bridge.django.fields); leave it out of 'fields'") from None
    return DataField(field.attname, field, target, _KINDS[target.get_internal_type()])


def all_fields(model: Any) -> list[DataField]:
    """Every concrete field of ``model`` with a YAML type, but the primary key (always sent as ``pk``)."""
    return [DataField(f.attname, f, _target(f), _KINDS[_target(f).get_internal_type()])
            for f in model._meta.concrete_fields
            if not f.primary_key and not getattr(f, "generated", False) and mappable(f)]


def pk_field(model: Any) -> DataField:
    """The model's primary key, sent as ``pk``."""
    field = model._meta.pk
    try:
        target = _target(field)
    except _Unmappable as exc:
        raise ImproperlyConfigured(f"{model._meta.label}: its primary key {field.name!r} is a {exc}, which has no "
                                   "event field type") from None
    return DataField("pk", field, target, _KINDS[target.get_internal_type()])


class _Unmappable(Exception):
    """A field type with no YAML type; the message is the type's name."""


def _target(field: Any) -> Any:
    """The field whose type ``field``'s values have: itself, or for a relation the key it points to."""
    for _ in range(10):  # a key may itself be a relation (a child model's parent link); never a long chain
        internal = field.get_internal_type()
        if internal in _RELATIONS and getattr(field, "target_field", None) is not None:
            field = field.target_field
            continue
        if internal not in _KINDS:
            raise _Unmappable(internal)
        return field
    raise _Unmappable("chain of relations")


def to_json(target: Any, value: Any, nullable: bool) -> Any:
    """A field's ``value`` as a JSON value of its YAML type; ``target`` is the field whose type it has."""
    internal = target.get_internal_type()
    if value is None:
        # A JSONField that is not nullable stores None as the JSON null, not as NULL.
        return "null" if internal == "JSONField" and not nullable else None
    if internal in ("FileField", "ImageField"):
        name = getattr(value, "name", value)
        return name if name else (None if nullable else "")
    if internal == "JSONField":
        return json.dumps(value, cls=target.encoder or DjangoJSONEncoder, separators=(",", ":"), sort_keys=True)
    # Normalises what was assigned before the save (a string for a date, a float for a Decimal).
    value = target.to_python(value)
    if value is None:
        return None
    if internal in ("DateTimeField", "DateField", "TimeField"):
        return value.isoformat()
    if internal == "DurationField":
        return duration_iso_string(value) if isinstance(value, timedelta) else str(value)
    if internal == "DecimalField":
        # As the database stores it: rounded to decimal_places, so "19.9" is sent as "19.90".
        return format_number(value, target.max_digits, target.decimal_places) if isinstance(value, Decimal) \
            else str(value)
    if isinstance(value, UUID):
        return str(value)
    return value
