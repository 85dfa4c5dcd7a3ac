"""This process's one ``Meter``: the components of a container share it, so a component that starts
again keeps counting from where it was, and the node sums each process once (by its identity)."""

from components.metrics.meter import Meter
from components.metrics.processes import own_label

#: Identity: the container's name (``components-1``), stable across restarts of the process.
METER = Meter(own_label())
