"""Graphs and results the picture tests draw.

`kinds_dag()` has one node of every kind and every edge style; `nasty_dag()` has names that
break naive Mermaid, DOT, Gantt and matplotlib output; `hand_result()` is a run built by hand
(retried node, fallback, failed node, cancelled node, zero-length node, cached node, a `pre` that
failed, a resource whose cleanup failed) for the timeline pictures, with `HAND_*` describing it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from dagwire import Dag, ExecutionResult, NodeFailure, NodeStatus, NodeTiming, build_dag
from dagwire.results import Interval


def outer() -> Callable[[int], int]:
    def inner(x: int) -> int:
        return x + 1

    return inner


async def conn() -> AsyncIterator[str]:
    yield "connection"


def use(x: int, c: str, p: int) -> int:  # `p`: the injected invoke parameter
    return x + len(c) + p


def combine(k: int, extra: int) -> int:
    return k + extra


def ident(x: object) -> object:
    return x


def twice(x: int, y: int) -> int:
    return x + y


def kinds_dag() -> Dag[int]:
    """params, a constant, calls, a resource, a join, `after=`, injection, a plain constant."""
    with build_dag(int, name='kinds "<all>"') as dag:
        three = dag.add_immediate_node(3, name="three")
        a = dag.add_node(outer(), dag.params)  # named outer.<locals>.inner
        r = dag.add_resource(conn)
        b = dag.add_node(use, a, r)  # params injected: a solid edge from params
        j = dag.join(a, b)
        dag.add_node(combine, three, 5, after=[j])  # 5 is a constant: no node, no edge
        dag.add_node(twice, a, a, after=[a])  # one solid edge: an input wins over after=
    return dag


# name -> (kind, incoming edges as (source name, dashed))
KINDS: dict[str, tuple[str, set[tuple[str, bool]]]] = {
    "params": ("params", set()),
    "three": ("immediate", set()),
    "outer.<locals>.inner": ("call", {("params", False)}),
    "conn": ("resource", set()),
    "use": ("call", {("outer.<locals>.inner", False), ("conn", False), ("params", False)}),
    "join": ("join", {("outer.<locals>.inner", True), ("use", True)}),
    "combine": ("call", {("three", False), ("join", True)}),
    "twice": ("call", {("outer.<locals>.inner", False)}),
}

NASTY_NAMES = [
    'a "quoted" name',
    "pipe | [brackets] {braces} (parens)",
    "colon: semicolon; hash #1",
    "<b>tag</b> & amp; &lt;entity&gt;",
    r"back\slash \n \N",
    "title looks like a keyword",
    "section too",
    "Gantt chart",
    "dateFormat YYYY",
    "2024-01-01 dated",
    "%% a comment",
    "click here",
    "$x^2$ money $",
    "données → 数据",
    " padded ",
    "end",
    "`markdown` **bold**",
    "A-->B -.-> C ::: cls",
    "tab\there",
    "outer.<locals>.f",
]


def nasty_dag() -> Dag[int]:
    """A chain through one node per name in `NASTY_NAMES`."""
    with build_dag(int, name='nasty: <names> & "quotes" #1;') as dag:
        prev: Any = dag.params
        for name in NASTY_NAMES:
            prev = dag.add_node(ident, prev, name=name)
    return dag


async def _never(*_: object) -> None:
    raise AssertionError("hand-built results never run their nodes")


def hand_dag() -> Dag[int]:
    with build_dag(int, name="hand-built: retry & cleanup") as dag:
        c = dag.add_resource(conn)
        fetch = dag.add_node(_never, c, name="fetch", retry=3)
        flaky = dag.add_node(_never, dag.params, name="flaky <locals>", fallback=None)
        slow = dag.add_node(_never, name="slow")
        quick = dag.add_node(_never, name="title: quick")
        cached = dag.add_node(_never, name="cached")
        pre_failed = dag.add_node(_never, name="pre_failed", pre=lambda: None, post=lambda: None)
        merge = dag.add_node(_never, fetch, flaky, slow, cached, name="merge", after=[quick])
        dag.add_node(_never, fetch, name="sibling")
        dag.add_node(_never, merge, name="late")  # skipped: no timing
        dag.add_node(_never, pre_failed, name="never")  # skipped too
    return dag


# Intervals of the hand-built run (seconds since it started).
HAND_TIMINGS = [
    NodeTiming(
        "conn",
        NodeStatus.SUCCEEDED,
        0.000,
        0.010,
        1,
        (
            Interval("attempt", 1, 0.000, 0.010, "succeeded"),
            Interval("cleanup", 0, 0.300, 0.305, "failed"),
        ),
    ),
    NodeTiming(
        "fetch",
        NodeStatus.SUCCEEDED,
        0.010,
        0.150,
        3,
        (
            Interval("attempt", 1, 0.010, 0.020, "retrying"),
            Interval("attempt", 2, 0.050, 0.060, "retrying"),
            Interval("attempt", 3, 0.110, 0.150, "succeeded"),
        ),
    ),
    NodeTiming(
        "flaky <locals>",
        NodeStatus.SUCCEEDED,
        0.000,
        0.030,
        1,
        (Interval("attempt", 1, 0.000, 0.030, "recovered"),),
    ),
    NodeTiming(
        "slow",
        NodeStatus.SUCCEEDED,
        0.0005,
        0.200,
        1,
        (Interval("attempt", 1, 0.0005, 0.200, "succeeded"),),
    ),
    NodeTiming(
        "title: quick",
        NodeStatus.SUCCEEDED,
        0.020,
        0.020,
        1,
        (Interval("attempt", 1, 0.020, 0.020, "succeeded"),),
    ),
    NodeTiming("cached", NodeStatus.SUCCEEDED, 0.001, 0.001, 0, (), cached=True),
    NodeTiming(
        "pre_failed",
        NodeStatus.FAILED,
        0.000,
        0.002,
        0,
        (Interval("cleanup", 0, 0.300, 0.301, "ok"),),
    ),
    NodeTiming(
        "merge",
        NodeStatus.FAILED,
        0.200,
        0.250,
        1,
        (Interval("attempt", 1, 0.200, 0.250, "failed"),),
    ),
    NodeTiming(
        "sibling",
        NodeStatus.CANCELLED,
        0.150,
        0.250,
        1,
        (Interval("attempt", 1, 0.150, 0.250, "cancelled"),),
    ),
]

HAND_ERRORS = [
    NodeFailure("flaky <locals>", "body", ValueError("flaky"), recovered=True),
    NodeFailure("pre_failed", "pre", KeyError("missing")),
    NodeFailure("merge", "body", RuntimeError("merge broke")),
    NodeFailure("conn", "cleanup", OSError("close failed")),
]


def hand_result() -> ExecutionResult[int]:
    """The hand-built run of `hand_dag()`: `HAND_TIMINGS` and `HAND_ERRORS`."""
    dag = hand_dag()
    by_name = {t.node: t.status for t in HAND_TIMINGS}
    statuses = [
        NodeStatus.SUCCEEDED if n.name == "params" else NodeStatus.SKIPPED for n in dag.nodes
    ]
    for k, node in enumerate(dag.nodes):
        statuses[k] = by_name.get(node.name, statuses[k])
    values: list[Any] = [None] * len(dag.nodes)
    return ExecutionResult(dag, 7, values, statuses, HAND_ERRORS, HAND_TIMINGS)


def result_with(dag: Dag[int], timings: list[NodeTiming]) -> ExecutionResult[int]:
    """A hand-built result of `dag` with these timings and no failures."""
    statuses = [NodeStatus.SUCCEEDED] * len(dag.nodes)
    return ExecutionResult(dag, 0, [None] * len(dag.nodes), statuses, [], timings)
