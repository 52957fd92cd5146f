"""The run loop: executes a frozen `Plan` once, with per-run state only.

Design (the one place where speed beats elegance):
- Per run we copy three flat lists from the plan: values, statuses and in-degree counters.
- `_Run.drive(i)` runs node i, stores its value, decrements its dependents' counters, and then
  *continues itself* with one dependent that became ready; only the other ready dependents get a
  new task. A chain therefore runs in one coroutine, and `invoke` runs one root inline.
- A plain node (no options) costs a tuple unpack, an argument fetch, a call and a counter
  decrement. Everything optional (hooks, resources, retry, timeout, fallback, breaker, limiter,
  executor, timeline) lives in `_Run.slow_call`, which only nodes that use it enter.
- Structured: every task we create is kept (unless, started eagerly, it already finished);
  fail-fast cancels them all and waits for them before cleanup runs; nothing outlives `invoke`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from asyncio import CancelledError
from collections.abc import Callable, Coroutine, Mapping, Sequence
from functools import partial
from inspect import isawaitable
from typing import TYPE_CHECKING, Any, TypeVar

from . import lifecycle
from .definition import NO_FALLBACK, NodeKind, NodeOptions, NodeSpec
from .errors import NodeCancelledError
from .plan import A0, A1, AN, SLOW, Plan
from .policies import Limiter
from .results import ExecutionResult, NodeFailure, NodeTiming, make_dag_error
from .status import NodeStatus

if TYPE_CHECKING:
    from .graph import Dag

__all__ = ["run_plain", "run_plan"]

P = TypeVar("P")

_RUNNING = NodeStatus.RUNNING
_SUCCEEDED = NodeStatus.SUCCEEDED
_PENDING = NodeStatus.PENDING
_NOT_IN_RUN = 1 << 60  # an in-degree that never reaches zero: the node does not run
_MAX_EAGER_NESTING = 16  # eager task starts nest on the C stack: bound them (no RecursionError)
_DEFAULT_OPTIONS = NodeOptions()

_EAGER: bool = sys.version_info >= (3, 12)  # asyncio.Task(..., eager_start=True) exists
_Task: Any = asyncio.Task  # Any: `eager_start=` is unknown to the 3.11 stubs


class Stopped(CancelledError):
    """Raised by the run itself to stop a node that resumes after a fail-fast abort.

    An abort's cancellation reaches the nodes one loop iteration later (see `_Run.abort`); a
    node that resumes in between (a limiter slot, a retry delay or a `pre` hook that ended)
    must not start its body: raise this. `fail()` counts it as CANCELLED, never as a failure,
    unlike a CancelledError that a body raises by itself.
    """


async def run_plan(
    dag: Dag[P],
    plan: Plan,
    params: P,
    *,
    timeout: float | None,
    fail_fast: bool,
    max_concurrency: int | None,
    targets: Sequence[int] | None,
    overrides: Mapping[int, object] | None,
    timeline: bool,
) -> ExecutionResult[P]:
    run = _Run(dag, plan, params, fail_fast, max_concurrency, timeline)
    if targets is not None or overrides:
        run.restrict(targets, overrides or {})
    await run.execute(timeout)
    return run.outcome(timeout)


async def run_plain(dag: Dag[P], plan: Plan, params: P) -> ExecutionResult[P]:
    """`run_plan` with every option at its default: what most invokes are."""
    run = _Run(dag, plan, params, True, None, False)
    await run.execute(None)
    return run.outcome(None)


class _Run:
    __slots__ = (
        "aborted",
        "attempts",
        "cancelled",
        "cleanups",
        "counts",
        "dag",
        "eager_depth",
        "early",
        "errors",
        "fail_fast",
        "failed",
        "first_failure",
        "inline",
        "invoke_task",
        "left",
        "limiter",
        "loop",
        "params",
        "phase",
        "plan",
        "releasing",
        "roots",
        "started_at",
        "status",
        "steps",
        "tasks",
        "timed_out",
        "times",
        "values",
        "waiter",
    )

    def __init__(
        self,
        dag: Dag[Any],
        plan: Plan,
        params: object,
        fail_fast: bool,
        max_concurrency: int | None,
        timeline: bool,
    ) -> None:
        self.dag = dag
        self.plan = plan
        self.params = params
        self.fail_fast = fail_fast
        # Instrumented runs send every node through slow_call; plain runs never pay for it.
        self.steps = plan.slow_steps if timeline or max_concurrency else plan.steps
        self.limiter = Limiter(max_concurrency) if max_concurrency else None
        self.times: dict[int, list[float]] | None = {} if timeline else None
        self.started_at = time.perf_counter() if timeline else 0.0
        self.values: list[Any] = list(plan.values)
        self.values[0] = params
        self.status: list[NodeStatus] = list(plan.statuses)
        self.counts = list(plan.indegree)
        self.left = plan.runnable
        self.roots = plan.roots
        self.tasks: list[asyncio.Task[None]] = []
        self.waiter: asyncio.Future[None] | None = None
        self.aborted = False
        self.errors: list[NodeFailure] = []
        self.failed: dict[int, BaseException] = {}  # unrecovered failures by node index
        self.first_failure: BaseException | None = None
        self.cancelled: CancelledError | None = None
        self.timed_out = False
        self.cleanups: dict[int, list[lifecycle.Cleanup]] | None = None
        self.phase: dict[int, str] = {}
        self.attempts: dict[int, int] = {}
        self.eager_depth = 0
        # release="early" bookkeeping: users still to finish per resource (None: no such node)
        self.early: list[int] | None = list(plan.early_waits) if plan.has_early else None
        self.releasing: list[asyncio.Task[None]] = []
        self.loop = asyncio.get_running_loop()
        self.invoke_task = asyncio.current_task()
        # 0: the invoke task is not running nodes; 1: it is (the inline root and its chain);
        # 2: it is, and a fail-fast abort cancelled it (execute() takes that cancel back).
        self.inline = 0

    # -- what runs ------------------------------------------------------------------------

    def restrict(self, targets: Sequence[int] | None, overrides: Mapping[int, object]) -> None:
        """Run only what `targets` need (default: the sinks), treating overrides as done."""
        plan, status, values = self.plan, self.status, self.values
        for i, value in overrides.items():
            values[i] = value
            status[i] = _SUCCEEDED
        wanted = plan.sinks if targets is None else targets
        needed: set[int] = set()
        stack = [i for i in wanted if status[i] is _PENDING]
        while stack:  # iterative: a 10,000-node chain must not recurse
            i = stack.pop()
            if i not in needed:
                needed.add(i)
                stack.extend(d for d in plan.deps[i] if status[d] is _PENDING)
        counts = self.counts
        for i in range(plan.size):
            if i in needed:
                counts[i] = sum(1 for d in plan.deps[i] if d in needed)
            else:
                counts[i] = _NOT_IN_RUN
        self.left = len(needed)
        self.roots = tuple(sorted(i for i in needed if not counts[i]))
        if self.early is not None:  # an early resource waits only for users that will run
            early = self.early
            for i in needed:
                if early[i] >= 0:
                    early[i] = sum(1 for d in plan.steps[i][3] if d in needed)

    # -- the run --------------------------------------------------------------------------

    async def execute(self, timeout: float | None) -> None:
        timer = None if timeout is None else self.loop.call_later(timeout, self.on_timeout)
        roots = self.roots
        # Run the first root inline in the caller's task (one task fewer); with a timeout every
        # node gets a task so that the timer can cancel them without cancelling the caller.
        # Roots have no start order: with eager tasks (3.12+) the others start before it.
        inline = roots[0] if roots and timer is None else -1
        for r in roots:
            if r != inline:
                self.spawn(r)
        if inline >= 0 and not self.aborted:
            task = self.invoke_task
            base = task.cancelling() if task is not None else 0
            self.inline = 1
            try:
                await self.drive(inline)
            finally:
                cancelled_by_abort = self.end_inline()
            if task is not None:
                if cancelled_by_abort:
                    task.uncancel()  # take back the cancel abort() sent to stop the inline node
                if task.cancelling() > base and self.cancelled is None:
                    # The caller cancelled us meanwhile (maybe while the run was already
                    # aborting, so the node counted it as the abort's): that still counts.
                    self.cancelled = CancelledError()
        if self.left and not self.aborted:
            self.waiter = self.loop.create_future()
            try:
                await self.waiter
            except CancelledError as exc:
                self.cancelled = exc
                self.abort()
        if timer is not None:
            timer.cancel()
        if self.aborted:
            await self.settle()
        if self.releasing:
            await self.shielded(self.drain_releases())
        if self.cleanups:
            await self.shielded(lifecycle.run_cleanups(self))

    def end_inline(self) -> bool:
        """The invoke task stopped running nodes; return whether abort() had cancelled it."""
        cancelled_by_abort, self.inline = self.inline == 2, 0
        return cancelled_by_abort

    def spawn(self, i: int) -> None:
        if self.aborted:
            return
        coro = self.drive(i)
        try:
            # Tasks are made directly, not by the loop's task factory: ours never nest beyond
            # the bound below, even under a loop whose factory is eager.
            if _EAGER and self.eager_depth < _MAX_EAGER_NESTING:
                # An eager task runs synchronously until its first real suspension: a node
                # that completes without waiting never touches the event loop's queue.
                self.eager_depth += 1
                try:
                    task = _Task(coro, loop=self.loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]  # 3.12+
                finally:
                    self.eager_depth -= 1
                if task.done():  # it ran to the end synchronously: nothing to cancel or await
                    return
            else:
                task = _Task(coro, loop=self.loop)
        except BaseException as exc:  # RecursionError, MemoryError: node i could not start
            coro.close()
            self.fail(i, exc)
            return
        self.tasks.append(task)

    async def drive(self, i: int) -> None:
        """Run node i, then keep going with one dependent it made ready. THE hot path."""
        if self.aborted:  # spawned before an abort whose cancellation has not arrived yet
            return
        steps, values, status, counts = self.steps, self.values, self.status, self.counts
        # Nodes this chain finished; subtracted from self.left when the chain stops, so that
        # whoever subtracts last sees zero and wakes execute(). Plain nodes are never marked
        # RUNNING: no finished run can show that status, and it costs a store per node.
        done = 0
        while True:
            fn, get, mode, out = steps[i]
            try:
                if mode == A1:  # async, one argument: the commonest case first
                    value = await fn(values[get])  # type: ignore[index]  # mode says: an int
                elif mode == AN:
                    value = await fn(*get(values))  # type: ignore[operator,misc]  # an itemgetter
                elif mode == A0:
                    value = await fn()
                elif mode == SLOW:
                    status[i] = _RUNNING
                    value = await self.slow_call(i)
                else:  # SYNC: runs inline; it may still return an awaitable
                    if get is None:
                        value = fn()
                    elif get.__class__ is int:
                        value = fn(values[get])  # pyright: ignore[reportCallIssue, reportArgumentType]  # an int
                    else:
                        value = fn(*get(values))  # type: ignore[operator]  # an itemgetter
                    if isawaitable(value):
                        value = await value
            except BaseException as exc:
                self.left -= done
                self.fail(i, exc)
                return
            values[i] = value
            status[i] = _SUCCEEDED
            done += 1
            nxt = -1
            for d in out:
                c = counts[d] - 1
                counts[d] = c
                if not c:
                    if nxt < 0:
                        nxt = d
                    else:
                        self.spawn(d)
            if nxt < 0 or self.aborted:
                self.left = left = self.left - done
                if not left and self.waiter is not None and not self.waiter.done():
                    self.waiter.set_result(None)
                return
            i = nxt

    def fail(self, i: int, exc: BaseException) -> None:
        """Record how node i ended when it did not succeed, and stop or skip accordingly."""
        status = self.status
        if isinstance(exc, CancelledError):
            task = asyncio.current_task()
            # Only a cancel request on this task makes it a cancellation: after an abort, a
            # node woken before the abort's cancel arrived may still raise one by itself.
            requested = task is not None and task.cancelling() > 0
            if requested or isinstance(exc, Stopped):
                status[i] = NodeStatus.CANCELLED
                if not self.aborted:  # the caller (or the loop) cancelled us: stop the run
                    self.cancelled = exc
                    self.abort()
                return
            # Nobody cancelled this run: the body raised CancelledError by itself. That is a
            # failure (never a success), reported in a form an ExceptionGroup can hold.
            exc = NodeCancelledError.wrapping(exc, f"node {self.plan.specs[i].name!r}")
        status[i] = NodeStatus.FAILED
        self.record(i, self.phase.pop(i, "body"), exc)
        if self.fail_fast or not isinstance(exc, Exception):
            self.abort()  # BaseExceptions (KeyboardInterrupt, ...) stop even a continue-mode run
            return
        self.left -= 1 + self.skip_dependents(i)
        if not self.left and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def record(self, i: int, phase: str, exc: BaseException, recovered: bool = False) -> None:
        name = self.plan.specs[i].name
        exc.add_note(f"dagwire: node {name!r} failed in {phase}")
        self.errors.append(NodeFailure(name, phase, exc, recovered))
        if not recovered:
            self.failed.setdefault(i, exc)
            if self.first_failure is None:
                self.first_failure = exc

    def skip_dependents(self, i: int) -> int:
        """Continue mode: mark every transitive dependent of i SKIPPED; return how many."""
        steps, status, counts = self.plan.steps, self.status, self.counts
        skipped = 0
        stack = list(steps[i][3])
        while stack:
            d = stack.pop()
            if status[d] is _PENDING and counts[d] < _NOT_IN_RUN:
                status[d] = NodeStatus.SKIPPED
                counts[d] = _NOT_IN_RUN
                skipped += 1
                if self.early is not None:
                    self.finished(d)
                stack.extend(steps[d][3])
        return skipped

    def abort(self) -> None:
        """Fail fast: no new node starts; every running node is cancelled.

        The cancellation is sent one loop iteration later, so that nodes already woken in this
        iteration (failing "at the same moment" as the first failure) report their own outcome
        instead of a CancelledError; no node starts in between (`aborted` is checked first).
        """
        if self.aborted:
            return
        self.aborted = True
        self.loop.call_soon(self.cancel_running)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def cancel_running(self) -> None:
        for t in self.tasks:
            t.cancel()  # a finished task ignores it
        if self.inline == 1 and self.invoke_task is not None:
            # The invoke task is running a node itself: cancel it too (fail-fast stops every
            # running node); execute() takes this cancel back when that node has stopped.
            self.inline = 2
            self.invoke_task.cancel()

    def on_timeout(self) -> None:
        self.timed_out = True
        self.abort()

    async def settle(self) -> None:
        """Wait until every task of the run has finished, whatever cancels us meanwhile."""
        while pending := [t for t in self.tasks if not t.done()]:
            try:
                await asyncio.wait(pending)
            except CancelledError as exc:
                self.cancelled = self.cancelled or exc

    async def shielded(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` to completion even if the caller is cancelled (again) meanwhile."""
        task = self.loop.create_task(work)
        while not task.done():
            try:
                await asyncio.shield(task)
            except CancelledError as exc:
                self.cancelled = self.cancelled or exc
        task.result()

    # -- nodes with options ---------------------------------------------------------------

    def add_cleanup(self, i: int, cleanup: lifecycle.Cleanup) -> None:
        if self.cleanups is None:
            self.cleanups = {}
        self.cleanups.setdefault(i, []).append(cleanup)

    def args(self, i: int) -> tuple[Any, ...]:
        get, values = self.steps[i][1], self.values
        if get is None:
            return ()
        if isinstance(get, int):
            return (values[get],)
        return tuple(get(values))

    async def slow_call(self, i: int) -> object:
        """A node with options: hooks, attempts (retry, timeout, breaker, limits), fallback."""
        spec = self.plan.specs[i]
        opts = spec.options or _DEFAULT_OPTIONS
        times = self.times
        if times is not None:
            times[i] = [time.perf_counter() - self.started_at, 0.0]
        try:
            if opts.pre is not None:
                if opts.post is not None:
                    # post runs for every node whose pre started (without pre: see body()).
                    self.add_cleanup(i, lifecycle.post_hook(opts.post, opts.post_takes_param, self))
                self.phase[i] = "pre"
                await lifecycle.call_hook(opts.pre, opts.pre_takes_param, self.params)
            self.phase[i] = "setup" if spec.kind is NodeKind.RESOURCE else "body"
            try:
                value = await self.attempts_of(i, spec, opts)
            except Exception as exc:
                if opts.fallback is NO_FALLBACK or self.aborted:
                    raise
                self.record(i, self.phase.pop(i), exc, recovered=True)
                value = opts.fallback
            self.phase.pop(i, None)
            return value
        finally:
            if times is not None:
                times[i][1] = time.perf_counter() - self.started_at
            if self.early is not None:
                self.finished(i)

    # -- release="early" -------------------------------------------------------------------

    def finished(self, j: int) -> None:
        """Node j has ended: release each early resource of which it was the last user.

        A node holding cleanups of its own (a resource, a post= hook) keeps its inputs until it
        is released itself. After a fail-fast abort everything is left to the cleanup phase,
        which throws the run's failure into every open resource.
        """
        early, cleanups = self.early, self.cleanups
        if early is None or self.aborted:
            return
        if cleanups is not None and j in cleanups:
            if early[j] == 0:  # an early resource nothing (any longer) waits for
                self.release(j)
            return
        for r in self.plan.release_after[j]:
            early[r] -= 1
            if not early[r] and cleanups is not None and r in cleanups:
                self.release(r)

    def release(self, r: int) -> None:
        assert self.cleanups is not None
        # Taken out now, so the cleanup phase cannot run them a second time.
        items = self.cleanups.pop(r)
        self.releasing.append(self.loop.create_task(self.release_now(r, items)))

    async def release_now(self, r: int, items: list[lifecycle.Cleanup]) -> None:
        failed = self.failed  # continue mode: a failed user's exception reaches the resource
        exc = next((failed[d] for d in self.plan.steps[r][3] if d in failed), None)
        await lifecycle.clean_node(self, r, items, exc)
        if r in failed and self.fail_fast:
            self.abort()
        self.finished(r)  # r is released: its own early inputs may go now

    async def drain_releases(self) -> None:
        while pending := [t for t in self.releasing if not t.done()]:
            await asyncio.wait(pending)

    async def attempts_of(self, i: int, spec: NodeSpec, opts: NodeOptions) -> object:
        retry = opts.retry
        attempt = 1
        while True:
            try:
                return await self.attempt(i, spec, opts)
            except Exception as exc:  # BaseExceptions are never retried
                if (
                    retry is None
                    or attempt >= retry.attempts
                    or self.aborted
                    or not retry.should_retry(exc)
                ):
                    raise
                self.status[i] = NodeStatus.RETRYING
                await asyncio.sleep(retry.delay(attempt))
                self.status[i] = _RUNNING
                attempt += 1
                self.attempts[i] = attempt

    async def attempt(self, i: int, spec: NodeSpec, opts: NodeOptions) -> object:
        limiters = [
            lim
            for lim in (self.limiter, opts.limiter)
            if lim is not None and spec.kind is not NodeKind.JOIN
        ]
        for k, lim in enumerate(limiters):
            try:
                await lim.acquire()
            except BaseException:
                for held in limiters[:k]:
                    held.release()
                raise
        breaker = opts.breaker
        try:
            if self.aborted:  # woken (limiter slot, retry delay, pre) before the abort's cancel
                raise Stopped
            if breaker is not None:
                breaker.before_call()
            try:
                if opts.timeout is None:
                    value = await self.body(i, spec, opts)
                else:
                    async with asyncio.timeout(opts.timeout):
                        value = await self.body(i, spec, opts)
            except Exception:
                if breaker is not None:
                    breaker.on_failure()
                raise
            except BaseException:
                if breaker is not None:
                    breaker.on_abandoned()
                raise
            if breaker is not None:
                breaker.on_success()
            return value
        finally:
            for lim in limiters:
                lim.release()

    async def body(self, i: int, spec: NodeSpec, opts: NodeOptions) -> object:
        fn = spec.fn
        assert fn is not None
        args = self.args(i)
        if opts.post is not None and opts.pre is None:
            # Without pre, post runs iff the body started: registered at the first attempt
            # that reaches the body (not while waiting for a limiter or refused by a breaker).
            own = self.cleanups.get(i) if self.cleanups is not None else None
            if not own or all(phase != "post" for phase, _ in own):
                self.add_cleanup(i, lifecycle.post_hook(opts.post, opts.post_takes_param, self))
        if spec.kind is NodeKind.RESOURCE:
            return await lifecycle.enter_resource(self, i, fn, args)
        if opts.executor is not None:
            executor = None if opts.executor == "thread" else opts.executor
            call: Callable[[], object] = partial(fn, *args)
            return await self.loop.run_in_executor(executor, call)
        value = fn(*args)
        if isawaitable(value):
            value = await value
        return value

    # -- the outcome ----------------------------------------------------------------------

    def outcome(self, timeout: float | None) -> ExecutionResult[Any]:
        if not self.errors and self.cancelled is None and not self.timed_out and self.times is None:
            return ExecutionResult(self.dag, self.params, self.values, self.status, (), None)
        timings = None
        if self.times is not None:
            names = [s.name for s in self.plan.specs]
            timings = [
                NodeTiming(names[i], self.status[i], t[0], t[1], self.attempts.get(i, 1))
                for i, t in self.times.items()
            ]
        result = ExecutionResult(
            self.dag, self.params, self.values, self.status, self.errors, timings
        )
        fatal = next((f.error for f in self.errors if not isinstance(f.error, Exception)), None)
        if fatal is not None:  # KeyboardInterrupt, SystemExit, ...: surface it intact
            raise fatal
        if self.cancelled is not None:
            if self.errors:
                lifecycle.logger.error(
                    "dag %r was cancelled; failures during the run: %s",
                    self.dag.name,
                    "; ".join(f"{f.node} ({f.phase}): {f.error!r}" for f in self.errors),
                )
            raise self.cancelled
        if self.timed_out:
            err = TimeoutError(f"dag {self.dag.name!r} did not finish within {timeout}s")
            if not result.ok:
                raise err from make_dag_error(self.dag.name, self.errors)
            raise err
        if self.fail_fast and not result.ok:
            raise make_dag_error(self.dag.name, self.errors)
        return result
