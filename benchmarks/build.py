"""Build benchmark: the time to build (and freeze) a graph, per node, against async-dag, sdax and
a hand-written floor that only appends to lists.

Every builder gets the same :class:`~shapes.Graph` and turns its input indices into its own
handles, as user code would; building is all that is timed (never an invoke). Samples are taken
in interleaved rounds (each round times every builder once, in rotating order), with GC off
inside a sample, on the harness clock (``--clock cpu`` for process CPU time).
"""

from __future__ import annotations

import gc
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import harness
import runners as rmod
import shapes
from runners import Skip

Builder = Callable[[shapes.Graph], Any]


# -- the distinct-functions shape ---------------------------------------------------------------


def distinct(n: int = 1000, seed: int = 1234) -> shapes.Graph:
    """random``n``'s inputs, but every node has a function of its own, compiled separately (so
    every code object differs) and taking exactly its inputs as named positional parameters, as
    the functions of a real graph do: per-function caches do not help here."""
    inputs = shapes.random_inputs(n, random.Random(seed))
    funcs: list[shapes.NodeFn] = []
    for i, ins in enumerate(inputs):
        params = ", ".join(f"x{k}" for k in range(len(ins)))
        total = " + ".join(f"x{k}" for k in range(len(ins))) or "0"
        namespace: dict[str, Any] = {}
        exec(f"async def node_{i}({params}):\n    return {total} + 1\n", namespace)
        funcs.append(namespace[f"node_{i}"])
    return shapes.Graph(f"distinct{n}", tuple(tuple(x) for x in inputs), tuple(funcs))


def build_shapes() -> list[shapes.Graph]:
    return [
        shapes.chain(1000),
        shapes.fan(1000),
        shapes.random_dag(1000),
        shapes.endpoint(),
        distinct(1000),
    ]


# -- builders -------------------------------------------------------------------------------------


def build_floor(g: shapes.Graph) -> Any:
    """What any builder must at least do: record each node's function and input handles."""
    fns: list[Any] = []
    args: list[list[int]] = []
    handles: list[int] = []
    for fn, ins in zip(g.funcs, g.inputs, strict=True):
        a = [handles[j] for j in ins]
        handles.append(len(fns))
        fns.append(fn)
        args.append(a)
    return fns, args


def build_dagwire(g: shapes.Graph) -> Any:
    """`build_dag()` and `add_node(fn, *handles)` per node, as user code does; leaving the
    block freezes the graph (validates and compiles it), so freeze() is timed too."""
    reason = rmod.dagwire_status()
    if reason:
        raise Skip(reason)
    from dagwire import build_dag

    nodes: list[Any] = []
    with build_dag() as dag:
        for fn, ins in zip(g.funcs, g.inputs, strict=True):
            nodes.append(dag.add_node(fn, *[nodes[j] for j in ins]))
    return dag


def build_async_dag(g: shapes.Graph) -> Any:
    reason = rmod._async_dag_available()  # pyright: ignore[reportPrivateUsage]
    if reason:
        raise Skip(reason)
    import async_dag

    nodes: list[Any] = []
    with async_dag.build_dag() as tm:
        for fn, ins in zip(g.funcs, g.inputs, strict=True):
            nodes.append(tm.add_node(fn, *[nodes[j] for j in ins]))
    return tm


def build_sdax(g: shapes.Graph) -> Any:
    from sdax import AsyncDagTaskProcessor, AsyncTask, task_func

    builder: Any = AsyncDagTaskProcessor.builder()
    for i, (fn, ins) in enumerate(zip(g.funcs, g.inputs, strict=True)):
        builder.add_task(AsyncTask(name=i, pre_execute=task_func(fn)), depends_on=ins)
    return builder.build()


BUILDERS: tuple[tuple[str, Builder], ...] = (
    ("floor (append to lists)", build_floor),
    ("dagwire (build + freeze)", build_dagwire),
    ("async_dag", build_async_dag),
    ("sdax", build_sdax),
)
FLOOR = BUILDERS[0][0]
DAGWIRE = BUILDERS[1][0]
ASYNC_DAG = "async_dag"


# -- measuring ------------------------------------------------------------------------------------


@dataclass
class BuildRow:
    builder: str
    graph: shapes.Graph
    samples: list[float] = field(default_factory=list[float])  # seconds per node
    error: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def _batch(g: shapes.Graph) -> int:
    """Builds per sample: enough nodes that a sample is well above the clock's resolution."""
    return max(1, 2000 // g.n)


def _sample(build: Builder, g: shapes.Graph, batch: int) -> float:
    gc.collect()
    with harness.gc_disabled():
        t0 = harness.clock()
        for _ in range(batch):
            build(g)
        t1 = harness.clock()
    return (t1 - t0) / (batch * g.n)


def measure(
    graphs: Sequence[shapes.Graph],
    builders: Sequence[tuple[str, Builder]] = BUILDERS,
    *,
    repeat: int,
) -> list[BuildRow]:
    """One row per (builder, graph); each round samples every pair once, rotating the order."""
    rows = [BuildRow(name, g) for g in graphs for name, _ in builders]
    fns = [build for _ in graphs for _, build in builders]
    for row, build in zip(rows, fns, strict=True):  # warm-up, and who cannot build at all
        try:
            build(row.graph)
        except Skip as e:
            row.error = f"skipped: {e}"
        except Exception as e:
            row.error = harness.describe_error(e)
    live = [k for k, row in enumerate(rows) if row.error is None]
    for rep in range(repeat):
        s = rep % len(live) if live else 0
        for k in live[s:] + live[:s]:
            rows[k].samples.append(_sample(fns[k], rows[k].graph, _batch(rows[k].graph)))
    return rows


def freeze_scaling(sizes: Sequence[int] = (1000, 10_000), *, repeat: int) -> list[BuildRow]:
    """dagwire's build + freeze per node on chains and random graphs of each size."""
    graphs = [make(n) for n in sizes for make in (shapes.chain, shapes.random_dag)]
    return measure(graphs, [(DAGWIRE, build_dagwire)], repeat=repeat)
