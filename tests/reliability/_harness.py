"""Building a random graph out of recording functions, and running it in a fresh event loop.

Every node function receives the invoke parameter, a `Trial`, as its first argument and records
what it does into `trial.events` with a sequence number: body/setup start and end (with how it
ended), cleanup start (with the exception it received) and end, pre start/end, post start/end.
Faults are injected according to the trial's `RunPlan`; every fault that fires is remembered
(with the exception object) in `trial.fired`.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from dagwire import Dag, DagError, ExecutionResult, Node, Retry, RetryableError

from ._model import PAUSE_SECONDS, Fault, NodePlan, NodeShape, OnError, RunPlan, Scenario

HANG_SECONDS = 3600.0  # a "hang": only a node timeout, an abort or a cancellation ends it
WATCHDOG_SECONDS = 10.0  # an example takes milliseconds: past this the library hangs


class InjectedError(Exception):
    """An injected failure; `tag` names the run, node, phase and attempt."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.tag = tag


class RetryableInjected(InjectedError, RetryableError):
    """An injected failure that the nodes' Retry policies retry."""


class InjectedBase(BaseException):
    """An injected BaseException that is not an Exception (like KeyboardInterrupt, but safe)."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.tag = tag


RETRY_ON: tuple[type[Exception], ...] = (RetryableInjected, TimeoutError)


@dataclass(eq=False, slots=True)
class Event:
    seq: int
    t: float
    node: int  # -1 for run-level events (invoke end, cancel requests)
    what: str  # pre_start pre_end start end cleanup_start cleanup_end post_start post_end
    # invoke_end cancel
    attempt: int = 0
    outcome: str = "ok"  # for *_end: ok, or the fault kind, or "cancelled", or "other"
    exc: BaseException | None = None  # raised (for *_end) or received (for cleanup_start)
    args: tuple[object, ...] = ()  # for start: the inputs the body received
    it: int = 0  # the event loop iteration (see `Ticker`)

    def __repr__(self) -> str:
        extra = f" a{self.attempt}" if self.attempt else ""
        if self.what.endswith("_end") or self.what == "end":
            extra += f" {self.outcome}"
        if self.exc is not None:
            extra += f" exc={type(self.exc).__name__}({self.exc})"
        if self.args:
            extra += f" args={self.args!r}"
        return f"#{self.seq} @{self.it} n{self.node} {self.what}{extra}"


@dataclass(eq=False, slots=True)
class Fired:
    """A fault that actually fired (its code ran): the exception object raised."""

    node: int
    phase: str  # pre, body, cleanup, post
    attempt: int
    kind: Fault
    exc: BaseException
    seq: int
    it: int


class Ticker:
    """Counts event loop iterations: a callback that reschedules itself once per iteration.

    (The count is exact up to one: the tick runs somewhere in the middle of an iteration.)
    """

    def __init__(self) -> None:
        self.it = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.Handle | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_soon(self._tick)

    def _tick(self) -> None:
        self.it += 1
        assert self._loop is not None
        self._handle = self._loop.call_soon(self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


@dataclass(eq=False)
class Trial:
    """One invoke: its plan, its log, and what invoke returned or raised. The invoke param."""

    token: int
    shapes: tuple[NodeShape, ...]
    plan: RunPlan
    ticker: Ticker
    events: list[Event] = field(default_factory=list[Event])
    fired: list[Fired] = field(default_factory=list[Fired])
    started: bool = False  # the task awaiting invoke ran at all
    outcome: ExecutionResult[Trial] | BaseException | None = None  # what invoke gave
    cancel_requested: bool = False
    invoke_end: int = -1
    _seq: int = 0

    # -- recording ------------------------------------------------------------------------

    def rec(
        self,
        node: int,
        what: str,
        attempt: int = 0,
        outcome: str = "ok",
        exc: BaseException | None = None,
        args: tuple[object, ...] = (),
    ) -> Event:
        self._seq += 1
        ev = Event(
            self._seq, time.perf_counter(), node, what, attempt, outcome, exc, args, self.ticker.it
        )
        self.events.append(ev)
        return ev

    def classify(self, exc: BaseException) -> str:
        for f in self.fired:
            if f.exc is exc:
                return f.kind
        if isinstance(exc, asyncio.CancelledError):
            return "cancelled"
        return "other"

    def value(self, i: int) -> object:
        """The value node i produces in this run (resources and plain nodes differ)."""
        return ("r" if self.shapes[i].is_resource else "v", self.token, i)

    def fire(self, i: int, phase: str, attempt: int, fault: Fault) -> None:
        if fault in ("ok", "hang"):
            return
        tag = f"t{self.token}:n{i}:{phase}:{attempt}"
        exc: BaseException
        if fault == "error":
            exc = InjectedError(tag)
        elif fault == "retryable":
            exc = RetryableInjected(tag)
        elif fault == "selfcancel":
            exc = asyncio.CancelledError(tag)
        else:
            exc = InjectedBase(tag)
        self._seq += 1  # so that `seq` orders fired faults among the events
        self.fired.append(Fired(i, phase, attempt, fault, exc, self._seq, self.ticker.it))
        raise exc

    async def pause(self, kind: int) -> None:
        seconds = PAUSE_SECONDS[kind]
        if seconds is not None:
            await asyncio.sleep(seconds)

    def node_plan(self, i: int) -> NodePlan:
        return self.plan.nodes[i]

    # -- what node functions do -----------------------------------------------------------

    def _begin(self, i: int, args: tuple[object, ...]) -> tuple[int, Fault]:
        attempt = 1 + sum(1 for e in self.events if e.node == i and e.what == "start")
        self.rec(i, "start", attempt, args=args)
        return attempt, self.node_plan(i).attempt(attempt)

    async def abody(self, i: int, args: tuple[object, ...]) -> object:
        attempt, fault = self._begin(i, args)
        try:
            await self.pause(self.node_plan(i).pauses[1])
            if fault == "hang":
                await asyncio.sleep(HANG_SECONDS)
            self.fire(i, "body", attempt, fault)
        except BaseException as exc:
            self.rec(i, "end", attempt, self.classify(exc), exc)
            raise
        self.rec(i, "end", attempt)
        return self.value(i)

    def sbody(self, i: int, args: tuple[object, ...]) -> object:
        attempt, fault = self._begin(i, args)
        try:
            self.fire(i, "body", attempt, fault)
        except BaseException as exc:
            self.rec(i, "end", attempt, self.classify(exc), exc)
            raise
        self.rec(i, "end", attempt)
        return self.value(i)

    async def ahook(self, i: int, phase: str) -> None:
        plan = self.node_plan(i)
        fault, pause = (plan.pre, plan.pauses[0]) if phase == "pre" else (plan.post, plan.pauses[3])
        self.rec(i, f"{phase}_start")
        try:
            await self.pause(pause)
            if fault == "hang":
                await asyncio.sleep(HANG_SECONDS)
            self.fire(i, phase, 0, fault)
        except BaseException as exc:
            self.rec(i, f"{phase}_end", 0, self.classify(exc), exc)
            raise
        self.rec(i, f"{phase}_end")

    def shook(self, i: int, phase: str) -> None:
        plan = self.node_plan(i)
        fault = plan.pre if phase == "pre" else plan.post
        self.rec(i, f"{phase}_start")
        try:
            self.fire(i, phase, 0, fault)
        except BaseException as exc:
            self.rec(i, f"{phase}_end", 0, self.classify(exc), exc)
            raise
        self.rec(i, f"{phase}_end")

    async def acleanup(self, i: int, received: BaseException | None) -> None:
        self.rec(i, "cleanup_start", exc=received)
        fault = self.node_plan(i).cleanup
        try:
            await self.pause(self.node_plan(i).pauses[2])
            if fault == "hang":
                await asyncio.sleep(HANG_SECONDS)
            self.fire(i, "cleanup", 0, fault)
        except BaseException as exc:
            self.rec(i, "cleanup_end", 0, self.classify(exc), exc)
            raise
        self.rec(i, "cleanup_end")

    def scleanup(self, i: int, received: BaseException | None) -> None:
        self.rec(i, "cleanup_start", exc=received)
        try:
            self.fire(i, "cleanup", 0, self.node_plan(i).cleanup)
        except BaseException as exc:
            self.rec(i, "cleanup_end", 0, self.classify(exc), exc)
            raise
        self.rec(i, "cleanup_end")


# -- node functions -------------------------------------------------------------------------


class _Acm:
    def __init__(self, trial: Trial, i: int, args: tuple[object, ...]) -> None:
        self.trial, self.i, self.args = trial, i, args

    async def __aenter__(self) -> object:
        return await self.trial.abody(self.i, self.args)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.trial.acleanup(self.i, exc)


def make_function(i: int, shape: NodeShape) -> Callable[..., object]:
    kind = shape.kind
    if kind == "async":

        async def body(p: Trial, *args: object) -> object:
            return await p.abody(i, args)

        return body
    if kind == "sync":

        def sync_body(p: Trial, *args: object) -> object:
            return p.sbody(i, args)

        return sync_body
    if kind == "agen":

        async def resource(p: Trial, *args: object) -> AsyncIterator[object]:
            value = await p.abody(i, args)
            try:
                yield value
            except BaseException as exc:
                await p.acleanup(i, exc)
                raise
            else:
                await p.acleanup(i, None)

        return resource
    if kind == "gen":

        def sync_resource(p: Trial, *args: object) -> Iterator[object]:
            value = p.sbody(i, args)
            try:
                yield value
            except BaseException as exc:
                p.scleanup(i, exc)
                raise
            else:
                p.scleanup(i, None)

        return sync_resource
    assert kind == "acm", kind

    def acm(p: Trial, *args: object) -> _Acm:
        return _Acm(p, i, args)

    return acm


def make_hook(i: int, phase: str, kind: str) -> Callable[[Trial], object]:
    if kind == "sync":

        def hook(p: Trial) -> None:
            p.shook(i, phase)

        return hook

    async def ahook(p: Trial) -> None:
        await p.ahook(i, phase)

    return ahook


def build_graph(shapes: tuple[NodeShape, ...]) -> tuple[Dag[Trial], list[Node[Any]]]:
    dag = Dag[Trial](name="reliability")
    handles: list[Node[Any]] = []
    for i, s in enumerate(shapes):
        name = f"n{i}"
        if s.is_join:
            handles.append(dag.join(*(handles[d] for d in s.inputs), name=name))
            continue
        options: dict[str, Any] = {"name": name}
        if s.after:
            options["after"] = [handles[d] for d in s.after]
        if s.pre is not None:
            options["pre"] = make_hook(i, "pre", s.pre)
        if s.post is not None:
            options["post"] = make_hook(i, "post", s.post)
        if s.timeout is not None:
            options["timeout"] = s.timeout
        if s.retry is not None:
            options["retry"] = Retry(
                attempts=s.retry.attempts,
                initial_delay=s.retry.initial_delay,
                backoff=2.0,
                max_delay=0.002,
                jitter=True,
                on=RETRY_ON,
                rng=random.Random(s.retry.seed),
            )
        if s.fallback:
            options["fallback"] = fallback_value(i)
        if s.cleanup_timeout is not None:
            options["cleanup_timeout"] = s.cleanup_timeout
        inputs = [dag.params, *(handles[d] for d in s.inputs)]
        fn = make_function(i, s)
        if s.is_resource:
            handles.append(dag.add_resource(fn, *inputs, **options))
        else:
            handles.append(dag.add_node(fn, *inputs, **options))
    dag.freeze()
    return dag, handles


def fallback_value(i: int) -> object:
    return ("fallback", i)


# -- running --------------------------------------------------------------------------------


@dataclass
class LoopReport:
    """What the event loop itself saw during one example."""

    leaked_tasks: list[asyncio.Task[Any]] = field(default_factory=list[asyncio.Task[Any]])
    loop_errors: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    unraisable: list[str] = field(default_factory=list[str])
    hung: list[str] = field(default_factory=list[str])
    warnings: list[str] = field(default_factory=list[str])


async def _invoke(dag: Dag[Trial], trial: Trial, on_error: OnError) -> None:
    trial.started = True
    plan = trial.plan
    try:
        result = await dag.invoke(
            trial,
            on_error=on_error,
            timeout=plan.timeout,
            max_concurrency=plan.max_concurrency,
            timeline=plan.timeline,
        )
    except BaseException as exc:  # recorded and checked by the oracle, never swallowed silently
        trial.outcome = exc
    else:
        trial.outcome = result
    trial.invoke_end = trial.rec(-1, "invoke_end").seq


async def _cancel_later(task: asyncio.Task[None], trial: Trial) -> None:
    cancel = trial.plan.cancel
    assert cancel is not None
    if cancel.delay is not None:
        await asyncio.sleep(cancel.delay)
    else:
        for _ in range(cancel.iterations):
            await asyncio.sleep(0)
    if task.cancel():
        trial.cancel_requested = True
        trial.rec(-1, "cancel")
        if cancel.again_after is not None:
            for _ in range(cancel.again_after):
                await asyncio.sleep(0)
            if task.cancel():
                trial.rec(-1, "cancel")


async def _main(
    dag: Dag[Trial], trials: list[Trial], on_error: OnError, report: LoopReport
) -> None:
    loop = asyncio.get_running_loop()
    assert loop.get_debug()
    loop.set_exception_handler(lambda _loop, context: report.loop_errors.append(context))
    before = asyncio.all_tasks()
    ticker = trials[0].ticker
    ticker.start()
    tasks = [asyncio.create_task(_invoke(dag, t, on_error)) for t in trials]
    cancellers = [
        asyncio.create_task(_cancel_later(task, t))
        for task, t in zip(tasks, trials, strict=True)
        if t.plan.cancel is not None
    ]
    _, pending = await asyncio.wait([*tasks, *cancellers], timeout=WATCHDOG_SECONDS)
    if pending:  # a hang: report it, try to stop it, and leave the loop to be dropped
        report.hung = [repr(t) for t in pending]
        for t in pending:
            t.cancel()
        await asyncio.wait(pending, timeout=1.0)
        ticker.stop()
        return
    ticker.stop()
    report.leaked_tasks = list(asyncio.all_tasks() - before)
    for task, trial in zip(tasks, trials, strict=True):
        if not trial.started:  # cancelled before its first step: invoke never ran
            assert task.cancelled()
            trial.outcome = asyncio.CancelledError("the task awaiting invoke never started")


def _run_in_fresh_loop(main: Coroutine[Any, Any, None], report: LoopReport) -> None:
    """`asyncio.run(main, debug=True)`, except that after a hang the loop is just dropped
    (asyncio.run would wait forever for tasks that ignore their cancellation)."""
    loop = asyncio.new_event_loop()
    loop.set_debug(True)
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main)
        if not report.hung:
            leftovers = asyncio.all_tasks(loop)
            for t in leftovers:
                t.cancel()
            if leftovers:
                loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def run_scenario(scenario: Scenario) -> tuple[list[Trial], list[Node[Any]], LoopReport]:
    """Build the graph and invoke it once per run plan, concurrently, in a fresh debug loop."""
    dag, handles = build_graph(scenario.shapes)
    ticker = Ticker()
    trials = [Trial(k + 1, scenario.shapes, plan, ticker) for k, plan in enumerate(scenario.runs)]
    report = LoopReport()
    old_hook = sys.unraisablehook

    def unraisable(u: Any) -> None:
        report.unraisable.append(f"{u.exc_value!r} in {u.object!r}")

    sys.unraisablehook = unraisable
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _run_in_fresh_loop(_main(dag, trials, scenario.on_error, report), report)
        report.warnings = [str(w.message) for w in caught]
    finally:
        sys.unraisablehook = old_hook
    return trials, handles, report


def outcome_kind(outcome: object) -> str:
    """result, dagerror, cancelled, timeout, base, or other."""
    if isinstance(outcome, ExecutionResult):
        return "result"
    if isinstance(outcome, DagError):
        return "dagerror"
    if isinstance(outcome, asyncio.CancelledError):
        return "cancelled"
    if isinstance(outcome, TimeoutError):
        return "timeout"
    if isinstance(outcome, InjectedBase):
        return "base"
    return "other"
