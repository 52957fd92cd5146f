"""Issue 13: the cleanup phase. ``run.py`` runs this as the section ``cleanup`` and checks it
in ``--check``.

* A chain of 1,000 async-generator resources each taking the previous one's value, cleanup
  included, against the floor entering each on an ``AsyncExitStack`` unwound after the run
  (``floor_genlist``, reported: a plain list of generators closed in reverse).
* A chain of 10,000 resources whose last node fails: the run must raise that failure, close
  every resource with the failure thrown in at its ``yield`` (counted) and leave no task, with
  no ``RecursionError`` or hang, under the default task factory and (3.12+)
  ``asyncio.eager_task_factory``; time per run reported for dagwire and the floor.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import floor_state
import harness
import runners as rmod
import shapes
from bench_common import Case, Out, Target, measure, table, target
from builders import build, dagwire_runner, funcs, resources, state_floors
from harness import Row
from runners import FLOOR, Invoke, Skip
from shapes import Boom, Graph, NodeFn
from wrappers import close_list, entering, entering_list, res, unwind

#: a run of the 10,000-resource chain taking longer than this is reported as hung
DEEP_TIMEOUT = 60.0


CLEANUP_LIMIT = 1.5


async def run_cleanup_chain(out: Out, *, n: int, repeat: int, count: int) -> list[Target]:
    g = shapes.chain(n)
    case = Case(g.name, g.n, g.reference)
    chosen = [
        *state_floors(g, entering(res), AsyncExitStack, unwind, None),
        *state_floors(g, entering_list(res), list, close_list, None, "floor_genlist"),
        dagwire_runner(g, resources(None)),
    ]
    rows = await measure(chosen, case, count=count, repeat=repeat)
    table(
        out,
        f"cleanup phase: chain of {n:,} resources",
        [(f"chain{n} resources", rows)],
        unit="µs/node",
        note=(
            f"Every node an async-generator resource taking the previous one's value; sample = "
            f"{count} sequential invokes, cleanup included; {repeat} interleaved rounds. floor: "
            "each resource entered on an AsyncExitStack, unwound after the run. floor_genlist: "
            "a list of generators closed in reverse; not a target."
        ),
    )
    return [
        target(
            f"cleanup, chain of {n:,} resources: dagwire / floor (AsyncExitStack)",
            rows,
            "dagwire",
            CLEANUP_LIMIT,
        )
    ]


class Closed:
    """Counts the resources closed, and those that heard the run's failure."""

    def __init__(self) -> None:
        self.closed = 0
        self.heard = 0

    def resource(self) -> Callable[..., Any]:
        async def res_counted(*xs: int) -> Any:
            try:
                yield sum(xs) + 1
            except Boom:
                self.heard += 1
                raise
            finally:
                self.closed += 1

        return res_counted


async def boom_last(*xs: int) -> int:
    raise Boom("the last node fails")


def deep_chain(n: int) -> Graph:
    """n resources in a chain, then a plain node that fails (the sink)."""
    ins = [()] + [(i - 1,) for i in range(1, n + 1)]
    return Graph(f"chain{n}+fail", tuple(ins), (shapes.f,) * n + (boom_last,))


def deep_runners(g: Graph, n: int) -> list[tuple[str, Callable[[Closed], Invoke]]]:
    def floor(c: Closed) -> Invoke:
        sg = funcs(g, lambda i, fn: entering(c.resource()) if i < n else fn)
        return floor_state.prepare(sg, set(range(n)), AsyncExitStack, unwind)

    def dagwire(c: Closed) -> Invoke:
        reason = rmod.dagwire_status()
        if reason:
            raise Skip(reason)
        make = c.resource()

        def add(dag: Any, i: int, fn: NodeFn, args: list[Any]) -> Any:
            return dag.add_resource(make, *args) if i < n else dag.add_node(fn, *args)

        dag, _ = build(g, add)
        return lambda: dag.invoke(None)

    return [(FLOOR, floor), ("dagwire", dagwire)]


@dataclass
class DeepOutcome:
    """Per (runner, task factory): seconds per run, or what went wrong."""

    cells: dict[tuple[str, str], list[float] | str]


async def _deep_once(invoke: Invoke, c: Closed, n: int, factory: Any) -> float:
    before = asyncio.all_tasks()
    c.closed = c.heard = 0
    t0 = harness.clock()
    with harness.task_factory(factory):
        try:
            await invoke()
        except BaseException as exc:
            if Boom not in harness.leaf_types(exc):
                raise
        else:
            raise AssertionError("no exception raised")
    t1 = harness.clock()
    if c.closed != n or c.heard != n:
        raise AssertionError(f"{c.closed} of {n} resources closed, {c.heard} heard the failure")
    if left := len(asyncio.all_tasks() - before):
        raise AssertionError(f"left {left} task(s) running")
    return t1 - t0


async def run_deep(out: Out, *, n: int, repeat: int) -> tuple[DeepOutcome, list[str]]:
    """The failing deep chain; returns the cells and what went wrong ("runner, factory: why")."""
    g = deep_chain(n)
    factories: list[tuple[str, Any]] = [("default", None)]
    eager = getattr(asyncio, "eager_task_factory", None)
    if eager is not None:
        factories.append(("eager", eager))
    res_: dict[tuple[str, str], list[float] | str] = {}
    made: dict[str, tuple[Invoke, Closed]] = {}
    for name, make in deep_runners(g, n):
        c = Closed()
        try:
            made[name] = (make(c), c)
        except Skip as e:
            for label, _ in factories:
                res_[name, label] = f"skipped: {e}"
        except Exception as e:
            for label, _ in factories:
                res_[name, label] = f"build failed: {harness.describe_error(e)}"
    for rep in range(repeat):
        for name, (inv, c) in made.items() if rep % 2 == 0 else reversed(made.items()):
            for label, factory in factories:
                cell = res_.setdefault((name, label), [])
                if isinstance(cell, str):
                    continue
                try:
                    cell.append(
                        await harness.isolated(_deep_once(inv, c, n, factory), DEEP_TIMEOUT)
                    )
                except Exception as e:
                    res_[name, label] = harness.describe_error(e)
    out(f"### cleanup phase: chain of {n:,} resources whose last node fails")
    out()
    out(
        "| runner | " + " | ".join(f"{label} task factory: ms/run" for label, _ in factories) + " |"
    )
    out("|---|" + "---:|" * len(factories))
    bad: list[str] = []
    for name in [name for name, _ in deep_runners(g, n)]:
        cells: list[str] = []
        for label, _ in factories:
            cell = res_.get((name, label), "not run")
            if isinstance(cell, list) and cell:
                med = sorted(cell)[len(cell) // 2]
                cells.append(
                    f"ok, {med * 1e3:,.0f} ({min(cell) * 1e3:,.0f}-{max(cell) * 1e3:,.0f})"
                )
            else:
                cells.append(f"**{cell}**")
                bad.append(f"{name}, {label} task factory: {cell}")
        out(f"| {name} | " + " | ".join(cells) + " |")
    out()
    out(
        f"{n:,} async-generator resources in a chain and a last node that raises; each run must "
        "raise that failure, close every resource with the failure thrown in at its yield "
        f"(counted), and leave no task; {repeat} runs per cell ({clock_name()}), median (min-max). "
        "eager: `asyncio.eager_task_factory` installed on the loop. The floor unwinds an "
        f"AsyncExitStack. A run longer than {DEEP_TIMEOUT:g} s counts as hung."
    )
    out()
    return DeepOutcome(res_), bad


def clock_name() -> str:
    return "wall time" if harness.clock is time.perf_counter else "CPU time"


async def check(out: Out) -> int:
    """The 50-resource chain once, and the failing chain at 300 resources."""
    c = shapes.chain(50)
    rows: Sequence[Row] = await measure(
        [
            *state_floors(c, entering(res), AsyncExitStack, unwind, None),
            dagwire_runner(c, resources(None)),
        ],
        Case(c.name, c.n, c.reference),
        count=1,
        repeat=1,
    )
    bad = [f"chain/{r.runner}: {r.error}" for r in rows if r.error]
    _, deep_bad = await run_deep(lambda *_: None, n=300, repeat=1)
    bad += [f"failing chain/{b}" for b in deep_bad]
    out("  cleanup: " + ("ok" if not bad else "FAILED " + "; ".join(bad)))
    return len(bad)
