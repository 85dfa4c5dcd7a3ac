from collections.abc import Iterator

import pytest

from tests.harness import GatewayNode, remove_workdir, temp_workdir


@pytest.fixture(scope="session")
def node() -> Iterator[GatewayNode]:
    """One gateway node shared by the tests that do not break it."""
    workdir = temp_workdir()
    gateway = GatewayNode(workdir)
    try:
        gateway.start()
        yield gateway
    finally:
        gateway.stop()
        remove_workdir(workdir)


@pytest.fixture
def own_node() -> Iterator[GatewayNode]:
    """A node of the test's own, for tests that kill or restart parts of it."""
    workdir = temp_workdir()
    gateway = GatewayNode(workdir)
    try:
        gateway.start()
        yield gateway
    finally:
        gateway.stop()
        remove_workdir(workdir)
