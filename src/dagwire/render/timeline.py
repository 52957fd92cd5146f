"""A run's timings as bars: what the run pictures draw, one bar per attempt and per cleanup."""

from __future__ import annotations

from dataclasses import dataclass

from ..results import NodeTiming
from ..status import NodeStatus

__all__ = ["Bar", "bars"]


@dataclass(frozen=True, slots=True)
class Bar:
    """One stretch of one node's time, in seconds since the run started.

    - `what`: ``"attempt"`` or ``"cleanup"`` (from `NodeTiming.intervals`), or ``"node"``: the
      node's whole span, drawn when no attempt was recorded for it (a value from its cache or
      from `resume_from=`, a `pre=` hook that failed before any attempt, or a timing recorded
      without intervals).
    - `attempt`: 1-based for attempts, 0 for cleanups and whole-node bars.
    - `outcome`: the interval's outcome (``"succeeded"``, ``"failed"``, ``"retrying"``,
      ``"recovered"``, ``"cancelled"``; ``"ok"`` or ``"failed"`` for a cleanup); for a
      whole-node bar ``"cached"``, ``"resumed"`` or the node's status in lower case.
    - `status`: the node's final status in the run.
    """

    node: str
    what: str
    attempt: int
    start: float
    end: float
    outcome: str
    status: NodeStatus


def bars(timing: NodeTiming) -> list[Bar]:
    """The bars of one node: its attempts (or its whole span when none), then its cleanups."""
    out: list[Bar] = []
    for iv in timing.intervals:
        out.append(
            Bar(timing.node, iv.what, iv.attempt, iv.start, iv.end, iv.outcome, timing.status)
        )
    if not any(b.what == "attempt" for b in out):
        outcome = (
            "cached" if timing.cached else "resumed" if timing.resumed else timing.status.name
        ).lower()
        whole = Bar(timing.node, "node", 0, timing.start, timing.end, outcome, timing.status)
        out.insert(0, whole)
    return out
