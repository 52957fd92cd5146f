"""Issue 11: ``add_map`` and ``stream()``. ``run.py`` runs these as the sections ``map`` and
``stream``, and checks them in ``--check``.

* **map**: a graph of two nodes, ``items`` (returns ``list(range(1000))``) and
  ``add_map(g, items)`` with ``async def g(x): return x + 1``, the map's list checked on every
  invoke; without a limit and with ``limit=10``. The floor: the same two steps by hand, each
  item's call in a task behind an ``asyncio.Semaphore`` (of the limit; of the item count
  without one), ``asyncio.gather`` of the tasks in input order, and on the first failure the
  other tasks cancelled and awaited (what ``add_map`` promises). ``floor_eager`` (3.12+) makes
  the same tasks eager, as dagwire does there. Figures per item.
* **stream**: ``async for c in dag.stream(None)`` taking the sink's value from its
  completion, against ``dag.invoke(None)`` of the same graph, on the chain and endpoint shapes.
  Reported (no target): stream / invoke, and the floor for reference.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import runners as rmod
import shapes
from bench_common import EAGER, Case, Out, Target, measure, ratio, runner, table, target
from harness import Row
from runners import EAGER_FLOOR, FLOOR, Invoke, Runner, Skip

ITEMS = 1000
LIMIT_MAP = 1.25


async def make_items() -> list[int]:
    return list(range(ITEMS))


async def item(x: int) -> int:
    return x + 1


REFERENCE = [x + 1 for x in range(ITEMS)]


def floor_map(limit: int | None, eager: bool) -> Invoke:
    """The hand-written map: Semaphore + gather, fail-fast."""
    if eager and not EAGER:
        raise Skip("needs Python 3.12+ (eager tasks)")
    Task: Any = asyncio.Task
    extra = {"eager_start": True} if eager else {}

    async def invoke() -> Any:
        loop = asyncio.get_running_loop()
        items = await make_items()
        sem = asyncio.Semaphore(limit or max(len(items), 1))

        async def one(x: int) -> int:
            async with sem:
                return await item(x)

        tasks = [Task(one(x), loop=loop, **extra) for x in items]
        try:
            return await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.wait(tasks)
            raise

    return invoke


def dagwire_map(limit: int | None) -> Invoke:
    reason = rmod.dagwire_status()
    if reason:
        raise Skip(reason)
    from dagwire import build_dag

    with build_dag() as dag:
        items = dag.add_node(make_items)
        mapped = dag.add_map(item, items, limit=limit)

    async def invoke() -> Any:
        return (await dag.invoke(None))[mapped]

    return invoke


def map_runners(limit: int | None) -> list[Runner]:
    chosen = [runner(FLOOR, lambda: floor_map(limit, False))]
    if EAGER:
        chosen.append(runner(EAGER_FLOOR, lambda: floor_map(limit, True)))
    chosen.append(runner("dagwire", lambda: dagwire_map(limit)))
    return chosen


async def run_map(out: Out, *, repeat: int, count: int) -> list[Target]:
    case = Case(f"map{ITEMS}", ITEMS, REFERENCE)
    groups: list[tuple[str, list[Row]]] = []
    for limit in (None, 10):
        rows = await measure(map_runners(limit), case, count=count, repeat=repeat)
        groups.append((f"limit={limit}", rows))
    table(
        out,
        f"add_map over {ITEMS:,} zero-work items",
        groups,
        unit="µs/item",
        note=(
            f"`add_map(g, items, limit=...)` where `items` returns list(range({ITEMS})) and "
            "`async def g(x): return x + 1`; the list is checked on every invoke. floor: the "
            "same by hand, each item in a task behind an asyncio.Semaphore (the limit, or the "
            "item count), gathered in order, the others cancelled on a failure; floor_eager: "
            f"the same tasks started eagerly (3.12+). sample = {count} sequential invokes; "
            f"{repeat} interleaved rounds."
        ),
    )
    return [
        target(
            f"add_map, {ITEMS:,} items, {label}: dagwire / Semaphore + gather",
            rows,
            "dagwire",
            LIMIT_MAP,
        )
        for label, rows in groups
    ]


# -- stream ----------------------------------------------------------------------------------------


def stream_runner(g: shapes.Graph) -> Runner:
    def make() -> Invoke:
        reason = rmod.dagwire_status()
        if reason:
            raise Skip(reason)
        dag, sink = rmod.build_dagwire(g)

        async def invoke() -> Any:
            value = None
            async for completion in dag.stream(None):
                if completion.node is sink:
                    value = completion.value
            return value

        return invoke

    return runner("dagwire stream()", make)


def stream_runners(g: shapes.Graph) -> list[Runner]:
    chosen = [runner(FLOOR, lambda: rmod._prepare_floor(g))]
    if EAGER:
        chosen.append(runner(EAGER_FLOOR, lambda: rmod._prepare_floor_eager(g)))
    chosen += [runner("dagwire invoke()", lambda: rmod._prepare_dagwire(g)), stream_runner(g)]
    return chosen


async def run_stream(
    out: Out, *, repeat: int, graph_invokes: int, endpoint_invokes: int, chain: int = 1000
) -> list[tuple[str, float | None, str]]:
    """The stream rows; returns (shape, stream / invoke, per-round spread) for the summary."""
    shapes_ = [
        (shapes.chain(chain), graph_invokes, "µs/node"),
        (shapes.endpoint(), endpoint_invokes, "µs/node"),
    ]
    groups: list[tuple[str, list[Row]]] = []
    found: list[tuple[str, float | None, str]] = []
    for g, count, _ in shapes_:
        rows = await measure(
            stream_runners(g), Case(g.name, g.n, g.reference), count=count, repeat=repeat
        )
        groups.append((g.name, rows))
        x, spread = ratio(rows, "dagwire stream()", "dagwire invoke()")
        found.append((g.name, x, spread))
    table(
        out,
        "stream() against invoke()",
        groups,
        unit="µs/node",
        note=(
            "`async for c in dag.stream(None)` (the sink's value taken from its completion) "
            "against `dag.invoke(None)` on the same graph; every node reports a completion. "
            f"samples: {graph_invokes} invokes (chain), {endpoint_invokes} (endpoint); {repeat} "
            "interleaved rounds."
        ),
    )
    for name, x, spread in found:
        out(f"- stream / invoke, {name}: " + (f"{x:.2f} (per round {spread})" if x else spread))
    out()
    return found


# -- check -----------------------------------------------------------------------------------------


def failures(rows: Sequence[Row]) -> list[str]:
    return [f"{r.runner}: {r.error}" for r in rows if r.error]


async def check(out: Out) -> int:
    bad: list[str] = []
    case = Case(f"map{ITEMS}", ITEMS, REFERENCE)
    for limit in (None, 10):
        rows = await measure(map_runners(limit), case, count=1, repeat=1)
        bad += [f"map limit={limit}/{f}" for f in failures(rows)]
    for g in (shapes.chain(50), shapes.endpoint()):
        rows = await measure(stream_runners(g), Case(g.name, g.n, g.reference), count=2, repeat=1)
        bad += [f"stream {g.name}/{f}" for f in failures(rows)]
    out("  map, stream: " + ("ok" if not bad else "FAILED " + "; ".join(bad)))
    return len(bad)
