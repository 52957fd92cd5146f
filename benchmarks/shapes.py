"""Benchmark graph shapes.

A shape is a general DAG given as a list of nodes in topological order: node ``i`` has a node
function and a tuple of input indices, all smaller than ``i``. The last node is the *sink*; every
node reaches it, so a run is over when the sink is done. Every runner builds its own
representation of the same :class:`Graph` and must return the sink's value, which the harness
checks against :meth:`Graph.reference`, computed directly in plain Python.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

NodeFn = Callable[..., Awaitable[Any]]


async def f(*xs: int) -> int:
    """The zero-work node function used by every runner on every non-sleep shape."""
    return sum(xs) + 1


def make_sleeper(seconds: float) -> NodeFn:
    """A node that sleeps ``seconds`` and then behaves like :func:`f`."""

    async def sleeper(*xs: int) -> int:
        await asyncio.sleep(seconds)
        return sum(xs) + 1

    return sleeper


@dataclass(frozen=True)
class Graph:
    """A DAG in topological order; the last node is the sink."""

    name: str
    inputs: tuple[tuple[int, ...], ...]
    funcs: tuple[NodeFn, ...]
    #: per-node sleep durations (seconds) for sleep graphs, else empty
    durations: tuple[float, ...] = ()
    #: nodes that carry options (timeout/retry) in the options comparison
    option_nodes: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        assert len(self.inputs) == len(self.funcs) > 0
        for i, ins in enumerate(self.inputs):
            assert all(0 <= j < i for j in ins), (self.name, i, ins)
        # every node must reach the sink
        reaches = [False] * len(self.inputs)
        reaches[-1] = True
        for i in range(len(self.inputs) - 1, -1, -1):
            if reaches[i]:
                for j in self.inputs[i]:
                    reaches[j] = True
        assert all(reaches), f"{self.name}: some nodes do not reach the sink"

    @property
    def n(self) -> int:
        return len(self.inputs)

    @property
    def sink(self) -> int:
        return len(self.inputs) - 1

    @cached_property
    def reference(self) -> int:
        """The sink value, computed directly (every node returns ``sum(inputs) + 1``)."""
        vals: list[int] = []
        for ins in self.inputs:
            vals.append(sum(vals[j] for j in ins) + 1)
        return vals[-1]

    def levels(self) -> list[list[int]]:
        """Nodes grouped by longest-path distance from a root."""
        depth = [0] * self.n
        for i, ins in enumerate(self.inputs):
            if ins:
                depth[i] = 1 + max(depth[j] for j in ins)
        out: list[list[int]] = [[] for _ in range(max(depth) + 1)]
        for i, d in enumerate(depth):
            out[d].append(i)
        return out

    def critical_path(self) -> float:
        """Longest path of sleep durations (seconds), for sleep graphs."""
        assert self.durations, "not a sleep graph"
        finish = [0.0] * self.n
        for i, ins in enumerate(self.inputs):
            start = max((finish[j] for j in ins), default=0.0)
            finish[i] = start + self.durations[i]
        return finish[-1]


def _graph(name: str, inputs: Sequence[Sequence[int]]) -> Graph:
    ins = tuple(tuple(x) for x in inputs)
    return Graph(name, ins, (f,) * len(ins))


def _close_with_sink(inputs: list[list[int]]) -> list[list[int]]:
    """Append a sink that depends on every node nothing else depends on."""
    used = {j for ins in inputs for j in ins}
    inputs.append([i for i in range(len(inputs)) if i not in used])
    return inputs


def chain(n: int) -> Graph:
    return _graph(f"chain{n}", [[]] + [[i - 1] for i in range(1, n)])


def fan(width: int) -> Graph:
    """1 -> width -> 1."""
    return _graph(f"fan{width}", [[]] + [[0]] * width + [list(range(1, width + 1))])


def random_inputs(
    n: int, rng: random.Random, *, max_inputs: int = 3, window: int = 100, roots: int = 4
) -> list[list[int]]:
    """``n`` nodes (sink included): each non-root node takes 1..max_inputs distinct inputs chosen
    among the ``window`` previous nodes; the sink joins every node without dependents."""
    inputs: list[list[int]] = []
    for i in range(n - 1):
        if i < roots:
            inputs.append([])
            continue
        lo = max(0, i - window)
        k = min(i - lo, rng.randint(1, max_inputs))
        inputs.append(sorted(rng.sample(range(lo, i), k)))
    return _close_with_sink(inputs)


def random_dag(n: int, seed: int = 1234) -> Graph:
    return _graph(f"random{n}", random_inputs(n, random.Random(seed)))


def endpoint() -> Graph:
    """10 nodes: 3 roots, two middle levels of 3, one sink."""
    return _graph(
        "endpoint",
        [[], [], [], [0, 1], [1, 2], [0, 2], [3, 4], [4, 5], [3, 5, 2], [6, 7, 8]],
    )


def sleep_graphs(
    count: int = 20, n: int = 30, seed: int = 99, lo_ms: float = 1.0, hi_ms: float = 20.0
) -> list[Graph]:
    """``count`` random ``n``-node graphs whose nodes sleep ``lo_ms``..``hi_ms`` each."""
    rng = random.Random(seed)
    out: list[Graph] = []
    for g in range(count):
        ins = random_inputs(n, rng, window=n, roots=rng.randint(1, 3))
        durs = tuple(rng.uniform(lo_ms, hi_ms) / 1000.0 for _ in ins)
        out.append(
            Graph(
                f"sleep{g}",
                tuple(tuple(x) for x in ins),
                tuple(make_sleeper(d) for d in durs),
                durs,
            )
        )
    return out


class Boom(Exception):
    """Raised by the failing node of :func:`failing`."""


async def boom(*xs: int) -> int:
    await asyncio.sleep(0)
    raise Boom("boom")


async def late_boom(*xs: int) -> int:
    await asyncio.sleep(0.005)
    raise Boom("late boom")


def failing_while_others_sleep(sleep: float = 5.0) -> Graph:
    """Two roots sleep ``sleep`` seconds while a third node fails after 5 ms: a fail-fast runner
    raises at once, cancelling the sleepers, and leaves nothing running."""
    return Graph(
        "failfast",
        ((), (), (), (0, 1, 2)),
        (make_sleeper(sleep), make_sleeper(sleep), late_boom, f),
    )


def sleepers(sleep: float = 5.0) -> Graph:
    """Three long sleeping roots and a sink: for the cancellation check."""
    return Graph(
        "sleepers",
        ((), (), (), (0, 1, 2)),
        (make_sleeper(sleep), make_sleeper(sleep), make_sleeper(sleep), f),
        (sleep, sleep, sleep, 0.0),
    )


def comb(k: int) -> Graph:
    """A chain c0 -> c1 -> ... -> ck where every chain node also feeds a leaf listed *before*
    the next chain node; every leaf and the last chain node feed the sink. When c_j finishes,
    its leaf is the first ready dependent and c_(j+1) the second: a scheduler that continues
    with the first and starts the second as an eager task nests one eager start per chain node,
    unless it bounds the nesting (the RecursionError trap)."""
    ins: list[list[int]] = [[]]
    last, leaves = 0, []
    for _ in range(k):
        leaves.append(len(ins))
        ins.append([last])
        ins.append([last])
        last = len(ins) - 1
    ins.append([*leaves, last])
    return _graph(f"comb{k}", ins)


async def boom_now(*xs: int) -> int:
    raise Boom("boom")


def failing(n: int = 40, bad: int = 20, seed: int = 5, *, immediate: bool = False) -> Graph:
    """A random DAG whose node ``bad`` raises :class:`Boom` (for the self-check), after one
    suspension, or at once if ``immediate`` (then, under eager tasks, while other nodes' starts
    are still on the stack)."""
    ins = random_inputs(n, random.Random(seed))
    bad_fn = boom_now if immediate else boom
    funcs = tuple(bad_fn if i == bad else f for i in range(n))
    name = f"failing{n}" + ("_now" if immediate else "")
    return Graph(name, tuple(tuple(x) for x in ins), funcs)


def options_graphs(n: int = 1000, every: int = 10, seed: int = 4321) -> tuple[Graph, Graph, Graph]:
    """Graphs for the "plain nodes do not pay for options" comparison.

    * ``plain``: a random ``n``-node DAG, all plain nodes.
    * ``mixed``: the same ``n`` nodes plus one extra *option node* hanging off every ``every``-th
      plain node and feeding a final sink together with the plain sink.
    * ``opts_only``: only the option nodes (as roots) and the final sink.

    Runners that support options put them on exactly the graphs' ``option_nodes``.
    """
    base = random_inputs(n, random.Random(seed))
    plain = _graph("opt_plain", base)
    mixed_ins = [list(x) for x in base]
    hosts = list(range(0, n - 1, every))
    opt_idx: list[int] = []
    for h in hosts:
        opt_idx.append(len(mixed_ins))
        mixed_ins.append([h])
    mixed_ins.append([n - 1, *opt_idx])
    mixed = replace(_graph("opt_mixed", mixed_ins), option_nodes=frozenset(opt_idx))
    only_ins: list[list[int]] = [[] for _ in hosts]
    only_ins.append(list(range(len(hosts))))
    only = replace(_graph("opt_only", only_ins), option_nodes=frozenset(range(len(hosts))))
    return plain, mixed, only
