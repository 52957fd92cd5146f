"""Per-node run states."""

from __future__ import annotations

import enum

__all__ = ["NodeStatus"]


class NodeStatus(enum.IntEnum):
    """What happened to a node in one run."""

    PENDING = 0  # did not start (not needed, or the run stopped first)
    RUNNING = 1
    RETRYING = 2  # waiting between two attempts
    SUCCEEDED = 3
    FAILED = 4
    CANCELLED = 5
    SKIPPED = 6  # an input or `after=` node failed (continue mode)
