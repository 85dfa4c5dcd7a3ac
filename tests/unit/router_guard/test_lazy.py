"""Lazy log arguments (components.router_guard.lazy): formatted as the eager function would, only when formatted;
and swapped only where every call of the name is a log argument (read from the installed Crossbar and autobahn)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from pprint import pformat

import pytest

from components.router_guard.lazy import LAZY_LOG_ARGUMENTS, Lazy, lazy

#: Logger methods: a call nested in the arguments of one of these is a log argument.
_LOG_METHODS = {"trace", "debug", "info", "warn", "warning", "error", "critical", "failure"}


def test_a_lazy_value_formats_as_the_eager_one_and_only_when_formatted() -> None:
    calls: list[tuple[object, ...]] = []

    def colour(text: object, bold: bool = False) -> str:
        calls.append((text, bold))
        return f"<{text}{'!' if bold else ''}>"

    value = lazy(colour)("abc", bold=True)
    assert isinstance(value, Lazy) and calls == []
    assert "{v} and {v:>8}".format(v=value) == "<abc!> and   <abc!>"
    assert str(value) == "<abc!>" and repr(value) == repr("<abc!>") and f"{value}" == "<abc!>"
    assert len(calls) == 5


def test_pformat_made_lazy_pretty_prints_the_same() -> None:
    data = {"allow": True, "cache": True, "disclose": False, "nested": list(range(40))}
    assert str(lazy(pformat)(data)) == pformat(data)


def test_lazy_twice_is_lazy_once() -> None:
    once = lazy(pformat)
    assert lazy(once) is once


def _source(module: str) -> Path:
    top, _, rest = module.partition(".")
    spec = importlib.util.find_spec(top)  # a top-level package is found without being imported
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0], *rest.split(".")).with_suffix(".py")


@pytest.mark.parametrize("module", sorted(LAZY_LOG_ARGUMENTS))
def test_every_call_of_a_swapped_name_is_a_log_argument(module: str) -> None:
    tree = ast.parse(_source(module).read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    names = set(LAZY_LOG_ARGUMENTS[module])
    found: set[str] = set()
    outside = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names):
            continue
        found.add(node.func.id)
        up: ast.AST = node
        while up in parents:
            up = parents[up]
            if isinstance(up, ast.Call) and isinstance(up.func, ast.Attribute) and up.func.attr in _LOG_METHODS:
                break
            if isinstance(up, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                outside.append(f"line {node.lineno}: {ast.unparse(node)}")
                break
    assert outside == [], f"{module} uses these as more than log arguments"
    assert found == names, f"{module} no longer calls {sorted(names - found)}: drop it from LAZY_LOG_ARGUMENTS"
