"""Running a sync callable in an executor, and knowing when it has really stopped.

Where a call goes, by the value of `executor=`:

- ``"thread"``: the running loop's default thread pool (so a pool set with
  `loop.set_default_executor` is used); a `ThreadPoolExecutor` (or subclass): that pool. The
  call runs in the contextvars context it is given (the run passes a copy of the caller's).
- any other `concurrent.futures.Executor`, e.g. a `ProcessPoolExecutor` or the executor of a
  Dask client (`client.get_executor(pure=False)`): ``executor.submit(fn, *args)``. Nothing of
  the context reaches another process (a `contextvars.Context` cannot be pickled).
- a Dask `distributed.Client` (see `dagwire.dask`): ``client.submit(fn, *args, pure=False)``.

A thread cannot be interrupted, a process-pool task that has started cannot be cancelled, and
Dask cannot stop a task already running on a worker: when the node waiting for a call gives up
(its timeout, a cancellation), the work may go on. `Work` tracks one such call, so that the run
can hold the limiter slots the call took until it has really stopped, and clean up a resource
whose setup finished after the node gave up. A call that had not started never starts.
"""

# pyright: reportPrivateUsage=false
# (submit and the Dask path drive the state of the Work they were given)

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextvars import Context
from typing import Any, Literal, Protocol, TypeAlias, cast

__all__ = ["ClusterClient", "ExecutorLike", "Work", "is_executor", "submit"]

logger = logging.getLogger("dagwire")


class ClusterClient(Protocol):
    """What `executor=` needs of a Dask `distributed.Client`, for type checkers only.

    At run time `dagwire.dask.is_client` decides; this protocol lets ``executor=client``
    type-check without dagwire importing (or requiring) `distributed`.
    """

    def submit(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Schedule ``func(*args)`` on the cluster; returns a `distributed.Future`."""
        ...

    def get_executor(self, **kwargs: Any) -> Any:
        """A `concurrent.futures.Executor` that submits to this client."""
        ...


#: The values `executor=` accepts (checked at build time by `is_executor`).
ExecutorLike: TypeAlias = Executor | Literal["thread"] | ClusterClient


def is_executor(value: object) -> bool:
    """Whether `value` is accepted as `executor=`: ``"thread"``, a
    `concurrent.futures.Executor`, or a Dask `distributed.Client` (recognised without importing
    `distributed`: when it is not loaded, no client can exist)."""
    from .dask import is_client

    return (
        (isinstance(value, str) and value == "thread")
        or isinstance(value, Executor)
        or is_client(value)
    )


_WAITING, _RUNNING, _STOPPED, _ABANDONED = range(4)


class Work:
    """One call submitted to an executor: its state, and its outcome once it has stopped."""

    __slots__ = ("_done", "_lock", "_state", "_task_future", "_then")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _WAITING
        self._done: asyncio.Future[tuple[bool, Any]] | None = None
        self._task_future: Future[Any] | None = None  # non-thread executors
        # threads: called in the worker thread with the outcome, once the call has stopped
        self._then: Callable[[tuple[bool, Any]], None] | None = None

    @property
    def running(self) -> bool:
        """The call started and has not stopped yet."""
        return self._state == _RUNNING

    @property
    def may_have_succeeded(self) -> bool:
        """The call started and is not known to have failed: it still runs, or it stopped and
        its outcome (a success, or not yet delivered to the loop) can still be had."""
        state, done = self._state, self._done
        if state == _RUNNING:
            return True
        return state == _STOPPED and done is not None and (not done.done() or done.result()[0])

    def then_in_thread(self, then: Callable[[tuple[bool, Any]], None]) -> bool:
        """Have the worker thread call `then(outcome)` when the call stops; False if it is not
        running in a thread (any more): its outcome is then the loop's to handle."""
        with self._lock:
            if self._state != _RUNNING or self._task_future is not None:
                return False
            self._then = then
            return True

    def abandon(self) -> None:
        """Nobody waits for the result any more: a call that has not started never will."""
        with self._lock:
            if self._state == _WAITING:
                self._state = _ABANDONED
        if self._task_future is not None and self._task_future.cancel():
            self._state = _ABANDONED

    def when_stopped(self, callback: Callable[[], None]) -> None:
        """Call `callback()` on the loop once the call has stopped (now, if it is not running).

        For a Dask client, the call has stopped once the cluster has its outcome or has dropped
        the task: a task already running on a worker when it was cancelled finishes there."""
        if self._state != _RUNNING or self._done is None:
            callback()
        else:
            self._done.add_done_callback(lambda _: callback())

    async def outcome(self) -> object:
        """The call's result once it has stopped (its exception is raised)."""
        assert self._done is not None
        ok, value = await asyncio.shield(self._done)
        if not ok:
            raise value
        return value

    # -- in the worker -------------------------------------------------------------------

    def _run_in_thread(
        self,
        loop: asyncio.AbstractEventLoop,
        context: Context | None,
        fn: Callable[..., object],
        args: tuple[Any, ...],
    ) -> None:
        with self._lock:
            if self._state == _ABANDONED:
                return
            self._state = _RUNNING
        try:
            outcome: tuple[bool, Any] = (
                True,
                fn(*args) if context is None else context.run(fn, *args),
            )
        except BaseException as exc:  # delivered to whoever awaits; never lost
            outcome = (False, exc)
        with self._lock:
            self._state = _STOPPED
            then = self._then
        if then is not None:
            then(outcome)
        self._deliver_threadsafe(loop, outcome)

    def _deliver_threadsafe(
        self, loop: asyncio.AbstractEventLoop, outcome: tuple[bool, Any]
    ) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for it any more
            loop.call_soon_threadsafe(self._deliver, outcome)

    def _deliver(self, outcome: tuple[bool, Any]) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(outcome)


async def submit(
    work: Work,
    executor: ExecutorLike,
    fn: Callable[..., object],
    *args: Any,
    context: Context | None = None,
) -> Any:
    """Call `fn(*args)` in `executor` and return its result (or raise its exception);
    `context` (threads only) is the contextvars context the call runs in.

    If the caller is cancelled meanwhile, the call is abandoned: it never starts if it had not
    yet, else `work.running` stays True until it stops (see `Work.when_stopped`). On a Dask
    cluster the task is cancelled there (shielded from further cancellation) before
    `CancelledError` propagates. Raises `DagDefinitionError` for a synchronous Dask client whose
    loop is the running loop, and `concurrent.futures.CancelledError` when the executor itself
    cancelled the call (e.g. ``shutdown(cancel_futures=True)``).
    """
    from . import dask

    loop = asyncio.get_running_loop()
    target: Executor | Literal["thread"]
    if dask.is_client(executor):
        if dask.runs_on(executor, loop):
            return await _on_client(work, executor, fn, args)
        # A synchronous client, whose loop runs in a thread of its own: through its executor.
        target = cast(Any, executor).get_executor(pure=False)
    else:
        target = cast(Executor | Literal["thread"], executor)
    done = work._done = loop.create_future()
    cancel_in_thread = False
    if target == "thread" or isinstance(target, ThreadPoolExecutor):
        pool = None if target == "thread" else target
        loop.run_in_executor(pool, work._run_in_thread, loop, context, fn, args)
    else:
        cancel_in_thread = dask.is_client_executor(target)
        task_future = work._task_future = target.submit(fn, *args)
        work._state = _RUNNING  # (or queued: see abandon)

        def finished(f: Future[Any]) -> None:
            work._state = _STOPPED
            outcome: tuple[bool, Any]
            if f.cancelled():  # by abandon(), or by the executor itself
                what = f"{target!r} cancelled the call of {fn!r} itself"
                outcome = (False, concurrent.futures.CancelledError(what))
            elif (exc := f.exception()) is not None:
                outcome = (False, exc)
            else:
                outcome = (True, f.result())
            work._deliver_threadsafe(loop, outcome)

        task_future.add_done_callback(finished)
    try:
        ok, value = await asyncio.shield(done)
    except asyncio.CancelledError:
        if cancel_in_thread and work._task_future is not None:
            # A Dask client executor's Future.cancel() calls client.cancel, which on this loop
            # returns a coroutine nobody awaits (and cancels nothing): see dagwire.dask.
            await shielded(_in_new_thread(loop, work._task_future.cancel), f"the call of {fn!r}")
        work.abandon()
        raise
    if not ok:
        raise value
    return value


async def _on_client(
    work: Work, client: Any, fn: Callable[..., object], args: tuple[Any, ...]
) -> Any:
    """A Dask client on this loop: the call has stopped once the cluster has its outcome or has
    dropped the task (`Work._done` stays None, so `when_stopped` calls back at once then)."""
    from . import dask

    work._state = _RUNNING
    try:
        return await dask.call_on_client(client, fn, args)
    finally:
        work._state = _STOPPED


def _in_new_thread(
    loop: asyncio.AbstractEventLoop, fn: Callable[[], object]
) -> asyncio.Future[Any]:
    """Run `fn` in a thread of its own (not in a pool that blocked bodies may be holding)."""
    result: asyncio.Future[Any] = loop.create_future()

    def settle(value: object, exc: BaseException | None) -> None:
        if result.done():
            return
        if exc is None:
            result.set_result(value)
        else:
            result.set_exception(exc)

    def work() -> None:
        value: object = None
        exc: BaseException | None = None
        try:
            value = fn()
        except BaseException as e:
            exc = e
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
            loop.call_soon_threadsafe(settle, value, exc)

    threading.Thread(target=work, name="dagwire-cancel", daemon=True).start()
    return result


async def shielded(work: asyncio.Future[Any], what: str) -> None:
    """Wait for `work` (cancelling a call) to end, whatever cancels us meanwhile.

    The caller is propagating a `CancelledError`, which must stay what it raises: a failure of
    the cancellation itself is logged instead (ERROR, logger ``dagwire``).
    """
    while not work.done():
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            continue
    if (exc := work.exception()) is not None:
        logger.error("dagwire: cancelling %s failed", what, exc_info=exc)
