"""Measurement: interleaved, GC-free timed samples in one event loop, with value checks."""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from runners import FLOOR, Invoke, Runner, Skip
from shapes import Graph

T = TypeVar("T")

#: a sample (or a check run) that has not finished after this many seconds is recorded as hung
HANG_TIMEOUT = 10.0

#: the clock of timed samples of zero-work shapes: wall time (``time.perf_counter``, as timeit),
#: or, with ``run.py --clock cpu``, this process's CPU time (``time.process_time``), which a
#: busy machine disturbs much less (time spent descheduled is not counted). Makespans of sleep
#: graphs are always wall time.
clock: Callable[[], float] = time.perf_counter


class ValueMismatch(AssertionError):
    """A runner returned a sink value different from the plain-Python reference."""


@dataclass
class Workload:
    """What one timed sample does with a graph."""

    name: str
    graph: Graph
    #: "seq": ``count`` invokes one after the other; "conc": one gather of ``count`` invokes
    mode: str = "seq"
    count: int = 1
    #: "node": report time per node per invoke; "invoke": time per invoke
    per: str = "node"

    @property
    def units(self) -> int:
        """How many units (nodes or invokes) one sample covers."""
        return self.count * (self.graph.n if self.per == "node" else 1)


@dataclass
class Row:
    runner: str
    samples: list[float] = field(default_factory=list)  # per-unit seconds
    error: str | None = None
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.skipped is None and bool(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def leaves_of(exc: BaseException) -> list[BaseException]:
    leaves: list[BaseException] = []
    stack = [exc]
    while stack:
        e = stack.pop()
        if isinstance(e, BaseExceptionGroup):
            stack.extend(e.exceptions)
        else:
            leaves.append(e)
    return leaves


def leaf_types(exc: BaseException) -> set[type]:
    return {type(e) for e in leaves_of(exc)}


def describe_error(exc: BaseException, *, short: bool = False) -> str:
    """Short description; for exception groups, the distinct leaf exception types. ``short``:
    the types only, no message."""
    leaves = leaves_of(exc)
    names = sorted({type(e).__name__ for e in leaves})
    first = str(leaves[0]).splitlines()[0][:80] if leaves and str(leaves[0]) else ""
    kind = "+".join(names)
    if isinstance(exc, BaseExceptionGroup):
        kind = f"{type(exc).__name__}[{kind}]"
    if short and not isinstance(exc, Hung):
        return kind
    return f"{kind}: {first}" if first else kind


@contextmanager
def gc_disabled() -> Iterator[None]:
    """As timeit does: no cyclic GC inside a timed sample."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@contextmanager
def task_factory(factory: Any) -> Iterator[None]:
    if factory is None:
        yield
        return
    loop = asyncio.get_running_loop()
    old = loop.get_task_factory()
    loop.set_task_factory(factory)
    try:
        yield
    finally:
        loop.set_task_factory(old)


class Hung(Exception):
    """A runner did not finish within HANG_TIMEOUT seconds."""


async def isolated(coro: Coroutine[Any, Any, T], timeout: float = HANG_TIMEOUT) -> T:
    """Run ``coro`` in a task of its own, so that a misbehaving runner (say, one whose task
    group cancels its parent) cannot leave a cancellation pending on the harness's task, and
    give up on it after ``timeout`` seconds (a runner that loses a RecursionError inside a task
    may wait forever). Whatever the outcome, tasks the runner left behind are cancelled."""
    task = asyncio.get_running_loop().create_task(coro)
    try:
        done, _ = await asyncio.wait([task], timeout=timeout)
        if not done:
            task.cancel()
            await asyncio.wait([task], timeout=1.0)
            raise Hung(f"no result within {timeout:g} s")
        return task.result()
    finally:
        await drain_leftovers()


async def drain_leftovers(timeout: float = 2.0) -> int:
    """Cancel every task but ours and wait (a bounded time) for them to end; return how many
    there were. Keeps a failed runner's debris out of the next runner's samples."""
    me = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not me]
    for t in left:
        t.cancel()
    if left:
        await asyncio.wait(left, timeout=timeout)
    return len(left)


async def timed_sample(runner: Runner, invoke: Invoke, w: Workload) -> float:
    """One timed sample; returns seconds per unit. Raises on a wrong sink value."""
    return await isolated(_timed_sample(runner, invoke, w))


async def _timed_sample(runner: Runner, invoke: Invoke, w: Workload) -> float:
    now = time.perf_counter if w.graph.durations else clock
    ref = w.graph.reference
    count = w.count
    before = asyncio.all_tasks()
    gc.collect()
    with task_factory(runner.task_factory), gc_disabled():
        if w.mode == "seq":
            t0 = now()
            for _ in range(count):
                if await invoke() != ref:
                    raise ValueMismatch(f"{runner.name} on {w.name}: wrong sink value")
            t1 = now()
        else:
            t0 = now()
            values = await asyncio.gather(*[invoke() for _ in range(count)])
            t1 = now()
            if any(v != ref for v in values):
                raise ValueMismatch(f"{runner.name} on {w.name}: wrong sink value")
    if left := len(asyncio.all_tasks() - before):
        raise AssertionError(f"{runner.name} on {w.name}: left {left} task(s) running")
    return (t1 - t0) / w.units


async def _run_checked(runner: Runner, invoke: Invoke) -> tuple[Any, int]:
    """One invoke, then how many tasks it started are still alive after it returned."""
    before = asyncio.all_tasks()
    with task_factory(runner.task_factory):
        value = await invoke()
    return value, len(asyncio.all_tasks() - before)


async def checked_run(
    runner: Runner, invoke: Invoke, graph: Graph, *, timeout: float = HANG_TIMEOUT
) -> None:
    """One untimed invoke: checks the sink value and that no task was left behind."""
    value, left = await isolated(_run_checked(runner, invoke), timeout)
    if value != graph.reference:
        raise ValueMismatch(
            f"{runner.name} on {graph.name}: sink value {value!r} != reference {graph.reference!r}"
        )
    if left:
        raise AssertionError(f"{runner.name} on {graph.name}: left {left} task(s) running")


async def expect_failure(runner: Runner, invoke: Invoke, graph: Graph, exc: type) -> None:
    """One invoke of a graph with a failing node: it must raise (``exc`` among the leaves of
    what is raised) and leave no task behind."""
    left: list[int] = []

    async def run() -> None:
        before = asyncio.all_tasks()
        try:
            with task_factory(runner.task_factory):
                await invoke()
        finally:
            left.append(len(asyncio.all_tasks() - before))

    try:
        await isolated(run())
    except Hung:
        raise
    except BaseException as e:
        if exc not in leaf_types(e):
            raise AssertionError(f"raised {describe_error(e)}, not {exc.__name__}") from e
    else:
        raise AssertionError(f"{runner.name} on {graph.name}: no exception raised")
    if left and left[0]:
        raise AssertionError(f"{runner.name} on {graph.name}: left {left[0]} task(s) running")


async def expect_fail_fast(
    runner: Runner, invoke: Invoke, graph: Graph, exc: type, *, within: float = 1.0
) -> None:
    """Like :func:`expect_failure`, on a graph whose other nodes sleep for seconds: the failure
    must be raised within ``within`` seconds (the sleepers cancelled, none left running)."""
    t0 = time.perf_counter()
    await expect_failure(runner, invoke, graph, exc)
    elapsed = time.perf_counter() - t0
    if elapsed > within:
        raise AssertionError(f"raised after {elapsed:.2f} s: not fail-fast")


async def expect_cancel(runner: Runner, invoke: Invoke, *, after: float = 0.02) -> None:
    """Cancel an invoke ``after`` seconds in (its nodes sleep for seconds): it must end promptly
    with CancelledError and leave no task behind."""
    me = asyncio.current_task()
    before = asyncio.all_tasks()

    async def run() -> None:
        with task_factory(runner.task_factory):
            await invoke()

    task = asyncio.get_running_loop().create_task(run())
    try:
        await asyncio.sleep(after)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2.0)
        if not done:
            raise Hung("still running 2 s after being cancelled")
        if not task.cancelled():
            e = task.exception()
            how = describe_error(e) if e else "a value"
            raise AssertionError(f"ended with {how}, not cancelled")
        left = len(asyncio.all_tasks() - before - {me})
        if left:
            raise AssertionError(f"left {left} task(s) running after cancellation")
    finally:
        await drain_leftovers()


def prepare_all(
    runners: Sequence[Runner], graph: Graph
) -> tuple[dict[str, Invoke], dict[str, Row]]:
    invokes: dict[str, Invoke] = {}
    rows: dict[str, Row] = {}
    for r in runners:
        row = rows[r.name] = Row(r.name)
        try:
            invokes[r.name] = r.prepare(graph)
        except Skip as e:
            row.skipped = str(e)
        except Exception as e:  # a runner that cannot even build the graph has failed
            row.error = f"build failed: {describe_error(e)}"
    return invokes, rows


async def measure(
    runners: Sequence[Runner], w: Workload, *, repeat: int, warmup: int = 2
) -> list[Row]:
    """Warm up every runner (checking values and leaked tasks), then take ``repeat`` rounds of
    interleaved samples: every round times each runner once, in rotating order."""
    return await measure_many([(r, w) for r in runners], repeat=repeat, warmup=warmup)


async def measure_many(
    entries: Sequence[tuple[Runner, Workload]], *, repeat: int, warmup: int = 2
) -> list[Row]:
    """:func:`measure` for (runner, workload) pairs, all interleaved in the same rounds; one
    row per pair, in order (``Row.runner`` is the runner's name)."""
    rows = [Row(r.name) for r, _ in entries]
    invokes: dict[int, Invoke] = {}
    for k, (r, w) in enumerate(entries):
        try:
            invokes[k] = r.prepare(w.graph)
        except Skip as e:
            rows[k].skipped = str(e)
        except Exception as e:  # a runner that cannot even build the graph has failed
            rows[k].error = f"build failed: {describe_error(e)}"
    for k, inv in list(invokes.items()):
        r, w = entries[k]
        try:
            for _ in range(warmup):
                await checked_run(r, inv, w.graph)
            if w.mode == "conc":  # one untimed concurrent round too
                await timed_sample(r, inv, w)
        except Exception as e:  # RecursionError included: a failure of that runner
            rows[k].error = describe_error(e)
            del invokes[k]
    keys = list(invokes)
    for rep in range(repeat):
        s = rep % len(keys) if keys else 0
        for k in keys[s:] + keys[:s]:
            if rows[k].error:
                continue
            r, w = entries[k]
            try:
                rows[k].samples.append(await timed_sample(r, invokes[k], w))
            except Exception as e:
                rows[k].error = describe_error(e)
    return rows


async def measure_sleep(runners: Sequence[Runner], graphs: Sequence[Graph]) -> list[Row]:
    """Makespan / critical path per runner, one sample per graph, runners interleaved."""
    rows = {r.name: Row(r.name) for r in runners}
    for gi, g in enumerate(graphs):
        cp = g.critical_path()
        invokes, prep_rows = prepare_all(runners, g)
        for name, pr in prep_rows.items():
            if pr.skipped and not rows[name].skipped:
                rows[name].skipped = pr.skipped
            if pr.error and not rows[name].error:
                rows[name].error = pr.error
        k = gi % len(runners)
        for r in list(runners[k:]) + list(runners[:k]):
            row = rows[r.name]
            if r.name not in invokes or row.error:
                continue
            try:
                w = Workload(g.name, g, per="invoke")
                makespan = await timed_sample(r, invokes[r.name], w)
                row.samples.append(makespan / cp)
            except Exception as e:
                row.error = describe_error(e)
    return [rows[r.name] for r in runners]


async def measure_memory(runners: Sequence[Runner], graph: Graph) -> dict[str, float | str]:
    """Peak bytes allocated per node during one (untimed, warmed-up) run, via tracemalloc;
    a string says why a runner has no figure."""
    out: dict[str, float | str] = {}
    invokes, rows = prepare_all(runners, graph)
    for r in runners:
        row = rows[r.name]
        if r.name not in invokes:
            out[r.name] = f"skipped: {row.skipped}" if row.skipped else str(row.error)
            continue
        try:
            await checked_run(r, invokes[r.name], graph)
            gc.collect()
            value, base, peak = await isolated(_traced_run(r, invokes[r.name]))
            if value != graph.reference:
                raise ValueMismatch("wrong sink value")
            out[r.name] = (peak - base) / graph.n
        except Exception as e:
            out[r.name] = describe_error(e)
    return out


async def _traced_run(runner: Runner, invoke: Invoke) -> tuple[Any, int, int]:
    with task_factory(runner.task_factory):
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            value = await invoke()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return value, base, peak


def floor_median(rows: Sequence[Row]) -> float | None:
    for r in rows:
        if r.runner == FLOOR and r.ok:
            return r.median
    return None
