"""`dagwire.executors.call_in_executor` on a `ProcessPoolExecutor`: the call runs in another
process, errors come back, the caller's context does not travel (documented), and after a
cancellation `on_stopped` waits for a task that a worker process had already started.

Pools use the "spawn" start method: forking a process that has threads (the loop's thread pool)
is unsafe and warns on 3.12+."""

from __future__ import annotations

import asyncio
import contextvars
import multiprocessing
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.synchronize import Event

import pytest

from dagwire.executors import call_in_executor

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
        yield pool


async def test_runs_in_another_process(pool: ProcessPoolExecutor) -> None:
    pid, x = await call_in_executor(pool, pid_and, (7,))
    assert pid != os.getpid()
    assert x == 7


async def test_the_callables_exception_comes_back(pool: ProcessPoolExecutor) -> None:
    stopped: list[bool] = []
    with pytest.raises(Rejected, match="no thanks"):
        await call_in_executor(
            pool, rejects, ("no thanks",), on_stopped=lambda: stopped.append(True)
        )
    assert stopped == [True]


async def test_context_variables_do_not_travel_to_another_process(
    pool: ProcessPoolExecutor,
) -> None:
    token = REQUEST.set("from the caller")
    try:
        assert await call_in_executor(pool, read_request, ()) == "unset"
    finally:
        REQUEST.reset(token)


async def test_cancelled_after_the_worker_started_waits_for_its_end(
    pool: ProcessPoolExecutor, events: tuple[Event, Event]
) -> None:
    started, release = events
    stopped = asyncio.Event()
    stopped_in: list[int] = []

    def on_stopped() -> None:
        stopped_in.append(threading.get_ident())
        stopped.set()

    call = asyncio.ensure_future(
        call_in_executor(pool, blocks_until_released, (), on_stopped=on_stopped)
    )
    assert await asyncio.to_thread(started.wait, 60)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.sleep(0.05)
    assert not stopped.is_set(), "the worker process still runs the call"
    release.set()
    await stopped.wait()
    assert stopped_in == [threading.get_ident()]
    # the pool is usable again: the abandoned call did not break it
    pid, _ = await call_in_executor(pool, pid_and, (1,))
    assert pid != os.getpid()


async def test_an_unpicklable_callable_fails_the_call(pool: ProcessPoolExecutor) -> None:
    # pickle's own wording, which changes between Pythons: "Can't pickle/get local object"
    with pytest.raises(AttributeError, match="local object"):
        await call_in_executor(pool, lambda: 1, ())
