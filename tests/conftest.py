"""The order modules run in: the slowest first.

``make test`` runs pytest in two processes (pytest-xdist, ``-n 2 --dist loadfile``: a module's tests stay
in one process, so its module-scoped nodes start once). Each process takes the next module as it finishes
one; with the slowest modules first, both end at about the same time instead of one running a long module
alone at the end. A serial run (``pytest`` alone) runs the same tests in this order too.
"""

from __future__ import annotations

import pytest

#: Modules by their time in a full run (setup, calls, teardown; most first), about 40 % of the suite's time.
#: A module not listed keeps its place after these; one renamed or gone is simply not found.
SLOWEST_FIRST = [
    "tests/integration/test_cluster.py",
    "tests/integration/test_supervision.py",
    "tests/integration/test_persistent.py",
    "tests/integration/test_browser.py",
    "tests/integration/test_reload.py",
    "tests/integration/test_amqp_ingest.py",
    "tests/integration/test_delivery_once.py",
    "tests/integration/test_identity.py",
    "tests/integration/test_metrics.py",
    "tests/integration/test_drain.py",
    "tests/integration/test_js_failover.py",
    "tests/integration/test_delivery_chaos.py",
    "tests/integration/test_store_latency.py",
    "tests/integration/test_continuous_service.py",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.partition("::")[0], len(rank)))
