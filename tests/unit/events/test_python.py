"""Event classes written in Python: naming, rules, and the field types a web-app may use."""

import enum
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from components.events import Event, EventClass, InvalidEventData, event_class_of
from components.events.event import derived_name
from components.exceptions import DefinitionError

MODULE = __name__  # tests.unit.events.test_python


def errors(cls: EventClass, data: Any) -> dict[str, str]:
    with pytest.raises(InvalidEventData) as exc:
        cls.validate(data)
    assert exc.value.event == cls.name
    return {e.path: e.message for e in exc.value.errors}


class OrderCreated(Event):
    """A customer placed an order.

    Everything after the first line stays in the JSON Schema's description.
    """

    order_id: int


class Shipped(Event, name="shop.orders.shipped"):
    order_id: int

    class Rules:
        visibility = "role:warehouse"
        retention = "7d"
        row_filter = "country = 'AR'"
        extra = "allow"


@pytest.mark.parametrize("class_name,expected", [
    ("OrderCreated", "shop.events.order_created"),
    ("Order", "shop.events.order"),
    ("HTTPRequestSent", "shop.events.http_request_sent"),
    ("Order2Shipped", "shop.events.order2_shipped"),
    ("already_snake", "shop.events.already_snake"),
])
def test_the_naming_rule(class_name: str, expected: str) -> None:
    assert derived_name("shop.events", class_name) == expected


def test_a_class_without_name_is_named_after_module_and_class() -> None:
    cls = event_class_of(OrderCreated)
    assert cls.name == f"{MODULE}.order_created"
    assert cls.source == f"{MODULE}:OrderCreated"
    assert cls.description == "A customer placed an order."
    assert "Everything after" in cls.json_schema()["description"]


def test_defaults_of_the_rules() -> None:
    cls = event_class_of(OrderCreated)
    assert (cls.visibility, cls.retention, cls.row_filter) == ("public", timedelta(hours=24), None)
    assert cls.catalog_entry()["retention"] == 86400


def test_rules_and_explicit_name() -> None:
    cls = event_class_of(Shipped)
    assert (cls.name, cls.visibility, cls.retention, cls.row_filter) == (
        "shop.orders.shipped", "role:warehouse", timedelta(days=7), "country = 'AR'")
    assert cls.description == ""
    assert cls.validate({"order_id": 1, "note": "kept"}) == {"order_id": 1, "note": "kept"}
    assert cls.json_schema()["additionalProperties"] is True
    assert Shipped(order_id=1, note="kept").model_dump() == {"order_id": 1, "note": "kept"}  # type: ignore[call-arg]


def test_unknown_fields_are_refused_by_default() -> None:
    cls = event_class_of(OrderCreated)
    assert errors(cls, {"order_id": 1, "colour": "red"}) == {"colour": "unknown field (not in the event class)"}
    assert cls.json_schema()["additionalProperties"] is False


def test_rules_are_inherited_and_may_be_extended() -> None:
    class Base(Event, name="shop.base"):
        class Rules:
            visibility = "authenticated"
            retention = "1h"

    class Child(Base, name="shop.child"):
        class Rules(Base.Rules):
            retention = "2h"

    class Plain(Base, name="shop.plain"):
        pass

    assert (event_class_of(Child).visibility, event_class_of(Child).retention) == ("authenticated", timedelta(hours=2))
    assert event_class_of(Plain).retention == timedelta(hours=1)


@pytest.mark.parametrize("rules,message", [
    ({"visibility": "friends"}, "Rules: visibility 'friends' must be"),
    ({"retention": "0s"}, "Rules: retention '0s' must be more than zero"),
    ({"retention": "1 day"}, "Rules: retention '1 day' must be a whole number and a unit"),
    ({"extra": "ignore"}, "Rules: extra 'ignore' must be 'forbid' or 'allow'"),
    ({"row_filter": 1}, "Rules: row_filter 1 must be a string"),
    ({"visiblity": "public"}, "Rules: unknown rule 'visiblity'"),
])
def test_bad_rules_fail_the_class_statement_naming_module_and_class(rules: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError, match=f"^{MODULE}:.*Broken: {message}"):
        # What a class statement with a nested class Rules builds.
        type("Broken", (Event,), {"__module__": MODULE, "__qualname__": "Broken", "__annotations__": {"x": int},
                                  "Rules": type("Rules", (), {**rules, "__qualname__": "Broken.Rules"})})


def test_a_derived_name_that_is_not_valid_asks_for_name() -> None:
    with pytest.raises(DefinitionError, match=r"'__main__.alert' must be dotted lower-case.*pass name="):
        type("Alert", (Event,), {"__module__": "__main__"})
    with pytest.raises(DefinitionError, match=r"'Bad Name' must be dotted lower-case"):
        class Named(Event, name="Bad Name"):
            pass


def test_only_event_classes_have_an_event_class() -> None:
    class NotAnEvent(BaseModel):
        x: int

    with pytest.raises(DefinitionError, match="is not an event class"):
        event_class_of(NotAnEvent)  # type: ignore[arg-type]


# -- field types ---------------------------------------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    street: str
    zip: Annotated[str, Field(pattern=r"^[0-9]{4}$")]


class Contact(Event, name="shop.contact"):
    """An Event class used as a field type is also an event class of its own."""

    email: str
    address: Address


class Rich(Event, name="shop.rich"):
    name: str = Field(min_length=2, max_length=5)
    qty: Annotated[int, Field(ge=0, le=10)]
    price: Decimal
    ratio: float
    colour: Colour
    size: Literal["s", "m", "l"]
    when: datetime
    day: date
    tags: list[str]
    contacts: list[Contact]
    primary: Contact | None = None
    note: str | None = None


GOOD_RICH: dict[str, Any] = {
    "name": "Ann", "qty": 3, "price": 9.5, "ratio": 1, "colour": "red", "size": "m",
    "when": "2025-01-31T09:30:00Z", "day": "2025-01-31", "tags": ["a"],
    "contacts": [{"email": "a@b", "address": {"street": "Main", "zip": "1234"}}],
}


def test_every_kind_of_field_validates_and_comes_back_as_json() -> None:
    cls = event_class_of(Rich)
    assert cls.validate(GOOD_RICH) == {**GOOD_RICH, "price": "9.5", "ratio": 1.0}
    assert cls.validate({**GOOD_RICH, "note": None, "primary": GOOD_RICH["contacts"][0]})["note"] is None


def test_nested_lists_optional_enum_and_constrained_fields_report_each_path() -> None:
    cls = event_class_of(Rich)
    bad = {**GOOD_RICH, "name": "A", "qty": 11, "colour": "blue", "size": "xl", "when": "yesterday",
           "day": "31/01/2025", "tags": ["a", 2],
           "contacts": [{"email": "a@b", "address": {"street": "Main", "zip": "12"}}, {"email": 1}],
           "primary": {"address": {"street": "x", "zip": "1234", "flat": 2}}}
    assert set(errors(cls, bad)) == {
        "name", "qty", "colour", "size", "when", "day", "tags.1", "contacts.0.address.zip", "contacts.1.email",
        "contacts.1.address", "primary.email", "primary.address.flat"}


def test_decimal_takes_numbers_and_numeric_strings_and_is_published_as_a_string() -> None:
    cls = event_class_of(Rich)
    assert cls.validate({**GOOD_RICH, "price": 10})["price"] == "10"
    assert cls.validate({**GOOD_RICH, "price": "0.10"})["price"] == "0.10"
    assert set(errors(cls, {**GOOD_RICH, "price": True})) == {"price"}
    price_schema = cls.json_schema()["properties"]["price"]
    assert {"type": "number"} in price_schema["anyOf"] and any(s.get("type") == "string" for s in price_schema["anyOf"])


def test_instances_are_built_in_python() -> None:
    rich = Rich(**{**GOOD_RICH, "when": datetime(2025, 1, 31, 9, 30, tzinfo=timezone.utc),
                   "day": date(2025, 1, 31), "price": Decimal("9.5"), "colour": Colour.RED})
    assert rich.contacts[0].address.zip == "1234"
    assert event_class_of(Rich).validate(rich.model_dump(mode="json", exclude_unset=True))["when"] == \
        "2025-01-31T09:30:00Z"


def test_extra_rule_covers_nested_plain_models() -> None:
    class Loose(BaseModel):
        model_config = ConfigDict(extra="ignore")
        x: int

    class Holder(Event, name="shop.holder"):
        loose: Loose

    cls = event_class_of(Holder)
    assert errors(cls, {"loose": {"x": 1, "typo": 2}}) == {"loose.typo": "unknown field (not in the event class)"}
    assert cls.json_schema()["$defs"]["Loose"]["additionalProperties"] is False


def test_a_forward_reference_that_cannot_be_resolved_is_a_definition_error() -> None:
    class Dangling(Event, name="shop.dangling"):
        other: "NoSuchModel"  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(DefinitionError, match="shop.dangling|Dangling"):
        event_class_of(Dangling)
