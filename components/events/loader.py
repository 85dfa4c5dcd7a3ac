"""Where event classes come from: imported Python modules and read YAML files.

The package's one place that imports and reads; everything it finds goes to
the pure code (``event``, ``yaml_definitions``) and comes back as EventClass.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from components.events.event import Event, event_class_of
from components.events.eventclass import EventClass
from components.events.yaml_definitions import parse_definitions
from components.exceptions import DefinitionError


def classes_from_modules(names: Sequence[str], reload: bool = False) -> list[EventClass]:
    """Every Event subclass defined in each module, module by module, in definition order.

    With ``reload``, a module imported before runs again from its source, so
    an edited module takes effect. It is imported afresh rather than
    ``importlib.reload``-ed: a class removed from the source then disappears
    too, and if the new source fails the old module stays in place.
    """
    if reload:
        importlib.invalidate_caches()  # a module file created since start-up must be found
    found: list[EventClass] = []
    for name in names:
        module = _import(name, reload)
        try:
            found.extend(event_class_of(cls) for cls in _event_classes_in(module))
        except DefinitionError as exc:
            raise DefinitionError(f"event module {name!r}: {exc}") from None
    return found


def classes_from_files(paths: Sequence[str | Path], base_dir: Path | None = None) -> list[EventClass]:
    """The event classes of each YAML file, file by file; relative paths are taken from ``base_dir``."""
    found: list[EventClass] = []
    for given in paths:
        path = Path(given)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise DefinitionError(f"{given}: event definitions must be UTF-8 text") from None
        except OSError as exc:
            raise DefinitionError(f"{given}: cannot read event definitions: {exc.strerror or exc}") from None
        found.extend(parse_definitions(text, str(given)))
    return found


def _import(name: str, reload: bool) -> ModuleType:
    old = sys.modules.pop(name, None) if reload else None
    if old is not None:
        _forget_bytecode(old)
    try:
        return importlib.import_module(name)
    except Exception as exc:  # whatever the module raises while running is a broken definition
        if old is not None:
            sys.modules[name] = old
        detail = str(exc) if isinstance(exc, DefinitionError) else f"{type(exc).__name__}: {exc}"
        raise DefinitionError(f"cannot load event module {name!r}: {detail}") from exc


def _forget_bytecode(module: ModuleType) -> None:
    # Python trusts a cached .pyc whose source has the same size and the same
    # mtime second: an edit within one second of the last would be missed.
    source = getattr(module, "__file__", None)
    if not isinstance(source, str) or not source.endswith(".py"):
        return
    try:
        Path(importlib.util.cache_from_source(source)).unlink(missing_ok=True)
    except (OSError, NotImplementedError, ValueError):
        pass  # read-only or no cache: nothing stale to fear beyond the above


def _event_classes_in(module: ModuleType) -> list[type[Event]]:
    found: list[type[Event]] = []
    for value in list(vars(module).values()):
        if (isinstance(value, type) and issubclass(value, Event) and value is not Event
                and value.__module__ == module.__name__ and value not in found):
            found.append(value)
    return found
