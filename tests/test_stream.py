"""`Dag.stream()`: completions in the order nodes end; cleanup before the end; leaving early."""

from __future__ import annotations

import asyncio
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
        async for _ in stream:
            break
        await stream.aclose()  # what `async for` leaves to the generator's finalizer
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
