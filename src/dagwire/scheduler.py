"""The run loop: executes a frozen plan once, with per-run state only.

Design (the one place where speed beats elegance):
- A run executes one `Scope` of the plan (every runnable node, or what `targets=`/`overrides=`/
  `resume_from=` leave): `members` says which nodes belong to the run, and the scope's step
  tables list member dependents only, so nothing here ever touches a node outside the run.
- Per run we copy three flat lists: values, statuses and in-degree counters.
- `Run.drive(i)` runs node i, stores its value, decrements its dependents' counters, and then
  *continues itself* with one dependent that became ready; only the other ready dependents get a
  new task (see `tasks`). A chain therefore runs in one coroutine, and `invoke` runs one root
  inline, in a copy of the caller's context.
- A plain node (no options) costs a tuple unpack, an argument fetch, a call and a counter
  decrement. Everything optional (hooks, resources, retry, timeout, fallback, breaker, limiter,
  executor, cache) lives in `calls`, which only nodes that use it enter; runs that report per
  node (observers, logging at DEBUG, `timeline=True`, `max_concurrency=`) send every node there.
- The end of a node that did not take the fast path is reported from one place, `Run.ended`,
  after its outcome is recorded: early release (`cleanup`) and events (`report`) hear it there.
- The run is over when no chain is alive (`live`); `left` counts the nodes still to end, and a
  run that ends with nodes left is an internal error raised loudly, never a hang. Every task
  is kept until it ends; nothing of the run outlives `invoke` (threads aside: see `calls`).
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
from asyncio import CancelledError
from collections.abc import Awaitable, Coroutine, Iterable, Mapping, Sequence
from inspect import isawaitable
from typing import TYPE_CHECKING, Any, TypeVar

from . import calls
from .blocking import debug_steps
from .cache import MISSING
from .cleanup import Teardown
from .context import RunContext, register_marker
from .definition import NodeKind
from .errors import NodeCancelledError, Skip
from .plan import A0, A1, AN, SLOW, Plan, Scope
from .policies import Limiter
from .report import Feed, Observer, Reporter, make_reporter
from .results import ExecutionResult, NodeFailure, make_dag_error
from .status import NodeStatus
from .tasks import EAGER, MAX_EAGER_NESTING, in_context, start_task

if TYPE_CHECKING:
    from .graph import Dag
    from .lifecycle import Cleanup

__all__ = ["run_plan"]

P = TypeVar("P")

logger = logging.getLogger("dagwire")

_Task: Any = asyncio.Task  # Any: `eager_start=` is unknown to the 3.11 stubs
_RUNNING = NodeStatus.RUNNING
_SUCCEEDED = NodeStatus.SUCCEEDED
_PENDING = NodeStatus.PENDING
_ids = itertools.count(1)  # run ids, unique per invoke in this process


class InternalError(RuntimeError):
    """dagwire's own bookkeeping contradicts itself: a bug in dagwire, reported loudly."""


async def run_plan(
    dag: Dag[P],
    plan: Plan,
    params: P,
    *,
    scope: Scope | None = None,
    given: Mapping[int, object] | None = None,
    resumed: Iterable[int] = (),
    timeout: float | None = None,
    fail_fast: bool = True,
    max_concurrency: int | None = None,
    observers: Sequence[Observer] = (),
    timeline: bool = False,
    feed: Feed | None = None,
) -> ExecutionResult[P]:
    """Run `plan` once. `scope` (default: every runnable node) and `given` (values of nodes taken
    as done: overrides and resumed nodes) come from `Dag.invoke`."""
    run = Run(dag, plan, scope or plan.full, params, fail_fast, max_concurrency)
    if given:
        for i, value in given.items():
            run.values[i] = value
            run.status[i] = _SUCCEEDED
    reporter = None
    if observers or timeline or feed or dag.observers or logger.isEnabledFor(logging.DEBUG):
        reporter = make_reporter(run, observers, timeline, feed)
    if reporter is not None:
        run.use_reporter(reporter)
        reporter.run_started(resumed)
    elif run.debug:
        run.steps = debug_steps(run.steps, plan, run.loop, run.log_extra())
    try:
        await run.execute(timeout)
        result = run.outcome(timeout)
    except BaseException as exc:
        if reporter is not None:
            reporter.run_finished(exc, ok=False)
        raise
    if reporter is not None:
        reporter.run_finished(None, ok=result.ok)
    return result


class Run:
    """The state of one run, and the loop that drives its nodes."""

    __slots__ = (
        "_run_id",
        "aborted",
        "attempts",
        "cancelled",
        "causes",
        "counts",
        "dag",
        "debug",
        "eager_depth",
        "errors",
        "fail_fast",
        "failed",
        "first_failure",
        "inline",
        "invoke_task",
        "left",
        "limiter",
        "live",
        "loop",
        "params",
        "phase",
        "plan",
        "reporter",
        "scope",
        "skips",
        "status",
        "steps",
        "tasks",
        "teardown",
        "timed_out",
        "values",
        "waiter",
    )

    def __init__(
        self,
        dag: Dag[Any],
        plan: Plan,
        scope: Scope,
        params: object,
        fail_fast: bool,
        max_concurrency: int | None,
    ) -> None:
        self.dag = dag
        self.plan = plan
        self.scope = scope
        self.params = params
        self.fail_fast = fail_fast
        self._run_id = 0  # assigned when first asked (events, current(), logging)
        # max_concurrency= counts bodies in the slow path: every node goes there.
        self.steps = scope.slow_steps if max_concurrency else scope.steps
        self.limiter = Limiter(max_concurrency) if max_concurrency else None
        self.values: list[Any] = list(plan.values)
        self.values[0] = params
        self.status: list[NodeStatus] = list(plan.statuses)
        self.counts = list(scope.indegree)
        self.left = scope.size  # nodes of the run still to end
        self.live = 0  # chains (drive coroutines) alive
        self.tasks: list[asyncio.Task[None]] = []
        self.waiter: asyncio.Future[None] | None = None
        self.aborted = False
        self.errors: list[NodeFailure] = []
        self.failed: dict[int, BaseException] = {}  # unrecovered failures by node index
        self.first_failure: BaseException | None = None
        self.cancelled: CancelledError | None = None
        self.timed_out = False
        self.teardown: Teardown | None = None
        self.reporter: Reporter | None = None
        self.phase: dict[int, str] = {}
        self.attempts: dict[int, int] = {}
        self.causes: dict[int, int] = {}  # skipped node -> the node that started its cascade
        self.skips: dict[int, Skip] | None = None  # the Skip each node raised (when one did)
        self.loop = asyncio.get_running_loop()
        self.eager_depth = 0  # eager task starts nested on the stack now (see `tasks`)
        self.debug = self.loop.get_debug()
        self.invoke_task = asyncio.current_task()
        # 0: the invoke task is not running nodes; 1: it is (the inline root and its chain);
        # 2: it is, and a fail-fast abort cancelled it (execute() takes that cancel back).
        self.inline: int = 0

    @property
    def run_id(self) -> int:
        """Unique per invoke in this process."""
        if not self._run_id:
            self._run_id = next(_ids)
        return self._run_id

    def use_reporter(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.steps = self.scope.slow_steps  # every node reports its end

    # -- the run --------------------------------------------------------------------------

    async def execute(self, timeout: float | None) -> None:
        timer = None if timeout is None else self.loop.call_later(timeout, self.on_timeout)
        roots = self.scope.roots
        # Run the first root inline in the caller's task (one task fewer), in a copy of the
        # caller's context as tasks are; with a timeout every node gets a task so that the
        # timer can cancel them without cancelling the caller. Roots have no start order: with
        # eager tasks (3.12+) the others start before it.
        inline = roots[0] if roots and timer is None else -1
        for r in roots:
            if r != inline:
                self.spawn(r)
        if inline >= 0 and not self.aborted:
            task = self.invoke_task
            base = task.cancelling() if task is not None else 0
            self.inline = 1
            self.live += 1
            try:
                await self.drive_inline(inline)
            finally:
                cancelled_by_abort = self.end_inline()
            if task is not None:
                if cancelled_by_abort:
                    task.uncancel()  # take back the cancel abort() sent to stop the inline node
                if task.cancelling() > base and self.cancelled is None:
                    # The caller cancelled us meanwhile (maybe while the run was already
                    # aborting, so the node counted it as the abort's): that still counts.
                    self.cancelled = CancelledError()
        if self.live and not self.aborted:
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
        if self.teardown is not None:
            await self.cleanup_phase(self.teardown)
        if self.left and not self.aborted:
            raise InternalError(
                f"dagwire: run of {self.dag.name!r} ended with {self.left} node(s) neither "
                f"finished nor skipped: {self.unfinished()}. Please report this bug."
            )

    async def drive_inline(self, i: int) -> None:
        """`drive(i)` in the caller's task, in a copy of the caller's context (as a task would
        be): nothing a node sets in its context is seen by the caller. A chain that completes
        without waiting costs one synchronous step, not a trampoline."""
        context = contextvars.copy_context()
        chain = self.drive(i)
        try:
            waiting = context.run(chain.send, None)
        except StopIteration:
            return
        await in_context(context, chain, waiting)

    def end_inline(self) -> bool:
        """The invoke task stopped running nodes; return whether abort() had cancelled it."""
        cancelled_by_abort, self.inline = self.inline == 2, 0
        return cancelled_by_abort

    def unfinished(self) -> list[str]:
        members, status, specs = self.scope.members, self.status, self.plan.specs
        return [specs[i].name for i, m in enumerate(members) if m and status[i] <= _RUNNING]

    def spawn(self, i: int) -> None:
        """Start node i's chain in a new task (see `tasks`; inlined here: it is hot)."""
        if self.aborted:
            return
        self.live += 1
        coro = self.drive(i)
        try:
            if self.debug:  # tasks named after their node, for asyncio's debug output
                task = start_task(self, coro, self.plan.specs[i].name)
                if task is None:
                    return
            elif EAGER and self.eager_depth < MAX_EAGER_NESTING:
                self.eager_depth += 1
                try:
                    task = _Task(coro, loop=self.loop, eager_start=True)
                finally:
                    self.eager_depth -= 1
                if task.done():  # ran to its end eagerly; drive() never raises
                    return
            else:
                task = _Task(coro, loop=self.loop)
        except BaseException as exc:  # RecursionError, MemoryError: node i could not start
            coro.close()
            self.live -= 1
            self.fail(i, exc)
            return
        self.tasks.append(task)

    async def drive(self, i: int) -> None:
        """Run node i, then keep going with one dependent it made ready. THE hot path."""
        steps, values, status, counts = self.steps, self.values, self.status, self.counts
        caches = self.plan.caches
        # Nodes this chain finished, subtracted from `left` when the chain stops. Plain nodes
        # are never marked RUNNING: no finished run can show that status, and it costs a store.
        done = 0
        try:
            if self.aborted:  # spawned before an abort whose cancellation has not arrived yet
                return
            while True:
                fn, get, mode, out = steps[i]
                try:
                    if mode == A1:  # async, one argument: the commonest case first
                        value = await fn(values[get])  # type: ignore[index]  # mode says: an int
                    elif mode == AN:
                        value = await fn(*get(values))  # type: ignore[operator,misc]  # itemgetter
                    elif mode == A0:
                        value = await fn()
                    elif mode == SLOW:  # options: see calls
                        args: tuple[Any, ...] = (
                            ()
                            if get is None
                            else (values[get],)
                            if isinstance(get, int)
                            else get(values)
                        )
                        cache = caches[i]
                        if cache is None:
                            value = await calls.call(self, i, args)
                        else:  # a hit costs a lookup; a miss goes to the shared call
                            try:
                                value = cache.lookup(args, self.plan.specs[i].name)
                            except Exception:  # a bad key: the shared call raises it again,
                                value = MISSING  # where the node's fallback= can cover it
                            if value is MISSING:
                                value = await calls.call(self, i, args)
                            elif self.reporter is not None:
                                self.reporter.cached(i)
                        values[i] = value
                        status[i] = _SUCCEEDED
                        if self.teardown is not None or self.reporter is not None:
                            self.ended(i)  # after its outcome is recorded
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
                    return
                i = nxt
        finally:
            self.left -= done
            self.live = live = self.live - 1
            if not live and self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(None)

    # -- how nodes end --------------------------------------------------------------------

    def ended(self, i: int) -> None:
        """Node i's outcome is recorded: tell the observers, then early release (whose cleanup
        events must follow the end of every node depending on the resource)."""
        if self.reporter is not None:
            self.reporter.node_ended(i)
        if self.teardown is not None:
            self.teardown.node_ended(i)

    def fail(self, i: int, exc: BaseException) -> None:
        """Record how node i ended when it did not succeed, and stop or skip accordingly."""
        status = self.status
        self.left -= 1
        if isinstance(exc, CancelledError):
            task = asyncio.current_task()
            # Only a cancel request on this task makes it a cancellation: after an abort, a
            # node woken before the abort's cancel arrived may still raise one by itself.
            requested = task is not None and task.cancelling() > 0
            if requested or isinstance(exc, calls.Stopped):
                status[i] = NodeStatus.CANCELLED
                if not self.aborted:  # the caller (or the loop) cancelled us: stop the run
                    self.cancelled = exc
                    self.abort()
                self.ended(i)
                return
            # Nobody cancelled this run: the body raised CancelledError by itself. That is a
            # failure (never a success), reported in a form an ExceptionGroup can hold.
            exc = NodeCancelledError.wrapping(exc, f"node {self.plan.specs[i].name!r}")
        if isinstance(exc, Skip):  # not a failure: the node and its dependents are skipped
            if self.skips is None:
                self.skips = {}
            self.skips[i] = exc
            status[i] = NodeStatus.SKIPPED
            self.phase.pop(i, None)
            self.causes[i] = i
            self.ended(i)
            self.skip_dependents(i, i)
            return
        status[i] = NodeStatus.FAILED
        self.record(i, self.phase_of(i), exc)
        if self.fail_fast or not isinstance(exc, Exception):
            self.abort()  # BaseExceptions (KeyboardInterrupt, ...) stop even a continue-mode run
            self.ended(i)
            return
        self.ended(i)
        self.skip_dependents(i, i)

    def phase_of(self, i: int) -> str:
        """Where node i failed: "pre" if its pre hook did (marked by calls), else its body or,
        for a resource, its setup."""
        phase = self.phase.pop(i, None)
        if phase is not None:
            return phase
        return "setup" if self.plan.specs[i].kind is NodeKind.RESOURCE else "body"

    def record(self, i: int, phase: str, exc: BaseException, recovered: bool = False) -> None:
        name = self.plan.specs[i].name
        note = f"dagwire: node {name!r} failed in {phase}"
        # Once per object: an exception re-raised by every run (a memoised failure) or seen by
        # concurrent runs must not collect one note per run.
        if note not in getattr(exc, "__notes__", ()):
            exc.add_note(note)
        self.errors.append(NodeFailure(name, phase, exc, recovered))
        if not recovered:
            self.failed.setdefault(i, exc)
            if self.first_failure is None:
                self.first_failure = exc

    def skip_dependents(self, i: int, cause: int) -> None:
        """Mark every member dependent of i, transitively, SKIPPED because of `cause`.

        None of them can have started: each waits for i, which did not succeed. Their
        counters are left alone; they can no longer reach zero.
        """
        steps, status, causes = self.steps, self.status, self.causes
        stack = list(steps[i][3])
        while stack:
            d = stack.pop()
            if status[d] is _PENDING:
                status[d] = NodeStatus.SKIPPED
                causes[d] = cause
                self.left -= 1
                self.ended(d)
                stack.extend(steps[d][3])

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

    async def cleanup_phase(self, teardown: Teardown) -> None:
        """Run the cleanup phase to its end, whatever cancels the caller meanwhile.

        When every cleanup is known not to wait (sync hooks, sync exits), it runs right here:
        nothing can cancel code that never awaits. Otherwise it runs in a task of its own.
        """
        closing = teardown.close()
        if teardown.all_sync and not teardown.in_flight:
            try:
                waiting = closing.send(None)
            except StopIteration:
                return
            # A "sync" hook returned an awaitable after all: go on in a task. (Nothing bound
            # itself to this task: no cleanup_timeout, no awaiting cleanup has run.)
            await self.shielded(_awaiting(in_context(None, closing, waiting)))
            return
        await self.shielded(closing)

    async def shielded(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` to completion even if the caller is cancelled (again) meanwhile."""
        task = start_task(self, work, "dagwire cleanup")
        if task is None:
            return  # it ran to its end eagerly, without waiting
        while not task.done():
            try:
                await asyncio.shield(task)
            except CancelledError as exc:
                self.cancelled = self.cancelled or exc
        task.result()

    # -- what nodes with options need -------------------------------------------------------

    def add_cleanup(self, i: int, cleanup: Cleanup) -> None:
        if self.teardown is None:
            self.teardown = Teardown(self)
        self.teardown.add(i, cleanup)

    def args(self, i: int) -> tuple[Any, ...]:
        get, values = self.plan.getters[i], self.values
        if get is None:
            return ()
        if isinstance(get, int):
            return (values[get],)
        return tuple(get(values))

    def where(self, i: int) -> RunContext:
        """`dagwire.current()` inside node i."""
        return RunContext(
            self.dag.name, self.run_id, self.plan.specs[i].name, self.attempts.get(i, 1)
        )

    # -- the outcome ----------------------------------------------------------------------

    def outcome(self, timeout: float | None) -> ExecutionResult[Any]:
        if (
            not self.errors
            and self.cancelled is None
            and not self.timed_out
            and not self.causes
            and self.reporter is None
        ):
            return ExecutionResult(self.dag, self.params, self.values, self.status, (), None)
        reporter = self.reporter
        result = ExecutionResult(
            self.dag,
            self.params,
            self.values,
            self.status,
            self.errors,
            reporter.timings() if reporter is not None and reporter.timeline else None,
            {self.plan.specs[d].name: self.plan.specs[c].name for d, c in self.causes.items()},
        )
        fatal = next((f.error for f in self.errors if not isinstance(f.error, Exception)), None)
        if fatal is not None:  # KeyboardInterrupt, SystemExit, ...: surface it intact
            self.log_unreported(f"stopped by {type(fatal).__name__}", exclude=fatal)
            raise fatal
        if self.cancelled is not None:
            self.log_unreported("was cancelled")
            raise self.cancelled
        if self.timed_out:
            err = TimeoutError(f"dag {self.dag.name!r} did not finish within {timeout}s")
            if not result.ok:
                raise err from make_dag_error(self.dag.name, self.errors)
            raise err
        if self.fail_fast and not result.ok:
            error = make_dag_error(self.dag.name, self.errors)
            error.result = result  # what to resume from
            raise error
        return result

    def log_unreported(self, how: str, exclude: BaseException | None = None) -> None:
        """The run ends with an exception that does not carry its other failures: log them."""
        others = [f for f in self.errors if f.error is not exclude and not f.recovered]
        if not others:
            return  # (failures a fallback covered were logged at WARNING when they happened)
        exceptions = any(isinstance(f.error, Exception) for f in others)
        group = make_dag_error(self.dag.name, others) if exceptions else None
        logger.error(
            "dag %r %s; its other failures: %s",
            self.dag.name,
            how,
            "; ".join(f"{f.node} ({f.phase}): {f.error!r}" for f in others),
            exc_info=group,
            extra=self.log_extra(),
        )

    def log_extra(self, i: int | None = None) -> dict[str, object]:
        """The `extra` fields of a log record about this run (and node i)."""
        return {
            "dagwire_dag": self.dag.name,
            "dagwire_run_id": self.run_id,
            "dagwire_node": None if i is None else self.plan.specs[i].name,
            "dagwire_attempt": None if i is None else self.attempts.get(i, 1),
        }


async def _awaiting(awaitable: Awaitable[None]) -> None:
    await awaitable


def _where_in_drive(frame_locals: Mapping[str, Any]) -> RunContext | None:
    run = frame_locals.get("self")
    i = frame_locals.get("i")
    return run.where(i) if isinstance(run, Run) and isinstance(i, int) else None


register_marker(Run.drive, _where_in_drive)
