"""Releasing what a run set up: early releases during the run, and the cleanup phase after it.

Rules: every registered cleanup (a resource's exit, a `post=` hook) runs exactly once; a node's
cleanups run only after the cleanups of every node that depends on it (reverse dependency
order), except that a `release="early"` resource goes as soon as its direct users have ended
(and those holding cleanups of their own have been released); independent cleanups overlap,
wherever they run; a failing cleanup does not stop the others; the run's recorded outcome is
thrown into each open resource, so a transaction commits only when its part of the run worked.

Like the run loop, cleanups run as chains: a chain cleans a node, then continues with one node
that became ready, and starts a task only for the others, so a long chain of resources is
released by one coroutine, without `RecursionError` under any task factory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from .context import RunContext, register_marker
from .errors import NodeCancelledError
from .status import NodeStatus
from .tasks import in_context, start_task

if TYPE_CHECKING:
    from .lifecycle import Cleanup
    from .scheduler import Run

__all__ = ["Teardown", "run_failure"]


def run_failure(run: Run) -> BaseException | None:
    """What a fail-fast, stopped, cancelled or timed-out run throws into every open resource."""
    if run.failed:
        if run.fail_fast:
            return run.first_failure
        # Continue mode stopped by a BaseException (KeyboardInterrupt, SystemExit, ...): the run
        # was aborted and its running nodes cancelled, so no resource may close as if all went
        # well.
        fatal = next((e for e in run.failed.values() if not isinstance(e, Exception)), None)
        if fatal is not None:
            return fatal
    if run.cancelled is not None:
        return run.cancelled
    if run.timed_out:
        return TimeoutError(f"dag {run.dag.name!r} timed out")
    return None


class Teardown:
    """The cleanups one run registered, and the chains that release them."""

    __slots__ = (
        "all_sync",
        "below",
        "cleanups",
        "closing",
        "early",
        "failure",
        "finished",
        "in_flight",
        "internal",
        "live",
        "remaining",
        "run",
        "tasks",
        "tracebacks",
    )

    def __init__(self, run: Run) -> None:
        self.run = run
        self.cleanups: dict[int, list[Cleanup]] = {}  # registered, not yet started
        self.in_flight: set[int] = set()  # nodes whose cleanups a chain is running now
        # release="early": users still to end per resource (-1: not an early resource)
        self.early: list[int] | None = list(run.scope.early_waits) if run.plan.has_early else None
        self.closing = False  # the cleanup phase has begun: the walk decides from now on
        self.live = 0  # chains alive
        self.tasks: list[asyncio.Task[None]] = []
        self.finished: asyncio.Future[None] | None = None
        self.internal: BaseException | None = None  # a bug in dagwire, raised after the phase
        self.remaining: list[int] = []  # cleanup phase: dependents not yet released, per node
        # The cleanup phase: the run's outcome thrown into every resource (taken when the phase
        # begins: whether an independent cleanup failed first is a matter of timing); and once
        # a node failed, per node, the failure of a node above it, its cleanups' included.
        self.failure: BaseException | None = None
        self.below: list[BaseException | None] = []
        # Every cleanup registered so far runs without waiting (sync hooks and sync exits, no
        # cleanup_timeout): the cleanup phase can run inline, without a task.
        self.all_sync = True
        # Each exception's traceback before it was first thrown into a resource: restored after
        # every throw, so that it does not grow by a frame or two per resource it went through.
        self.tracebacks: dict[int, Any] = {}

    def add(self, i: int, cleanup: Cleanup) -> None:
        self.cleanups.setdefault(i, []).append(cleanup)
        if not cleanup[2]:
            self.all_sync = False

    # -- early release (during the run) ----------------------------------------------------

    def node_ended(self, j: int) -> None:
        """Node j's outcome is recorded: release each early resource it was the last user of."""
        if self.early is None or self.closing or self.run.aborted:
            return  # after a fail-fast abort the cleanup phase releases everything
        if j in self.cleanups:  # j holds cleanups: its inputs wait until it is released
            if self.early[j] == 0:  # an early resource whose users (if any) all ended first
                self.start(j)
            return
        ready = self.inputs_done(j)
        self.in_flight.update(ready)
        self.start_all(ready)

    def inputs_done(self, j: int) -> list[int]:
        """Node j no longer holds its early inputs: those it was the last user of are ready."""
        early, status, ready = self.early, self.run.status, list[int]()
        assert early is not None
        for r in self.run.scope.release_after[j]:
            early[r] -= 1
            # A user skipped because another input failed may end before r has: r then goes
            # when it ends (`node_ended`), never while its setup is still running.
            if not early[r] and r in self.cleanups and status[r] >= NodeStatus.SUCCEEDED:
                ready.append(r)
        return ready

    # -- the cleanup phase -----------------------------------------------------------------

    async def close(self) -> None:
        """Release everything still held, in reverse dependency order; wait for every chain
        (early releases still running included)."""
        run = self.run
        self.closing = True
        self.failure = run_failure(run)
        if self.all_sync and not self.in_flight:
            await self.close_in_order()
            if self.internal is not None:  # (an early release could not start a task)
                raise self.internal
            return
        self.remaining = list(run.plan.dependents_count)
        self.finished = run.loop.create_future()
        self.live += 1  # this walk counts as a chain until it is done
        ready: list[int] = []
        for i in run.plan.sinks:  # taken before any release
            if i in self.in_flight:
                pass  # an early release still running: its chain carries on
            elif i in self.cleanups:
                ready.append(i)
                self.in_flight.add(i)
            else:
                ready.extend(self.propagate(i))
        await self.clean_ready(ready)
        self.live -= 1
        if self.live:
            await self.finished
        if self.internal is not None:
            raise self.internal
        if self.cleanups:
            raise RuntimeError(
                f"dagwire: cleanups of {sorted(self.cleanups)} never ran. Please report this bug."
            )

    async def close_in_order(self) -> None:
        """The cleanup phase when no cleanup waits (sync hooks, sync exits) and no early
        release is running: nothing can overlap, so one node after another, in reverse plan
        order (the plan lists each node after its inputs: a reverse dependency order), in the
        caller, with no walk to count dependents. Once a node has failed, every node is
        visited, so that its failure reaches the resources above it (as in `propagate`).
        (Awaits only when a "sync" hook returned an awaitable after all.)"""
        run, cleanups = self.run, self.cleanups
        deps, failed = run.plan.deps, run.failed
        top = len(deps)  # the nodes from `top` up are done, and none of them failed
        for j in sorted(cleanups, reverse=True):
            if failed:
                break
            items = cleanups.pop(j)
            cleaning = clean_node(run, j, items, self)
            if cleaning is not None:
                await cleaning
            top = j + 1
        if not failed:
            return
        below = self.below = [None] * len(deps)
        for k in range(top - 1, -1, -1):
            if k in cleanups:
                cleaning = clean_node(run, k, cleanups.pop(k), self)
                if cleaning is not None:
                    await cleaning
            heard = failed.get(k) or below[k]
            if heard is not None:
                for d in deps[k]:
                    if below[d] is None:
                        below[d] = heard

    def propagate(self, j: int) -> list[int]:
        """Node j and everything above it are released: count it off for its inputs; return
        the nodes whose cleanups may now run, claimed for the caller's chain."""
        deps, remaining, below = self.run.plan.deps, self.remaining, self.below
        failed = self.run.failed
        if failed and not below:  # resources hear the failures of nodes above them, cleanup
            below = self.below = [None] * len(deps)  # failures of this phase included
        in_flight, cleanups = self.in_flight, self.cleanups
        ready: list[int] = []
        stack = [j]
        while stack:  # iterative: a 10,000-node chain must not recurse
            k = stack.pop()
            heard = (failed.get(k) or below[k]) if below else None
            for d in deps[k]:
                if below and below[d] is None:
                    below[d] = heard
                remaining[d] -= 1
                if not remaining[d]:
                    if d in in_flight:
                        pass  # its chain carries on from d when d's cleanups are done
                    elif d in cleanups:
                        ready.append(d)
                        in_flight.add(d)
                    else:  # nothing (left) to clean at d
                        stack.append(d)
        return ready

    # -- chains ----------------------------------------------------------------------------

    def start_all(self, ready: list[int]) -> None:
        """Start a chain (a task) for each node in `ready` (claimed: in `in_flight`)."""
        for r in ready:
            self.live += 1
            try:
                name = f"cleanup {self.run.plan.specs[r].name}"
                task = start_task(self.run, self.chain(r), name)
            except BaseException as exc:  # could not even start: leave r to the cleanup phase
                self.live -= 1
                self.in_flight.discard(r)
                if self.closing:
                    self.internal = self.internal or exc
                continue
            if task is not None:
                self.tasks.append(task)

    def start(self, r: int) -> None:
        self.in_flight.add(r)
        self.start_all([r])

    async def chain(self, j: int) -> None:
        """A chain of its own (a task): clean node j and what this makes ready."""
        try:
            await self.clean_ready([j])
        finally:
            self.chain_ended()

    def chain_ended(self) -> None:
        self.live -= 1
        if not self.live and self.finished is not None and not self.finished.done():
            self.finished.set_result(None)

    async def clean_ready(self, nodes: list[int]) -> None:
        """Clean the nodes in `ready` and those this makes ready, one after another in this
        task while their cleanups complete without waiting (sync hooks, most exits cost no task
        at all); once one must wait, the other ready nodes get chains of their own, so that
        independent cleanups overlap."""
        ready = deque(nodes)  # first come, first cleaned: the order of the graph, where it is free
        try:
            while ready:
                j = ready.popleft()
                if not self.closing and self.run.aborted:  # after a fail-fast abort: leave
                    self.in_flight.discard(j)  # j to the cleanup phase
                    continue
                items = self.cleanups.pop(j, None)
                cleaning = clean_node(self.run, j, items, self) if items else None
                if cleaning is not None:
                    try:
                        waiting = cleaning.send(None)
                    except StopIteration:
                        pass
                    else:
                        self.start_all(list(ready))
                        ready.clear()
                        await in_context(None, cleaning, waiting)
                ready.extend(self.next_after(j))
        except BaseException as exc:  # a bug in dagwire: never lose it
            self.internal = self.internal or exc
            if self.finished is not None and not self.finished.done():
                self.finished.set_result(None)

    def next_after(self, j: int) -> list[int]:
        """j's cleanups are done: the nodes this makes ready (claimed for this chain)."""
        self.in_flight.discard(j)
        if not self.closing:
            if self.run.aborted:
                return []
            ready = self.inputs_done(j)
            self.in_flight.update(ready)
            return ready
        if self.remaining[j]:
            return []  # released early; the walk reaches j when its dependents are released
        return self.propagate(j)

    def exception_for(self, j: int) -> BaseException | None:
        """What node j's resources hear, as recorded when its cleanup starts: the run's failure,
        else the failure of a node that depends on j, directly or transitively."""
        if self.closing:  # the outcome of the bodies, a cancel since, a failed cleanup above j
            if self.failure is not None:
                return self.failure
            if self.run.cancelled is not None:  # the caller cancelled during this phase
                return self.run.cancelled
            return self.below[j] if self.below else None
        run = self.run
        failure = run_failure(run)
        if failure is not None or not run.failed:
            return failure
        return _failure_below(run, j)


def _failure_below(run: Run, j: int) -> BaseException | None:
    """Continue mode, during the run: the failure of a node of the run below j, if any."""
    steps, failed = run.scope.steps, run.failed
    seen, stack = {j}, [j]
    while stack:
        for d in steps[stack.pop()][3]:
            if d in failed:
                return failed[d]
            if d not in seen:
                seen.add(d)
                stack.append(d)
    return None


def clean_node(
    run: Run, i: int, cleanups: list[Cleanup], teardown: Teardown
) -> Coroutine[Any, Any, None] | None:
    """Undo node i's setups in reverse order; each bounded by its cleanup_timeout=, each failure
    recorded, none stopping the others; the node's cleanup events around them.

    Cleanups run right here while they complete without waiting (sync hooks and exits, most
    generator exits): None is returned. From the first that must wait on, the returned
    coroutine does the rest.
    """
    undo = _Undo(run, i, teardown)
    options = run.plan.specs[i].options
    if options is not None and options.cleanup_timeout is not None:
        return clean_rest(run, i, undo, cleanups, None, options.cleanup_timeout)
    params = run.params
    for k in range(len(cleanups) - 1, -1, -1):
        phase, cleanup, _ = cleanups[k]
        try:
            pending = cleanup(undo.exc, params)
        except BaseException as err:
            undo.failed(phase, err)
            continue
        if pending is not None:
            return clean_rest(run, i, undo, cleanups[:k], (phase, pending), None)
    undo.done()
    return None


async def clean_rest(
    run: Run,
    i: int,
    undo: _Undo,
    cleanups: list[Cleanup],
    started: tuple[str, Awaitable[object]] | None,
    limit: float | None,
) -> None:
    """`clean_node` from a cleanup that must wait (`started`, already called) or with a
    cleanup_timeout (`limit`, seconds each): the rest, in reverse order."""
    if started is not None:
        phase, waiting = started
        try:
            await waiting
        except BaseException as err:
            undo.failed(phase, err)
    params = run.params
    for phase, cleanup, _ in reversed(cleanups):
        try:
            if limit is None:
                pending = cleanup(undo.exc, params)
                if pending is not None:
                    await pending
            else:
                async with asyncio.timeout(limit):
                    pending = cleanup(undo.exc, params)
                    if pending is not None:
                        await pending
        except BaseException as err:
            undo.failed(phase, err)
    undo.done()


class _Undo:
    """What cleaning one node takes: the exception its resources hear, the failures of its
    cleanups, its events; and the thrown exception's traceback kept as it was."""

    __slots__ = ("exc", "first", "i", "run", "tb", "teardown")

    def __init__(self, run: Run, i: int, teardown: Teardown) -> None:
        self.run, self.i, self.teardown = run, i, teardown
        self.exc = exc = teardown.exception_for(i)
        self.first: BaseException | None = None
        self.tb = (
            None if exc is None else teardown.tracebacks.setdefault(id(exc), exc.__traceback__)
        )
        if run.reporter is not None:
            run.reporter.cleanup_started(i)

    def failed(self, phase: str, err: BaseException) -> None:
        run = self.run
        if isinstance(err, asyncio.CancelledError):
            # Cleanups are never cancelled (shielded; cleanup_timeout= raises TimeoutError):
            # this one raised CancelledError by itself. It is a failure, and must not make
            # invoke() look cancelled.
            where = f"node {run.plan.specs[self.i].name!r}: its {phase}"
            err = NodeCancelledError.wrapping(err, where)
        run.record(self.i, phase, err)
        self.first = self.first or err
        # A failing early release fails the run like any failure, at once (not after the
        # node's other cleanups); a BaseException stops even a continue-mode run.
        if not self.teardown.closing and (run.fail_fast or not isinstance(err, Exception)):
            run.abort()

    def done(self) -> None:
        if self.exc is not None:
            self.exc.__traceback__ = self.tb  # undo the frames the throws added
        if self.run.reporter is not None:
            self.run.reporter.cleanup_finished(self.i, self.first)


def _where_in_cleanup(frame_locals: Mapping[str, Any]) -> RunContext | None:
    run, i = frame_locals.get("run"), frame_locals.get("i")
    if run is None or not isinstance(i, int):
        return None
    return RunContext(run.dag.name, run.run_id, run.plan.specs[i].name, 0)


register_marker(clean_node, _where_in_cleanup)
register_marker(clean_rest, _where_in_cleanup)
