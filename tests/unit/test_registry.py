import pytest
from pydantic import BaseModel

from components.events import EventClass, InvalidEventData, Registry
from components.exceptions import DefinitionError, UnknownEvent

REGISTRY = Registry.from_modules(["examples.demo_events"])

GOOD_ORDER = {"order_id": 1, "amount": 9.5, "country": "AR", "tags": ["a"], "customer": {"id": 2, "name": "Ann"}}


def test_demo_classes_are_loaded_with_their_rules() -> None:
    assert {c.name: c.visibility for c in REGISTRY} == {
        "demo.message": "public", "demo.order": "authenticated", "demo.alert": "role:staff"}
    assert [c.name for c in REGISTRY.public()] == ["demo.message"]
    assert REGISTRY.get("demo.order").description == "A customer placed an order."


def test_valid_data_comes_back_without_unset_optional_fields() -> None:
    assert REGISTRY.get("demo.order").validate(GOOD_ORDER) == GOOD_ORDER
    assert REGISTRY.get("demo.order").validate({**GOOD_ORDER, "coupon": "X"})["coupon"] == "X"


def test_every_bad_field_is_listed_with_its_path() -> None:
    bad = {"order_id": "7", "amount": "cheap", "tags": ["ok", 3], "customer": {"id": 1}, "extra": True}
    with pytest.raises(InvalidEventData) as exc:
        REGISTRY.get("demo.order").validate(bad)
    by_path = {e.path: e for e in exc.value.errors}
    assert set(by_path) == {"order_id", "amount", "country", "tags.1", "customer.name", "extra"}
    assert by_path["country"].message == "required field is missing"
    assert by_path["extra"].type == "extra_forbidden"


def test_data_must_be_an_object() -> None:
    with pytest.raises(InvalidEventData) as exc:
        REGISTRY.get("demo.message").validate(["not", "an", "object"])
    assert exc.value.errors[0].message == "must be an object, not an array"


def test_unknown_event_names_are_an_error() -> None:
    with pytest.raises(UnknownEvent):
        REGISTRY.get("demo.nope")


class _M(BaseModel):
    x: int


def test_a_class_defined_twice_names_both_definitions() -> None:
    with pytest.raises(DefinitionError, match=r"defined twice: by .*_M and by .*_M"):
        Registry([EventClass("a.b", _M), EventClass("a.b", _M)])


@pytest.mark.parametrize("name", ["single", "Upper.case", "a..b", "a.b-c", ""])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(DefinitionError, match="dotted lower-case"):
        EventClass(name, _M)


def test_bad_visibility_is_refused() -> None:
    with pytest.raises(DefinitionError, match="visibility"):
        EventClass("a.b", _M, visibility="everyone")


def test_a_module_without_events_is_refused() -> None:
    with pytest.raises(DefinitionError, match="must define EVENTS"):
        Registry.from_modules(["components.uris"])
    with pytest.raises(DefinitionError, match="cannot import event module 'no.such.module'"):
        Registry.from_modules(["no.such.module"])
