"""Unit tests import no WAMP framework: importing ``autobahn.twisted`` (or ``autobahn.asyncio``) makes
txaio choose it for the whole process, and the integration tests, collected after these in one
``pytest`` run, use autobahn's asyncio side (tests/support/wamp.py). A unit test module that chose one
fails its collection here, naming itself, instead of 22 integration modules failing far away."""

from collections.abc import Generator
from typing import Any

import pytest
import txaio

_reported: list[str] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    outcome = yield
    chosen = getattr(txaio, "_explicit_framework", None)
    if isinstance(collector, pytest.Module) and chosen is not None and not _reported:
        _reported.append(collector.nodeid)
        report = outcome.get_result()
        report.outcome = "failed"
        report.longrepr = (f"importing {collector.nodeid} made txaio choose {chosen!r} for the test process "
                           "(an import of autobahn.twisted or autobahn.asyncio, perhaps through a component "
                           "module): import only pure modules in unit tests, or import those lazily")
