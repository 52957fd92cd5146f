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


def describe_error(exc: BaseException) -> str:
    """Short description; for exception groups, the distinct leaf exception types."""
    leaves = leaves_of(exc)
    names = sorted({type(e).__name__ for e in leaves})
    first = str(leaves[0]).splitlines()[0][:80] if leaves and str(leaves[0]) else ""
    kind = "+".join(names)
    if isinstance(exc, BaseExceptionGroup):
        kind = f"{type(exc).__name__}[{kind}]"
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


def isolated(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """Run ``coro`` in a task of its own, so that a misbehaving runner (say, one whose task
    group cancels its parent) cannot leave a cancellation pending on the harness's task."""
    return asyncio.get_running_loop().create_task(coro)


async def timed_sample(runner: Runner, invoke: Invoke, w: Workload) -> float:
    """One timed sample; returns seconds per unit. Raises on a wrong sink value."""
    return await isolated(_timed_sample(runner, invoke, w))


async def _timed_sample(runner: Runner, invoke: Invoke, w: Workload) -> float:
    ref = w.graph.reference
    count = w.count
    gc.collect()
    with task_factory(runner.task_factory), gc_disabled():
        if w.mode == "seq":
            t0 = time.perf_counter()
            for _ in range(count):
                if await invoke() != ref:
                    raise ValueMismatch(f"{runner.name} on {w.name}: wrong sink value")
            t1 = time.perf_counter()
        else:
            t0 = time.perf_counter()
            values = await asyncio.gather(*[invoke() for _ in range(count)])
            t1 = time.perf_counter()
            if any(v != ref for v in values):
                raise ValueMismatch(f"{runner.name} on {w.name}: wrong sink value")
    return (t1 - t0) / w.units


async def checked_run(runner: Runner, invoke: Invoke, graph: Graph) -> None:
    """One untimed invoke: checks the sink value and that no task was left behind."""
    value = await isolated(_run_once(runner, invoke))
    if value != graph.reference:
        raise ValueMismatch(
            f"{runner.name} on {graph.name}: sink value {value!r} != reference {graph.reference!r}"
        )
    me = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not me]
    if left:
        raise AssertionError(f"{runner.name} on {graph.name}: left {len(left)} task(s) running")


async def expect_failure(runner: Runner, invoke: Invoke, graph: Graph, exc: type) -> None:
    """One invoke of a graph with a failing node: it must raise (``exc`` among the leaves of
    what is raised) and leave no task behind."""
    try:
        await isolated(_run_once(runner, invoke))
    except BaseException as e:
        if exc not in leaf_types(e):
            raise AssertionError(f"raised {describe_error(e)}, not {exc.__name__}") from e
    else:
        raise AssertionError(f"{runner.name} on {graph.name}: no exception raised")
    me = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not me]
    if left:
        raise AssertionError(f"{runner.name} on {graph.name}: left {len(left)} task(s) running")


async def _run_once(runner: Runner, invoke: Invoke) -> Any:
    with task_factory(runner.task_factory):
        return await invoke()


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
    invokes, rows = prepare_all(runners, w.graph)
    by_name = {r.name: r for r in runners}
    for name, inv in list(invokes.items()):
        try:
            for _ in range(warmup):
                await checked_run(by_name[name], inv, w.graph)
            if w.mode == "conc":  # one untimed concurrent round too
                await timed_sample(by_name[name], inv, w)
        except Exception as e:  # RecursionError included: a failure of that runner
            rows[name].error = describe_error(e)
            del invokes[name]
    names = list(invokes)
    for rep in range(repeat):
        k = rep % len(names) if names else 0
        for name in names[k:] + names[:k]:
            if rows[name].error:
                continue
            try:
                rows[name].samples.append(await timed_sample(by_name[name], invokes[name], w))
            except Exception as e:
                rows[name].error = describe_error(e)
    return [rows[r.name] for r in runners]


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
                me = asyncio.current_task()
                if any(t is not me for t in asyncio.all_tasks()):
                    raise AssertionError("tasks left running")
                row.samples.append(makespan / cp)
            except Exception as e:
                row.error = describe_error(e)
    return [rows[r.name] for r in runners]


async def measure_memory(runners: Sequence[Runner], graph: Graph) -> list[tuple[str, str]]:
    """Peak bytes allocated per node during one (untimed, warmed-up) run, via tracemalloc."""
    out: list[tuple[str, str]] = []
    invokes, rows = prepare_all(runners, graph)
    by_name = {r.name: r for r in runners}
    for r in runners:
        row = rows[r.name]
        if r.name not in invokes:
            out.append((r.name, f"skipped: {row.skipped}" if row.skipped else str(row.error)))
            continue
        try:
            await checked_run(by_name[r.name], invokes[r.name], graph)
            gc.collect()
            value, base, peak = await isolated(_traced_run(r, invokes[r.name]))
            if value != graph.reference:
                raise ValueMismatch("wrong sink value")
            out.append((r.name, f"{(peak - base) / graph.n:,.0f}"))
        except Exception as e:
            out.append((r.name, describe_error(e)))
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


def time_build(
    builders: Sequence[tuple[str, Callable[[], Any]]], *, repeat: int = 3
) -> list[tuple[str, list[float], str | None]]:
    """Median build time of each builder (GC disabled while timing)."""
    out: list[tuple[str, list[float], str | None]] = []
    for name, build in builders:
        samples: list[float] = []
        err: str | None = None
        for _ in range(repeat):
            gc.collect()
            try:
                with gc_disabled():
                    t0 = time.perf_counter()
                    obj = build()
                    t1 = time.perf_counter()
            except Skip as e:
                err = f"skipped: {e}"
                break
            except Exception as e:
                err = describe_error(e)
                break
            del obj
            samples.append(t1 - t0)
        out.append((name, samples, err))
    return out


def floor_median(rows: Sequence[Row]) -> float | None:
    for r in rows:
        if r.runner == FLOOR and r.ok:
            return r.median
    return None
