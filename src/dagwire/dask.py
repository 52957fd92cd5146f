"""Heavy nodes on a Dask cluster: a `distributed.Client` as `executor=` (extra ``dagwire[dask]``).

The graph is orchestrated in-process; only the node's callable runs on a worker::

    client = await distributed.Client(address, asynchronous=True)
    dag.add_node(crunch, data, executor=client)                     # client.submit
    dag.add_node(crunch, data, executor=client.get_executor(pure=False))  # any Executor works too

Behaviour, and where it comes from:

- Every call is its own task (``pure=False``): two runs with equal arguments are two cluster
  calls, never merged by Dask's key hashing.
- The callable and its arguments are pickled (cloudpickle) to the worker and the value back;
  context variables, `dagwire.current()` and the current OpenTelemetry span do not travel.
- A node timeout, a fail-fast abort or the caller's cancellation cancels the cluster task
  (``await client.cancel(future)``, shielded, so nothing is left pending). A task already
  running on a worker cannot be interrupted by Dask: it finishes there, keeping that worker
  thread busy, and its result is dropped. The run's limiter slot is freed once the cluster has
  dropped the task.
- A callable that raises on a worker is logged by that worker (logger ``distributed.worker``,
  "Compute Failed", with the function and its arguments) in addition to failing the node in
  dagwire; that is Dask's logging, left as it is.
- A client created synchronously on the loop's own thread (``Client(..., loop=...)`` without
  ``asynchronous=True``) is refused when the node runs, since its blocking calls would deadlock
  the loop. A synchronous client running its own loop in a thread of its own (plain
  ``Client(address)``) is used through its `concurrent.futures` executor.

`distributed` is imported by nothing here: a client exists only if its module is loaded.
"""

from __future__ import annotations

import asyncio
import sys
from asyncio import CancelledError
from collections.abc import Callable
from typing import Any, TypeVar, cast

from .errors import DagDefinitionError
from .executors import OnStopped, call_via_future, shielded_cancel

__all__ = ["call_on_client", "is_client", "is_client_executor"]

R = TypeVar("R")


def is_client(value: object) -> bool:
    """Whether `value` is a `distributed.Client` (False whenever `distributed` is not loaded)."""
    distributed = sys.modules.get("distributed")
    return distributed is not None and isinstance(value, distributed.Client)


def is_client_executor(value: object) -> bool:
    """Whether `value` is the executor of a Dask client (`client.get_executor()`).

    Its futures must be cancelled from a thread of their own: `Future.cancel()` calls
    `client.cancel`, which on the loop of an asynchronous client returns a coroutine that
    nobody awaits (a "never awaited" warning, and the task is not cancelled), and for a
    synchronous client blocks until the scheduler answers. From another thread it runs to its
    end either way (distributed 2026.8)."""
    cfexecutor = sys.modules.get("distributed.cfexecutor")
    return cfexecutor is not None and isinstance(value, cfexecutor.ClientExecutor)


async def call_on_client(
    client: Any,  # a distributed.Client; Any: distributed is an optional, partly typed extra
    fn: Callable[..., R],
    args: tuple[object, ...],
    on_stopped: OnStopped | None = None,
) -> R:
    """``client.submit(fn, *args, pure=False)``, awaited; see `call_in_executor` for `on_stopped`.

    On cancellation the task is cancelled on the cluster (``await client.cancel``, shielded: a
    second cancellation does not cut it short; a failure to cancel is logged on the ``dagwire``
    logger) before `CancelledError` propagates. A client whose loop is not the running loop (a
    synchronous client with a loop thread of its own) goes through its executor. Raises
    `DagDefinitionError` for a synchronous client whose loop is the running loop.
    """
    loop = asyncio.get_running_loop()
    if client.loop is None or client.loop.asyncio_loop is not loop:
        executor = client.get_executor(pure=False)
        return await call_via_future(executor, fn, args, on_stopped, cancel_in_thread=True)
    if not getattr(client, "_asynchronous", True):  # the constructor's `asynchronous=` flag
        raise DagDefinitionError(
            f"executor={client!r} is a synchronous distributed.Client whose loop is the running "
            "event loop: its blocking calls would deadlock it; create it with "
            "distributed.Client(..., asynchronous=True) (and `await` it)"
        )
    try:
        future = client.submit(fn, *args, pure=False)
    except BaseException:
        if on_stopped is not None:
            on_stopped()
        raise
    try:
        return cast(R, await future)
    except CancelledError:
        cancel = loop.create_task(client.cancel([future], asynchronous=True))
        await shielded_cancel(cancel, f"Dask task {future.key!r}")
        raise
    finally:
        # Now, not when the future is garbage: a traceback kept by the run's error holds this
        # frame, and with it the future, which would keep an erred task on the scheduler.
        future.release()
        if on_stopped is not None:
            on_stopped()
