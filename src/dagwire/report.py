"""What a run tells the outside while it runs: events for observers, and its timeline.

Only runs that need it create a `Reporter`: runs with observers (given to `build_dag`/`Dag` or to
`invoke`), runs whose ``dagwire`` logger is enabled for DEBUG, and runs invoked with
`timeline=True`. A plain run pays one `if` for all of it. The run loop calls the reporter from
the slow path and from `Run.ended`, after a node's outcome is recorded.
"""

# pyright: reportPrivateUsage=false
# (package-internal access to the graph's handles)

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import Skip
from .events import (
    AnyEvent,
    BreakerChanged,
    CleanupFinished,
    CleanupStarted,
    NodeCancelled,
    NodeFailed,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    RunFinished,
    RunStarted,
)
from .policies import BreakerState
from .results import Interval, NodeCompletion, NodeTiming
from .status import NodeStatus

if TYPE_CHECKING:
    from .scheduler import Run

__all__ = ["Observer", "Reporter", "make_reporter"]

Observer = Callable[[AnyEvent], object]
"""An observer: a callable taking one event (any of `dagwire.events`' classes; annotate its
parameter `Event` or `AnyEvent`); its return value is ignored."""

logger = logging.getLogger("dagwire")


Feed = Callable[[NodeCompletion], object]
"""Where `Dag.stream()` receives each node's end."""


def make_reporter(
    run: Run, observers: Sequence[Observer], timeline: bool, feed: Feed | None = None
) -> Reporter | None:
    """The run's reporter, or None when nothing listens (the common case)."""
    everyone = (*run.dag.observers, *observers)
    if logger.isEnabledFor(logging.DEBUG):
        everyone = (*everyone, log_event)
    if not everyone and not timeline and feed is None:
        return None
    return Reporter(run, everyone, timeline, feed)


@dataclass(slots=True)
class _Times:
    """One node's timeline, recorded for `invoke(timeline=True)`."""

    start: float
    end: float = 0.0
    intervals: list[Interval] = field(default_factory=list[Interval])
    cached: bool = False
    resumed: bool = False


class Reporter:
    """Turns what happens to one run's nodes into events and timeline entries.

    Each transition reads the clock once, so events and the timeline agree; the timeline is
    kept only when the run was invoked with `timeline=True`.
    """

    __slots__ = (
        "broken",
        "cached_nodes",
        "covered",
        "dag",
        "feed",
        "observers",
        "open",
        "run",
        "run_id",
        "specs",
        "started_at",
        "times",
    )

    def __init__(
        self, run: Run, observers: Sequence[Observer], timeline: bool, feed: Feed | None
    ) -> None:
        self.run = run
        self.observers = tuple(observers)
        self.feed = feed
        self.started_at = time.perf_counter()
        self.dag = run.dag.name
        self.run_id = run.run_id
        self.specs = run.plan.specs
        # When each node's attempt (or cleanup) under way began, for durations.
        self.open: list[float | None] = [None] * len(self.specs)
        self.times: dict[int, _Times] | None = {} if timeline else None
        self.covered: dict[int, BaseException] = {}  # failures a fallback covered
        self.cached_nodes: set[int] = set()  # values taken from a Cache
        self.broken: set[int] = set()  # observers (by position) that raised in this run

    @property
    def timeline(self) -> bool:
        """Whether the result gets the timings (the run was invoked with timeline=True)."""
        return self.times is not None

    def now(self) -> float:
        return time.perf_counter() - self.started_at

    # -- delivering ------------------------------------------------------------------------

    def emit(self, event: AnyEvent) -> None:
        for k, observer in enumerate(self.observers):
            try:
                observer(event)
            except Exception:
                if k not in self.broken:  # reported once per run; the run carries on
                    self.broken.add(k)
                    logger.exception(
                        "dagwire observer %r raised on %s; the run carries on",
                        observer,
                        event.kind,
                        extra=self.run.log_extra(),
                    )

    # -- the run ---------------------------------------------------------------------------

    def run_started(self, resumed: Iterable[int]) -> None:
        if self.observers:
            self.emit(RunStarted(dag=self.dag, run_id=self.run_id, time=0.0))
        for i in resumed:
            if self.times is not None:
                self.times[i] = _Times(0.0, 0.0, resumed=True)
            if self.observers:
                spec = self.specs[i]
                self.emit(
                    NodeSucceeded(
                        dag=self.dag,
                        run_id=self.run_id,
                        node=spec.name,
                        time=0.0,
                        attempt=0,
                        duration=0.0,
                        tags=spec.tags,
                        resumed=True,
                    )
                )
            self._complete(i, None, 0.0)

    def run_finished(self, error: BaseException | None, *, ok: bool) -> None:
        if self.observers:
            now = self.now()
            self.emit(
                RunFinished(
                    dag=self.dag,
                    run_id=self.run_id,
                    time=now,
                    duration=now,
                    error=error,
                    ok=ok,
                )
            )

    # -- nodes -----------------------------------------------------------------------------

    def node_began(self, i: int) -> None:
        if self.times is not None:
            self.times[i] = _Times(self.now())

    def attempt_started(self, i: int, attempt: int) -> None:
        now = self.now()
        self.open[i] = now
        if self.times is not None and i not in self.times:
            self.times[i] = _Times(now)
        if self.observers:
            self._node_event(NodeStarted, i, now, attempt)

    def _close(self, i: int, outcome: str, now: float) -> float | None:
        """End node i's open attempt; its duration, None if none was open."""
        since = self.open[i]
        if since is None:
            return None
        self.open[i] = None
        if self.times is not None:
            interval = Interval("attempt", self.run.attempts.get(i, 1), since, now, outcome)
            self.times[i].intervals.append(interval)
        return now - since

    def _node_event(
        self, cls: Callable[..., AnyEvent], i: int, now: float, attempt: int, **fields: object
    ) -> None:
        spec = self.specs[i]
        self.emit(
            cls(
                dag=self.dag,
                run_id=self.run_id,
                node=spec.name,
                time=now,
                attempt=attempt,
                tags=spec.tags,
                **fields,
            )
        )

    def retrying(self, i: int, attempt: int, delay: float, error: BaseException) -> None:
        now = self.now()
        duration = self._close(i, "retrying", now)
        if self.observers:
            fields = {"delay": delay, "duration": duration, "error": error}
            self._node_event(NodeRetrying, i, now, attempt, **fields)

    def recovered(self, i: int, error: BaseException) -> None:
        self.covered[i] = error

    def cached(self, i: int) -> None:
        self.cached_nodes.add(i)
        if self.times is not None:
            now = self.now()
            self.times.setdefault(i, _Times(now, now)).cached = True

    def node_ended(self, i: int) -> None:
        """Node i's outcome is recorded: the event that ends its last attempt (or, for a node
        that never started one, its outcome)."""
        run = self.run
        now = self.now()
        status = run.status[i]
        attempt = run.attempts.get(i, 1)
        observed = bool(self.observers)
        if status is NodeStatus.SUCCEEDED:
            error = self.covered.get(i)
            self._complete(i, error, now)
            if error is not None:
                duration = self._close(i, "recovered", now)
                if observed:
                    fields = {"recovered": True, "error": error, "duration": duration}
                    self._node_event(NodeFailed, i, now, attempt, **fields)
            else:
                duration = self._close(i, "succeeded", now)
                cached = i in self.cached_nodes
                if cached and duration is None:
                    duration = 0.0  # a hit: no attempt ran
                if observed:
                    spec = self.specs[i]
                    self.emit(
                        NodeSucceeded(
                            dag=self.dag,
                            run_id=self.run_id,
                            node=spec.name,
                            time=now,
                            attempt=attempt,
                            duration=duration,
                            tags=spec.tags,
                            cached=cached,
                        )
                    )
        elif status is NodeStatus.FAILED:
            error = run.failed.get(i)
            self._complete(i, error, now)
            duration = self._close(i, "failed", now)
            if observed:
                self._node_event(NodeFailed, i, now, attempt, error=error, duration=duration)
        elif status is NodeStatus.SKIPPED:
            error = run.skips.get(i) if run.skips is not None else None
            self._complete(i, error, now)
            cause = run.causes.get(i)
            duration = self._close(i, "skipped", now)  # a body that raised Skip
            if observed:
                fields = {
                    "cause": None if cause is None else self.specs[cause].name,
                    "duration": duration,
                    "error": error,
                }
                self._node_event(
                    NodeSkipped, i, now, attempt if duration is not None else 0, **fields
                )
            return
        else:  # CANCELLED
            self._complete(i, None, now)
            duration = self._close(i, "cancelled", now)
            if observed:
                self._node_event(NodeCancelled, i, now, attempt, duration=duration)
        if self.times is not None and i in self.times:
            self.times[i].end = now

    # -- the items of an add_map node, reported as nodes named "name[index]" -------------

    def item_started(self, i: int, k: int, attempt: int) -> float:
        """Item k of map node i starts an attempt; returns when (to give its end a duration)."""
        now = self.now()
        if self.observers:
            self.emit(self._item_event(NodeStarted, i, k, now, attempt))
        return now

    def item_retrying(
        self, i: int, k: int, attempt: int, since: float, delay: float, error: BaseException
    ) -> None:
        if self.observers:
            now = self.now()
            event = self._item_event(
                NodeRetrying, i, k, now, attempt, duration=now - since, delay=delay, error=error
            )
            self.emit(event)

    def item_ended(
        self, i: int, k: int, attempt: int, since: float, error: BaseException | None
    ) -> None:
        if not self.observers:
            return
        now = self.now()
        fields: dict[str, object] = {"duration": now - since}
        cls: Callable[..., AnyEvent] = NodeSucceeded
        if isinstance(error, Skip):
            cls, fields["cause"], fields["error"] = NodeSkipped, self.item_name(i, k), error
        elif isinstance(error, asyncio.CancelledError):
            cls = NodeCancelled
        elif error is not None:
            cls, fields["error"] = NodeFailed, error
        self.emit(self._item_event(cls, i, k, now, attempt, **fields))

    def item_name(self, i: int, k: int) -> str:
        return f"{self.specs[i].name}[{k}]"

    def _item_event(
        self,
        cls: Callable[..., AnyEvent],
        i: int,
        k: int,
        now: float,
        attempt: int,
        **fields: object,
    ) -> AnyEvent:
        return cls(
            dag=self.dag,
            run_id=self.run_id,
            node=self.item_name(i, k),
            time=now,
            attempt=attempt,
            tags=self.specs[i].tags,
            **fields,
        )

    def _complete(self, i: int, error: BaseException | None, now: float) -> None:
        if self.feed is not None:
            run = self.run
            status = run.status[i]
            value = run.values[i] if status is NodeStatus.SUCCEEDED else None
            node = run.dag._handles[i]
            self.feed(NodeCompletion(node, status, value, error, now))

    def emit_breaker(self, i: int, old: BreakerState, new: BreakerState) -> None:
        if self.observers:
            attempt = self.run.attempts.get(i, 1)
            self._node_event(BreakerChanged, i, self.now(), attempt, old=old, new=new)

    # -- cleanups --------------------------------------------------------------------------

    def cleanup_started(self, i: int) -> None:
        now = self.now()
        self.open[i] = now  # (after every attempt of the node)
        if self.times is not None:
            self.times.setdefault(i, _Times(now, now))
        if self.observers:
            self._node_event(CleanupStarted, i, now, 0)

    def cleanup_finished(self, i: int, error: BaseException | None) -> None:
        now = self.now()
        since = self.open[i] or now
        self.open[i] = None
        if self.times is not None:
            outcome = "ok" if error is None else "failed"
            self.times[i].intervals.append(Interval("cleanup", 0, since, now, outcome))
        if self.observers:
            self._node_event(CleanupFinished, i, now, 0, duration=now - since, error=error)

    # -- the result ------------------------------------------------------------------------

    def timings(self) -> list[NodeTiming]:
        run = self.run
        specs, status = self.specs, run.status
        return [
            NodeTiming(
                specs[i].name,
                status[i],
                t.start,
                max(t.end, t.start),
                run.attempts.get(i, 1),
                tuple(t.intervals),
                t.cached,
                t.resumed,
            )
            for i, t in (self.times or {}).items()
        ]


def log_event(event: AnyEvent) -> None:
    """The observer a run gets when the ``dagwire`` logger is enabled for DEBUG."""
    if isinstance(event, NodeRetrying) or (isinstance(event, NodeFailed) and event.recovered):
        return  # logged at WARNING where they happen, whatever the level
    logger.debug(
        "%s %s%s",
        event.kind,
        event.node or event.dag,
        f" ({event.error!r})" if event.error is not None else "",
        extra={
            "dagwire_dag": event.dag,
            "dagwire_run_id": event.run_id,
            "dagwire_node": event.node,
            "dagwire_attempt": event.attempt,
        },
    )
