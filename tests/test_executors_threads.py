"""`dagwire.executors.submit` and `Work` with threads: the loop's default pool and a
`ThreadPoolExecutor`. Values, errors, the context the call is given, and when the work counts as
stopped: only once the thread has really returned, or at once when it never started."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Literal

import pytest

from dagwire.executors import Work, is_executor, submit

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
    """A `when_stopped` callback that records each call and the thread it ran in."""

    def __init__(self) -> None:
        self.threads: list[int] = []
        self.event = asyncio.Event()

    def __call__(self) -> None:
        self.threads.append(threading.get_ident())
        self.event.set()


def add(a: int, b: int) -> int:
    return a + b


async def test_returns_the_value_from_another_thread(executor: ThreadExecutor) -> None:
    def where(x: int) -> tuple[int, int]:
        return threading.get_ident(), x

    work = Work()
    ident, x = await submit(work, executor, where, 5)
    assert ident != threading.get_ident()
    assert x == 5
    assert not work.running


async def test_raises_the_callables_exception(executor: ThreadExecutor) -> None:
    def broken() -> None:
        raise LookupError("in a thread")

    work = Work()
    with pytest.raises(LookupError, match="in a thread"):
        await submit(work, executor, broken)
    stops = Stops()
    work.when_stopped(stops)
    assert stops.threads == [threading.get_ident()]  # at once: it has stopped


async def test_the_given_context_travels_and_nothing_comes_back(executor: ThreadExecutor) -> None:
    def read_and_set() -> str:
        seen = REQUEST.get()
        REQUEST.set("set in the thread")
        return seen

    token = REQUEST.set("from the caller")
    try:
        context = contextvars.copy_context()
        assert await submit(Work(), executor, read_and_set, context=context) == "from the caller"
        assert REQUEST.get() == "from the caller"
        assert context[REQUEST] == "set in the thread"  # the copy, not the caller's context
    finally:
        REQUEST.reset(token)


async def test_cancelled_while_running_counts_as_running_until_the_thread_returns(
    executor: ThreadExecutor,
) -> None:
    started, release = threading.Event(), threading.Event()
    finished: list[bool] = []

    def blocks() -> str:
        started.set()
        release.wait()
        finished.append(True)
        return "dropped"

    work = Work()
    call = asyncio.ensure_future(submit(work, executor, blocks))
    try:
        await asyncio.to_thread(started.wait)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert work.running  # the caller has gone; the thread still runs
        stops = Stops()
        work.when_stopped(stops)
        await asyncio.sleep(0.01)
        assert stops.threads == []
    finally:
        release.set()  # whatever failed above: no thread may stay blocked
    await stops.event.wait()
    assert finished == [True]
    assert stops.threads == [threading.get_ident()]
    assert not work.running
    with pytest.raises(asyncio.CancelledError):
        call.result()


async def test_cancelled_before_starting_never_runs_and_stops_at_once() -> None:
    """A pool whose only thread is busy: the queued call is abandoned before it starts."""
    release = threading.Event()
    ran: list[str] = []

    with ThreadPoolExecutor(max_workers=1) as pool:
        first = asyncio.ensure_future(submit(Work(), pool, release.wait))
        work = Work()
        queued = asyncio.ensure_future(submit(work, pool, ran.append, "never"))
        try:
            await asyncio.sleep(0.01)
            queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
            assert not work.running
            stops = Stops()
            work.when_stopped(stops)
            assert stops.threads == [threading.get_ident()]
        finally:
            release.set()
        assert await first is True
    assert ran == []  # the pool's shutdown ran every queued item: ours skipped the call


def test_is_executor() -> None:
    with ThreadPoolExecutor(1) as threads, ProcessPoolExecutor(1) as processes:
        accepted: list[object] = ["thread", threads, processes]
        for value in accepted:
            assert is_executor(value)
    for value in ("process", None, 3, Executor, object()):
        assert not is_executor(value)


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
