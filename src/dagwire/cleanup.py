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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .context import RunContext, register_marker
from .errors import NodeCancelledError
from .tasks import start_task

if TYPE_CHECKING:
    from .lifecycle import Cleanup
    from .scheduler import Run

__all__ = ["Teardown", "run_failure"]


def run_failure(run: Run) -> BaseException | None:
    """What a fail-fast, stopped, cancelled or timed-out run throws into every open resource."""
    if run.fail_fast and run.first_failure is not None:
        return run.first_failure
    # Continue mode stopped by a BaseException (KeyboardInterrupt, SystemExit, ...): the run was
    # aborted and its running nodes cancelled, so no resource may close as if all went well.
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
        self.below: list[BaseException | None] = []  # continue mode: a dependent's failure
        self.failure: BaseException | None = None  # the run's outcome thrown into resources
        # Each exception's traceback before it was first thrown into a resource: restored after
        # every throw, so that it does not grow by a frame or two per resource it went through.
        self.tracebacks: dict[int, Any] = {}

    def add(self, i: int, cleanup: Cleanup) -> None:
        self.cleanups.setdefault(i, []).append(cleanup)

    # -- early release (during the run) ----------------------------------------------------

    def node_ended(self, j: int) -> None:
        """Node j's outcome is recorded: release each early resource it was the last user of."""
        if self.early is None or self.closing or self.run.aborted:
            return  # after a fail-fast abort the cleanup phase releases everything
        if j in self.cleanups:  # j holds cleanups: its inputs wait until it is released
            if self.early[j] == 0:  # an early resource that no node of the run uses
                self.start(j)
            return
        self.start_all(self.inputs_done(j))

    def inputs_done(self, j: int) -> list[int]:
        """Node j no longer holds its early inputs: those it was the last user of are ready."""
        early, ready = self.early, list[int]()
        assert early is not None
        for r in self.run.scope.release_after[j]:
            early[r] -= 1
            if not early[r] and r in self.cleanups:
                ready.append(r)
        return ready

    # -- the cleanup phase -----------------------------------------------------------------

    async def close(self) -> None:
        """Release everything still held, in reverse dependency order; wait for every chain
        (early releases still running included)."""
        run = self.run
        self.closing = True
        self.failure = run_failure(run)
        deps = run.plan.deps
        remaining = self.remaining = [0] * run.plan.size
        for ds in deps:
            for d in ds:
                remaining[d] += 1
        self.below = [None] * run.plan.size
        self.finished = run.loop.create_future()
        self.live += 1  # this walk counts as a chain until every first chain has started
        ready: list[int] = []
        for i in [i for i, r in enumerate(remaining) if not r]:  # taken before any release
            if i in self.in_flight:
                pass  # an early release still running: its chain carries on
            elif i in self.cleanups:
                ready.append(i)
            else:
                ready.extend(self.propagate(i))
        self.start_all(ready)
        self.live -= 1
        if self.live:
            await self.finished
        if self.internal is not None:
            raise self.internal
        if self.cleanups:
            raise RuntimeError(
                f"dagwire: cleanups of {sorted(self.cleanups)} never ran. Please report this bug."
            )

    def propagate(self, j: int) -> list[int]:
        """Node j and everything above it are released: count it off for its inputs; return
        the nodes whose cleanups may now run."""
        deps, remaining, below = self.run.plan.deps, self.remaining, self.below
        failed = self.run.failed
        ready: list[int] = []
        stack = [j]
        while stack:  # iterative: a 10,000-node chain must not recurse
            k = stack.pop()
            heard = failed.get(k) or below[k]
            for d in deps[k]:
                if below[d] is None:
                    below[d] = heard
                remaining[d] -= 1
                if not remaining[d]:
                    if d in self.in_flight:
                        pass  # its chain carries on from d when d's cleanups are done
                    elif d in self.cleanups:
                        ready.append(d)
                    else:  # nothing (left) to clean at d
                        stack.append(d)
        return ready

    # -- chains ----------------------------------------------------------------------------

    def start_all(self, ready: list[int]) -> None:
        for r in ready:
            self.start(r)

    def start(self, r: int) -> None:
        self.live += 1
        self.in_flight.add(r)
        try:
            name = f"cleanup {self.run.plan.specs[r].name}"
            task = start_task(self.run, self.chain(r), name)
        except BaseException as exc:  # could not even start: leave r to the cleanup phase
            self.live -= 1
            self.in_flight.discard(r)
            if self.closing:
                self.internal = self.internal or exc
            return
        if task is not None:
            self.tasks.append(task)

    async def chain(self, j: int) -> None:
        """Clean node j, then each node that this made ready, one after another."""
        try:
            while j >= 0:
                if not self.closing and self.run.aborted:  # started after a fail-fast abort:
                    self.in_flight.discard(j)  # leave it to the cleanup phase
                    return
                items = self.cleanups.pop(j, None)
                if items:
                    await self.clean(j, items)
                j = self.next_after(j)
        except BaseException as exc:  # a bug in dagwire: never lose it
            self.internal = self.internal or exc
        finally:
            self.live -= 1
            if not self.live and self.finished is not None and not self.finished.done():
                self.finished.set_result(None)

    def next_after(self, j: int) -> int:
        """j's cleanups are done: which node this chain cleans next (-1: none); start a chain
        for every other node that became ready."""
        self.in_flight.discard(j)
        if not self.closing:
            ready = [] if self.run.aborted else self.inputs_done(j)
        elif self.remaining[j]:
            return -1  # released early; the walk reaches j when its dependents are released
        else:
            ready = self.propagate(j)
        if not ready:
            return -1
        nxt = ready.pop()
        self.in_flight.add(nxt)  # claimed by this chain before the others start
        self.start_all(ready)
        return nxt

    async def clean(self, j: int, items: list[Cleanup]) -> None:
        run = self.run
        exc = self.exception_for(j)
        if run.reporter is not None:
            run.reporter.cleanup_started(j)
        error = await clean_node(run, j, items, exc, self.tracebacks)
        if run.reporter is not None:
            run.reporter.cleanup_finished(j, error)
        # A failing early release fails the run like any failure; a BaseException stops it.
        if (
            error is not None
            and not self.closing
            and (run.fail_fast or not isinstance(error, Exception))
        ):
            run.abort()

    def exception_for(self, j: int) -> BaseException | None:
        """What node j's resources hear: the run's failure, else a dependent's failure."""
        if self.closing:
            return self.failure if self.failure is not None else self.below[j]
        failure = run_failure(self.run)
        if failure is not None:
            return failure
        failed = self.run.failed  # continue mode: the failure of a user that ended already
        return next((failed[d] for d in self.run.scope.steps[j][3] if d in failed), None)


async def clean_node(
    run: Run,
    i: int,
    cleanups: list[Cleanup],
    exc: BaseException | None,
    tracebacks: dict[int, Any],
) -> BaseException | None:
    """Undo node i's setups in reverse order; each bounded by its cleanup_timeout=, each failure
    recorded, none stopping the others. Returns the first failure, if any."""
    options = run.plan.specs[i].options
    limit = options.cleanup_timeout if options is not None else None
    first: BaseException | None = None
    tb = None if exc is None else tracebacks.setdefault(id(exc), exc.__traceback__)
    for phase, cleanup in reversed(cleanups):
        try:
            if limit is None:
                pending = cleanup(exc)
                if pending is not None:
                    await pending
            else:
                async with asyncio.timeout(limit):
                    pending = cleanup(exc)
                    if pending is not None:
                        await pending
        except BaseException as err:
            if isinstance(err, asyncio.CancelledError):
                # Cleanups are never cancelled (shielded; cleanup_timeout= raises TimeoutError):
                # this one raised CancelledError by itself. It is a failure, and must not make
                # invoke() look cancelled.
                where = f"node {run.plan.specs[i].name!r}: its {phase}"
                err = NodeCancelledError.wrapping(err, where)
            run.record(i, phase, err)
            first = first or err
        finally:
            if exc is not None:
                exc.__traceback__ = tb  # undo the frames this throw added
    return first


def _where_in_cleanup(frame_locals: Mapping[str, Any]) -> RunContext | None:
    run, i = frame_locals.get("run"), frame_locals.get("i")
    if run is None or not isinstance(i, int):
        return None
    return RunContext(run.dag.name, run.run_id, run.plan.specs[i].name, 0)


register_marker(clean_node, _where_in_cleanup)
