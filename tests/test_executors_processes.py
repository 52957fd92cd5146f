"""`dagwire.executors.submit` and `Work` on a `ProcessPoolExecutor` (the generic
`concurrent.futures` path): the call runs in another process, errors come back, the caller's
context does not travel (documented), a task a worker had started counts as running until it
ends, a pending one never starts, and a call the pool cancels itself is a failure.

Pools use the "spawn" start method: forking a process that has threads (the loop's thread pool)
is unsafe and warns on 3.12+."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import multiprocessing
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.synchronize import Event

import pytest

from dagwire.executors import Work, submit

REQUEST = contextvars.ContextVar("REQUEST", default="unset")
SPAWN = multiprocessing.get_context("spawn")

_started: Event | None = None
_release: Event | None = None


def _init(started: Event, release: Event) -> None:  # in each worker process
    global _started, _release
    _started, _release = started, release


def blocks_until_released() -> int:
    assert _started is not None
    assert _release is not None
    _started.set()
    _release.wait()
    return os.getpid()


def pid_and(x: int) -> tuple[int, int]:
    return os.getpid(), x


def read_request() -> str:
    return REQUEST.get()


class Rejected(Exception):
    pass


def rejects(why: str) -> None:
    raise Rejected(why)


@pytest.fixture
def events() -> tuple[Event, Event]:
    return SPAWN.Event(), SPAWN.Event()


@pytest.fixture
def pool(events: tuple[Event, Event]) -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(
        max_workers=1, mp_context=SPAWN, initializer=_init, initargs=events
    ) as pool:
        try:
            yield pool
        finally:
            events[1].set()  # whatever a test did: no worker may stay blocked


async def test_runs_in_another_process(pool: ProcessPoolExecutor) -> None:
    work = Work()
    pid, x = await submit(work, pool, pid_and, 7)
    assert pid != os.getpid()
    assert x == 7
    assert not work.running


async def test_the_callables_exception_comes_back(pool: ProcessPoolExecutor) -> None:
    with pytest.raises(Rejected, match="no thanks"):
        await submit(Work(), pool, rejects, "no thanks")


async def test_context_variables_do_not_travel_to_another_process(
    pool: ProcessPoolExecutor,
) -> None:
    token = REQUEST.set("from the caller")
    try:
        assert await submit(Work(), pool, read_request) == "unset"
    finally:
        REQUEST.reset(token)


async def test_cancelled_after_the_worker_started_counts_as_running_until_its_end(
    pool: ProcessPoolExecutor, events: tuple[Event, Event]
) -> None:
    started, release = events
    work = Work()
    call = asyncio.ensure_future(submit(work, pool, blocks_until_released))
    assert await asyncio.to_thread(started.wait, 60)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    stopped = asyncio.Event()
    stopped_in: list[int] = []

    def on_stopped() -> None:
        stopped_in.append(threading.get_ident())
        stopped.set()

    work.when_stopped(on_stopped)
    await asyncio.sleep(0.05)
    assert work.running, "the worker process still runs the call"
    assert not stopped.is_set()
    release.set()
    await stopped.wait()
    assert stopped_in == [threading.get_ident()]
    # the pool is usable again: the abandoned call did not break it
    pid, _ = await submit(Work(), pool, pid_and, 1)
    assert pid != os.getpid()


async def test_a_pending_call_is_cancelled_and_never_runs(
    pool: ProcessPoolExecutor, events: tuple[Event, Event]
) -> None:
    """One worker, blocked; the pool queues a couple of calls for it (marked running), the
    rest are pending: the last one is abandoned before it starts."""
    started, release = events
    blocked = asyncio.ensure_future(submit(Work(), pool, blocks_until_released))
    assert await asyncio.to_thread(started.wait, 60)
    queued = [asyncio.ensure_future(submit(Work(), pool, pid_and, k)) for k in range(4)]
    last = Work()
    pending = asyncio.ensure_future(submit(last, pool, pid_and, 99))
    await asyncio.sleep(0.05)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert not last.running
    stops: list[bool] = []
    last.when_stopped(lambda: stops.append(True))
    assert stops == [True]  # at once: it never started
    release.set()
    await blocked
    assert [x for _, x in await asyncio.gather(*queued)] == [0, 1, 2, 3]


async def test_a_call_the_pool_cancels_itself_is_a_failure_not_a_cancellation(
    pool: ProcessPoolExecutor, events: tuple[Event, Event]
) -> None:
    started, release = events
    blocked = asyncio.ensure_future(submit(Work(), pool, blocks_until_released))
    assert await asyncio.to_thread(started.wait, 60)
    queued = [asyncio.ensure_future(submit(Work(), pool, pid_and, k)) for k in range(6)]
    await asyncio.sleep(0.05)
    pool.shutdown(wait=False, cancel_futures=True)
    release.set()
    outcomes = await asyncio.gather(*queued, return_exceptions=True)
    cancelled = [o for o in outcomes if isinstance(o, BaseException)]
    assert cancelled, "the pool cancelled the calls it had not started"
    for exc in cancelled:
        assert isinstance(exc, concurrent.futures.CancelledError)
        assert "cancelled the call" in str(exc)
    await blocked


async def test_an_unpicklable_callable_fails_the_call(pool: ProcessPoolExecutor) -> None:
    # pickle's own wording, which changes between Pythons: "Can't pickle/get local object"
    with pytest.raises(AttributeError, match="local object"):
        await submit(Work(), pool, lambda: 1)
