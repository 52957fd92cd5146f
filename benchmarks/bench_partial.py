"""Issue 13: partial runs. ``run.py`` runs this as the section ``partial`` and checks it in
``--check``: ``invoke(targets=[x])`` where ``x`` has 3 ancestors in a 1,000-node graph,
against dagwire running a graph made of just those 4 nodes (and the floors on it)."""

from __future__ import annotations

import random
from typing import Any

import runners as rmod
import shapes
from bench_common import EAGER, Case, Out, Target, measure, runner, table, target
from builders import build, dagwire_runner, option
from runners import EAGER_FLOOR, FLOOR, Invoke, Runner, Skip
from shapes import Graph


def partial_graphs(n: int = 1000, seed: int = 2024) -> tuple[Graph, Graph, int]:
    """(the n-node graph, the graph of x and its 3 ancestors, x's index). x = node 3 with
    inputs 1 and 2, both fed by root 0; the other nodes hang below, inputs among the 100
    previous nodes (x's descendants, never its ancestors)."""
    rng = random.Random(seed)
    head: list[list[int]] = [[], [0], [0], [1, 2]]
    ins = [list(x) for x in head]
    for i in range(len(head), n - 1):
        lo = max(0, i - 100)
        ins.append(sorted(rng.sample(range(lo, i), min(i - lo, rng.randint(1, 3)))))
    used = {j for x in ins for j in x}
    ins.append([i for i in range(len(ins)) if i not in used])
    big = Graph(f"partial{n}", tuple(tuple(x) for x in ins), (shapes.f,) * n)
    small = Graph("x_and_ancestors", tuple(tuple(x) for x in head), (shapes.f,) * 4)
    return big, small, 3


PARTIAL_LIMIT = 2.0


BASE = "dagwire (4-node graph)"
TARGETED = "dagwire targets=[x]"


def partial_runners() -> list[Runner]:
    """The floors and dagwire on the 4-node graph; dagwire with targets=[x] on the big one."""
    big, small, x = partial_graphs()

    def targeted() -> Invoke:
        reason = rmod.dagwire_status()
        if reason:
            raise Skip(reason)
        dag, nodes = build(big, option())
        node = nodes[x]
        targets = [node]

        async def invoke() -> Any:
            return (await dag.invoke(None, targets=targets))[node]

        return invoke

    return [
        runner(FLOOR, lambda: rmod._prepare_floor(small)),
        *([runner(EAGER_FLOOR, lambda: rmod._prepare_floor_eager(small))] if EAGER else []),
        dagwire_runner(small, option(), BASE),
        runner(TARGETED, targeted),
    ]


async def run_partial(out: Out, *, repeat: int, count: int) -> list[Target]:
    big, small, _ = partial_graphs()
    case = Case("partial", 1, small.reference)
    chosen = partial_runners()
    rows = await measure(chosen, case, count=count, repeat=repeat)
    table(
        out,
        "partial runs: invoke(targets=[x]), x with 3 ancestors in a 1,000-node graph",
        [("targets", rows)],
        unit="µs/invoke",
        base=BASE,
        note=(
            f"x (node 3) takes nodes 1 and 2, both fed by root 0; the other {big.n - 4} nodes "
            "hang below them (random inputs among the 100 previous nodes). dagwire targets=[x]: "
            f"`dag.invoke(None, targets=[x])` on the {big.n}-node graph, against dagwire running "
            "a graph made of just those 4 nodes (the target's base) and the floors on it. "
            f"sample = {count} sequential invokes; {repeat} interleaved rounds."
        ),
    )
    return [
        target(
            "partial run, targets=[x] (3 ancestors) in 1,000 nodes / full run of the 4 nodes",
            rows,
            TARGETED,
            PARTIAL_LIMIT,
            base=BASE,
        )
    ]


async def check(out: Out) -> int:
    silent: Out = lambda *_: None  # noqa: E731
    bad = [t.spread for t in await run_partial(silent, repeat=1, count=3) if t.ratio is None]
    out("  partial: " + ("ok" if not bad else "FAILED " + "; ".join(bad)))
    return len(bad)
