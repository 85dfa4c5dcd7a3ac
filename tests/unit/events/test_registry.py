"""The registry: loading modules and files, duplicates, visibility, the catalog, the version, hot reload."""

import importlib
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent

import pytest

from components.events import EventClass, Registry
from components.exceptions import DefinitionError, UnknownEvent

REPO = Path(__file__).resolve().parents[3]
REGISTRY = Registry.load(["examples.demo_events"], ["examples/demo_events.yaml"], base_dir=REPO)


def test_demo_classes_are_loaded_from_both_sources_with_their_rules() -> None:
    assert {c.name: c.visibility for c in REGISTRY} == {
        "demo.message": "public", "demo.order": "authenticated", "demo.alert": "role:staff"}
    assert [c.source for c in REGISTRY] == ["examples.demo_events:Message", "examples.demo_events:Order",
                                            "examples/demo_events.yaml#demo.alert"]
    assert REGISTRY.get("demo.order").description == "A customer placed an order."
    assert REGISTRY.get("demo.alert").description == "An operational alert for staff."
    assert REGISTRY.get("demo.alert").validate({"level": "info", "text": "t"}) == {"level": "info", "text": "t"}
    assert len(REGISTRY) == 3 and "demo.alert" in REGISTRY and "demo.nope" not in REGISTRY and 3 not in REGISTRY


def test_unknown_event_names_are_an_error() -> None:
    with pytest.raises(UnknownEvent, match="'demo.nope'"):
        REGISTRY.get("demo.nope")


@pytest.mark.parametrize("authrole,roles,names", [
    ("anonymous", (), ["demo.message"]),
    ("user", (), ["demo.message", "demo.order"]),
    ("staff", (), ["demo.message", "demo.order", "demo.alert"]),
    ("user", ("staff",), ["demo.message", "demo.order", "demo.alert"]),
    ("backend", (), ["demo.message", "demo.order", "demo.alert"]),
])
def test_visible_classes(authrole: str, roles: tuple[str, ...], names: list[str]) -> None:
    assert [c.name for c in REGISTRY.visible(authrole, roles)] == names
    assert [c["name"] for c in REGISTRY.catalog(authrole, roles)["classes"]] == sorted(names)


def test_public_classes() -> None:
    assert [c.name for c in REGISTRY.public()] == ["demo.message"]


def test_the_catalog() -> None:
    catalog = REGISTRY.catalog()
    assert catalog["version"] == REGISTRY.version
    assert [c["name"] for c in catalog["classes"]] == ["demo.alert", "demo.message", "demo.order"]
    order = catalog["classes"][2]
    assert set(order) == {"name", "description", "visibility", "retention", "schema"}
    assert (order["visibility"], order["retention"]) == ("authenticated", 86400)
    assert order["schema"]["required"] == ["order_id", "amount", "country", "tags", "customer"]
    assert order["schema"]["$defs"]["Customer"]["additionalProperties"] is False
    json.dumps(catalog, allow_nan=False)  # ready to send


def test_catalog_schemas_are_copies() -> None:
    REGISTRY.catalog()["classes"][0]["schema"]["properties"].clear()
    assert REGISTRY.get("demo.alert").json_schema()["properties"]


def test_an_empty_registry() -> None:
    empty = Registry()
    assert len(empty) == 0 and list(empty) == [] and empty.catalog() == {"version": empty.version, "classes": []}


# -- duplicates ---------------------------------------------------------------------------------------------

def test_a_class_defined_twice_names_both_sources_python_and_python(modules: "ModuleWriter") -> None:
    first = modules.write("class A(Event, name='dup.one'):\n    x: int\n")
    second = modules.write("class B(Event, name='dup.one'):\n    y: int\n")
    with pytest.raises(DefinitionError,
                       match=rf"^event class 'dup.one' is defined twice: in {first}:A and in {second}:B$"):
        Registry.load([first, second])


def test_a_class_defined_twice_names_both_sources_python_and_yaml(modules: "ModuleWriter", tmp_path: Path) -> None:
    (tmp_path / "dup.yaml").write_text("events:\n  demo.message: {fields: {}}\n")
    with pytest.raises(DefinitionError, match=r"^event class 'demo.message' is defined twice: "
                                              r"in examples.demo_events:Message and in dup.yaml#demo.message$"):
        Registry.load(["examples.demo_events"], ["dup.yaml"], base_dir=tmp_path)


def test_a_class_defined_twice_names_both_sources_yaml_and_yaml(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text("events:\n  a.b: {fields: {}}\n")
    (tmp_path / "two.yaml").write_text("events:\n  a.b: {fields: {}}\n")
    with pytest.raises(DefinitionError, match=r"defined twice: in one.yaml#a.b and in two.yaml#a.b$"):
        Registry.load(files=["one.yaml", "two.yaml"], base_dir=tmp_path)


# -- version ------------------------------------------------------------------------------------------------

def test_the_version_is_stable_across_loads_and_processes() -> None:
    again = Registry.load(["examples.demo_events"], [REPO / "examples/demo_events.yaml"])
    assert again.version == REGISTRY.version
    assert len(REGISTRY.version) == 16 and int(REGISTRY.version, 16) >= 0
    # Independent of load order, since the catalog is sorted by name.
    assert Registry(reversed(list(REGISTRY))).version == REGISTRY.version


def test_the_version_changes_with_any_definition(tmp_path: Path) -> None:
    def version(yaml_text: str) -> str:
        path = tmp_path / f"{uuid.uuid4().hex}.yaml"
        path.write_text(dedent(yaml_text))
        return Registry.load(files=[path]).version

    base = version("events:\n  a.b: {fields: {x: string}}\n")
    assert version("events:\n  a.b: {fields: {x: string}}\n") == base
    changed = [
        "events:\n  a.b: {fields: {y: string}}\n",
        "events:\n  a.b: {fields: {x: integer}}\n",
        "events:\n  a.b: {fields: {x: {type: string, max_length: 3}}}\n",
        "events:\n  a.b: {fields: {x: {type: string, required: false}}}\n",
        "events:\n  a.b: {fields: {x: string}, visibility: authenticated}\n",
        "events:\n  a.b: {fields: {x: string}, retention: 1h}\n",
        "events:\n  a.b: {fields: {x: string}, extra: allow}\n",
        "events:\n  a.b: {fields: {x: string}, row_filter: x}\n",
        "events:\n  a.b: {fields: {x: string}, description: Hi.}\n",
        "events:\n  a.c: {fields: {x: string}}\n",
        "events:\n  a.b: {fields: {x: string}}\n  a.c: {fields: {}}\n",
    ]
    versions = [version(text) for text in changed]
    assert base not in versions and len(set(versions)) == len(versions)


# -- loading modules ----------------------------------------------------------------------------------------

class ModuleWriter:
    """Writes event modules under tmp_path (on sys.path) and forgets them afterwards."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.names: list[str] = []

    def write(self, body: str, name: str | None = None) -> str:
        name = name or f"evmod_{uuid.uuid4().hex[:12]}"
        (self.root / f"{name}.py").write_text("from components.events import Event\n\n" + dedent(body))
        if name not in self.names:
            self.names.append(name)
        return name


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleWriter]:
    monkeypatch.syspath_prepend(str(tmp_path))
    writer = ModuleWriter(tmp_path)
    yield writer
    for name in writer.names:
        sys.modules.pop(name, None)


def test_a_module_gives_the_event_classes_it_defines_in_order(modules: ModuleWriter) -> None:
    name = modules.write("""
        from pydantic import BaseModel
        from examples.demo_events import Message  # imported, not defined here: not collected

        class Zeta(Event):
            z: int

        class Part(BaseModel):  # a plain model: a field type, not an event class
            p: int

        class Alpha(Event, name="mod.alpha"):
            part: Part

        Again = Alpha  # a second name for the same class: collected once
        """)
    assert [(c.name, c.source) for c in Registry.load([name])] == [
        (f"{name}.zeta", f"{name}:Zeta"), ("mod.alpha", f"{name}:Alpha")]


@pytest.mark.parametrize("body,message", [
    ("class A(Event):\n    class Rules:\n        retention = '0s'\n",
     r"^cannot load event module '{name}': {name}:A: Rules: retention '0s' must be more than zero$"),
    ("class A(Event, name='Bad'):\n    pass\n",
     r"^cannot load event module '{name}': {name}:A: event class name 'Bad'"),
    ("raise RuntimeError('boom')\n", r"^cannot load event module '{name}': RuntimeError: boom$"),
    ("class A(Event:\n", r"^cannot load event module '{name}': SyntaxError: .*line 3"),
    ("import no_such_module_here\n", r"^cannot load event module '{name}': ModuleNotFoundError: No module named"),
    ("class A(Event):\n    x: 'Missing'\n", r"^event module '{name}': {name}:A: .*Missing"),
])
def test_a_broken_module_names_the_module_and_the_class(modules: ModuleWriter, body: str, message: str) -> None:
    name = modules.write(body)
    with pytest.raises(DefinitionError, match=message.format(name=name)):
        Registry.load([name])


def test_a_module_that_does_not_exist() -> None:
    with pytest.raises(DefinitionError, match="^cannot load event module 'no.such.module': ModuleNotFoundError"):
        Registry.load(["no.such.module"])


def test_reload_picks_up_an_edited_module(modules: ModuleWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as in production, where .pyc files are written
    source = "class Thing(Event, name='live.thing'):\n    x: int\n\nclass Gone(Event, name='live.gone'):\n    pass\n"
    name = modules.write(source)
    before = Registry.load([name])
    assert "x" in before.get("live.thing").json_schema()["properties"]

    # Same size, written within the same second: Python's cached bytecode looks fresh.
    modules.write(source.replace("x: int", "y: int"), name)
    assert Registry.load([name]).version == before.version  # without reload: what is imported stays
    after = Registry.load([name], reload=True)
    assert list(after.get("live.thing").json_schema()["properties"]) == ["y"]
    assert after.version != before.version
    assert before.get("live.thing").validate({"x": 1}) == {"x": 1}  # the old registry still works

    modules.write("class Thing(Event, name='live.thing'):\n    y: int\n", name)
    assert [c.name for c in Registry.load([name], reload=True)] == ["live.thing"]  # a removed class is gone


def test_a_failed_reload_keeps_the_old_module(modules: ModuleWriter) -> None:
    name = modules.write("class Thing(Event, name='live.thing'):\n    x: int\n")
    before = Registry.load([name])
    old_module = sys.modules[name]
    modules.write("class Thing(Event, name='live.thing'):\n    x: int\n    class Rules:\n        retention = '0h'\n",
                  name)
    with pytest.raises(DefinitionError, match=f"cannot load event module '{name}'.*retention '0h'"):
        Registry.load([name], reload=True)
    assert sys.modules[name] is old_module
    assert Registry.load([name]).version == before.version


def test_reload_imports_a_module_never_imported(modules: ModuleWriter) -> None:
    name = modules.write("class Thing(Event, name='live.thing'):\n    x: int\n")
    importlib.invalidate_caches()
    assert [c.name for c in Registry.load([name], reload=True)] == ["live.thing"]


# -- loading files ------------------------------------------------------------------------------------------

def test_relative_files_are_found_from_base_dir_and_named_as_given(tmp_path: Path) -> None:
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "a.yaml").write_text("events:\n  a.b: {fields: {}}\n")
    [cls] = Registry.load(files=["defs/a.yaml"], base_dir=tmp_path)
    assert cls.source == "defs/a.yaml#a.b"


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match=r"^missing.yaml: cannot read event definitions: No such file"):
        Registry.load(files=["missing.yaml"], base_dir=tmp_path)
    (tmp_path / "latin1.yaml").write_bytes("events:\n  a.b: {description: caf\xe9, fields: {}}\n".encode("latin-1"))
    with pytest.raises(DefinitionError, match=r"^latin1.yaml: event definitions must be UTF-8 text$"):
        Registry.load(files=["latin1.yaml"], base_dir=tmp_path)
    (tmp_path / "bad.yaml").write_text("events:\n  a.b: {fields: {x: strng}}\n")
    with pytest.raises(DefinitionError, match=r"^bad.yaml: class a.b, field x: unknown type 'strng'"):
        Registry.load(files=["bad.yaml"], base_dir=tmp_path)


def test_event_classes_check_their_own_values() -> None:
    model = REGISTRY.get("demo.message").model
    order = REGISTRY.get("demo.order")
    with pytest.raises(DefinitionError, match="dotted lower-case"):
        EventClass("single", "", "public", order.retention, None, model, "here")
    with pytest.raises(DefinitionError, match="^here: visibility 'everyone'"):
        EventClass("a.b", "", "everyone", order.retention, None, model, "here")
    with pytest.raises(DefinitionError, match="^here: retention 0:00:00 must be at least one second"):
        EventClass("a.b", "", "public", order.retention * 0, None, model, "here")
