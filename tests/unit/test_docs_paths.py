"""Every path and module the docs name exists: a moved or renamed file cannot leave a doc pointing nowhere.

Read: the README, docs/, and the READMEs of clients/, bench/ and examples/. Checked: repo paths under
the top-level folders (``components/delivery/dispatcher.py``, ``tests/support/``), dotted module names
of our packages (``components.delivery.dispatcher``, ``webapp_bridge.server.component.Bridge``) and
relative Markdown links. Files a running node creates (``.crossbar/run.yaml``) are not checked.
"""

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted(
    [REPO / "README.md", *(REPO / "docs").rglob("*.md"), *(REPO / "clients").rglob("README.md"),
     *(REPO / "bench").glob("*.md"), *(REPO / "examples").rglob("README.md")],
)
DOCS = [d for d in DOCS if "node_modules" not in d.parts]
TOP = ("components", "webapp_bridge", "tests", "bench", "clients", "docs", "examples")
#: A repo path: one of the top-level folders, then path characters; ends before punctuation.
PATH = re.compile(r"(?<![\w./-])((?:" + "|".join(TOP) + r")/[\w./*-]*[\w/*])")
#: A dotted name in one of our packages (a module, or a module's attribute).
MODULE = re.compile(r"(?<![\w./-])((?:components|webapp_bridge)(?:\.[A-Za-z_]\w*)+)")
#: Named on purpose though they do not exist: sample error output about a user's file, and a Django
#: system-check id (``webapp_bridge.W004``) that looks like a dotted module name.
NOT_PATHS = {"examples/x.yaml", "webapp_bridge.W004"}
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _exists(path: str) -> bool:
    if "*" in path:
        return any(REPO.glob(path))
    return (REPO / path.rstrip("/")).exists()


def _module_exists(dotted: str) -> bool:
    """True if the longest importable prefix is a module of ours (the rest may be attributes)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        candidate = REPO.joinpath(*parts[:end])
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
            rest = parts[end:]
            if not rest:
                return True
            # An attribute of a module: the first name after the module must be defined in it.
            source = (candidate.with_suffix(".py") if candidate.with_suffix(".py").is_file()
                      else candidate / "__init__.py").read_text(encoding="utf-8")
            return re.search(rf"(?m)^(?:class|def|async def)\s+{re.escape(rest[0])}\b|^{re.escape(rest[0])}\s*[:=]|"
                             rf"\b{re.escape(rest[0])}\b", source) is not None
    return False


def _named(doc: Path) -> tuple[list[str], list[str], list[str]]:
    text = doc.read_text(encoding="utf-8")
    paths = sorted({m.group(1) for m in PATH.finditer(text)})
    modules = sorted({m.group(1).rstrip(".") for m in MODULE.finditer(text)})
    links = sorted({m.group(1) for m in LINK.finditer(text) if "://" not in m.group(1)
                    and not m.group(1).startswith(("mailto:", "/"))})
    return paths, modules, links


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(REPO)))
def test_every_path_a_doc_names_exists(doc: Path) -> None:
    paths, modules, links = _named(doc)
    missing = [p for p in paths if not _exists(p) and p not in NOT_PATHS]
    missing += [m for m in modules if not _module_exists(m) and m not in NOT_PATHS]
    missing += [link for link in links if not (doc.parent / link).exists()]
    assert not missing, f"{doc.relative_to(REPO)} names what does not exist: {missing}"


def test_the_docs_are_read() -> None:
    """The check above reads the docs it should (it would pass vacuously on none)."""
    names = {str(d.relative_to(REPO)) for d in DOCS}
    assert {"README.md", "docs/architecture.md", "clients/js/README.md", "bench/README.md"} <= names
    assert any(_named(d)[0] for d in DOCS)


def test_the_check_catches_a_missing_path() -> None:
    assert not _exists("components/no_such_module.py")
    assert not _module_exists("components.delivery.no_such_module")
    assert _module_exists("components.delivery.dispatcher.Dispatcher")
    assert importlib.util.find_spec("components") is not None


#: The folders docs/architecture.md's map must name: every package under these (a folder with
#: ``__init__.py``; not the top folders themselves), and every folder directly under ``clients/`` and
#: ``tests/``. The tests' own packages under tests/unit/ and tests/integration/ mirror the code's and
#: are named by those two.
MAPPED_PACKAGES = ("components", "webapp_bridge", "bench", "tests")
MIRRORS = ("tests/unit/", "tests/integration/")


def _map_table() -> str:
    """The rows of the table under "## Map of the tree" in docs/architecture.md."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Map of the tree", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.splitlines() if line.startswith("|"))


def _mapped() -> set[str]:
    """The folders the map names, each as ``path/`` (a row may name several)."""
    return {name.rstrip("/") + "/" for name in re.findall(r"`([^`\s]+)`", _map_table())
            if "." not in name.rsplit("/", 1)[-1]}


def _must_be_mapped() -> dict[str, bool]:
    """Each folder the map must name -> whether its ``__init__.py`` says what it owns. A package with an
    empty one (Django's ``management/commands/``, ``templatetags/``, found by those names) belongs to
    the nearest named folder above it."""
    folders: dict[str, bool] = {}
    for top in MAPPED_PACKAGES:
        for init in (REPO / top).rglob("__init__.py"):
            folder = init.parent.relative_to(REPO).as_posix() + "/"
            if "node_modules" in init.parts or folder.startswith(MIRRORS) and folder not in MIRRORS \
                    or folder.count("/") == 1:  # the top folders themselves: the map names what is in them
                continue
            folders[folder] = bool(init.read_text(encoding="utf-8").strip())
    for top in ("clients", "tests"):
        for child in (REPO / top).iterdir():
            if child.is_dir() and not child.name.startswith((".", "__")) and child.name != "node_modules":
                folders.setdefault(child.relative_to(REPO).as_posix() + "/", True)
    return folders


def test_the_map_names_every_folder() -> None:
    """docs/architecture.md's map of the tree covers the tree: a new package or client folder gets a row
    (or joins one), so the map cannot fall behind the code."""
    mapped = _mapped()
    missing = []
    for folder, documented in sorted(_must_be_mapped().items()):
        if folder in mapped:
            continue
        above = [p for p in mapped if folder.startswith(p) and p.count("/") > 1]
        if not documented and above:
            continue  # an empty package inside a named one (Django's conventional folders)
        missing.append(folder)
    assert not missing, f"docs/architecture.md's map of the tree does not name: {missing}"


def test_the_map_check_reads_the_map() -> None:
    mapped = _mapped()
    assert {"components/", "components/delivery/", "webapp_bridge/proxy/", "webapp_bridge/django/", "bench/_lib/",
            "tests/support/", "clients/js/"} <= mapped
    assert "webapp_bridge/schemacheck.py/" not in mapped and "components/router_guard/" in mapped
    must = _must_be_mapped()
    assert {"components/store/", "webapp_bridge/server/", "tests/support/", "bench/_lib/",
            "clients/status/"} <= set(must)
    assert "tests/unit/query/" not in must and must.get("webapp_bridge/django/templatetags/") is False
