"""Runners of the option rows: the floors (plain or with per-run state, lazy and, on 3.12+,
eager) with their node functions replaced, and dagwire graphs built node by node."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import floor_state
import runners as rmod
from bench_common import EAGER, runner
from runners import EAGER_FLOOR, FLOOR, Invoke, Runner, Skip
from shapes import Graph, NodeFn
from wrappers import res


def funcs(g: Graph, wrap: Callable[[int, NodeFn], NodeFn]) -> Graph:
    return Graph(g.name, g.inputs, tuple(wrap(i, fn) for i, fn in enumerate(g.funcs)))


def floors(make: Callable[[bool], Invoke]) -> list[Runner]:
    """``floor`` (and ``floor_eager`` on 3.12+) from ``make(eager)``."""
    out = [runner(FLOOR, lambda: make(False))]
    if EAGER:
        out.append(runner(EAGER_FLOOR, lambda: make(True)))
    return out


def wrapped_floors(
    g: Graph, wrap: Callable[[NodeFn], NodeFn], only: set[int] | None
) -> list[Runner]:
    """The plain floors, with the node functions in `only` (default: all) wrapped."""
    wg = funcs(g, lambda i, fn: wrap(fn) if only is None or i in only else fn)
    return floors(lambda eager: (rmod._prepare_floor_eager if eager else rmod._prepare_floor)(wg))


def state_floors(
    g: Graph,
    node: NodeFn,
    begin: Callable[[], Any],
    end: floor_state.End,
    only: set[int] | None,
    name: str = FLOOR,
) -> list[Runner]:
    """The per-run-state floors, with the nodes in `only` (default: all) replaced by `node`."""
    stateful = set(range(g.n)) if only is None else only
    sg = funcs(g, lambda i, fn: node if i in stateful else fn)

    def make(eager: bool) -> Invoke:
        prep = floor_state.prepare_eager if eager else floor_state.prepare
        return prep(sg, stateful, begin, end)

    if name == FLOOR:
        return floors(make)
    return [runner(name, lambda: make(False))]


Add = Callable[[Any, int, NodeFn, list[Any]], Any]


def build(g: Graph, add: Add, **dag_options: Any) -> tuple[Any, list[Any]]:
    """Build and freeze `g` in dagwire, each node made by ``add(dag, index, fn, inputs)``;
    return the graph and the node handles in `g`'s order (the sink last)."""
    from dagwire import build_dag

    nodes: list[Any] = []
    with build_dag(**dag_options) as dag:
        for i, (fn, ins) in enumerate(zip(g.funcs, g.inputs, strict=True)):
            nodes.append(add(dag, i, fn, [nodes[j] for j in ins]))
    return dag, nodes


def dagwire_runner(g: Graph, add: Add, name: str = "dagwire") -> Runner:
    def make() -> Invoke:
        reason = rmod.dagwire_status()
        if reason:
            raise Skip(reason)
        dag, nodes = build(g, add)
        sink = nodes[-1]

        async def invoke() -> Any:
            return (await dag.invoke(None))[sink]

        return invoke

    return runner(name, make)


def option(**options: Any) -> Add:
    return lambda dag, _i, fn, args: dag.add_node(fn, *args, **options)


def resources(only: set[int] | None) -> Add:
    def add(dag: Any, i: int, fn: NodeFn, args: list[Any]) -> Any:
        if only is None or i in only:
            return dag.add_resource(res, *args)
        return dag.add_node(fn, *args)

    return add
