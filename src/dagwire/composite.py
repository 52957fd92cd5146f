"""Nodes made of other calls: a cached node's shared call, `add_map`'s items, sub-graphs.

Each builds on `calls.attempts`, the attempts of one body with the node's per-call options.
"""

from __future__ import annotations

import asyncio
import dataclasses
from asyncio import CancelledError
from collections.abc import Awaitable
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from . import calls
from .cache import Cache
from .context import RunContext, set_where
from .definition import NodeOptions, NodeSpec
from .errors import NodeCancelledError
from .report import Observer, log_event
from .tasks import start_task

if TYPE_CHECKING:
    from .graph import Dag
    from .results import ExecutionResult
    from .scheduler import Run

__all__ = ["graph_call", "inherited_observers", "is_graph", "map_items", "shared"]


async def shared(
    run: Run, i: int, spec: NodeSpec, opts: NodeOptions, cache: Cache, args: tuple[Any, ...]
) -> object:
    """A cached node whose value was not stored: join or start the call its `cache` shares
    between every run needing the same inputs (single-flight).

    The shared call outlives any one run that waits for it, so it runs detached from them all:
    no run's abort, limiter or events reach into it (each waiting run reports one attempt and
    its outcome, not the call's retries).
    """
    limiter = run.limiter  # max_concurrency=: waiting for the call counts as running
    if limiter is not None:
        await limiter.acquire()
    try:
        if run.aborted:
            raise calls.Stopped
        if run.reporter is not None:
            run.reporter.attempt_started(i, 1)
        where = run.where(i)
        call = partial(calls.attempts, None, i, spec, opts, args, SharedCall(where))
        value, hit = await cache.get_or_call(args, call, node=spec.name)
    finally:
        if limiter is not None:
            limiter.release()
    if hit and run.reporter is not None:
        run.reporter.cached(i)
    return value


async def map_items(
    run: Run, i: int, spec: NodeSpec, opts: NodeOptions, args: tuple[Any, ...]
) -> list[object]:
    """An `add_map` node: one call per item, at most `limit` at once, results in input order.

    Each item's call has the node's per-call options (timeout, retry, executor, breaker,
    limiter) and runs in a task of its own; the first item that finally fails cancels the rest.
    """
    first, *others = args
    items = list(first)
    if is_graph(spec.fn):  # each item runs the sub-graph, observed like this run
        graph = cast("Dag[Any]", spec.fn)
        spec = spec._replace(fn=partial(graph_call, graph, inherited_observers(run)))
    results: list[object] = [None] * len(items)
    window = opts.limit or max(len(items), 1)
    if run.reporter is not None:
        run.reporter.attempt_started(i, 1)

    async def one(k: int) -> None:
        item = Item(run, i, k)
        limiter = run.limiter  # max_concurrency=: every item's call is a body of the run
        try:
            if limiter is not None:
                await limiter.acquire()
            try:
                if run.aborted:
                    raise calls.Stopped
                results[k] = await calls.attempts(None, i, spec, opts, (items[k], *others), item)
            finally:
                if limiter is not None:
                    limiter.release()
        except CancelledError as exc:
            item.ended(exc)
            task = asyncio.current_task()
            if (task is not None and task.cancelling()) or isinstance(exc, calls.Stopped):
                raise
            raise NodeCancelledError.wrapping(exc, f"item {k}") from None
        except BaseException as exc:
            item.ended(exc)
            raise
        item.ended(None)

    pending: dict[asyncio.Task[None], int] = {}
    failures: list[tuple[int, BaseException]] = []
    k = 0
    try:
        while not failures and (k < len(items) or pending):
            while k < len(items) and len(pending) < window:
                task = start_task(run, one(k), f"{spec.name}[{k}]")
                if task is not None:  # (None: it ran to its end eagerly)
                    pending[task] = k
                k += 1
            if pending:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                _collect(done, pending, failures)
    finally:
        for task in pending:
            task.cancel()  # after a failure, or when the node itself is cancelled
        await _settle(pending, failures)
    if failures:
        k, exc = min(failures, key=lambda failure: failure[0])
        note = f"dagwire: item {k} (of {len(items)}) of map node {spec.name!r}"
        if note not in getattr(exc, "__notes__", ()):  # once per object, however many runs
            exc.add_note(note)
        raise exc
    return results


class Item:
    """Hears the attempts of item k of map node i: events and `current()` name it
    ``"name[k]"``."""

    __slots__ = ("attempt", "i", "k", "run", "since")

    def __init__(self, run: Run, i: int, k: int) -> None:
        self.run, self.i, self.k = run, i, k
        self.attempt = 0
        self.since = 0.0  # when the attempt under way started (run time, seconds)

    def attempt_started(self, attempt: int) -> None:
        run = self.run
        self.attempt = attempt
        if attempt == 1:
            set_where(self.run_context)  # made only if the item's code asks for it
        if run.reporter is not None:
            self.since = run.reporter.item_started(self.i, self.k, attempt)

    def run_context(self) -> RunContext:
        run = self.run
        return RunContext(run.dag.name, run.run_id, self.name, self.attempt)

    def retrying(self, attempt: int, delay: float, error: Exception) -> None:
        reporter = self.run.reporter
        if reporter is not None:
            reporter.item_retrying(self.i, self.k, attempt, self.since, delay, error)

    def ended(self, error: BaseException | None) -> None:
        reporter = self.run.reporter
        if reporter is not None and self.attempt:
            reporter.item_ended(self.i, self.k, self.attempt, self.since, error)

    def log_extra(self, attempt: int) -> dict[str, object]:
        return {**self.run.log_extra(), "dagwire_node": self.name, "dagwire_attempt": attempt}

    @property
    def name(self) -> str:
        return f"{self.run.plan.specs[self.i].name}[{self.k}]"


class SharedCall:
    """Hears the attempts of a `Cache`'s shared call: `current()` in its body names the node
    of the run that started it (the call reports no events: it is no one run's own)."""

    __slots__ = ("where",)

    def __init__(self, where: RunContext) -> None:
        self.where = where

    def attempt_started(self, attempt: int) -> None:
        set_where(dataclasses.replace(self.where, attempt=attempt))

    def retrying(self, attempt: int, delay: float, error: Exception) -> None:
        pass

    def log_extra(self, attempt: int) -> dict[str, object]:
        where = self.where
        return {
            "dagwire_dag": where.dag,
            "dagwire_run_id": where.run_id,
            "dagwire_node": where.node,
            "dagwire_attempt": attempt,
        }


def _collect(
    done: set[asyncio.Task[None]],
    pending: dict[asyncio.Task[None], int],
    failures: list[tuple[int, BaseException]],
) -> None:
    """Take finished item tasks out of `pending`, keeping their failures."""
    for task in done:
        k = pending.pop(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            failures.append((k, exc))


async def _settle(
    pending: dict[asyncio.Task[None], int], failures: list[tuple[int, BaseException]]
) -> None:
    """Wait for the item tasks still running (cancelled) to end: no task outlives the node."""
    while pending:
        try:
            done, _ = await asyncio.wait(pending)
        except CancelledError:
            continue  # cancelled again: the items still end first
        _collect(done, pending, failures)


def is_graph(fn: object) -> bool:
    from .graph import Dag  # (graph imports the run loop, which imports this module)

    return isinstance(fn, Dag)


def inherited_observers(run: Run) -> tuple[Observer, ...]:
    """What a sub-graph's run reports to besides its own observers: this run's observers (a
    trace or log of the outer run includes the inner nodes)."""
    if run.reporter is None:
        return ()
    return tuple(o for o in run.reporter.observers if o is not log_event)


def graph_call(
    graph: Dag[Any], observers: tuple[Observer, ...], params: object
) -> Awaitable[ExecutionResult[Any]]:
    """Run sub-graph `graph` with `params` as a node's body; its value is the result."""
    own = graph.observers
    return graph.invoke(params, observers=tuple(o for o in observers if o not in own))
