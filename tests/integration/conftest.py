from collections.abc import Iterator

import pytest

from tests.harness import GatewayNode, running_node


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
