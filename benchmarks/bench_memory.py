"""Issue 13, memory: bytes per node per run on the rows of the other new sections, and what an
``ExecutionResult`` the caller keeps holds on to. ``run.py`` runs these as the sections
``memory_rows`` and ``retention`` (the plain shapes' bytes per node stay in ``memory``).

* **memory_rows**: ``harness.measure_memory`` (tracemalloc peak during one warmed-up run, minus
  what was traced before it, per node or item) of the floor and dagwire on every row of
  ``node_options``, ``cleanup`` (chain of 1,000 resources), ``map``, ``observers`` and ``otel``.
* **retention**: one run of each plain shape and of the option, resource and observer graphs,
  the result kept, everything else dropped and collected. Then (1) no ``Run`` of dagwire's
  scheduler (nor its reporter, teardown, any task or coroutine) may still be alive anywhere
  (``gc.get_objects()``: ``Run`` has ``__slots__`` without ``__weakref__``, so a weak
  reference cannot watch it), and (2) none may be reachable from the result
  (``gc.get_referents`` walked from it, not into the graph it belongs to, which the caller
  holds anyway). Also reported: bytes the kept result holds per node (tracemalloc, after the
  run, with the result alive, minus before the run).
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
import types
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import bench_compose
import bench_observers
import bench_options
import builders
import harness
import runners as rmod
import shapes
import wrappers
from bench_common import Case, Out, Target
from runners import FLOOR, Runner, Skip
from shapes import Graph

LIMIT = 1.25


# -- memory_rows --------------------------------------------------------------------------------


@dataclass
class MemoryRow:
    label: str
    unit: str
    floor: float | str
    dagwire: float | str


def _pick(runners: Sequence[Runner]) -> list[Runner]:
    return [r for r in runners if r.name in (FLOOR, "dagwire")]


async def _memory(label: str, unit: str, runners: Sequence[Runner], case: Case) -> MemoryRow:
    got = await harness.measure_memory(_pick(runners), case)  # type: ignore[arg-type]  # a Case
    return MemoryRow(label, unit, got.get(FLOOR, "not run"), got.get("dagwire", "not run"))


async def memory_rows() -> list[MemoryRow]:
    g = shapes.endpoint()
    ep = Case("endpoint", g.n, g.reference)
    rows = [
        await _memory(f"node options: {v.label}", "B/node", v.runners(g), ep)
        for v in bench_options.variants()
    ]
    c = shapes.chain(1000)
    cleanup = [
        *builders.state_floors(
            c, wrappers.entering(wrappers.res), AsyncExitStack, wrappers.unwind, None
        ),
        builders.dagwire_runner(c, builders.resources(None)),
    ]
    rows.append(
        await _memory(
            "cleanup: chain of 1,000 resources", "B/node", cleanup, Case(c.name, c.n, c.reference)
        )
    )
    for limit in (None, 10):
        rows.append(
            await _memory(
                f"add_map, limit={limit}",
                "B/item",
                bench_compose.map_runners(limit),
                Case("map", bench_compose.ITEMS, bench_compose.REFERENCE),
            )
        )
    rows.append(
        await _memory(
            "one no-op observer", "B/node", bench_observers.observer_runners(g, lambda e: None), ep
        )
    )
    if bench_observers.otel_available() is None:
        rows.append(
            await _memory(
                "OTelObserver", "B/node", bench_observers.otel_runners(g, bench_observers.Sdk()), ep
            )
        )
    return rows


async def run_memory_rows(out: Out) -> list[Target]:
    rows = await memory_rows()
    out("### memory: the new rows, peak bytes per node (or item) during one run")
    out()
    out("| row | floor | dagwire | dagwire / floor |")
    out("|---|---:|---:|---:|")
    worst: tuple[float, str] | None = None
    bad: list[str] = []
    for r in rows:
        if isinstance(r.floor, float) and isinstance(r.dagwire, float) and r.floor:
            x = r.dagwire / r.floor
            out(f"| {r.label} | {r.floor:,.0f} {r.unit} | {r.dagwire:,.0f} {r.unit} | {x:.2f} |")
            if worst is None or x > worst[0]:
                worst = (x, r.label)
        else:
            out(f"| {r.label} | {r.floor} | {r.dagwire} | |")
            bad.append(r.label)
    out()
    out(
        "Each row's floor is the same-behaviour floor of its timing table (for the observer "
        "rows: the floor emitting the same events / spans). tracemalloc peak during one run "
        "after a warm-up run, minus what was traced before it; divided by the nodes (items)."
    )
    out()
    what = "memory per node, every new row: worst dagwire / floor"
    if worst is None:
        return [Target(what, None, "no data: " + ", ".join(bad), LIMIT)]
    return [Target(f"{what} ({worst[1]})", worst[0], "", LIMIT)]


# -- retention --------------------------------------------------------------------------------


def _internal_types() -> tuple[type, ...]:
    from dagwire import cleanup, report, scheduler

    return (
        scheduler.Run,
        report.Reporter,
        cleanup.Teardown,
        asyncio.Future,
        types.CoroutineType,
        types.FrameType,
        types.AsyncGeneratorType,
    )


def _stop_types() -> tuple[type, ...]:
    """Objects the walk does not enter: the graph (the caller holds it anyway) and what hangs
    off every function (modules, classes, code)."""
    from dagwire import Dag

    return (
        Dag,
        types.ModuleType,
        type,
        types.FunctionType,
        types.BuiltinFunctionType,
        types.CodeType,
        types.MethodType,
    )


def reachable(root: object, find: tuple[type, ...], stop: tuple[type, ...]) -> list[str]:
    """Names of the types in `find` reachable from `root` through gc referents."""
    seen = {id(root)}
    stack = [root]
    found: list[str] = []
    while stack:
        obj = stack.pop()
        for ref in gc.get_referents(obj):
            if id(ref) in seen:
                continue
            seen.add(id(ref))
            if isinstance(ref, find):
                found.append(type(ref).__qualname__)
            if not isinstance(ref, stop):
                stack.append(ref)
    return found


def alive() -> list[str]:
    """dagwire's run objects (Run, Reporter, Teardown) alive anywhere."""
    from dagwire import cleanup, report, scheduler

    mine = (scheduler.Run, report.Reporter, cleanup.Teardown)
    return [type(o).__qualname__ for o in gc.get_objects() if isinstance(o, mine)]


@dataclass
class Kept:
    label: str
    reachable: list[str]
    alive: list[str]
    bytes_per_node: float
    error: str | None = None


def retention_cases() -> list[tuple[str, Graph, Callable[[], tuple[Any, Callable[[], Any]]]]]:
    """(label, graph, make() -> (dag, coroutine function running it once))."""

    def plain(g: Graph) -> Callable[[], tuple[Any, Callable[[], Any]]]:
        def make() -> tuple[Any, Callable[[], Any]]:
            dag, _ = rmod.build_dagwire(g)
            return dag, lambda: dag.invoke(None)

        return make

    def with_(g: Graph, add: builders.Add, **invoke: Any) -> Callable[[], Any]:
        def make() -> tuple[Any, Callable[[], Any]]:
            dag, _ = builders.build(g, add)
            return dag, lambda: dag.invoke(None, **invoke)

        return make

    ep = shapes.endpoint()
    cases: list[tuple[str, Graph, Callable[[], Any]]] = [
        (g.name, g, plain(g))
        for g in (shapes.chain(1000), shapes.fan(1000), shapes.random_dag(1000), ep)
    ]
    cases += [
        ("endpoint, retry=3", ep, with_(ep, builders.option(retry=3))),
        (
            "endpoint, pre=/post=",
            ep,
            with_(ep, builders.option(pre=wrappers.noop, post=wrappers.noop)),
        ),
        ("endpoint, every node a resource", ep, with_(ep, builders.resources(None))),
        (
            "endpoint, one no-op observer",
            ep,
            with_(ep, builders.option(), observers=[lambda e: None]),
        ),
        ("endpoint, timeline=True", ep, with_(ep, builders.option(), timeline=True)),
    ]
    return cases


async def _kept(label: str, g: Graph, make: Callable[[], Any]) -> Kept:
    dag, run = make()
    await run()  # warm-up
    find, stop = _internal_types(), _stop_types()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = await harness.isolated(run())
        await asyncio.sleep(0)  # let the loop drop the finished task's callbacks
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    kept = Kept(label, reachable(result, find, stop), alive(), held / g.n)
    del result, dag
    return kept


async def retention() -> list[Kept]:
    if rmod.dagwire_status():
        raise Skip(rmod.dagwire_status() or "")
    out: list[Kept] = []
    for label, g, make in retention_cases():
        try:
            out.append(await _kept(label, g, make))
        except Exception as e:
            out.append(Kept(label, [], [], 0.0, harness.describe_error(e)))
    return out


async def run_retention(out: Out) -> list[Target]:
    what = "a kept ExecutionResult holds no run bookkeeping (Run, reporter, teardown, tasks)"
    try:
        kept = await retention()
    except Skip as e:
        return [Target.verdict(what, None, str(e))]
    out("### retention: what a kept ExecutionResult holds")
    out()
    out("| run | reachable from the result | dagwire run objects alive | kept B/node |")
    out("|---|---|---|---:|")
    leaks = 0
    for k in kept:
        if k.error:
            out(f"| {k.label} | FAILED: {k.error} | | |")
            leaks += 1
            continue
        r = ", ".join(sorted(set(k.reachable))) or "nothing"
        a = ", ".join(sorted(set(k.alive))) or "none"
        leaks += bool(k.reachable) + bool(k.alive)
        out(f"| {k.label} | {r} | {a} | {k.bytes_per_node:,.0f} |")
    out()
    out(
        "One run per graph after a warm-up, its result kept, then `gc.collect()`. Reachable: "
        "the internal types (dagwire's Run, Reporter, Teardown; any asyncio future or task, "
        "coroutine, frame or async generator) found by walking `gc.get_referents` from the "
        "result, without entering the Dag (the caller holds it anyway), modules, classes or "
        "functions. Alive: dagwire's Run, Reporter or Teardown objects anywhere in "
        "`gc.get_objects()` (Run has `__slots__` without `__weakref__`: no weak reference can "
        "watch it). kept B/node: tracemalloc, traced memory with the result alive after the "
        "run minus before it, per node (the values and statuses the result exposes)."
    )
    out()
    return [Target.verdict(what, not leaks, f"{len(kept) - leaks}/{len(kept)} runs hold none")]


async def check(out: Out) -> int:
    bad: list[str] = []
    try:
        for k in await retention():
            if k.error or k.reachable or k.alive:
                bad.append(f"{k.label}: {k.error or ''} {k.reachable} {k.alive}")
    except Skip as e:
        out(f"  retention: skipped ({e})")
        return 0
    out("  retention: " + ("ok" if not bad else "FAILED " + "; ".join(bad)))
    return len(bad)
