"""`dagwire.executors.submit` and `Work` with threads: the loop's default pool and a
`ThreadPoolExecutor`. Values, errors, the context the call is given, and when the work counts as
stopped: only once the thread has really returned, or at once when it never started."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Literal

import pytest

from dagwire import DagError, build_dag
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


def _logged_resource(log: list[str], gate: threading.Event) -> Callable[[], Iterator[str]]:
    def res() -> Iterator[str]:
        gate.wait(5)
        log.append("set up")
        try:
            yield "conn"
        except BaseException as exc:
            log.append(f"rollback ({type(exc).__name__})")
            raise
        log.append("commit")

    return res


@pytest.mark.parametrize("stop", ["cancel", "node timeout", "invoke timeout"])
async def test_a_thread_setup_that_ends_as_the_run_stops_it_is_rolled_back(stop: str) -> None:
    # The setup finishes in its thread while the loop is busy; by the time the loop runs again
    # the run is being stopped (the caller cancels, or a timeout has expired). Was: the exit was
    # registered only for a setup still running, so this one was never exited.
    log: list[str] = []
    gate = threading.Event()
    node_timeout = 0.03 if stop == "node timeout" else None
    with build_dag() as dag:
        r = dag.add_resource(_logged_resource(log, gate), executor="thread", timeout=node_timeout)
        dag.add_node(lambda c: c, r, name="user")
    invoke_timeout = 0.03 if stop == "invoke timeout" else None
    task = asyncio.ensure_future(dag.invoke(None, timeout=invoke_timeout))
    await asyncio.sleep(0.01)
    gate.set()
    time.sleep(0.05)  # noqa: ASYNC251  # hold the loop: the setup ends, timeouts expire
    if stop == "cancel":
        task.cancel()
    expected: type[BaseException] = {
        "cancel": asyncio.CancelledError,
        "node timeout": DagError,
        "invoke timeout": TimeoutError,
    }[stop]
    with pytest.raises(expected):
        await task
    heard = "CancelledError" if stop == "cancel" else "TimeoutError"
    assert log == ["set up", f"rollback ({heard})"]  # before invoke raised


async def test_a_cleanup_timeout_shorter_than_an_abandoned_setup_still_exits_it() -> None:
    # A sibling fails while the setup runs in its thread; the cleanup phase waits for the setup
    # at most cleanup_timeout=. Was: the exit was then never run (the generator was only
    # closed by the garbage collector), and nothing said so.
    log: list[str] = []
    gate = threading.Event()
    exited = threading.Event()

    def res() -> Iterator[str]:
        gate.wait(5)
        try:
            yield "conn"
        except BaseException as exc:
            log.append(f"rollback ({type(exc).__name__})")
            raise
        finally:
            exited.set()

    async def fail() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("sibling failed")

    with build_dag() as dag:
        dag.add_resource(res, executor="thread", cleanup_timeout=0.01, name="res")
        dag.add_node(fail, name="fail")
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert isinstance(info.value.failures["res"], TimeoutError)  # the cleanup did time out
    assert log == []
    gate.set()  # the setup ends now: its thread exits it, with the run's failure
    assert await asyncio.to_thread(exited.wait, 5)
    assert log == ["rollback (ValueError)"]
