"""Where sync bodies run: inline by default, the loop's thread pool, or any Executor; sub-graphs."""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from dagwire import DagError, ExecutionResult, build_dag


def thread_id() -> int:
    return threading.get_ident()


def process_id() -> int:
    return os.getpid()


def square(x: int) -> int:  # module level: picklable for a process pool
    return x * x


async def test_sync_body_runs_inline_by_default() -> None:
    with build_dag() as dag:
        node = dag.add_node(thread_id)
    result = await dag.invoke(None)
    assert result[node] == threading.get_ident()


async def test_executor_thread_uses_the_loops_default_pool() -> None:
    with build_dag() as dag:
        node = dag.add_node(thread_id, executor="thread")
    result = await dag.invoke(None)
    assert result[node] != threading.get_ident()


async def test_executor_thread_does_not_block_the_loop() -> None:
    """Two blocking bodies in threads overlap: the second starts while the first still blocks."""
    first_started = threading.Event()
    second_started = threading.Event()

    def first() -> bool:
        first_started.set()
        return second_started.wait(timeout=10)

    def second() -> bool:
        assert first_started.wait(timeout=10)
        second_started.set()
        return True

    with build_dag() as dag:
        a = dag.add_node(first, executor="thread")
        b = dag.add_node(second, executor="thread")
    result = await dag.invoke(None)
    assert result[a] is True
    assert result[b] is True


async def test_explicit_thread_pool_executor() -> None:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dagwire-test") as pool:
        with build_dag() as dag:
            node = dag.add_node(lambda: threading.current_thread().name, executor=pool)
        result = await dag.invoke(None)
    assert result[node].startswith("dagwire-test")


async def test_process_pool_executor_runs_in_another_process() -> None:
    with ProcessPoolExecutor(max_workers=1) as pool:
        with build_dag() as dag:
            pid = dag.add_node(process_id, executor=pool)
            sq = dag.add_node(square, 7, executor=pool)
        result = await dag.invoke(None)
    assert result[pid] != os.getpid()
    assert result[sq] == 49


async def test_executor_failure_is_reported_with_its_node() -> None:
    def broken() -> None:
        raise LookupError("in a thread")

    with build_dag() as dag:
        dag.add_node(broken, executor="thread", name="broken")
    with pytest.raises(DagError) as caught:
        await dag.invoke(None)
    assert isinstance(caught.value.failures["broken"], LookupError)


async def test_a_built_dag_is_a_node_of_another() -> None:
    with build_dag(int) as inner:
        doubled = inner.add_node(lambda x: x * 2, inner.params)
    with build_dag(int) as outer:
        sub = outer.add_node(inner, outer.params)
        out = outer.add_node(lambda r: r[doubled] + 1, sub)
    result = await outer.invoke(20)
    assert isinstance(result[sub], ExecutionResult)
    assert result[out] == 41
    assert (await inner(5))[doubled] == 10  # `await dag(p)` is `dag.invoke(p)`


async def test_inner_dag_failure_fails_the_outer_node() -> None:
    def broken(_: int) -> int:
        raise ValueError("inner")

    with build_dag(int) as inner:
        inner.add_node(broken, inner.params, name="broken")
    with build_dag(int) as outer:
        outer.add_node(inner, outer.params, name="sub")
    result = await outer.invoke(1, on_error="continue")
    assert not result.ok
    (failure,) = result.errors
    assert failure.node == "sub"
    assert isinstance(failure.error, DagError)
    assert isinstance(failure.error.failures["broken"], ValueError)


async def test_blocking_body_in_thread_is_not_awaited_after_cancel() -> None:
    """Cancelling a run abandons a thread body's result; the run still ends promptly."""
    release = threading.Event()

    def blocks() -> None:
        release.wait(timeout=10)

    with build_dag() as dag:
        dag.add_node(blocks, executor="thread")
    task = asyncio.ensure_future(dag.invoke(None))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
