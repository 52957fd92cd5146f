"""Per-node run states."""

from __future__ import annotations

import enum

__all__ = ["NodeStatus"]


class NodeStatus(enum.IntEnum):
    """What happened to a node in one run; read it with `result.status(node)`.

    `str(status)` and f-strings give the name (``SUCCEEDED``); the values are small ints, in
    the order a node goes through them, and are not part of the contract.
    """

    PENDING = 0  # did not start (not needed, or the run stopped first)
    RUNNING = 1
    RETRYING = 2  # waiting between two attempts
    SUCCEEDED = 3
    FAILED = 4
    CANCELLED = 5
    SKIPPED = 6  # an input or `after=` node failed (continue mode)

    def __str__(self) -> str:
        return self.name

    def __format__(self, spec: str) -> str:
        return format(self.name, spec)
