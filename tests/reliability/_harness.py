"""Building random graphs out of recording functions, and running them in a fresh event loop.

Every node function finds its run's `Trial` (the invoke parameter, or through the token that
every value carries, for the nodes of a sub-graph whose parameter is an upstream value) and
records what it does into `trial.events` with a sequence number shared by every run of the
example: body/setup start and end (with how it ended), cleanup start (with the exception it
received) and end, pre start/end, post start/end. Faults are injected according to the
trial's `RunPlan`; every fault that fires is remembered (with the exception object) in
`trial.fired`. Bodies in threads record from their thread; bodies in a process pool append to
a file that is merged into the log, by time, once the example is over.

Each function also checks that it sees the caller's context variables (`CALLER`), and sets
one of its own (`NODE_VAR`) that the caller must never see after invoke.
"""

from __future__ import annotations

import ast
import asyncio
import contextvars
import itertools
import json
import logging
import os
import random
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Any

from dagwire import (
    BreakerState,
    CircuitBreaker,
    Dag,
    DagError,
    ExecutionResult,
    Limiter,
    Node,
    Retry,
)

from . import _workers
from ._loops import LoopKind, LoopReport, run_in_fresh_loop
from ._model import (
    PAUSE_SECONDS,
    THREAD_SLOW_SECONDS,
    Fault,
    NodePlan,
    NodeShape,
    OnError,
    RunPlan,
    Scenario,
)
from ._workers import InjectedBase, InjectedError, RetryableInjected

HANG_SECONDS = 3600.0  # a "hang": only a node timeout, an abort or a cancellation ends it

RETRY_ON: tuple[type[Exception], ...] = (RetryableInjected, TimeoutError)

# The caller's token, set by the task that awaits invoke; every node must see its own run's.
CALLER: contextvars.ContextVar[int] = contextvars.ContextVar("CALLER", default=0)
# Set by node functions; the caller must never see it after invoke.
NODE_VAR: contextvars.ContextVar[str | None] = contextvars.ContextVar("NODE_VAR", default=None)

Ref = tuple[int, int]  # (graph, node)


@dataclass(eq=False, slots=True)
class Event:
    seq: int
    t: float
    graph: int
    node: int  # -1 for run-level events (invoke end, cancel requests, timeout mark)
    what: str  # pre_start pre_end start end cleanup_start cleanup_end post_start post_end
    # invoke_end cancel
    attempt: int = 0
    outcome: str = "ok"  # for *_end: ok, or the fault kind, or "cancelled", or "other"
    exc: BaseException | None = None  # raised (for *_end) or received (for cleanup_start)
    args: tuple[object, ...] = ()  # for start: the inputs the body received
    it: int = 0  # the event loop iteration (see `Ticker`)
    off_loop: bool = False  # recorded in a worker thread or process

    def __repr__(self) -> str:
        extra = f" a{self.attempt}" if self.attempt else ""
        if self.what.endswith("_end") or self.what == "end":
            extra += f" {self.outcome}"
        if self.exc is not None:
            extra += f" exc={type(self.exc).__name__}({self.exc})"
        if self.args:
            extra += f" args={self.args!r}"
        where = f"g{self.graph}:n{self.node}" if self.graph else f"n{self.node}"
        return f"#{self.seq} @{self.it} {where} {self.what}{extra}{' (off loop)' * self.off_loop}"


@dataclass(eq=False, slots=True)
class Fired:
    """A fault that actually fired (its code ran): the exception object raised (None for a
    fault of a process-pool body, whose exception is a copy: matched by `tag`)."""

    graph: int
    node: int
    phase: str  # pre, body, cleanup, post
    attempt: int
    kind: Fault
    exc: BaseException | None
    seq: int
    it: int
    t: float
    tag: str
    off_loop: bool


@dataclass(eq=False, slots=True)
class BreakerChange:
    breaker: int
    old: BreakerState
    new: BreakerState
    seq: int
    t: float  # on the breaker's own clock (time.perf_counter, as the events)


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


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Recorder:
    """What every run of one example shares: the sequence counter (thread-safe: `next` on an
    itertools.count is atomic), the loop iteration counter, the breakers' state changes, and
    the file that process-pool bodies append their events to."""

    def __init__(self, process_log: str | None) -> None:
        self._count = itertools.count(1)
        self.ticker = Ticker()
        self.breaker_log: list[BreakerChange] = []
        self.process_log = process_log
        self.loop_thread = threading.get_ident()
        self.logs: list[logging.LogRecord] = []  # what the `dagwire` logger said

    def seq(self) -> int:
        return next(self._count)


# Trials of the running example by token: how a sub-graph's node, whose parameter is an
# upstream value, finds its run.
_ACTIVE: dict[int, Trial] = {}


def trial_of(p: object) -> Trial:
    if isinstance(p, Trial):
        return p
    assert isinstance(p, tuple), p
    token = p[1]  # pyright: ignore[reportUnknownVariableType]
    assert isinstance(token, int)
    return _ACTIVE[token]


@dataclass(eq=False)
class Trial:
    """One invoke: its plan, its log, and what invoke returned or raised. The invoke param."""

    token: int
    scenario: Scenario
    plan: RunPlan
    recorder: Recorder
    events: list[Event] = field(default_factory=list[Event])
    fired: list[Fired] = field(default_factory=list[Fired])
    context_problems: list[str] = field(default_factory=list[str])
    started: bool = False  # the task awaiting invoke ran at all
    outcome: ExecutionResult[Trial] | BaseException | None = None  # what invoke gave
    cancel_requested: bool = False
    invoke_end: int = -1
    _starts: dict[Ref, int] = field(default_factory=dict[Ref, int])
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickled for a process-pool body: what the worker needs to play its part.
        assert self.recorder.process_log is not None
        faults = {
            (0, i): self.plan.nodes[i].attempts
            for i, s in enumerate(self.scenario.shapes)
            if s.executor == "process"
        }
        return (_workers.ChildTrial, (self.token, self.recorder.process_log, faults))

    # -- recording ------------------------------------------------------------------------

    @property
    def ticker(self) -> Ticker:
        return self.recorder.ticker

    def rec(
        self,
        graph: int,
        node: int,
        what: str,
        attempt: int = 0,
        outcome: str = "ok",
        exc: BaseException | None = None,
        args: tuple[object, ...] = (),
    ) -> Event:
        off_loop = threading.get_ident() != self.recorder.loop_thread
        ev = Event(
            self.recorder.seq(),
            time.perf_counter(),
            graph,
            node,
            what,
            attempt,
            outcome,
            exc,
            args,
            self.ticker.it,
            off_loop,
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

    def value(self, graph: int, i: int) -> object:
        """The value node i of `graph` produces in this run (resources and plain nodes
        differ)."""
        return ("r" if self.scenario.graph(graph)[i].is_resource else "v", self.token, graph, i)

    def fire(self, graph: int, i: int, phase: str, attempt: int, fault: Fault) -> None:
        if fault in ("ok", "hang", "slow"):
            return
        tag = f"t{self.token}:g{graph}:n{i}:{phase}:{attempt}"
        exc: BaseException
        if fault == "error":
            exc = InjectedError(tag)
        elif fault == "retryable":
            exc = RetryableInjected(tag)
        elif fault == "selfcancel":
            exc = asyncio.CancelledError(tag)
        else:
            exc = InjectedBase(tag)
        off_loop = threading.get_ident() != self.recorder.loop_thread
        seq, t = self.recorder.seq(), time.perf_counter()  # `seq` orders it among the events
        self.fired.append(
            Fired(graph, i, phase, attempt, fault, exc, seq, self.ticker.it, t, tag, off_loop)
        )
        raise exc

    async def pause(self, kind: int) -> None:
        seconds = PAUSE_SECONDS[kind]
        if seconds is not None:
            await asyncio.sleep(seconds)

    def node_plan(self, graph: int, i: int) -> NodePlan:
        return self.plan.plans(graph)[i]

    def check_context(self, graph: int, i: int, where: str) -> None:
        seen = CALLER.get()
        if seen != self.token:
            self.context_problems.append(
                f"g{graph}:n{i} {where} saw CALLER={seen}, not its caller's {self.token}"
            )

    # -- what node functions do -----------------------------------------------------------

    def _begin(self, graph: int, i: int, args: tuple[object, ...]) -> tuple[int, Fault]:
        with self._lock:
            attempt = self._starts.get((graph, i), 0) + 1
            self._starts[(graph, i)] = attempt
        self.rec(graph, i, "start", attempt, args=args)
        self.check_context(graph, i, "body")
        NODE_VAR.set(f"t{self.token}:g{graph}:n{i}")
        return attempt, self.node_plan(graph, i).attempt(attempt)

    async def abody(self, graph: int, i: int, args: tuple[object, ...]) -> object:
        attempt, fault = self._begin(graph, i, args)
        try:
            await self.pause(self.node_plan(graph, i).pauses[1])
            if fault == "hang":
                await asyncio.sleep(HANG_SECONDS)
            self.fire(graph, i, "body", attempt, fault)
        except BaseException as exc:
            self.rec(graph, i, "end", attempt, self.classify(exc), exc)
            raise
        self.rec(graph, i, "end", attempt)
        return self.value(graph, i)

    def sbody(self, graph: int, i: int, args: tuple[object, ...]) -> object:
        attempt, fault = self._begin(graph, i, args)
        try:
            if fault == "slow":
                time.sleep(THREAD_SLOW_SECONDS)
            self.fire(graph, i, "body", attempt, fault)
        except BaseException as exc:
            self.rec(graph, i, "end", attempt, self.classify(exc), exc)
            raise
        self.rec(graph, i, "end", attempt)
        return self.value(graph, i)

    async def ahook(self, graph: int, i: int, phase: str) -> None:
        plan = self.node_plan(graph, i)
        fault, pause = (plan.pre, plan.pauses[0]) if phase == "pre" else (plan.post, plan.pauses[3])
        self.rec(graph, i, f"{phase}_start")
        self.check_context(graph, i, phase)
        try:
            await self.pause(pause)
            if fault == "hang":
                await asyncio.sleep(HANG_SECONDS)
            self.fire(graph, i, phase, 0, fault)
        except BaseException as exc:
            self.rec(graph, i, f"{phase}_end", 0, self.classify(exc), exc)
            raise
        self.rec(graph, i, f"{phase}_end")

    def shook(self, graph: int, i: int, phase: str) -> None:
        plan = self.node_plan(graph, i)
        fault = plan.pre if phase == "pre" else plan.post
        self.rec(graph, i, f"{phase}_start")
        self.check_context(graph, i, phase)
        try:
            self.fire(graph, i, phase, 0, fault)
        except BaseException as exc:
            self.rec(graph, i, f"{phase}_end", 0, self.classify(exc), exc)
            raise
        self.rec(graph, i, f"{phase}_end")

    async def acleanup(self, graph: int, i: int, received: BaseException | None) -> None:
        self.rec(graph, i, "cleanup_start", exc=received)
        self.check_context(graph, i, "cleanup")
        fault = self.node_plan(graph, i).cleanup
        try:
            await self.pause(self.node_plan(graph, i).pauses[2])
            if fault == "hang":
                await asyncio.sleep(HANG_SECONDS)
            self.fire(graph, i, "cleanup", 0, fault)
        except BaseException as exc:
            self.rec(graph, i, "cleanup_end", 0, self.classify(exc), exc)
            raise
        self.rec(graph, i, "cleanup_end")

    def scleanup(self, graph: int, i: int, received: BaseException | None) -> None:
        self.rec(graph, i, "cleanup_start", exc=received)
        self.check_context(graph, i, "cleanup")
        try:
            self.fire(graph, i, "cleanup", 0, self.node_plan(graph, i).cleanup)
        except BaseException as exc:
            self.rec(graph, i, "cleanup_end", 0, self.classify(exc), exc)
            raise
        self.rec(graph, i, "cleanup_end")


# -- node functions -------------------------------------------------------------------------


class _Acm:
    def __init__(self, trial: Trial, graph: int, i: int, args: tuple[object, ...]) -> None:
        self.trial, self.graph, self.i, self.args = trial, graph, i, args

    async def __aenter__(self) -> object:
        return await self.trial.abody(self.graph, self.i, self.args)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.trial.acleanup(self.graph, self.i, exc)


def make_function(g: int, i: int, shape: NodeShape) -> Callable[..., object]:
    kind = shape.kind
    if kind == "async":

        async def body(p: object, *args: object) -> object:
            return await trial_of(p).abody(g, i, args)

        return body
    if kind == "sync":
        if shape.executor == "process":
            return partial(_workers.process_body, g, i)

        def sync_body(p: object, *args: object) -> object:
            return trial_of(p).sbody(g, i, args)

        return sync_body
    if kind == "agen":

        async def resource(p: object, *args: object) -> AsyncIterator[object]:
            t = trial_of(p)
            value = await t.abody(g, i, args)
            try:
                yield value
            except BaseException as exc:
                await t.acleanup(g, i, exc)
                raise
            else:
                await t.acleanup(g, i, None)

        return resource
    if kind == "gen":

        def sync_resource(p: object, *args: object) -> Iterator[object]:
            t = trial_of(p)
            value = t.sbody(g, i, args)
            try:
                yield value
            except BaseException as exc:
                t.scleanup(g, i, exc)
                raise
            else:
                t.scleanup(g, i, None)

        return sync_resource
    assert kind == "acm", kind

    def acm(p: object, *args: object) -> _Acm:
        return _Acm(trial_of(p), g, i, args)

    return acm


def make_hook(g: int, i: int, phase: str, kind: str) -> Callable[[object], object]:
    if kind == "sync":

        def hook(p: object) -> None:
            trial_of(p).shook(g, i, phase)

        return hook

    async def ahook(p: object) -> None:
        await trial_of(p).ahook(g, i, phase)

    return ahook


@dataclass
class Built:
    """The graphs of one example and the shared policy objects their nodes hold."""

    dags: list[Dag[Any]]  # dags[g]: graph g (0 the outer one)
    handles: list[list[Node[Any]]]  # handles[g][i]
    breakers: list[CircuitBreaker]
    limiters: list[Limiter]


def build_graphs(scenario: Scenario, recorder: Recorder, pool: Executor | None) -> Built:
    breakers: list[CircuitBreaker] = []
    for b, shape in enumerate(scenario.breakers):
        breaker = CircuitBreaker(shape.fail_max, shape.reset_timeout, clock=time.perf_counter)

        def listen(old: BreakerState, new: BreakerState, b: int = b) -> None:
            recorder.breaker_log.append(
                BreakerChange(b, old, new, recorder.seq(), time.perf_counter())
            )

        breaker.add_listener(listen)
        breakers.append(breaker)
    limiters = [Limiter(limit) for limit in scenario.limiters]
    built = Built([], [], breakers, limiters)
    # Sub-graphs first: the outer graph's sub nodes hold them.
    inner = [build_one(g + 1, shapes, built, pool) for g, shapes in enumerate(scenario.subgraphs)]
    outer = build_one(0, scenario.shapes, built, pool, inner)
    built.dags = [outer[0], *(d for d, _ in inner)]
    built.handles = [outer[1], *(h for _, h in inner)]
    return built


def build_one(
    g: int,
    shapes: tuple[NodeShape, ...],
    built: Built,
    pool: Executor | None,
    inner: list[tuple[Dag[Any], list[Node[Any]]]] | None = None,
) -> tuple[Dag[Any], list[Node[Any]]]:
    dag = Dag[Any](name="reliability" if g == 0 else f"sub{g}")
    handles: list[Node[Any]] = []
    for i, s in enumerate(shapes):
        name = f"n{i}"
        if s.is_join:
            handles.append(dag.join(*(handles[d] for d in s.inputs), name=name))
            continue
        after = [handles[d] for d in s.after]
        if s.is_sub:
            assert inner is not None
            assert s.sub is not None
            sub_dag = inner[s.sub][0]
            if s.inputs:  # the inner graph's parameter is that node's value
                handles.append(dag.add_node(sub_dag, handles[s.inputs[0]], name=name, after=after))
            else:  # the invoke parameter
                handles.append(dag.add_node(sub_dag, name=name, after=after))
            continue
        options: dict[str, Any] = {"name": name, "after": after}
        if s.pre is not None:
            options["pre"] = make_hook(g, i, "pre", s.pre)
        if s.post is not None:
            options["post"] = make_hook(g, i, "post", s.post)
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
            options["fallback"] = fallback_value(g, i)
        if s.cleanup_timeout is not None:
            options["cleanup_timeout"] = s.cleanup_timeout
        if s.release != "end":
            options["release"] = s.release
        if s.executor == "thread":
            options["executor"] = "thread"
        elif s.executor == "process":
            assert pool is not None, "a process-pool node needs the session's pool"
            options["executor"] = pool
        if s.breaker is not None:
            options["breaker"] = built.breakers[s.breaker]
        if s.limiter is not None:
            options["limiter"] = built.limiters[s.limiter]
        inputs = [dag.params, *(handles[d] for d in s.inputs)]
        fn = make_function(g, i, s)
        if s.is_resource:
            handles.append(dag.add_resource(fn, *inputs, **options))
        else:
            handles.append(dag.add_node(fn, *inputs, **options))
    dag.freeze()
    return dag, handles


def fallback_value(g: int, i: int) -> object:
    return ("fallback", g, i)


def override_value(token: int, i: int) -> object:
    return ("o", token, 0, i)


# -- running --------------------------------------------------------------------------------


async def _invoke(built: Built, trial: Trial, on_error: OnError) -> None:
    trial.started = True
    plan = trial.plan
    CALLER.set(trial.token)
    handles = built.handles[0]
    options: dict[str, Any] = {}
    if plan.targets is not None:
        options["targets"] = [handles[i] for i in plan.targets]
    if plan.overrides:
        options["overrides"] = {handles[i]: override_value(trial.token, i) for i in plan.overrides}
    try:
        result = await built.dags[0].invoke(
            trial,
            on_error=on_error,
            timeout=plan.timeout,
            max_concurrency=plan.max_concurrency,
            timeline=plan.timeline,
            **options,
        )
    except BaseException as exc:  # recorded and checked by the oracle, never swallowed silently
        trial.outcome = exc
    else:
        trial.outcome = result
    trial.invoke_end = trial.rec(0, -1, "invoke_end").seq
    leaked = NODE_VAR.get()
    if leaked is not None:
        trial.context_problems.append(f"the caller sees NODE_VAR={leaked!r} after invoke")


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
        trial.rec(0, -1, "cancel")
        if cancel.again_after is not None:
            for _ in range(cancel.again_after):
                await asyncio.sleep(0)
            if task.cancel():
                trial.rec(0, -1, "cancel")


async def _main(
    built: Built, trials: list[Trial], on_error: OnError, pool: Executor | None
) -> None:
    loop = asyncio.get_running_loop()
    assert loop.get_debug()
    ticker = trials[0].ticker
    ticker.start()
    try:
        tasks = [asyncio.create_task(_invoke(built, t, on_error)) for t in trials]
        cancellers = [
            asyncio.create_task(_cancel_later(task, t))
            for task, t in zip(tasks, trials, strict=True)
            if t.plan.cancel is not None
        ]
        await asyncio.wait([*tasks, *cancellers])
    finally:
        ticker.stop()
    for task, trial in zip(tasks, trials, strict=True):
        if not trial.started:  # cancelled before its first step: invoke never ran
            assert task.cancelled()
            trial.outcome = asyncio.CancelledError("the task awaiting invoke never started")
    if pool is not None:  # every call of this example has started once these have run
        barriers = [loop.run_in_executor(pool, _workers.noop) for _ in range(2)]
        await asyncio.gather(*barriers)


def run_scenario(
    scenario: Scenario, kind: LoopKind = "default", pool: Executor | None = None
) -> tuple[list[Trial], Built, LoopReport]:
    """Build the graphs and invoke the outer one once per run plan, concurrently, in a fresh
    debug loop of `kind`."""
    uses_pool = any(s.executor == "process" for s in scenario.shapes)
    process_log = None
    if uses_pool:
        fd, process_log = tempfile.mkstemp(prefix="dagwire-reliability-", suffix=".jsonl")
        os.close(fd)
    recorder = Recorder(process_log)
    built = build_graphs(scenario, recorder, pool if uses_pool else None)
    trials = [Trial(k + 1, scenario, plan, recorder) for k, plan in enumerate(scenario.runs)]
    _ACTIVE.clear()
    _ACTIVE.update((t.token, t) for t in trials)
    logger = logging.getLogger("dagwire")
    handler = _ListHandler()
    logger.addHandler(handler)
    try:
        outcome = run_in_fresh_loop(
            lambda: _main(built, trials, scenario.on_error, pool if uses_pool else None), kind
        )
    finally:
        logger.removeHandler(handler)
        _ACTIVE.clear()
    recorder.logs = handler.records
    if process_log is not None:
        try:
            merge_process_events(process_log, trials, recorder)
        finally:
            os.unlink(process_log)
    return trials, built, outcome.report


def merge_process_events(path: str, trials: list[Trial], recorder: Recorder) -> None:
    """Add the events that process-pool bodies wrote, and renumber every event, fired fault
    and breaker change of the example by time (perf_counter is one clock for every process
    of the machine). Waits (a little) for bodies still running in the pool."""
    by_token = {t.token: t for t in trials}
    deadline = time.monotonic() + 5.0
    while True:
        with open(path, encoding="utf-8") as f:
            lines = [json.loads(raw) for raw in f]
        starts = sum(1 for e in lines if e["what"] == "start")
        if starts == len(lines) - starts or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    for e in lines:
        trial = by_token[e["token"]]
        args: tuple[object, ...] = ast.literal_eval(e["args"]) if e["what"] == "start" else ()
        outcome = e.get("outcome", "ok")
        exc = None
        ev = Event(0, e["t"], e["graph"], e["node"], e["what"], e["attempt"], outcome, exc, args)
        ev.off_loop = True
        trial.events.append(ev)
        if e["what"] == "end" and outcome != "ok":
            trial.fired.append(
                Fired(
                    e["graph"],
                    e["node"],
                    "body",
                    e["attempt"],
                    outcome,
                    None,
                    0,
                    0,
                    e["t"],
                    e["tag"],
                    True,
                )
            )
    # renumber by time; loop iterations of off-loop entries: the last loop event's before them
    entries: list[tuple[float, int, object]] = []
    for t in trials:
        entries.extend((e.t, e.seq, e) for e in t.events)
        entries.extend((f.t, f.seq, f) for f in t.fired)
    entries.extend((c.t, c.seq, c) for c in recorder.breaker_log)
    entries.sort(key=lambda x: (x[0], x[1]))
    it = 0
    for k, (_, _, obj) in enumerate(entries, start=1):
        if isinstance(obj, Event):
            obj.seq = k
            if obj.off_loop:
                obj.it = it
            else:
                it = obj.it
        elif isinstance(obj, Fired):
            obj.seq = k
            if obj.off_loop:
                obj.it = it
        else:
            assert isinstance(obj, BreakerChange)
            obj.seq = k
    for t in trials:
        t.events.sort(key=lambda e: e.seq)
        t.invoke_end = next((e.seq for e in t.events if e.what == "invoke_end"), -1)


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
