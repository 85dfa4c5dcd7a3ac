"""Checking an event's data before it is sent, so that a mistake is an exception in the web-app's code.

Two tiers, best first:

1. When ``components.events`` imports (pydantic installed: ``pip install
   'events-gateway[validate]'``), the proxy loads the very event classes the
   gateway loads (gateway.yaml's events section: modules from the web-app's
   sys.path, files relative to gateway.yaml) and validates with them; the
   data sent is what they normalise it to.
2. Otherwise, or for a class the gateway has that the web-app does not (a
   reload added it), the JSON Schemas of ``GET /catalog``, fetched once and
   checked with webapp_bridge.schemacheck. A class named that the catalog
   lacks, or data it refuses, fetches it again first (at most every
   REFETCH_AFTER seconds), so that a gateway that reloaded newer definitions
   is not contradicted by old ones.

When neither is possible (the gateway is down and pydantic missing: AMQP
publishing must still work), the event goes unchecked and the gateway
validates it (over AMQP a bad one is dead-lettered). The gateway always
validates again: these checks only make mistakes show early.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from webapp_bridge.proxy._envelope import json_data
from webapp_bridge.proxy._errors import EventRejected, ProxyError
from webapp_bridge.proxy._retry import Transient
from webapp_bridge.proxy._settings import ProxySettings

log = logging.getLogger("webapp_bridge.proxy")
#: Seconds between two fetches of the catalog (and after a failed one): a web-app that
#: names an unknown class in a loop must not turn every publish into two requests.
REFETCH_AFTER = 5.0


class LocalValidator:
    """Checks (name, data) by the event classes; ``fetch_catalog`` is one GET /catalog."""

    def __init__(self, settings: ProxySettings, fetch_catalog: Callable[[], Any],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._fetch = fetch_catalog
        self._clock = clock
        self._lock = threading.Lock()
        self._registry: Any = None
        self._registry_loaded = False
        self._schemas: dict[str, dict[str, Any]] | None = None
        #: The catalog's definitions version (compared with the classes loaded here).
        self._version: str | None = None
        self._fetched_at: float | None = None
        self._fetching = False

    def check(self, name: str, data: Any) -> Any:
        """The data to send for event ``name`` (normalised), or EventRejected saying what is wrong."""
        registry = self._classes()
        if registry is not None and name in registry:
            try:
                return _by_class(registry, name, data)
            except EventRejected:
                # The classes here may be older than the gateway's (it reloads its definitions while
                # this process runs): a refusal stands only if the gateway's catalog has the same version.
                if self._catalog(refresh=True) is None or self._version == registry.version:
                    raise
                log.info("the gateway's event definitions (version %s) differ from those loaded here (%s): "
                         "checking %s by its catalog", self._version, registry.version, name)
        data = json_data(data)
        return self._by_schema(name, data)

    @property
    def tier(self) -> str:
        """"classes" (the event classes themselves) or "catalog" (their JSON Schemas): for logs and tests."""
        return "classes" if self._classes() is not None else "catalog"

    # -- tier 1 ------------------------------------------------------------

    def _classes(self) -> Any:
        """The gateway's event classes loaded here, or None when they cannot be (then the catalog serves)."""
        if self._registry_loaded:
            return self._registry
        with self._lock:
            if not self._registry_loaded:
                self._registry = self._load_classes()
                self._registry_loaded = True
        return self._registry

    def _load_classes(self) -> Any:
        try:
            from components.events import Registry
        except ImportError as exc:
            log.debug("event classes not loadable here (%s): checking events by the gateway's catalog", exc)
            return None
        s = self._settings
        try:
            return Registry.load(s.event_modules, s.event_files)
        except Exception as exc:  # a web-app without the gateway's modules still has the catalog
            log.warning("%s: the event classes of the events section could not be loaded here (%s); checking "
                        "events by the gateway's catalog instead", s.source, exc)
            return None

    # -- tier 2 ------------------------------------------------------------

    def _by_schema(self, name: str, data: Any) -> Any:
        schemas = self._catalog(refresh=False)
        if schemas is not None and name not in schemas:
            schemas = self._catalog(refresh=True)
        if schemas is None:
            return data  # nothing to check against: the gateway checks
        if name not in schemas:
            known = ", ".join(sorted(schemas))
            raise EventRejected(404, "unknown_event", f"no event class named {name!r} (known: {known})")
        found = _problems(schemas[name], data)
        if found:
            fresher = self._catalog(refresh=True)
            if fresher is not None and fresher is not schemas:
                if name not in fresher:
                    known = ", ".join(sorted(fresher))
                    raise EventRejected(404, "unknown_event", f"no event class named {name!r} (known: {known})")
                found = _problems(fresher[name], data)
        if found:
            raise EventRejected(400, "invalid_event", f"the data does not match the event class {name}", found)
        return data

    def _catalog(self, refresh: bool) -> dict[str, dict[str, Any]] | None:
        """The schemas by class name; fetched when there are none yet or ``refresh``, at most every
        REFETCH_AFTER, by one thread at a time and outside the lock: a gateway that does not answer
        holds up the thread that asked, not every thread publishing (they use what is known)."""
        with self._lock:
            recent = self._fetched_at is not None and self._clock() - self._fetched_at < REFETCH_AFTER
            if (self._schemas is not None and not refresh) or recent or self._fetching:
                return self._schemas
            self._fetched_at = self._clock()
            self._fetching = True
        try:
            catalog = self._fetch()
            schemas = {c["name"]: c["schema"] for c in catalog["classes"]}
            version = catalog.get("version")
        except (ProxyError, Transient, KeyError, TypeError, AttributeError) as exc:
            log.warning("the gateway's catalog could not be fetched (%s): events are sent unchecked, the "
                        "gateway checks them", exc)
            with self._lock:
                self._fetching = False
                return self._schemas
        with self._lock:
            self._schemas, self._version, self._fetching = schemas, version, False
            return schemas


def _by_class(registry: Any, name: str, data: Any) -> Any:
    from components.events import InvalidEventData

    try:
        return registry.get(name).validate(data)
    except InvalidEventData as exc:
        raise EventRejected(400, "invalid_event", f"the data does not match the event class {name}",
                            [{**e.as_dict(), "path": ".".join(p for p in ("data", e.path) if p)}
                             for e in exc.errors]) from None


def _problems(schema: dict[str, Any], data: Any) -> list[dict[str, Any]]:
    try:
        from webapp_bridge.schemacheck import problems
    except ImportError:  # pragma: no cover - the module ships with the proxy
        return []
    return [{"path": ".".join(p for p in ("data", problem.path) if p), "message": problem.message,
             "type": problem.type} for problem in problems(schema, data)]
