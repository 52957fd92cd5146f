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
    BreakerChanged,
    CleanupFinished,
    CleanupStarted,
    Event,
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

Observer = Callable[[Event], object]
"""An observer: a callable taking one event; its return value is ignored."""

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
    """One node's timeline while the run records it."""

    start: float
    end: float = 0.0
    intervals: list[Interval] = field(default_factory=list[Interval])
    open_since: float | None = None  # the attempt (or cleanup) under way began then
    cached: bool = False
    resumed: bool = False


class Reporter:
    """Turns what happens to one run's nodes into events and timeline entries."""

    __slots__ = (
        "broken",
        "covered",
        "feed",
        "observers",
        "run",
        "started_at",
        "timeline",
        "times",
    )

    def __init__(
        self, run: Run, observers: Sequence[Observer], timeline: bool, feed: Feed | None
    ) -> None:
        self.run = run
        self.observers = tuple(observers)
        self.timeline = timeline  # the result gets the timings (invoke(timeline=True))
        self.feed = feed
        self.started_at = time.perf_counter()
        # Per node: its timeline (always kept: event durations are read from it).
        self.times: dict[int, _Times] = {}
        self.covered: dict[int, BaseException] = {}  # failures a fallback covered
        self.broken: set[int] = set()  # observers (by position) that raised in this run

    def now(self) -> float:
        return time.perf_counter() - self.started_at

    # -- delivering ------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
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

    def _node_event(self, cls: Callable[..., Event], i: int, now: float, **fields: object) -> None:
        if self.observers:
            run = self.run
            spec = run.plan.specs[i]
            self.emit(
                cls(
                    dag=run.dag.name,
                    run_id=run.run_id,
                    node=spec.name,
                    time=now,
                    attempt=fields.pop("attempt", run.attempts.get(i, 1)),
                    tags=spec.tags,
                    **fields,
                )
            )

    # -- the run ---------------------------------------------------------------------------

    def run_started(self, resumed: Iterable[int]) -> None:
        run = self.run
        if self.observers:
            self.emit(RunStarted(dag=run.dag.name, run_id=run.run_id, time=0.0))
        for i in resumed:
            self.times[i] = _Times(0.0, 0.0, resumed=True)
            self._node_event(NodeSucceeded, i, 0.0, resumed=True, attempt=0, duration=0.0)
            self._complete(i, None, 0.0)

    def run_finished(self, error: BaseException | None, *, ok: bool) -> None:
        if self.observers:
            run = self.run
            now = self.now()
            self.emit(
                RunFinished(
                    dag=run.dag.name,
                    run_id=run.run_id,
                    time=now,
                    duration=now,
                    error=error,
                    ok=ok,
                )
            )

    # -- nodes (each transition reads the clock once: events and timeline agree) ----------

    def node_began(self, i: int) -> None:
        self.times[i] = _Times(self.now())

    def attempt_started(self, i: int, attempt: int) -> None:
        now = self.now()
        self.times[i].open_since = now
        self._node_event(NodeStarted, i, now, attempt=attempt)

    def _close_attempt(self, i: int, outcome: str, now: float) -> float | None:
        """End the node's open attempt in the timeline; its duration, None if none was open."""
        times = self.times.get(i)
        if times is None or times.open_since is None:
            return None
        since = times.open_since
        attempt = self.run.attempts.get(i, 1)
        times.intervals.append(Interval("attempt", attempt, since, now, outcome))
        times.open_since = None
        return now - since

    def retrying(self, i: int, attempt: int, delay: float, error: BaseException) -> None:
        now = self.now()
        duration = self._close_attempt(i, "retrying", now)
        self._node_event(
            NodeRetrying, i, now, attempt=attempt, delay=delay, duration=duration, error=error
        )

    def recovered(self, i: int, error: BaseException) -> None:
        self.covered[i] = error

    def cached(self, i: int) -> None:
        now = self.now()
        self.times.setdefault(i, _Times(now, now)).cached = True

    def node_ended(self, i: int) -> None:
        """Node i's outcome is recorded: the event that ends its last attempt (or, for a node
        that never started one, its outcome)."""
        run = self.run
        now = self.now()
        status = run.status[i]
        times = self.times.get(i)
        if status is NodeStatus.SKIPPED:
            error: BaseException | None = run.skips.get(i) if run.skips is not None else None
            self._complete(i, error, now)
            cause = run.causes.get(i)
            name = None if cause is None else run.plan.specs[cause].name
            duration = self._close_attempt(i, "skipped", now)  # a body that raised Skip
            attempt = run.attempts.get(i, 1) if duration is not None else 0
            fields = {"cause": name, "attempt": attempt, "duration": duration, "error": error}
            self._node_event(NodeSkipped, i, now, **fields)
            return
        if status is NodeStatus.SUCCEEDED:
            error = self.covered.get(i)
            self._complete(i, error, now)
            if error is not None:
                duration = self._close_attempt(i, "recovered", now)
                self._node_event(NodeFailed, i, now, recovered=True, error=error, duration=duration)
            else:
                cached = times is not None and times.cached
                duration = self._close_attempt(i, "succeeded", now)
                if duration is None and cached:
                    duration = 0.0  # a hit: no attempt ran
                self._node_event(NodeSucceeded, i, now, cached=cached, duration=duration)
        elif status is NodeStatus.FAILED:
            error = run.failed.get(i)
            self._complete(i, error, now)
            duration = self._close_attempt(i, "failed", now)
            self._node_event(NodeFailed, i, now, error=error, duration=duration)
        else:  # CANCELLED
            self._complete(i, None, now)
            duration = self._close_attempt(i, "cancelled", now)
            self._node_event(NodeCancelled, i, now, duration=duration)
        if times is not None:
            times.end = now

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
        cls: Callable[..., Event] = NodeSucceeded
        if isinstance(error, Skip):
            cls, fields["cause"], fields["error"] = NodeSkipped, self.item_name(i, k), error
        elif isinstance(error, asyncio.CancelledError):
            cls = NodeCancelled
        elif error is not None:
            cls, fields["error"] = NodeFailed, error
        self.emit(self._item_event(cls, i, k, now, attempt, **fields))

    def item_name(self, i: int, k: int) -> str:
        return f"{self.run.plan.specs[i].name}[{k}]"

    def _item_event(
        self,
        cls: Callable[..., Event],
        i: int,
        k: int,
        now: float,
        attempt: int,
        **fields: object,
    ) -> Event:
        run = self.run
        return cls(
            dag=run.dag.name,
            run_id=run.run_id,
            node=self.item_name(i, k),
            time=now,
            attempt=attempt,
            tags=run.plan.specs[i].tags,
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
        self._node_event(BreakerChanged, i, self.now(), old=old, new=new)

    # -- cleanups --------------------------------------------------------------------------

    def cleanup_started(self, i: int) -> None:
        now = self.now()
        self.times.setdefault(i, _Times(now, now)).open_since = now  # after every attempt
        self._node_event(CleanupStarted, i, now, attempt=0)

    def cleanup_finished(self, i: int, error: BaseException | None) -> None:
        times = self.times[i]
        now, since = self.now(), times.open_since or 0.0
        outcome = "ok" if error is None else "failed"
        times.intervals.append(Interval("cleanup", 0, since, now, outcome))
        times.open_since = None
        self._node_event(CleanupFinished, i, now, attempt=0, duration=now - since, error=error)

    # -- the result ------------------------------------------------------------------------

    def timings(self) -> list[NodeTiming]:
        run = self.run
        specs, status = run.plan.specs, run.status
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
            for i, t in self.times.items()
        ]


def log_event(event: Event) -> None:
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
