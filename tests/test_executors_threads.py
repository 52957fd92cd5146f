"""`dagwire.executors.call_in_executor` with threads: the loop's default pool and a
`ThreadPoolExecutor`. Values, errors, the caller's context, and `on_stopped`: fired once, on the
loop's thread, only when the work has really stopped (or will never start)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Literal

import pytest

from dagwire.executors import call_in_executor, call_via_future, is_executor

REQUEST = contextvars.ContextVar("REQUEST", default="unset")

ThreadExecutor = ThreadPoolExecutor | Literal["thread"]


@pytest.fixture(params=["thread", "pool"])
def executor(request: pytest.FixtureRequest) -> Iterator[ThreadExecutor]:
    if request.param == "thread":
        yield "thread"
        return
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="scale-test") as pool:
        yield pool


class Stops:
    """An `on_stopped` callback that records each call and the thread it ran in."""

    def __init__(self) -> None:
        self.threads: list[int] = []
        self.event = asyncio.Event()

    def __call__(self) -> None:
        self.threads.append(threading.get_ident())
        self.event.set()

    @property
    def count(self) -> int:
        return len(self.threads)


def add(a: int, b: int) -> int:
    return a + b


async def test_returns_the_value_in_another_thread(executor: ThreadExecutor) -> None:
    def where(x: int) -> tuple[int, int]:
        return threading.get_ident(), x

    ident, x = await call_in_executor(executor, where, (5,))
    assert ident != threading.get_ident()
    assert x == 5


async def test_raises_the_callables_exception(executor: ThreadExecutor) -> None:
    def broken() -> None:
        raise LookupError("in a thread")

    stops = Stops()
    with pytest.raises(LookupError, match="in a thread"):
        await call_in_executor(executor, broken, (), on_stopped=stops)
    assert stops.threads == [threading.get_ident()]


async def test_the_callers_context_travels_and_does_not_come_back(
    executor: ThreadExecutor,
) -> None:
    def read_and_set() -> str:
        seen = REQUEST.get()
        REQUEST.set("set in the thread")
        return seen

    token = REQUEST.set("from the caller")
    try:
        assert await call_in_executor(executor, read_and_set, ()) == "from the caller"
        assert await call_in_executor(executor, read_and_set, (), on_stopped=Stops()) == (
            "from the caller"
        )
        assert REQUEST.get() == "from the caller"
    finally:
        REQUEST.reset(token)


async def test_on_stopped_fires_once_on_the_loop_thread_before_returning(
    executor: ThreadExecutor,
) -> None:
    stops = Stops()
    assert await call_in_executor(executor, add, (2, 3), on_stopped=stops) == 5
    assert stops.threads == [threading.get_ident()]


async def test_cancelled_while_running_fires_on_stopped_only_when_the_thread_returns(
    executor: ThreadExecutor,
) -> None:
    started, release = threading.Event(), threading.Event()
    finished: list[bool] = []

    def blocks() -> str:
        started.set()
        release.wait()
        finished.append(True)
        return "dropped"

    stops = Stops()
    call = asyncio.ensure_future(call_in_executor(executor, blocks, (), on_stopped=stops))
    await asyncio.to_thread(started.wait)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    # The caller has gone, the thread still runs: the slot must still be held.
    await asyncio.sleep(0.01)
    assert stops.count == 0
    release.set()
    await stops.event.wait()
    assert finished == [True]
    assert stops.threads == [threading.get_ident()]


async def test_cancelled_before_starting_never_runs_and_fires_at_once() -> None:
    """A pool whose only thread is busy: the queued call is abandoned before it starts."""
    release = threading.Event()
    ran: list[str] = []

    def busy() -> None:
        release.wait()

    def never() -> None:
        ran.append("never")

    with ThreadPoolExecutor(max_workers=1) as pool:
        first = asyncio.ensure_future(call_in_executor(pool, busy, ()))
        stops = Stops()
        queued = asyncio.ensure_future(call_in_executor(pool, never, (), on_stopped=stops))
        await asyncio.sleep(0.01)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert stops.threads == [threading.get_ident()]  # before the CancelledError arrived
        release.set()
        await first
    assert ran == []  # the pool's shutdown ran every queued item: ours skipped the call


async def test_call_via_future_on_a_thread_pool_cancels_a_pending_call() -> None:
    """The generic `concurrent.futures` path: a pending future is cancelled, never runs."""
    release = threading.Event()
    ran: list[str] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = asyncio.ensure_future(call_via_future(pool, release.wait, ()))
        stops = Stops()
        queued = asyncio.ensure_future(call_via_future(pool, ran.append, ("x",), stops))
        await asyncio.sleep(0.01)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert stops.count == 1
        release.set()
        assert await first is True
    assert ran == []


async def test_call_via_future_cancelled_while_running_waits_for_the_end() -> None:
    started, release = threading.Event(), threading.Event()

    def blocks() -> None:
        started.set()
        release.wait()

    stops = Stops()
    with ThreadPoolExecutor(max_workers=1) as pool:
        call = asyncio.ensure_future(call_via_future(pool, blocks, (), stops))
        await asyncio.to_thread(started.wait)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.sleep(0.01)
        assert stops.count == 0
        release.set()
        await stops.event.wait()
    assert stops.threads == [threading.get_ident()]


async def test_a_call_the_executor_cancels_itself_is_a_failure_not_a_cancellation() -> None:
    import concurrent.futures

    release = threading.Event()
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        first = asyncio.ensure_future(call_via_future(pool, release.wait, ()))
        queued = asyncio.ensure_future(call_via_future(pool, add, (1, 2)))
        await asyncio.sleep(0.01)
        pool.shutdown(wait=False, cancel_futures=True)
        with pytest.raises(concurrent.futures.CancelledError, match="cancelled the call"):
            await queued
        release.set()
        assert await first is True
    finally:
        release.set()
        pool.shutdown(wait=True)


async def test_submit_failure_fires_on_stopped() -> None:
    pool = ThreadPoolExecutor(max_workers=1)
    pool.shutdown()
    stops = Stops()
    with pytest.raises(RuntimeError, match="shutdown"):
        await call_via_future(pool, add, (1, 2), stops)
    assert stops.count == 1


def test_is_executor() -> None:
    with ThreadPoolExecutor(1) as threads, ProcessPoolExecutor(1) as processes:
        accepted: list[object] = ["thread", threads, processes]
        for value in accepted:
            assert is_executor(value)
    for value in ("process", None, 3, Executor, object()):
        assert not is_executor(value)


async def test_unknown_executor_values_are_refused() -> None:
    with pytest.raises(ValueError, match="only string accepted is 'thread'"):
        await call_in_executor("process", add, (1, 2))  # type: ignore[arg-type]  # deliberate misuse
    with pytest.raises(TypeError, match="expected 'thread'"):
        await call_in_executor(object(), add, (1, 2))  # type: ignore[arg-type]  # deliberate misuse


def test_importing_dagwire_imports_neither_dask_nor_tqdm() -> None:
    """The extras are imported only by the code that uses them (lazily)."""
    import subprocess
    import sys

    code = (
        "import sys, dagwire, dagwire.executors, dagwire.dask, dagwire.batch\n"
        "loaded = sorted(m for m in ('distributed', 'dask', 'tqdm') if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == ""
