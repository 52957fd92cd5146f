"""Heavy nodes on a real Dask `distributed.LocalCluster` with two worker processes.

Each test starts its own cluster inside its own event loop and closes it at the end (measured:
about 0.6 s per test on a quiet 2-core machine, 3-5 s when it is loaded): an asynchronous
cluster belongs to the loop that started it, and pytest-asyncio gives each test a loop of its
own. The suite's hygiene checks (no task outlives
a test, no loop error, warnings are errors) apply unchanged: Dask emits no warning here.

Callables run on the workers are module-level functions: the workers import this module.
`distributed` is partly typed (untyped constructors and methods): its objects are handled as
`Any` here; `test_a_client_is_an_executor_option_for_type_checkers` checks the real types.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Generator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import distributed
import pytest

from dagwire import DagDefinitionError, DagError, build_dag
from dagwire.dask import is_client, is_client_executor
from dagwire.executors import ExecutorLike, Work, is_executor, submit

dd: Any = distributed  # partly typed: used as Any (see the module docstring)


def where(x: int) -> tuple[int, int]:
    return os.getpid(), x * x


def token(_: int) -> str:
    """A fresh value per call: equal results would mean Dask merged the calls."""
    return f"{os.getpid()}-{uuid.uuid4().hex}"


def busy_for(seconds: float) -> int:
    """Blocks a worker thread: Dask cannot interrupt it once it runs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid()


class Refused(Exception):
    pass


def refuse(why: str) -> None:
    raise Refused(why)


CLUSTER_OPTIONS: dict[str, Any] = {
    "n_workers": 2,
    "threads_per_worker": 1,
    "processes": True,
    "dashboard_address": ":0",  # None would still bind port 8787 (and fail if taken)
    "host": "127.0.0.1",
}

# With DAGWIRE_EAGER_TASKS=1 (tests/conftest.py) every loop of this process is eager, and Dask's
# own LocalCluster cannot start on such a loop ("Nanny failed to start", distributed 2026.8):
# the cluster then runs in a process of its own with default loops, while the client and
# dagwire's graph run here, on the eager loop, which is what this pass checks.
EAGER_PASS = os.environ.get("DAGWIRE_EAGER_TASKS", "") == "1"
_CLUSTER_PROGRAM = f"""
import sys, distributed
cluster = distributed.LocalCluster(**{CLUSTER_OPTIONS!r})
print(cluster.scheduler_address, flush=True)
sys.stdin.read()  # until the test is done with it
cluster.close()
"""


@contextmanager
def cluster_in_a_process() -> Generator[SimpleNamespace]:
    env = {k: v for k, v in os.environ.items() if k != "DAGWIRE_EAGER_TASKS"}
    here = Path(__file__).resolve().parent  # the workers import this module's functions
    env["PYTHONPATH"] = os.pathsep.join([str(here), str(here.parent / "src")])
    proc = subprocess.Popen(
        [sys.executable, "-c", _CLUSTER_PROGRAM],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        address = proc.stdout.readline().strip()
        assert address.startswith("tcp://"), f"the cluster did not start: {address!r}"
        yield SimpleNamespace(scheduler_address=address)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


@pytest.fixture
async def cluster() -> AsyncIterator[Any]:
    if EAGER_PASS:
        with cluster_in_a_process() as cluster:
            yield cluster
        return
    async with dd.LocalCluster(asynchronous=True, **CLUSTER_OPTIONS) as cluster:
        yield cluster


@pytest.fixture
async def client(cluster: Any) -> AsyncIterator[Any]:
    async with dd.Client(cluster.scheduler_address, asynchronous=True) as client:
        yield client


def pending_on(client: Any) -> list[str]:
    """Keys of the client's futures still pending (finished ones may linger until collected)."""
    return [key for key, state in client.futures.items() if state.status == "pending"]


async def worker_pids(client: Any) -> set[int]:
    return set((await client.run(os.getpid)).values())


async def scheduler_task_count(client: Any) -> int:
    def count(dask_scheduler: Any) -> int:
        return len(dask_scheduler.tasks)

    return int(await client.run_on_scheduler(count))


async def wait_until_the_scheduler_holds_no_task(client: Any) -> None:
    """The scheduler forgets a cancelled or released task a few messages later."""
    for _ in range(500):
        if await scheduler_task_count(client) == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the scheduler still holds {await scheduler_task_count(client)} tasks")


async def wait_until_workers_are_idle(client: Any) -> None:
    """A cancelled task that had started keeps running on its worker until it returns."""

    def executing(dask_worker: Any) -> int:
        return len(dask_worker.state.executing)

    for _ in range(500):
        counts = await client.run(executing)
        if not any(counts.values()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("a worker still executes a task")


async def wait_for_client_tasks(client: Any) -> None:
    """A closed client's own tasks (its report loop) end a few loop iterations later."""

    def of_the_client(task: asyncio.Task[Any]) -> bool:
        frame = getattr(task.get_coro(), "cr_frame", None)
        return frame is not None and frame.f_locals.get("self") is client

    pending: set[asyncio.Task[Any]] = set()
    for _ in range(500):
        pending = {t for t in asyncio.all_tasks() if of_the_client(t)}
        if not pending:
            return
        await asyncio.wait(pending, timeout=0.01)
    raise AssertionError(f"tasks of the client still running: {pending}")


# -- recognising a client ----------------------------------------------------------------------


def test_a_client_is_an_executor_option_for_type_checkers() -> None:
    """Checked by mypy and pyright (the suite's typing step), not at run time."""

    def accepts(client: distributed.Client) -> ExecutorLike:
        return client

    assert callable(accepts)


async def test_a_client_and_its_executor_are_recognised(client: Any) -> None:
    assert is_client(client)
    assert is_executor(client)
    executor = client.get_executor(pure=False)
    assert is_client_executor(executor)
    assert is_executor(executor)
    assert not is_client(executor)
    assert not is_client_executor(client)


# -- submit() directly ------------------------------------------------------------------------


async def test_a_call_runs_on_a_worker_process(client: Any) -> None:
    work = Work()
    pid, square = await submit(work, client, where, 9)
    assert pid != os.getpid()
    assert pid in await worker_pids(client)
    assert square == 81
    assert not work.running


async def test_a_call_through_the_clients_executor_runs_on_a_worker(client: Any) -> None:
    pid, square = await submit(Work(), client.get_executor(pure=False), where, 4)
    assert pid != os.getpid()
    assert square == 16


async def test_a_workers_exception_fails_the_call(client: Any) -> None:
    # The worker also logs "Compute Failed" (distributed.worker): Dask's logging, documented.
    with pytest.raises(Refused, match="on the worker"):
        await submit(Work(), client, refuse, "on the worker")
    await wait_until_the_scheduler_holds_no_task(client)


async def test_equal_calls_are_not_merged(client: Any) -> None:
    a, b = await asyncio.gather(submit(Work(), client, token, 1), submit(Work(), client, token, 1))
    assert a != b


async def test_cancelling_a_running_call_cancels_the_cluster_task(client: Any) -> None:
    submitted: list[Any] = []
    real_submit = client.submit

    def spy(*args: Any, **kwargs: Any) -> Any:
        future = real_submit(*args, **kwargs)
        submitted.append(future)
        return future

    client.submit = spy  # to look at the Dask future we made
    work = Work()
    call = asyncio.ensure_future(submit(work, client, busy_for, 1.0))
    await asyncio.sleep(0.3)  # let it start on a worker
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    (future,) = submitted
    assert future.status == "cancelled"
    # The cluster dropped it (the worker still runs it: documented), so the call has stopped.
    assert not work.running
    stops: list[bool] = []
    work.when_stopped(lambda: stops.append(True))
    assert stops == [True]
    await wait_until_the_scheduler_holds_no_task(client)
    await wait_until_workers_are_idle(client)


async def test_cancelling_a_call_through_the_executor_cancels_the_cluster_task(
    client: Any,
) -> None:
    work = Work()
    call = asyncio.ensure_future(submit(work, client.get_executor(pure=False), busy_for, 1.0))
    await asyncio.sleep(0.3)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert not work.running
    assert not pending_on(client)  # cancelled on the cluster, with no "never awaited" warning
    await wait_until_the_scheduler_holds_no_task(client)
    await wait_until_workers_are_idle(client)


async def test_a_synchronous_client_on_the_running_loop_is_refused(cluster: Any) -> None:
    from tornado.ioloop import IOLoop

    sync_client = dd.Client(cluster.scheduler_address, loop=IOLoop.current(), asynchronous=False)
    try:
        await sync_client  # on its own loop's thread it starts like an asynchronous one
        with pytest.raises(DagDefinitionError, match="asynchronous=True"):
            await submit(Work(), sync_client, where, 1)
    finally:
        await sync_client.close()
    await wait_for_client_tasks(sync_client)


async def test_a_synchronous_client_with_its_own_loop_thread_works(cluster: Any) -> None:
    sync_client = await asyncio.to_thread(dd.Client, cluster.scheduler_address)
    try:
        pid, square = await submit(Work(), sync_client, where, 3)
        assert pid != os.getpid()
        assert square == 9
        call = asyncio.ensure_future(submit(Work(), sync_client, busy_for, 1.0))
        await asyncio.sleep(0.3)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert not pending_on(sync_client)  # cancelled on the cluster
    finally:
        await asyncio.to_thread(sync_client.close)


# -- through a graph ----------------------------------------------------------------------------


async def test_a_heavy_node_runs_on_a_worker_via_the_client(client: Any) -> None:
    with build_dag(int) as dag:
        heavy = dag.add_node(where, dag.params, executor=client)
        light = dag.add_node(lambda r: r[1] + 1, heavy)
    result = await dag.invoke(12)
    pid, square = result[heavy]
    assert pid != os.getpid()
    assert square == 144
    assert result[light] == 145


async def test_a_heavy_node_runs_on_a_worker_via_the_clients_executor(client: Any) -> None:
    with build_dag(int) as dag:
        heavy = dag.add_node(where, dag.params, executor=client.get_executor(pure=False))
    result = await dag.invoke(5)
    assert result[heavy][0] != os.getpid()
    assert result[heavy][1] == 25


async def test_two_concurrent_runs_with_equal_params_make_two_cluster_calls(
    client: Any,
) -> None:
    with build_dag(int) as dag:
        node = dag.add_node(token, dag.params, executor=client)
    first, second = await asyncio.gather(dag.invoke(1), dag.invoke(1))
    assert first[node] != second[node]


async def test_a_node_timeout_cancels_the_cluster_task(client: Any) -> None:
    with build_dag() as dag:
        dag.add_node(busy_for, 1.0, executor=client, timeout=0.3, name="slow")
    with pytest.raises(DagError) as caught:
        await dag.invoke(None)
    assert isinstance(caught.value.failures["slow"], TimeoutError)
    assert not pending_on(client)  # the task was cancelled, not left running
    await wait_until_the_scheduler_holds_no_task(client)
    await wait_until_workers_are_idle(client)


async def test_a_workers_exception_fails_the_node(client: Any) -> None:
    with build_dag() as dag:
        dag.add_node(refuse, "no", executor=client, name="refuses")
    with pytest.raises(DagError) as caught:
        await dag.invoke(None)
    assert isinstance(caught.value.failures["refuses"], Refused)


async def test_the_same_graph_on_a_process_pool() -> None:
    with ProcessPoolExecutor(max_workers=2) as pool:
        with build_dag(int) as dag:
            heavy = dag.add_node(where, dag.params, executor=pool)
            other = dag.add_node(token, dag.params, executor=pool)
        first, second = await asyncio.gather(dag.invoke(6), dag.invoke(6))
    assert first[heavy][0] != os.getpid()
    assert first[heavy][1] == 36
    assert first[other] != second[other]
