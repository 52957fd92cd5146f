"""What happened during a run, as typed values: one frozen dataclass per kind of event.

Observers are plain callables taking one `Event`; give them to `build_dag(observers=[...])`
(every run of the graph) or `invoke(observers=[...])` (that run). They are called synchronously
on the event loop, in the task where the event happened, so they must be quick; an observer that
raises is reported once on the ``dagwire`` logger and never changes the run's outcome.

Order: `RunStarted` comes first and `RunFinished` last (after every cleanup). Per node, each
`NodeStarted` (one per attempt of a body or resource setup) is followed by exactly one of
`NodeSucceeded`, `NodeFailed`, `NodeRetrying` or `NodeCancelled` for that attempt; a
`NodeRetrying` precedes the next attempt's `NodeStarted`, except that a node cancelled (or
stopped by a fail-fast abort) while it waits for its next attempt (the retry delay, a `Limiter`
slot) ends with a `NodeCancelled` carrying that attempt's number, which never started. A node
that never starts gets at most a
`NodeSkipped` (or a `NodeSucceeded` with ``resumed=True``). A node's `CleanupStarted` and
`CleanupFinished` follow the ends of every node that depends on it.

Match on the class (``isinstance(event, NodeFailed)``) or on ``event.kind``, whose type is a
`Literal` per class, so both narrow the event for type checkers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from .policies import BreakerState

__all__ = [
    "AnyEvent",
    "BreakerChanged",
    "CleanupFinished",
    "CleanupStarted",
    "Event",
    "NodeCancelled",
    "NodeFailed",
    "NodeRetrying",
    "NodeSkipped",
    "NodeStarted",
    "NodeSucceeded",
    "RunFinished",
    "RunStarted",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Fields every event has.

    - `kind`: the event's name, e.g. ``"node_started"`` (one per class).
    - `dag`: the graph's name; `run_id`: unique per `invoke` in this process.
    - `node`: the node's name, or None for run events (`RunStarted`, `RunFinished`).
    - `time`: seconds since the run started (`time.perf_counter` based, the clock of
      `ExecutionResult.timeline()`).
    - `attempt`: 1-based attempt of the node's body or setup; 0 for run and cleanup events.
    - `duration`: seconds, on events that end something (the attempt, the cleanup, the run);
      None otherwise.
    - `error`: the exception, on events that report one; None otherwise.
    - `tags`: the node's `tags=` (empty for run events).
    """

    kind: str = field(init=False, default="")
    dag: str
    run_id: int
    node: str | None = None
    time: float
    attempt: int = 0
    duration: float | None = None
    error: BaseException | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(Event):
    """`invoke` began running the graph (after its options were checked)."""

    kind: Literal["run_started"] = field(init=False, default="run_started")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished(Event):
    """The run ended, after every cleanup. `ok` is False if `invoke` raises or the result is
    not ok; `error` is what `invoke` raises (a `DagError`, `TimeoutError`, `CancelledError`,
    ...), or None when it returns."""

    kind: Literal["run_finished"] = field(init=False, default="run_finished")
    ok: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeStarted(Event):
    """An attempt of a node's body (or of a resource's setup) starts now."""

    kind: Literal["node_started"] = field(init=False, default="node_started")


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSucceeded(Event):
    """The node produced its value. `cached`: taken from its `Cache` without calling the body;
    `resumed`: taken from the result given as `invoke(resume_from=)`, without running."""

    kind: Literal["node_succeeded"] = field(init=False, default="node_succeeded")
    cached: bool = False
    resumed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeFailed(Event):
    """The node failed for good (its last attempt, or its `pre` hook). `recovered`: its
    `fallback=` value was used instead, so its dependents run."""

    kind: Literal["node_failed"] = field(init=False, default="node_failed")
    recovered: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRetrying(Event):
    """The attempt failed with a retryable error; the next one starts after `delay` seconds."""

    kind: Literal["node_retrying"] = field(init=False, default="node_retrying")
    delay: float


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeCancelled(Event):
    """The attempt was cancelled (the caller cancelled, the run timed out or failed fast)."""

    kind: Literal["node_cancelled"] = field(init=False, default="node_cancelled")


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSkipped(Event):
    """The node did not run: it raised `Skip`, or a node it depends on failed or skipped.
    `cause` names the node that started the cascade (the node itself when it raised `Skip`)."""

    kind: Literal["node_skipped"] = field(init=False, default="node_skipped")
    cause: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CleanupStarted(Event):
    """The node's cleanups (its resource's exit, its `post=` hook) start now."""

    kind: Literal["cleanup_started"] = field(init=False, default="cleanup_started")


@dataclass(frozen=True, slots=True, kw_only=True)
class CleanupFinished(Event):
    """The node's cleanups ended; `error` is the first of them that failed, if any."""

    kind: Literal["cleanup_finished"] = field(init=False, default="cleanup_finished")


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerChanged(Event):
    """A `CircuitBreaker` changed state because of a call of `node` in this run."""

    kind: Literal["breaker_changed"] = field(init=False, default="breaker_changed")
    old: BreakerState
    new: BreakerState


AnyEvent: TypeAlias = (
    RunStarted
    | RunFinished
    | NodeStarted
    | NodeSucceeded
    | NodeFailed
    | NodeRetrying
    | NodeCancelled
    | NodeSkipped
    | CleanupStarted
    | CleanupFinished
    | BreakerChanged
)
"""Every concrete event class: annotate with it to narrow by ``event.kind``."""
