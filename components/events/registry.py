"""The registry: every loaded event class by name, with its catalog and version.

Immutable once built: a reload builds a new registry and the caller swaps it
in whole, so nobody ever sees half of each.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from components.events.eventclass import EventClass
from components.events.loader import classes_from_files, classes_from_modules
from components.events.rules import BACKEND_ROLE
from components.exceptions import DefinitionError, UnknownEvent


class Registry:
    """Event classes by name. Immutable once built: a reload builds a new one."""

    def __init__(self, classes: Iterable[EventClass] = ()) -> None:
        self._classes: dict[str, EventClass] = {}
        for cls in classes:
            other = self._classes.get(cls.name)
            if other is not None:
                raise DefinitionError(
                    f"event class {cls.name!r} is defined twice: in {other.source} and in {cls.source}"
                )
            self._classes[cls.name] = cls
        self._version = _version(self._classes.values())

    @classmethod
    def load(cls, modules: Sequence[str] = (), files: Sequence[str | Path] = (),
             base_dir: Path | None = None, reload: bool = False) -> Registry:
        """Load the Event subclasses of ``modules`` and the YAML ``files`` (relative to ``base_dir``).

        ``reload`` runs already imported modules again from their source (hot
        reload). Any mistake raises DefinitionError naming the module or
        file, and the class.
        """
        return cls([*classes_from_modules(modules, reload), *classes_from_files(files, base_dir)])

    def get(self, name: str) -> EventClass:
        """The class called ``name``; UnknownEvent if there is none."""
        try:
            return self._classes[name]
        except KeyError:
            raise UnknownEvent(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __iter__(self) -> Iterator[EventClass]:
        return iter(self._classes.values())

    def __len__(self) -> int:
        return len(self._classes)

    def public(self) -> list[EventClass]:
        """Classes anyone may see, anonymous clients included."""
        return [c for c in self if c.visibility == "public"]

    def visible(self, authrole: str, roles: Collection[str] = ()) -> list[EventClass]:
        """Classes a caller with ``authrole`` (and extra ``roles``) may see."""
        return [c for c in self if c.visible_to(authrole, roles)]

    @property
    def version(self) -> str:
        """A short hash of every class's definition: equal definitions, equal versions, in any process."""
        return self._version

    def catalog(self, authrole: str = BACKEND_ROLE, roles: Collection[str] = ()) -> dict[str, Any]:
        """``{"version", "classes"}``: the catalog entries the caller may see, sorted by name."""
        visible = sorted(self.visible(authrole, roles), key=lambda c: c.name)
        return {"version": self._version, "classes": [c.catalog_entry() for c in visible]}


def _version(classes: Iterable[EventClass]) -> str:
    # The catalog entries plus row_filter: it is a rule, so changing it must
    # change the version, but it is not published in the catalog.
    entries = sorted(({**c.catalog_entry(), "row_filter": c.row_filter} for c in classes),
                     key=lambda e: str(e["name"]))
    text = json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
