"""Supervision of the Crossbar node by ``gateway run``: a node that cannot serve is started again.

``policy`` decides (pure: what counts as dead, how long to wait before the next
start), ``processes`` starts, looks at and stops the node's processes,
``supervisor`` is the loop between them. docs/operations.md says how to run it.

May import: nothing outside this package. It runs in ``gateway run``, outside
the node, and is given what it needs: ``components.cli`` reads the config and
calls it.
"""

from components.supervision.policy import Backoff, NodeShape
from components.supervision.processes import BridgeDrain, Endpoint
from components.supervision.supervisor import EXIT_START_FAILED, EXIT_STOPPED, Settings, configure_logging, supervise

__all__ = ["EXIT_START_FAILED", "EXIT_STOPPED", "Backoff", "BridgeDrain", "Endpoint", "NodeShape", "Settings",
           "configure_logging", "supervise"]
