"""Running a sync callable in an executor, and knowing when it has really stopped.

A thread cannot be interrupted, and a process-pool task that has started cannot be cancelled:
when the node waiting for it gives up (its timeout, a cancellation), the work may go on. `Work`
tracks one such call, so that the run can hold the limiter slots the call took until it has
really stopped, and clean up a resource whose setup finished after the node gave up.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextvars import Context
from typing import Any, Literal, TypeAlias

__all__ = ["ExecutorLike", "Work", "submit"]

ExecutorLike: TypeAlias = Executor | Literal["thread"]

_WAITING, _RUNNING, _STOPPED, _ABANDONED = range(4)


class Work:
    """One call submitted to an executor: its state, and its outcome once it has stopped."""

    __slots__ = ("_done", "_lock", "_state", "_task_future")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _WAITING
        self._done: asyncio.Future[tuple[bool, Any]] | None = None
        self._task_future: Future[Any] | None = None  # non-thread executors

    @property
    def running(self) -> bool:
        """The call started and has not stopped yet."""
        return self._state == _RUNNING

    def abandon(self) -> None:
        """Nobody waits for the result any more: a call that has not started never will."""
        with self._lock:
            if self._state == _WAITING:
                self._state = _ABANDONED
        if self._task_future is not None and self._task_future.cancel():
            self._state = _ABANDONED

    def when_stopped(self, callback: Callable[[], None]) -> None:
        """Call `callback()` on the loop once the call has stopped (now, if it is not running)."""
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
        self._state = _STOPPED
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
    """Call `fn(*args)` in `executor` ("thread": the loop's default thread pool) and return its
    result; `context` (threads only) is the contextvars context the call runs in.

    If the caller is cancelled meanwhile, the call is abandoned: it never starts if it had not
    yet, else `work.running` stays True until it stops (see `Work.when_stopped`).
    """
    loop = asyncio.get_running_loop()
    done = work._done = loop.create_future()  # pyright: ignore[reportPrivateUsage]
    if executor == "thread" or isinstance(executor, ThreadPoolExecutor):
        pool = None if executor == "thread" else executor
        loop.run_in_executor(pool, work._run_in_thread, loop, context, fn, args)  # pyright: ignore[reportPrivateUsage]
    else:
        task_future = work._task_future = executor.submit(fn, *args)  # pyright: ignore[reportPrivateUsage]
        work._state = _RUNNING  # pyright: ignore[reportPrivateUsage]  # (or queued: see abandon)

        def finished(f: Future[Any]) -> None:
            work._state = _STOPPED  # pyright: ignore[reportPrivateUsage]
            outcome: tuple[bool, Any] = (
                (False, asyncio.CancelledError())
                if f.cancelled()
                else (False, f.exception())
                if f.exception() is not None
                else (True, f.result())
            )
            work._deliver_threadsafe(loop, outcome)  # pyright: ignore[reportPrivateUsage]

        task_future.add_done_callback(finished)
    try:
        ok, value = await asyncio.shield(done)
    except asyncio.CancelledError:
        work.abandon()
        raise
    if not ok:
        raise value
    return value
