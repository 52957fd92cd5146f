"""Executors through a real graph: the caller's context reaches thread bodies, a timed-out
thread body keeps its limiter slot until the thread has really stopped, the run itself does not
wait for it, and a process pool runs a graph's heavy nodes."""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from dagwire import DagError, Limiter, build_dag

REQUEST = contextvars.ContextVar("REQUEST", default="unset")


def cube(x: int) -> tuple[int, int]:  # module level: picklable for a process pool
    return os.getpid(), x**3


async def test_thread_bodies_see_the_callers_context() -> None:
    def read() -> str:
        return REQUEST.get()

    token = REQUEST.set("request-42")
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            with build_dag() as dag:
                default = dag.add_node(read, executor="thread")
                own = dag.add_node(read, executor=pool)
            result = await dag.invoke(None)
    finally:
        REQUEST.reset(token)
    assert result[default] == "request-42"
    assert result[own] == "request-42"


async def test_a_timed_out_thread_holds_its_limiter_slot_until_it_really_stops() -> None:
    """Limiter(1): a second run's body must not start while the first run's thread still runs,
    although the first run has already ended with a TimeoutError."""
    limiter = Limiter(1)
    release = threading.Event()
    order: list[str] = []

    def stuck() -> None:
        order.append("first body started")
        release.wait()
        order.append("first body stopped")

    def quick() -> None:
        order.append("second body started")

    with build_dag() as first:
        first.add_node(stuck, executor="thread", timeout=0.05, limiter=limiter, name="stuck")
    with build_dag() as second:
        second.add_node(quick, executor="thread", limiter=limiter)

    try:
        with pytest.raises(DagError) as caught:
            await first.invoke(None)
        assert isinstance(caught.value.failures["stuck"], TimeoutError)
        assert order == ["first body started"]  # the run ended; its thread still runs

        waiting = asyncio.ensure_future(second.invoke(None))
        await asyncio.sleep(0.05)
        assert order == ["first body started"], "the slot was freed while the thread still ran"
        assert limiter.in_use == 1
    finally:
        release.set()  # whatever failed above: no thread may stay blocked
    await waiting
    assert order == ["first body started", "first body stopped", "second body started"]
    assert limiter.in_use == 0


async def test_a_limiter_slot_of_a_body_that_never_started_is_freed_at_once() -> None:
    """The pool's only thread is busy: the queued body is abandoned before it starts."""
    limiter = Limiter(2)
    busy_started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def busy() -> None:
        busy_started.set()
        release.wait()

    async def busy_has_the_thread() -> None:
        await asyncio.to_thread(busy_started.wait)

    def queued() -> None:
        ran.append("queued")

    async def until(done: Callable[[], bool]) -> bool:
        for _ in range(1000):
            if done():
                return True
            await asyncio.sleep(0.005)
        return False

    with ThreadPoolExecutor(max_workers=1) as pool:
        with build_dag() as dag:
            dag.add_node(busy, executor=pool, name="busy")
            gate = dag.add_node(busy_has_the_thread)
            dag.add_node(
                queued, executor=pool, timeout=0.2, limiter=limiter, after=gate, name="queued"
            )
        try:
            run = asyncio.ensure_future(dag.invoke(None, on_error="continue"))
            # queued behind the busy thread, holding its slot ...
            assert await until(lambda: limiter.in_use == 1)
            # ... until its timeout abandons it, although the pool's thread is still busy
            assert await until(lambda: limiter.in_use == 0)
            assert not release.is_set()
        finally:
            release.set()  # whatever failed above: no thread may stay blocked
        result = await run
    (failure,) = result.errors
    assert failure.node == "queued"
    assert isinstance(failure.error, TimeoutError)
    assert ran == []


async def test_heavy_nodes_on_a_process_pool() -> None:
    with ProcessPoolExecutor(max_workers=2) as pool:
        with build_dag(int) as dag:
            a = dag.add_node(cube, dag.params, executor=pool)
            b = dag.add_node(cube, 3, executor=pool)
            total = dag.add_node(lambda x, y: x[1] + y[1], a, b)
        result = await dag.invoke(2)
    assert result[a][0] != os.getpid()
    assert result[total] == 8 + 27
