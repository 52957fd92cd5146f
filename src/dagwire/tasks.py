"""How a run starts its own tasks, and how it runs a coroutine in a context of its choosing.

Every task a run creates, in every phase (nodes, early releases, the cleanup phase), is made here:
directly with `asyncio.Task`, never through the loop's task factory, so that a loop whose factory
is eager changes nothing. On Python 3.12+ tasks start eagerly (a node that completes without
waiting never touches the loop's queue); eager starts nest on the C stack, so their nesting is
bounded per run and deeper starts are lazy: no graph, however deep, can hit `RecursionError`.
"""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import Callable, Coroutine, Generator
from contextvars import Context
from typing import Any, Protocol, TypeVar

__all__ = ["EAGER", "MAX_EAGER_NESTING", "TaskOwner", "in_context", "start_task"]

T = TypeVar("T")

_NOT_STARTED: Any = object()  # in_context: `coro` has not taken its next step yet


def _run_here(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


EAGER: bool = sys.version_info >= (3, 12)  # asyncio.Task(..., eager_start=True) exists
MAX_EAGER_NESTING = 16
_Task: Any = asyncio.Task  # Any: `eager_start=` is unknown to the 3.11 stubs


class TaskOwner(Protocol):
    """What starts tasks: a run (its loop, how deep eager starts nest now, debug mode)."""

    loop: asyncio.AbstractEventLoop
    eager_depth: int
    debug: bool


def start_task(
    owner: TaskOwner, coro: Coroutine[Any, Any, None], name: str | None = None
) -> asyncio.Task[None] | None:
    """Start `coro` in a new task of `owner`; None if it already ran to its end (eagerly).

    Tasks are named `name` in debug mode only (a string per task costs). The caller handles
    the exception this raises (`RecursionError`, `MemoryError`) when the task could not be
    created; `coro` is closed then.
    """
    name = name if owner.debug else None
    try:
        if EAGER and owner.eager_depth < MAX_EAGER_NESTING:
            owner.eager_depth += 1
            try:
                task: asyncio.Task[None] = _Task(coro, loop=owner.loop, eager_start=True, name=name)
            finally:
                owner.eager_depth -= 1
            return None if task.done() and _retrieved(task) else task
        lazy: asyncio.Task[None] = _Task(coro, loop=owner.loop, name=name)
        return lazy
    except BaseException:
        coro.close()
        raise


def _retrieved(task: asyncio.Task[None]) -> bool:
    """Whether a finished task may be dropped: only when nothing is left to report."""
    return task.cancelled() or task.exception() is None


@types.coroutine
def in_context(
    ctx: Context | None, coro: Coroutine[Any, Any, T], waiting: Any = _NOT_STARTED
) -> Generator[Any, Any, T]:
    """Await `coro` with every one of its steps run in `ctx`, in the current task.

    What a task does for its own context, without the cost of a task: the run's first root runs
    in the caller's task this way, so that nothing it sets in its context is seen by the caller.
    `waiting`: what `coro`'s first step, already taken (in `ctx`), is waiting for; with `ctx`
    None, `coro` simply goes on in the current context (await a coroutine whose first step was
    taken by hand, in the same task).
    """
    run: Callable[..., Any] = _run_here if ctx is None else ctx.run
    send, throw = coro.send, coro.throw
    value: Any = None
    error: BaseException | None = None
    yielded = waiting
    while True:
        if yielded is _NOT_STARTED:
            try:
                yielded = run(send, value) if error is None else run(throw, error)
            except StopIteration as stop:
                result: T = stop.value
                return result
        value = error = None
        try:
            value = yield yielded
        except BaseException as exc:  # cancellation, GeneratorExit: deliver it to `coro`
            error = exc
        yielded = _NOT_STARTED
