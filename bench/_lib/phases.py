"""One measured phase: publish, wait until the subscribers have what was accepted, read the CPU."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench._lib.cpu import CpuMeter
from bench._lib.nodes import require_running
from bench._lib.publishers import Load
from bench._lib.subscribers import Deliveries, SubscriberPool, wait_delivered
from tests.support.harness import CrossbarNode

__all__ = ["Measured", "measure_phase"]


@dataclass
class Measured:
    """A measured phase; a benchmark's row adds what it was (``Row(*measure_phase(…), n, path, …)``)."""

    load: Load
    got: Deliveries
    cpu: dict[str, float]

    @property
    def published_per_s(self) -> float:
        return self.load.per_second

    @property
    def delivered_per_s(self) -> float:
        return self.got.per_second_since(self.load.start)


def measure_phase(node: CrossbarNode, pool: SubscriberPool, meter: CpuMeter, phase: str, fanout: int,
                  publish: Callable[[], Load]) -> tuple[Load, Deliveries, dict[str, float]]:
    """``publish()`` events of ``phase``, each due to ``fanout`` sessions of the pool, and wait for them.

    (what was published, what was delivered, CPU % over both); raises if the node died meanwhile.
    """
    require_running(node)
    meter.start()
    load = publish()
    wait_delivered(pool, phase, load.accepted * fanout)
    cpu = meter.stop()
    require_running(node)
    return load, pool.deliveries(phase), cpu
