"""Every package's import rule holds: a module imports only what its package's docstring allows.

The rules are sentences of the packages' docstrings (``__init__.py``), written for readers and parsed
here. Only the names in double backquotes count, up to the end of the sentence; the rest is prose:

- "May import: ``components.config``, ``components.exceptions``." The project modules (of
  ``components``, ``webapp_bridge``, ``clients``, ``bench``, ``tests``) that the package's modules may
  import besides their own package (the package and everything under it). A name allows everything
  under it. Without names ("May import: nothing outside this package.") it allows none. The list
  ends at the end of the sentence or at a semicolon; what the package may not import goes in a
  sentence of its own (the check below refuses a "May import" naming modules after a "not").
- "May import lazily: ..." Project modules imported only inside a function: when it is called, not
  when the module is loaded (the web-app library validates with the gateway's classes if installed).
- "Never imports: ``twisted``, ``autobahn``." Modules, ours or third-party, that no module of the
  package imports in any way. "Never imports (``messages``, ``origins``): ..." limits it to those
  modules of the package.

Standard library and third-party imports are checked only where a "Never imports" names them. A
package without a rule of its own (``webapp_bridge/django/management/``) follows the nearest package
above it that has one. The rules cover every package under ``components/``, ``webapp_bridge/``,
``bench/`` and ``tests/support/`` (the tests themselves import what they test).

Every import counts, wherever it is: ``import x`` and ``from x import y`` (``y`` a module when it is
one), relative ones, and those inside functions, ``try`` and ``if TYPE_CHECKING``. A lazy import runs
just the same once its function is called, and a rule a function body could escape would hold
nothing; an import for the type checker still ties the two packages together. The files are parsed
with ``ast``, never imported (tests/unit/conftest.py: importing a component chooses txaio's framework).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: The roots of the project's own modules: importing one of these is what the rules are about.
PROJECT = ("components", "webapp_bridge", "clients", "bench", "tests")
#: The folders whose packages carry rules.
RULED = (REPO / "components", REPO / "webapp_bridge", REPO / "bench", REPO / "tests" / "support")

_NAME = re.compile(r"``([A-Za-z_][\w.]*)``")
_MAY = re.compile(r"\bMay import( lazily)?:")
#: A "May import" that names modules after a "not": those would be read as allowed.
_NEGATED = re.compile(r"\b(?:nothing|never|not|nor|no|except|but)\b[^.;]*``")
_NEVER = re.compile(r"\bNever imports?(?: \((?P<scope>[^)]*)\))?:")


@dataclass(frozen=True)
class Rule:
    package: str                     # dotted name of the package whose docstring holds the rule
    source: str                      # its __init__.py, relative to the repo
    may: tuple[str, ...]             # allowed anywhere
    lazily: tuple[str, ...]          # allowed only inside a function
    never: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]  # (scope: module names or () for all, names)
    allowing: str                    # the May import sentences, for the failure message
    forbidding: str                  # the Never imports sentences, likewise


@dataclass(frozen=True)
class Import:
    module: str                      # the dotted name imported
    line: int
    lazy: bool                       # inside a function


def _sentence(text: str, start: int, clause: bool = False) -> str:
    """From ``start`` to the end of the sentence: a full stop outside double backquotes, then a space
    or the end (with ``clause``, a semicolon outside them too)."""
    quoted = False
    i = start
    while i < len(text):
        if text.startswith("``", i):
            quoted = not quoted
            i += 2
            continue
        if text[i] == "." and not quoted and (i + 1 == len(text) or text[i + 1].isspace()):
            return text[start:i]
        if clause and text[i] == ";" and not quoted:
            return text[start:i]
        i += 1
    return text[start:]


def parse_rule(package: str, source: str, docstring: str) -> Rule | None:
    """The rule a package's docstring states, or None when it states none."""
    text = " ".join(docstring.split())
    may: list[str] = []
    lazily: list[str] = []
    never: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    allowing: list[str] = []
    forbidding: list[str] = []
    found = False
    for match in _MAY.finditer(text):
        found = True
        body = _sentence(text, match.end(), clause=True)
        allowing.append(match.group(0) + body + ".")
        (lazily if match.group(1) else may).extend(_NAME.findall(body))
    for match in _NEVER.finditer(text):
        body = _sentence(text, match.end())
        forbidding.append(match.group(0) + body + ".")
        scope = tuple(_NAME.findall(match.group("scope") or ""))
        never.append((scope, tuple(_NAME.findall(body))))
    if not found:
        return None
    return Rule(package, source, tuple(may), tuple(lazily), tuple(never), " ".join(allowing), " ".join(forbidding))


def _is_ours(dotted: str) -> bool:
    """Whether the dotted name is a module or package of this repository."""
    path = REPO.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _under(module: str, name: str) -> bool:
    return module == name or module.startswith(name + ".")


def imports(tree: ast.Module, module: str, is_package: bool) -> Iterator[Import]:
    """Every module the parsed module imports, with the line and whether it is inside a function."""
    package = module if is_package else module.rpartition(".")[0]

    def walk(node: ast.AST, lazy: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(alias.name, child.lineno, lazy)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - (child.level - 1)])
                    origin = f"{base}.{child.module}" if child.module else base
                else:
                    origin = child.module or ""
                for alias in child.names:
                    candidate = f"{origin}.{alias.name}"
                    # ``from components import uris`` imports the module components.uris.
                    yield Import(candidate if _is_ours(candidate) else origin, child.lineno, lazy)
            yield from walk(child, inner)

    yield from walk(tree, False)


def violations(rule: Rule, module: str, is_package: bool, source: str, path: str) -> list[str]:
    """What the module imports against the rule, one sentence each (naming module, import and rule)."""
    found = []
    short = module.rpartition(".")[2]
    for imp in imports(ast.parse(source, path), module, is_package):
        forbidden = [name for scope, names in rule.never for name in names
                     if (not scope or short in scope) and _under(imp.module, name)]
        if forbidden:
            found.append(f"{path}:{imp.line}: {module} imports {imp.module}, which {rule.package} never imports "
                         f"({rule.source}: {rule.forbidding})")
            continue
        if imp.module.split(".")[0] not in PROJECT or _under(imp.module, rule.package):
            continue
        if any(_under(imp.module, name) for name in rule.may):
            continue
        if imp.lazy and any(_under(imp.module, name) for name in rule.lazily):
            continue
        how = "at module level" if any(_under(imp.module, name) for name in rule.lazily) else ""
        found.append(f"{path}:{imp.line}: {module} imports {imp.module}{' ' + how if how else ''}, which "
                     f"{rule.package} may not ({rule.source}: {rule.allowing})")
    return found


def _packages() -> list[Path]:
    return sorted(init.parent for root in RULED for init in root.rglob("__init__.py")
                  if "node_modules" not in init.parts and "__pycache__" not in init.parts)


def _dotted(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


@cache
def _rules() -> dict[Path, Rule | None]:
    rules: dict[Path, Rule | None] = {}
    for package in _packages():
        init = package / "__init__.py"
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        rules[package] = parse_rule(_dotted(package), str(init.relative_to(REPO)), docstring)
    return rules


def _rule_of(path: Path) -> Rule | None:
    """The rule of the nearest package at or above the module's folder that states one."""
    rules = _rules()
    for folder in [path.parent, *path.parent.parents]:
        rule = rules.get(folder)
        if rule is not None:
            return rule
        if folder == REPO:
            break
    return None


def test_every_package_states_its_rule() -> None:
    """A package whose docstring says what it owns says what it may import (an empty ``__init__.py``
    follows its parent's rule); the rules name modules that exist."""
    rules = _rules()
    assert {"components", "components.store", "webapp_bridge.proxy", "tests.support", "bench._lib"} <= \
        {_dotted(p) for p in rules}, "the rules are looked for where they should be"
    missing, unknown = [], []
    for package, rule in rules.items():
        init = package / "__init__.py"
        if rule is None and ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))):
            missing.append(str(init.relative_to(REPO)))
        elif rule is None and _rule_of(init) is None:
            missing.append(f"{init.relative_to(REPO)} (and no package above it has a rule)")
        if rule is not None:
            unknown += [f"{rule.source}: {name}" for name in (*rule.may, *rule.lazily) if not _is_ours(name)]
            unknown += [f"{rule.source}: {name} (a scope of Never imports)" for scope, _ in rule.never
                        for name in scope if not _is_ours(f"{rule.package}.{name}")]
            unknown += [f"{rule.source}: a Never imports without names" for _, names in rule.never if not names]
            if _NEGATED.search(rule.allowing):
                unknown.append(f"{rule.source}: names modules after a negation in {rule.allowing!r}: they would be "
                               "allowed; say what is forbidden in a sentence of its own")
    assert not missing, "packages without a 'May import:' sentence in their docstring: " + ", ".join(missing)
    assert not unknown, "rules that cannot be read as meant (a name not of ours, a negation): " + ", ".join(unknown)


def test_every_module_keeps_its_package_rule() -> None:
    found = []
    for package in _packages():
        for path in sorted(package.glob("*.py")):
            rule = _rule_of(path)
            if rule is None:
                found.append(f"{path.relative_to(REPO)}: no package at or above it states a rule")
                continue
            module = _dotted(package) if path.name == "__init__.py" else _dotted(path)
            found += violations(rule, module, path.name == "__init__.py", path.read_text(encoding="utf-8"),
                                str(path.relative_to(REPO)))
    assert not found, "imports the package docstrings forbid:\n" + "\n".join(found)


# The check itself, on made-up modules: it must fail when a rule is broken, or it proves nothing.

_RULE = parse_rule("components.store", "components/store/__init__.py", """The store.

May import: ``components.config`` (its settings), ``components.metrics.meter``.
May import lazily: ``components.events``. Never imports (``base``): ``twisted``, ``components.config``.
""")


def _check(source: str, module: str = "components.store.thread") -> list[str]:
    assert _RULE is not None
    return violations(_RULE, module, False, source, "made-up.py")


def test_the_rule_is_parsed() -> None:
    assert _RULE == Rule("components.store", "components/store/__init__.py",
                         ("components.config", "components.metrics.meter"), ("components.events",),
                         ((("base",), ("twisted", "components.config")),),
                         "May import: ``components.config`` (its settings), ``components.metrics.meter``. "
                         "May import lazily: ``components.events``.",
                         "Never imports (``base``): ``twisted``, ``components.config``.")
    assert parse_rule("x", "x/__init__.py", "Owns things; imports what it likes.") is None
    nothing = parse_rule("x", "x/__init__.py", "May import: nothing outside this package. Then ``x.y`` prose.")
    assert nothing is not None and nothing.may == ()
    clause = parse_rule("x", "x/__init__.py", "May import: ``x.a`` (for ``x.b``); nothing of ``x.c``.")
    assert clause is not None and clause.may == ("x.a", "x.b")
    negated = parse_rule("x", "x/__init__.py", "May import: ``x.a``, nothing of ``x.c``.")
    assert negated is not None and _NEGATED.search(negated.allowing)


def test_the_check_catches_a_forbidden_import() -> None:
    assert _check("import os\nimport twisted\nfrom components.config import GatewayConfig\n"
                  "from components.store import base\nfrom . import sqlite\nfrom components.metrics import meter\n"
                  "from components.metrics.meter import Labels\n") == []
    found = _check("from components.metrics.families import STORE_DURATION\n")
    assert len(found) == 1 and "components.store.thread imports components.metrics.families" in found[0] \
        and "May import:" in found[0] and "made-up.py:1" in found[0]
    assert _check("import components.delivery.rowfilter\n")
    assert _check("from components import uris\n")  # components.uris, a module
    assert _check("from .. import delivery\n")  # relative, resolved: components.delivery
    assert _check("import webapp_bridge.proxy\n")


def test_lazy_imports_count() -> None:
    assert _check("def f():\n    from components.delivery import results\n")
    assert _check("class C:\n    def m(self):\n        import bench._lib\n")
    assert _check("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from components.auth import policy\n")
    assert _check("try:\n    import tests.support.harness\nexcept ImportError:\n    pass\n")
    # Allowed lazily, and only so.
    assert _check("def f():\n    from components.events import Registry\n") == []
    assert "at module level" in _check("from components.events import Registry\n")[0]


def test_never_imports_is_scoped() -> None:
    assert _check("from twisted.internet import reactor\n", "components.store.base")
    assert _check("from components.config import StoreConfig\n", "components.store.base"), \
        "Never imports wins over May import"
    assert _check("from twisted.internet import reactor\n", "components.store.thread") == []


@pytest.mark.parametrize("text, end", [("a ``x.y`` b. c", "a ``x.y`` b"), ("``a. b`` c.", "``a. b`` c"),
                                       ("no stop", "no stop"), ("e.g. stops", "e.g")])
def test_sentences_end_outside_backquotes(text: str, end: str) -> None:
    assert _sentence(text, 0) == end
