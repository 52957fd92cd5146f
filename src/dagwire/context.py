"""`dagwire.current()`: which run, node and attempt the calling code belongs to."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RunContext"]


@dataclass(frozen=True, slots=True)
class RunContext:
    """Where the calling code runs: the graph's name, the run's id (unique per `invoke` in this
    process), the node's name and the 1-based attempt of its body or setup (0 in hooks and
    cleanups, and in a resource's cleanup)."""

    dag: str
    run_id: int
    node: str
    attempt: int
