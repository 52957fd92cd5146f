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
from typing import Any

from .errors import DagDefinitionError
from .executors import shielded

__all__ = ["call_on_client", "is_client", "is_client_executor", "runs_on"]


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


def runs_on(client: Any, loop: asyncio.AbstractEventLoop) -> bool:
    """Whether `client`'s event loop is `loop` (else it runs its own, in a thread)."""
    return client.loop is not None and client.loop.asyncio_loop is loop


async def call_on_client(client: Any, fn: Callable[..., object], args: tuple[Any, ...]) -> Any:
    """``client.submit(fn, *args, pure=False)``, awaited, for a client on the running loop.

    `client` is a `distributed.Client` (typed Any: distributed is an optional, partly typed
    extra). On cancellation the task is cancelled on the cluster (``await client.cancel``,
    shielded: a second cancellation does not cut it short; a failure to cancel is logged on the
    ``dagwire`` logger) before `CancelledError` propagates. Raises `DagDefinitionError` for a
    client created synchronously (``asynchronous=False``) on this loop.
    """
    if not getattr(client, "_asynchronous", True):  # the constructor's `asynchronous=` flag
        raise DagDefinitionError(
            f"executor={client!r} is a synchronous distributed.Client whose loop is the running "
            "event loop: its blocking calls would deadlock it; create it with "
            "distributed.Client(..., asynchronous=True) (and `await` it)"
        )
    future = client.submit(fn, *args, pure=False)
    try:
        return await future
    except CancelledError:
        cancel = asyncio.get_running_loop().create_task(client.cancel([future], asynchronous=True))
        await shielded(cancel, f"Dask task {future.key!r}")
        raise
    finally:
        # Now, not when the future is garbage: a traceback kept by the run's error holds this
        # frame, and with it the future, which would keep an erred task on the scheduler.
        future.release()
