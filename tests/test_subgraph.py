"""A built `Dag` as a node of another graph: its value is the inner `ExecutionResult`, its
cleanup ends before the outer node does, and the outer run's cancellation reaches inside."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any, assert_type

import pytest

from dagwire import (
    Cache,
    Dag,
    DagDefinitionError,
    DagError,
    ExecutionResult,
    Node,
    NodeStatus,
    Retry,
    RunContext,
    Skip,
    build_dag,
    current,
    events,
)


@pytest.fixture(params=["default", "eager"])
async def task_factory(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Run the test under the loop's default task factory, and under the eager one (3.12+)."""
    if request.param == "eager":
        if sys.version_info < (3, 12):
            pytest.skip("asyncio.eager_task_factory needs Python 3.12")
        loop = asyncio.get_running_loop()
        loop.set_task_factory(asyncio.eager_task_factory)
        try:
            yield "eager"
        finally:
            loop.set_task_factory(None)
    else:
        yield "default"


def resource(log: list[str], name: str) -> Callable[[int], AsyncIterator[int]]:
    """An async generator resource that logs its setup and its cleanup (whatever the outcome)."""

    async def conn(x: int) -> AsyncIterator[int]:
        log.append(f"{name} open")
        try:
            yield x
        except BaseException as exc:
            log.append(f"{name} close {type(exc).__name__}")
            raise
        log.append(f"{name} close")

    return conn


def hanging(log: list[str], name: str, started: asyncio.Event) -> Callable[[int], Any]:
    """A node body that waits forever and logs its cancellation."""

    async def body(x: int) -> int:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            log.append(f"{name} cancelled")
            raise
        return x

    return body


def inner_graph(log: list[str], started: asyncio.Event | None = None) -> Dag[int]:
    """params ──> conn (resource) ──> double   (or a node that hangs, with `started`)"""
    with build_dag(int, name="inner") as inner:
        conn = inner.add_resource(resource(log, "inner conn"), inner.params, name="conn")
        if started is None:
            inner.add_node(lambda c: c * 2, conn, name="double")
        else:
            inner.add_node(hanging(log, "inner node", started), conn, name="hang")
    return inner


# -- values and types ----------------------------------------------------------------------------


async def test_a_graph_node_yields_the_inner_result_typed() -> None:
    log: list[str] = []
    inner = inner_graph(log)
    double: Node[int] = inner.node("double")

    def add_doubles(a: ExecutionResult[int], b: ExecutionResult[int]) -> int:
        return a[double] + b[double]

    with build_dag(int, name="outer") as dag:
        injected = dag.add_node(inner, name="injected")  # gets the outer parameter
        ten = dag.add_node(lambda: 10, name="ten")
        given = dag.add_node(inner, ten, name="given")
        total = dag.add_node(add_doubles, injected, given)
    assert_type(injected, Node[ExecutionResult[int]])
    assert_type(given, Node[ExecutionResult[int]])
    result = await dag.invoke(3)
    assert isinstance(result[injected], ExecutionResult)
    assert result[injected].dag is inner
    assert result[injected].params == 3
    assert result[given].params == 10
    assert result[injected][double] == 6
    assert result[total] == 26
    assert result[injected].ok
    assert result.ok
    assert sorted(log) == ["inner conn close"] * 2 + ["inner conn open"] * 2


async def test_await_dag_is_invoke() -> None:
    log: list[str] = []
    inner = inner_graph(log)
    result = await inner(4)
    assert result[inner.node("double")] == 8


async def test_the_inner_cleanup_ends_before_the_outer_node_does() -> None:
    log: list[str] = []
    seen: list[events.Event] = []
    inner = inner_graph(log)

    def dependent(_: ExecutionResult[int]) -> None:
        log.append("outer dependent")

    with build_dag(int, name="outer") as dag:
        sub = dag.add_node(inner, name="sub")
        dag.add_node(dependent, sub, name="dep")
    await dag.invoke(1, observers=[seen.append])
    assert log == ["inner conn open", "inner conn close", "outer dependent"]
    order = [(e.dag, e.kind, e.node) for e in seen if e.node in ("conn", "sub")]
    assert order.index(("inner", "cleanup_finished", "conn")) < order.index(
        ("outer", "node_succeeded", "sub")
    )


async def test_the_outer_observers_see_the_inner_nodes_once() -> None:
    log: list[str] = []
    inner_own: list[events.Event] = []
    with build_dag(int, name="inner", observers=[inner_own.append]) as inner:
        inner.add_node(lambda p: p + 1, inner.params, name="plus")
    outer_own: list[events.Event] = []
    with build_dag(int, name="outer", observers=[outer_own.append]) as dag:
        dag.add_node(inner, name="sub")
    per_run: list[events.Event] = []
    await dag.invoke(1, observers=[per_run.append])
    del log
    for seen in (outer_own, per_run):
        inner_nodes = [(e.kind, e.node) for e in seen if e.dag == "inner" and e.node == "plus"]
        assert inner_nodes == [("node_started", "plus"), ("node_succeeded", "plus")]
    assert [(e.kind, e.node) for e in inner_own if e.node == "plus"] == [
        ("node_started", "plus"),
        ("node_succeeded", "plus"),
    ]
    assert not [e for e in inner_own if e.dag == "outer"]


async def test_current_inside_an_inner_node_names_the_inner_run() -> None:
    def where(_: int) -> RunContext | None:
        return current()

    with build_dag(int, name="inner") as inner:
        w = inner.add_node(where, inner.params, name="where")
    with build_dag(int, name="outer") as dag:
        sub = dag.add_node(inner, name="sub")
    result = await dag.invoke(1)
    context = result[sub][w]
    assert context is not None
    assert (context.dag, context.node) == ("inner", "where")


async def test_an_inner_skip_leaves_the_outer_node_succeeded() -> None:
    def maybe(x: int) -> int:
        raise Skip("not for this one")

    with build_dag(int, name="inner") as inner:
        m = inner.add_node(maybe, inner.params, name="maybe")
    with build_dag(int) as dag:
        sub = dag.add_node(inner, name="sub")
    result = await dag.invoke(1)
    assert result.status(sub) is NodeStatus.SUCCEEDED
    assert result[sub].status(m) is NodeStatus.SKIPPED
    assert result[sub].ok


async def test_the_same_graph_twice_in_one_run_keeps_the_runs_apart() -> None:
    async def slow_double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    with build_dag(int, name="inner") as inner:
        d = inner.add_node(slow_double, inner.params, name="d")
    with build_dag() as dag:
        subs = [dag.add_node(inner, k, name=f"sub{k}") for k in range(5)]
    result = await dag.invoke(None)
    assert [result[s][d] for s in subs] == [0, 2, 4, 6, 8]


# -- failures ------------------------------------------------------------------------------------


async def test_an_inner_failure_fails_the_outer_node_with_the_inner_dag_error() -> None:
    log: list[str] = []

    def check(c: int) -> int:
        raise PermissionError(f"no {c}")

    with build_dag(int, name="inner") as inner:
        conn = inner.add_resource(resource(log, "inner conn"), inner.params, name="conn")
        inner.add_node(check, conn, name="check")
    with build_dag(int, name="outer") as dag:
        dag.add_node(inner, name="sub")
    with pytest.raises(DagError) as info:
        await dag.invoke(7)
    outer = info.value
    assert set(outer.failures) == {"sub"}
    nested = outer.failures["sub"]
    assert isinstance(nested, DagError)
    assert set(nested.failures) == {"check"}
    assert isinstance(nested.failures["check"], PermissionError)
    assert "dagwire: node 'sub' failed in body" in nested.__notes__
    assert log == ["inner conn open", "inner conn close PermissionError"]
    # except* reaches the leaf through both groups
    caught: list[BaseException] = []
    try:
        raise outer
    except* PermissionError as group:
        caught.extend(group.exceptions)
    assert len(caught) == 1


async def test_an_inner_failure_in_continue_mode_skips_the_outer_dependents() -> None:
    def boom(_: int) -> int:
        raise ValueError("boom")

    with build_dag(int, name="inner") as inner:
        inner.add_node(boom, inner.params, name="boom")
    with build_dag(int) as dag:
        sub = dag.add_node(inner, name="sub")
        dep = dag.add_node(lambda r: r.ok, sub, name="dep")
        fine = dag.add_node(lambda p: p, dag.params, name="fine")
    result = await dag.invoke(1, on_error="continue")
    assert result.status(sub) is NodeStatus.FAILED
    assert result.status(dep) is NodeStatus.SKIPPED
    assert result.skip_cause(dep) == "sub"
    assert result[fine] == 1
    assert isinstance(result.errors[0].error, DagError)


async def test_a_fallback_and_a_retry_on_the_graph_node() -> None:
    calls = 0

    def flaky(x: int) -> int:
        nonlocal calls
        calls += 1
        if calls < 2:
            raise ConnectionError("again")
        return x

    with build_dag(int, name="inner") as inner:
        f = inner.add_node(flaky, inner.params, name="flaky")
    with build_dag(int) as dag:
        # The inner DagError is retried because its leaves are (a ConnectionError here).
        retried = dag.add_node(inner, name="retried", retry=Retry(attempts=2, initial_delay=0.0))
    result = await dag.invoke(5)
    assert result[retried][f] == 5
    assert calls == 2

    def always(_: int) -> int:
        raise ValueError("down")

    with build_dag(int, name="inner2") as inner2:
        inner2.add_node(always, inner2.params, name="always")
    with build_dag(int) as dag2:
        covered = dag2.add_node(inner2, name="covered", fallback=None)
    result2 = await dag2.invoke(5)
    assert result2[covered] is None
    assert result2.ok


async def test_a_cached_graph_node_runs_the_inner_graph_once_per_input() -> None:
    calls: list[int] = []

    def work(x: int) -> int:
        calls.append(x)
        return x

    with build_dag(int, name="inner") as inner:
        inner.add_node(work, inner.params, name="work")
    cache = Cache()
    with build_dag(int) as dag:
        dag.add_node(inner, cache=cache, name="sub")
    await asyncio.gather(dag.invoke(1), dag.invoke(1), dag.invoke(2))
    await dag.invoke(1)
    assert sorted(calls) == [1, 2]


# -- cancellation reaches inside -----------------------------------------------------------------


async def test_the_callers_cancellation_reaches_the_inner_nodes_and_cleans_them_up(
    task_factory: str,
) -> None:
    log: list[str] = []
    started = asyncio.Event()
    inner = inner_graph(log, started)
    with build_dag(int, name="outer") as dag:
        conn = dag.add_resource(resource(log, "outer conn"), dag.params, name="conn")
        dag.add_node(inner, conn, name="sub")
    before = asyncio.all_tasks()
    run = asyncio.ensure_future(dag.invoke(1))
    await started.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert asyncio.all_tasks() - before == set()
    assert log == [
        "outer conn open",
        "inner conn open",
        "inner node cancelled",
        "inner conn close CancelledError",
        "outer conn close CancelledError",  # after the inner cleanup: reverse dependency order
    ]


async def test_a_fail_fast_abort_reaches_the_inner_nodes(task_factory: str) -> None:
    log: list[str] = []
    started = asyncio.Event()
    inner = inner_graph(log, started)

    async def boom() -> None:
        await started.wait()
        raise ValueError("sibling failed")

    with build_dag(name="outer") as dag:
        dag.add_node(inner, 1, name="sub")
        dag.add_node(boom, name="boom")
    before = asyncio.all_tasks()
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert set(info.value.failures) == {"boom"}  # the sub-graph was cancelled, not failed
    assert asyncio.all_tasks() - before == set()
    assert log == ["inner conn open", "inner node cancelled", "inner conn close CancelledError"]


async def test_an_invoke_timeout_reaches_the_inner_nodes() -> None:
    log: list[str] = []
    inner = inner_graph(log, asyncio.Event())
    with build_dag(name="outer") as dag:
        dag.add_node(inner, 1, name="sub")
    before = asyncio.all_tasks()
    with pytest.raises(TimeoutError):
        await dag.invoke(None, timeout=0.05)
    assert asyncio.all_tasks() - before == set()
    assert log == ["inner conn open", "inner node cancelled", "inner conn close CancelledError"]


async def test_a_node_timeout_on_the_graph_node_reaches_the_inner_nodes() -> None:
    log: list[str] = []
    inner = inner_graph(log, asyncio.Event())
    with build_dag(name="outer") as dag:
        dag.add_node(inner, 1, name="sub", timeout=0.05)
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    error = info.value.failures["sub"]
    assert isinstance(error, TimeoutError)
    assert "'sub'" in str(error)
    assert log == ["inner conn open", "inner node cancelled", "inner conn close CancelledError"]


async def test_cancellation_reaches_three_levels_down(task_factory: str) -> None:
    log: list[str] = []
    started = asyncio.Event()
    innermost = inner_graph(log, started)
    with build_dag(int, name="middle") as middle:
        c = middle.add_resource(resource(log, "middle conn"), middle.params, name="conn")
        middle.add_node(innermost, c, name="innermost")
    with build_dag(name="top") as top:
        top.add_node(middle, 1, name="middle")
    before = asyncio.all_tasks()
    run = asyncio.ensure_future(top.invoke(None))
    await started.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert asyncio.all_tasks() - before == set()
    assert log == [
        "middle conn open",
        "inner conn open",
        "inner node cancelled",
        "inner conn close CancelledError",
        "middle conn close CancelledError",
    ]


async def test_a_graph_node_in_a_stream_left_early_is_cancelled_and_cleaned_up() -> None:
    log: list[str] = []
    started = asyncio.Event()
    inner = inner_graph(log, started)
    with build_dag(name="outer") as dag:
        dag.add_node(lambda: "quick", name="quick")
        dag.add_node(inner, 1, name="sub")
    before = asyncio.all_tasks()
    stream = dag.stream(None)
    first = await anext(stream)
    assert first.node.name == "quick"
    await started.wait()
    await stream.aclose()
    assert asyncio.all_tasks() - before == set()
    assert log == ["inner conn open", "inner node cancelled", "inner conn close CancelledError"]


# -- refused at build time -----------------------------------------------------------------------


def test_a_graph_cannot_contain_itself() -> None:
    """A graph that is one of its own nodes would invoke itself forever: a cycle, which the
    build must refuse (for example by requiring a graph added as a node to be frozen)."""
    dag = Dag[None](name="loop")

    def build() -> None:
        dag.add_node(dag)
        dag.freeze()

    with pytest.raises(DagDefinitionError):
        build()


def test_two_graphs_cannot_contain_each_other() -> None:
    a = Dag[None](name="a")
    b = Dag[None](name="b")

    def build() -> None:
        a.add_node(b)
        b.add_node(a)
        a.freeze()
        b.freeze()

    with pytest.raises(DagDefinitionError):
        build()


def test_a_graph_that_is_not_frozen_is_refused_as_a_node() -> None:
    """Invoking a graph that is not frozen is a build-time mistake; adding one as a node is
    the moment it can be caught (the outer graph's run would only fail later)."""
    inner = Dag[None](name="inner")
    inner.add_node(lambda: 1)
    with build_dag() as dag, pytest.raises(DagDefinitionError, match="frozen"):
        dag.add_node(inner)


def test_an_executor_on_a_graph_node_is_refused() -> None:
    """A graph runs on the event loop: `executor=` cannot run it (it would return a coroutine
    that is never awaited), so it is refused like on any async callable."""
    with build_dag(int) as inner:
        inner.add_node(lambda p: p, inner.params)
    with build_dag() as dag, pytest.raises(DagDefinitionError, match="executor="):
        dag.add_node(inner, 1, executor="thread")
