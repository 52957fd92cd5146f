"""`ExecutionResult`: what one run produced, read through the graph's typed handles."""

# pyright: reportPrivateUsage=false
# (package-internal access between the graph, its handles, results and the run)

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

from .errors import DagDefinitionError, DagError, NodeNotCompletedError
from .node import Node
from .status import NodeStatus

if TYPE_CHECKING:
    from .graph import Dag

_SUCCEEDED = NodeStatus.SUCCEEDED

__all__ = ["ExecutionResult", "Interval", "NodeCompletion", "NodeFailure", "NodeTiming"]

P = TypeVar("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class NodeFailure:
    """One exception of a run: which node, in which phase, and whether a fallback covered it."""

    node: str
    phase: str  # "body", "setup", "pre", "post", "cleanup"
    error: BaseException
    recovered: bool = False  # the node's fallback= value was used instead


@dataclass(frozen=True, slots=True)
class Interval:
    """One stretch of a node's time in a run, in seconds since the run started.

    - `what`: ``"attempt"`` (an attempt of the body or of a resource's setup) or ``"cleanup"``
      (its resource's exit and `post=` hook).
    - `attempt`: 1-based for attempts, 0 for the cleanup.
    - `outcome`: for an attempt ``"succeeded"``, ``"failed"``, ``"retrying"`` (failed, and
      another attempt follows), ``"recovered"`` (failed, `fallback=` used) or ``"cancelled"``;
      for a cleanup ``"ok"`` or ``"failed"``.
    """

    what: str
    attempt: int
    start: float
    end: float
    outcome: str


@dataclass(frozen=True, slots=True)
class NodeCompletion:
    """A node that ended, as `Dag.stream()` yields it.

    - `node`: its handle; `status`: SUCCEEDED, FAILED, CANCELLED or SKIPPED.
    - `value`: its value when SUCCEEDED (a `fallback=` value included), else None.
    - `error`: its exception when FAILED (or covered by a fallback), else None.
    - `time`: seconds since the run started (`time.perf_counter` based).
    """

    node: Node[object]
    status: NodeStatus
    value: object
    error: BaseException | None
    time: float


@dataclass(frozen=True, slots=True)
class NodeTiming:
    """When a node ran, in seconds since the run started (`time.perf_counter` based).

    `start`/`end` span the node from its `pre=` hook (or first attempt) to its outcome;
    `intervals` holds each attempt and the cleanup, in the order they began. `cached`: the value
    came from its `Cache`; `resumed`: from `invoke(resume_from=)` (both: no attempt ran).
    """

    node: str
    status: NodeStatus
    start: float
    end: float
    attempts: int
    intervals: tuple[Interval, ...] = ()
    cached: bool = False
    resumed: bool = False


def make_dag_error(dag_name: str, failures: Sequence[NodeFailure]) -> DagError:
    exceptions: list[Exception] = []
    by_node: dict[str, Exception] = {}
    for f in failures:
        if isinstance(f.error, Exception) and not f.recovered:
            exceptions.append(f.error)
            by_node.setdefault(f.node, f.error)
    summary = "; ".join(
        f"{f.node} ({f.phase}): {type(f.error).__name__}" for f in failures if not f.recovered
    )
    return DagError(f"dag {dag_name!r} failed: {summary}", exceptions, by_node)


class ExecutionResult(Generic[P]):
    """The values, statuses and failures of one run of a `Dag[P]`, returned by `invoke`.

    Read a value with `result[node]` (typed by the node), a status with `result.status(node)`.
    It is not a container: iterating it or `node in result` raises `TypeError` (loop over
    `dag.nodes` instead). A node of another graph raises `DagDefinitionError`.
    """

    __slots__ = ("_causes", "_dag", "_errors", "_params", "_statuses", "_timings", "_values")

    def __init__(
        self,
        dag: Dag[P],
        params: P,
        values: list[Any],
        statuses: list[NodeStatus],
        errors: Sequence[NodeFailure],
        timings: Sequence[NodeTiming] | None,
        skip_causes: Mapping[str, str] | None = None,
    ) -> None:
        self._dag = dag
        self._params = params
        self._values = values
        self._statuses = statuses
        self._errors = tuple(errors)
        self._timings = timings
        self._causes = skip_causes or {}

    def _index(self, node: Node[Any]) -> int:
        if not isinstance(node, Node):
            raise TypeError(
                f"results are read by node handle (result[node]), not by {type(node).__name__}: "
                f"got {node!r}; dag.node(name) finds a handle by name"
            )
        if node._dag is not self._dag:
            raise DagDefinitionError(
                f"{node!r} is not a node of {self._dag!r}, which produced this result"
            )
        return node._index

    def __getitem__(self, node: Node[T]) -> T:
        """The value of `node` in this run.

        Raises `NodeNotCompletedError` (its `status` says why; a failure's exception is its
        `__cause__`) if the node did not succeed, `DagDefinitionError` for another graph's node.
        """
        i = self._index(node)
        status = self._statuses[i]
        if status is _SUCCEEDED:
            value: T = self._values[i]
            return value
        cause = next((f.error for f in self._errors if f.node == node.name), None)
        why = self._why_skipped(node.name) if status is NodeStatus.SKIPPED else None
        raise NodeNotCompletedError(
            node.name, status, has_cause=cause is not None, why=why
        ) from cause

    def _why_skipped(self, name: str) -> str | None:
        started = self._causes.get(name)
        if started is None:
            return None
        if started == name:
            return "it raised Skip"
        if any(f.node == started and not f.recovered for f in self._errors):
            return f"node {started!r}, which it depends on, failed"
        return f"node {started!r}, which it depends on, raised Skip"

    def __iter__(self) -> NoReturn:
        raise TypeError(
            "an ExecutionResult is not iterable: read a value with result[node] and a status "
            "with result.status(node), looping over dag.nodes"
        )

    def __contains__(self, node: object) -> NoReturn:
        raise TypeError(
            "`node in result` is not defined: every node of the graph has a status in the "
            "result; test result.status(node) is NodeStatus.SUCCEEDED instead"
        )

    def status(self, node: Node[Any]) -> NodeStatus:
        """The `NodeStatus` of `node` in this run (PENDING if it did not start).

        Raises `DagDefinitionError` for a node of another graph."""
        return self._statuses[self._index(node)]

    def skip_cause(self, node: Node[Any]) -> str | None:
        """The name of the node whose failure (continue mode) or `Skip` made `node` SKIPPED:
        the node that started the cascade, itself if it raised `Skip`. None for a node that
        was not skipped. Raises `DagDefinitionError` for a node of another graph."""
        self._index(node)
        return self._causes.get(node.name)

    @property
    def dag(self) -> Dag[P]:
        """The graph that produced this result."""
        return self._dag

    @property
    def params(self) -> P:
        """The invoke parameter of this run."""
        return self._params

    @property
    def errors(self) -> tuple[NodeFailure, ...]:
        """Every failure of the run, including those a `fallback=` recovered from."""
        return self._errors

    @property
    def ok(self) -> bool:
        """True unless a failure went unrecovered: exactly when fail-fast mode would not raise.

        Failures covered by `fallback=` are in `errors` but do not make the run not ok.
        """
        return all(f.recovered for f in self._errors)

    def raise_for_errors(self) -> None:
        """Raise the run's `DagError` if it is not `ok`; do nothing otherwise."""
        if not self.ok:
            raise make_dag_error(self._dag.name, self._errors)

    def timeline(self) -> list[NodeTiming]:
        """Start/end times and attempts of every node that started, in start order.

        Recorded only when the run was invoked with `timeline=True` (it costs two clock reads
        per node, which plain runs do not pay).
        """
        if self._timings is None:
            raise DagDefinitionError(
                "this run did not record a timeline: invoke with timeline=True"
            )
        return sorted(self._timings, key=lambda t: t.start)

    def to_mermaid_gantt(self) -> str:
        """The run as a Mermaid Gantt chart (text): one task per attempt and per cleanup.

        Times are integer milliseconds since the run started (``dateFormat x``); a task lasts at
        least 1 ms so that none is invisible. Raises `DagDefinitionError` unless the run was
        invoked with `timeline=True`.
        """
        from .render.mermaid import gantt

        return gantt(self._dag.name, self.timeline())

    def to_chrome_trace(self) -> dict[str, list[dict[str, object]]]:
        """The run in the Trace Event format, ``{"traceEvents": [...]}``; `json.dump` it to a
        file and open it in Perfetto (ui.perfetto.dev) or chrome://tracing.

        One complete event per attempt and per cleanup (`ts`/`dur` in microseconds since the run
        started; `args` carry status, attempt, outcome, error), laid out in lanes ("threads") so
        that no two events of a lane overlap, and a flow arrow per dependency edge. Raises
        `DagDefinitionError` unless the run was invoked with `timeline=True`.
        """
        from .render.chrome_trace import trace

        return trace(self._dag.name, self._dag._specs, self.timeline(), self._errors)

    def plot_gantt(self, path: str | os.PathLike[str]) -> None:
        """Draw the run as a Gantt chart to `path`, PNG or SVG by its suffix (matplotlib,
        ``pip install dagwire[plot]``).

        One row per node, bars coloured by outcome, cleanups hatched; seconds on the x axis.
        Raises `DagDefinitionError` unless the run was invoked with `timeline=True`,
        `ValueError` for a suffix other than ``.png``/``.svg``, `ImportError` without matplotlib.
        """
        from .render.gantt import plot

        plot(self._dag.name, self.timeline(), path)

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for s in self._statuses:
            counts[s.name] = counts.get(s.name, 0) + 1
        return f"<ExecutionResult of {self._dag.name!r} ok={self.ok} {counts}>"
