"""`Dag.stream()`: completions in the order nodes end; cleanup before the end; leaving early."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from dagwire import DagError, NodeCompletion, NodeStatus, build_dag


def sleeper(name: str, seconds: float, log: list[str]) -> Callable[[], Awaitable[str]]:
    async def body() -> str:
        await asyncio.sleep(seconds)
        log.append(f"end {name}")
        return name

    body.__qualname__ = name
    return body


async def test_completions_come_in_the_order_nodes_end_with_their_values() -> None:
    log: list[str] = []
    with build_dag() as dag:
        slow = dag.add_node(sleeper("slow", 0.06, log))
        fast = dag.add_node(sleeper("fast", 0.01, log))
        both = dag.add_node(lambda a, b: a + b, slow, fast, name="both")
    seen: list[NodeCompletion] = []
    async for completion in dag.stream(None):
        seen.append(completion)
    assert [c.node for c in seen] == [fast, slow, both]
    assert [c.value for c in seen] == ["fast", "slow", "slowfast"]
    assert all(c.status is NodeStatus.SUCCEEDED and c.error is None for c in seen)
    assert seen[0].time < seen[1].time <= seen[2].time


async def test_each_completion_arrives_while_the_run_goes_on() -> None:
    log: list[str] = []
    with build_dag() as dag:
        dag.add_node(sleeper("first", 0.01, log))
        dag.add_node(sleeper("second", 0.08, log))
    stream = dag.stream(None)
    first = await anext(stream)
    assert first.value == "first"
    assert log == ["end first"]  # the consumer sees it before the other node ended
    rest = [c.value async for c in stream]
    assert rest == ["second"]


async def test_cleanup_runs_before_the_iteration_ends() -> None:
    log: list[str] = []

    async def conn() -> AsyncIterator[str]:
        yield "conn"
        log.append("closed")

    with build_dag() as dag:
        c = dag.add_resource(conn, name="conn")
        dag.add_node(lambda x: x.upper(), c, name="use")
    names = [c.node.name async for c in dag.stream(None)]
    assert names == ["conn", "use"]
    assert log == ["closed"]  # (the run does not wait for the consumer: maybe long before)


async def test_a_fail_fast_run_raises_its_dag_error_after_the_completions() -> None:
    async def boom() -> int:
        await asyncio.sleep(0.01)
        raise ValueError("boom")

    with build_dag() as dag:
        dag.add_node(lambda: 1, name="ok")
        dag.add_node(boom, name="boom")
    seen: list[tuple[str, NodeStatus]] = []

    async def consume() -> None:
        async for completion in dag.stream(None):
            seen.append((completion.node.name, completion.status))

    with pytest.raises(DagError) as info:
        await consume()
    assert seen == [("ok", NodeStatus.SUCCEEDED), ("boom", NodeStatus.FAILED)]
    assert set(info.value.failures) == {"boom"}


async def test_continue_mode_streams_failures_and_skips_and_ends_normally() -> None:
    def boom() -> int:
        raise ValueError("boom")

    with build_dag() as dag:
        b = dag.add_node(boom, name="boom")
        dag.add_node(lambda x: x, b, name="after")
    seen = [c async for c in dag.stream(None, on_error="continue")]
    assert [(c.node.name, c.status) for c in seen] == [
        ("boom", NodeStatus.FAILED),
        ("after", NodeStatus.SKIPPED),
    ]
    assert isinstance(seen[0].error, ValueError)


@pytest.mark.parametrize("leave", ["break", "aclose", "cancel"])
async def test_leaving_early_cancels_the_run_cleans_up_and_leaves_no_task(leave: str) -> None:
    log: list[str] = []

    async def conn() -> AsyncIterator[str]:
        try:
            yield "conn"
        finally:
            log.append("closed")  # (the run's cancellation is thrown in at the yield)

    with build_dag() as dag:
        c = dag.add_resource(conn)
        dag.add_node(sleeper("quick", 0.0, log), name="quick")
        dag.add_node(lambda _: asyncio.sleep(3600), c, name="forever")
    before = asyncio.all_tasks()
    stream = dag.stream(None)
    if leave == "break":
        async with contextlib.aclosing(stream) as completions:  # as the docs say to
            async for _ in completions:
                break
    elif leave == "aclose":
        await anext(stream)
        await stream.aclose()
    else:

        async def consume() -> None:
            async for _ in stream:
                pass

        consumer = asyncio.ensure_future(consume())
        await asyncio.sleep(0.02)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
    assert log.count("closed") == 1
    assert asyncio.all_tasks() - before == set()


# -- more ways to leave, and what runs inside a stream -------------------------------------------


async def settle(before: set[asyncio.Task[object]], rounds: int = 100) -> set[asyncio.Task[object]]:
    """Let the loop go round until no task newer than `before` is left (at most `rounds`)."""
    for _ in range(rounds):
        left = asyncio.all_tasks() - before
        if not left:
            break
        await asyncio.sleep(0)
    return asyncio.all_tasks() - before


async def test_a_stream_never_iterated_runs_nothing() -> None:
    log: list[str] = []
    with build_dag() as dag:
        dag.add_node(sleeper("a", 0.0, log))
    before = asyncio.all_tasks()
    stream = dag.stream(None)
    await asyncio.sleep(0)
    await stream.aclose()
    assert log == []
    assert asyncio.all_tasks() - before == set()


async def test_break_without_aclose_is_cleaned_up_by_the_generators_finalizer() -> None:
    log: list[str] = []

    async def conn() -> AsyncIterator[str]:
        try:
            yield "conn"
        finally:
            log.append("closed")

    async def forever(_: str) -> None:
        await asyncio.Event().wait()

    with build_dag() as dag:
        c = dag.add_resource(conn)
        dag.add_node(sleeper("quick", 0.0, log), name="quick")
        dag.add_node(forever, c, name="forever")
    before = asyncio.all_tasks()
    async for _ in dag.stream(None):  # the generator is dropped at the break
        break
    assert await settle(before) == set()
    assert log.count("closed") == 1


async def test_leaving_with_map_items_sub_graphs_and_a_shared_call_running_leaves_no_task() -> None:
    from dagwire import Cache

    log: list[str] = []
    started = asyncio.Event()

    async def item(k: int) -> int:
        if k == 0:
            started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            log.append(f"item {k} cancelled")
            raise
        return k

    async def inner_conn(x: int) -> AsyncIterator[int]:
        try:
            yield x
        finally:
            log.append("inner closed")

    async def shared(_: int) -> int:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            log.append("shared call cancelled")
            raise
        return 0

    with build_dag(int, name="inner") as inner:
        ic = inner.add_resource(inner_conn, inner.params)
        inner.add_node(item, ic, name="inner_item")
    with build_dag() as dag:
        dag.add_node(sleeper("quick", 0.0, log), name="quick")
        dag.add_map(item, range(3), name="m")
        dag.add_node(inner, 5, name="sub")
        dag.add_node(shared, 1, cache=Cache(), name="shared")
    before = asyncio.all_tasks()
    stream = dag.stream(None)
    first = await anext(stream)
    assert first.node.name == "quick"
    await started.wait()
    await stream.aclose()
    assert asyncio.all_tasks() - before == set()
    assert sorted(log) == [
        "end quick",
        "inner closed",
        "item 0 cancelled",
        "item 1 cancelled",
        "item 2 cancelled",
        "item 5 cancelled",
        "shared call cancelled",  # its only waiter left
    ]


async def test_a_timed_out_run_raises_timeout_error_after_its_completions() -> None:
    log: list[str] = []

    async def forever() -> None:
        await asyncio.Event().wait()

    with build_dag() as dag:
        dag.add_node(sleeper("quick", 0.0, log), name="quick")
        dag.add_node(forever, name="forever")
    seen: list[tuple[str, NodeStatus]] = []

    async def consume() -> None:
        async for c in dag.stream(None, timeout=0.05):
            seen.append((c.node.name, c.status))

    with pytest.raises(TimeoutError):
        await consume()
    assert seen == [("quick", NodeStatus.SUCCEEDED), ("forever", NodeStatus.CANCELLED)]


async def test_an_empty_graph_streams_nothing() -> None:
    with build_dag() as dag:
        pass
    assert [c async for c in dag.stream(None)] == []


async def test_concurrent_streams_of_one_graph_are_apart() -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    with build_dag(int) as dag:
        dag.add_node(double, dag.params, name="double")

    async def values(p: int) -> list[object]:
        return [c.value async for c in dag.stream(p)]

    assert await asyncio.gather(*(values(p) for p in range(20))) == [[2 * p] for p in range(20)]


async def test_a_fallback_value_and_its_error_are_both_streamed() -> None:
    def boom() -> int:
        raise ValueError("down")

    with build_dag() as dag:
        dag.add_node(boom, fallback=-1, name="boom")
    [completion] = [c async for c in dag.stream(None)]
    assert completion.status is NodeStatus.SUCCEEDED
    assert completion.value == -1
    assert isinstance(completion.error, ValueError)
