"""A component's current event registry, swapped atomically on reload.

Every component (each dispatcher, each bridge) holds one. A reload builds a
whole new registry from the sources named in gateway.yaml; only if that
succeeds does it replace the current one, in one assignment on the reactor
thread, so no request ever sees half of each. A broken definition leaves the
old registry serving and says what is wrong.

Two triggers, both documented in docs/event-definitions.md:

- ``POST /admin/reload`` on the bridge: the bridge reloads, then asks every
  other component to (``gateway.internal.reload.<session>``) and answers once
  all run the new version.
- watching (``events.watch``): each component polls the modification times of
  the YAML files and of the event modules' source files and reloads by
  itself when one changes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from components.events import Registry
from components.exceptions import DefinitionError
from components.events.row_filters import check_row_filters

log = Logger()


class LiveRegistry:
    def __init__(self, modules: Sequence[str], files: Sequence[str],
                 on_change: Callable[[Registry, Registry], None] | None = None) -> None:
        self._modules = tuple(modules)
        self._files = tuple(files)
        self._on_change = on_change
        self._watcher: LoopingCall | None = None
        self.current = _checked(Registry.load(self._modules, self._files))
        self._seen = self._snapshot()

    def reload(self) -> Registry:
        """Load the sources again and swap; on a DefinitionError the current registry stays."""
        seen = self._snapshot()
        new = _checked(Registry.load(self._modules, self._files, reload=True))
        self._seen = seen
        old, self.current = self.current, new
        if new.version != old.version:
            log.info("event definitions reloaded: version {old} -> {new}, {n} classes",
                     old=old.version, new=new.version, n=len(new))
            if self._on_change is not None:
                self._on_change(old, new)
        return new

    def watch(self, interval: float) -> None:
        self._watcher = LoopingCall(self._check)
        self._watcher.start(interval, now=False)

    def stop(self) -> None:
        if self._watcher is not None and self._watcher.running:
            self._watcher.stop()
        self._watcher = None

    def _check(self) -> None:
        if self._snapshot() == self._seen:
            return
        try:
            self.reload()
        except DefinitionError as exc:
            self._seen = self._snapshot()  # report a broken edit once, not every second
            log.error("event definitions changed but cannot be loaded; still serving version {version}: {err}",
                      version=self.current.version, err=exc)

    def _sources(self) -> list[str]:
        paths = list(self._files)
        for name in self._modules:
            module = sys.modules.get(name)
            source = getattr(module, "__file__", None)
            if source:
                paths.append(source)
        return paths

    def _snapshot(self) -> dict[str, int]:
        stamps = {}
        for path in self._sources():
            try:
                stamps[path] = os.stat(path).st_mtime_ns
            except OSError:
                stamps[path] = -1  # a missing file is a state too: its return is a change
        return stamps


def _checked(registry: Registry) -> Registry:
    """The registry, once its row filters are known to parse and to name fields the classes have."""
    check_row_filters(registry)
    return registry
