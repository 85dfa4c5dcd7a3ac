import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.support.harness import GatewayNode, running_node

#: The PostgreSQL server of this machine (and of CI): trust authentication, database test.
POSTGRESQL_URL = os.environ.get("GATEWAY_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def node() -> Iterator[GatewayNode]:
    """One gateway node shared by the tests that do not break it."""
    with running_node() as gateway:
        yield gateway


@pytest.fixture
def own_node() -> Iterator[GatewayNode]:
    """A node of the test's own, for tests that kill or restart parts of it."""
    with running_node() as gateway:
        yield gateway


@contextmanager
def postgresql_schema() -> Iterator[dict[str, Any]]:
    """A fresh schema in the PostgreSQL test database, as gateway.yaml's store section; dropped afterwards."""
    import psycopg

    schema = f"gw_test_{uuid.uuid4().hex[:12]}"
    try:
        yield {"url": POSTGRESQL_URL, "schema_name": schema}
    finally:
        with psycopg.connect(POSTGRESQL_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def pg_node() -> Iterator[GatewayNode]:
    """A gateway node whose store is PostgreSQL (a schema of its own), shared by a module's tests."""
    with postgresql_schema() as store, running_node({"store": store}) as gateway:
        yield gateway


@pytest.fixture
def own_pg_node() -> Iterator[GatewayNode]:
    with postgresql_schema() as store, running_node({"store": store}) as gateway:
        yield gateway
