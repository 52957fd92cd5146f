"""Setups and how to undo them: `pre=`/`post=` hooks, and entering resources.

A resource is an async or sync generator function that yields once, or a callable returning an
(async) context manager. Entering it gives the value that flows downstream and registers its
exit with the run (see `cleanup` for when exits run). With `executor=`, a sync resource's setup
and its exit both run in the executor.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, Generator
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from contextvars import Context
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from .context import current, set_where
from .executors import ExecutorLike, Work, submit
from .tasks import in_context

if TYPE_CHECKING:
    from .scheduler import Run

logger = logging.getLogger("dagwire")

__all__ = ["Cleanup", "CleanupFn", "enter_resource", "post_hook"]

T = TypeVar("T")

# A registered cleanup: its phase ("cleanup" or "post"), what runs it (called once with the
# exception to report to it, None on success, and the invoke parameter; it returns an awaitable
# to await, or None when it is done already), and whether it surely never waits (a sync hook
# or a sync resource's exit, on a node without cleanup_timeout=).
CleanupFn = Callable[[BaseException | None, object], Awaitable[object] | None]
Cleanup = tuple[str, CleanupFn, bool]


def post_hook(hook: Callable[..., object], takes_param: bool, never_waits: bool) -> Cleanup:
    """The cleanup that calls `post=` hook `hook` (with the invoke parameter, if it takes it).
    Made once per node, when the graph is compiled."""

    def post(_: BaseException | None, params: object) -> Awaitable[object] | None:
        done = hook(params) if takes_param else hook()
        return done if done is not None and inspect.isawaitable(done) else None

    return ("post", post, never_waits)


async def enter_resource(
    run: Run,
    i: int,
    factory: Callable[..., object],
    args: tuple[Any, ...],
    executor: ExecutorLike | None,
    work: Work | None,
) -> object:
    """Set a resource up and register its exit; the value it yields/enters flows downstream.

    The setup and the exit run in a context of the resource's own (a copy of the node's): what
    the setup sets there (a `ContextVar` whose token the exit resets, an OpenTelemetry span it
    makes current) the exit finds, and nodes downstream do not see.

    With an executor (sync factories only: checked at build time), `work` tracks the call in
    the executor; if the node is cancelled or times out while the setup still runs there, the
    exit is registered anyway and runs once the setup has finished, so nothing acquired leaks.
    """
    name = run.plan.specs[i].name
    context = contextvars.copy_context()
    if executor is not None:
        assert work is not None
        context.run(set_where, run.where(i))  # (a thread's current() reads it)
        try:
            made, value = await submit(
                work, executor, _sync_setup, name, factory, args, context=context
            )
        except BaseException:
            # Abandoned (cancelled, timed out) while the setup goes on in the executor, or
            # just after it finished there: its exit runs once the outcome is known.
            if work.may_have_succeeded:
                exit_later = _exit_when_set_up(name, work, executor, context)
                run.add_cleanup(i, ("cleanup", exit_later, False))
            raise
        run.add_cleanup(i, ("cleanup", _sync_exit_in(name, made, executor, context), False))
        return value
    made = context.run(factory, *args)
    if inspect.isasyncgen(made):
        try:
            value = await _stepped_in(context, made.__anext__())
        except StopAsyncIteration:
            raise RuntimeError(
                f"resource {name!r}: the async generator finished without yielding a value"
            ) from None
        run.add_cleanup(i, ("cleanup", _async_gen_exit(name, made, context), False))
        return value
    if isinstance(made, AbstractAsyncContextManager):
        cm = cast(AbstractAsyncContextManager[object], made)
        entered = await _stepped_in(context, cm.__aenter__())
        run.add_cleanup(i, ("cleanup", _async_cm_exit(cm, context), False))
        return entered
    if _is_sync_resource(made):
        value = context.run(_enter_sync, name, made)
        options = run.plan.specs[i].options
        never_waits = options is None or options.cleanup_timeout is None
        run.add_cleanup(i, ("cleanup", _sync_exit(name, made, context), never_waits))
        return value
    if inspect.isawaitable(made):
        close = getattr(made, "close", None)
        if close is not None:
            close()  # do not leave a never-awaited coroutine behind
    raise TypeError(
        f"resource {name!r}: the factory returned {made!r}; add_resource() needs an (async) "
        "generator function that yields once, or a callable returning an (async) context manager"
    )


def _stepped_in(context: Context, awaitable: Awaitable[T]) -> Awaitable[T]:
    """`awaitable`, its steps run in `context` (when it is a coroutine-like object); its first
    step is taken now, and what it gives is returned ready when it did not have to wait."""
    if not (hasattr(awaitable, "send") and hasattr(awaitable, "throw")):
        return awaitable
    step = cast(Coroutine[Any, Any, T], awaitable)
    try:
        waiting = context.run(step.send, None)
    except StopIteration as done:
        return _Ready(done.value)
    return in_context(context, step, waiting)


class _Ready(Generic[T]):
    """An awaitable whose value is already there (awaiting it costs no coroutine)."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, T]:
        return self.value
        yield  # (a generator function: `await` expects an iterator)


# -- sync resources (inline, or in an executor) ----------------------------------------------


def _is_sync_resource(made: object) -> bool:
    return inspect.isgenerator(made) or isinstance(made, AbstractContextManager)


def _enter_sync(name: str, made: object) -> object:
    if inspect.isgenerator(made):
        try:
            return next(made)
        except StopIteration:
            raise RuntimeError(
                f"resource {name!r}: the generator finished without yielding a value"
            ) from None
    if isinstance(made, AbstractContextManager):
        return cast(AbstractContextManager[object], made).__enter__()
    raise TypeError(
        f"resource {name!r}: the factory returned {made!r}; a sync resource needs a generator "
        "function that yields once, or a callable returning a context manager"
    )


def _sync_setup(
    name: str, factory: Callable[..., object], args: tuple[Any, ...]
) -> tuple[object, object]:
    """In the executor: make the resource and enter it."""
    made = factory(*args)
    return made, _enter_sync(name, made)


def _exit_sync(name: str, made: Any, exc: BaseException | None) -> None:
    """Close a generator (throwing `exc` in at its yield) or exit a context manager.

    Re-raising `exc` is the expected way to roll back, not a failure of the exit itself; a true
    return value of `__exit__` would suppress `exc`, but a resource cannot swallow the run's
    failure, so it is ignored.
    """
    if inspect.isgenerator(made):
        try:
            if exc is None:
                next(made)
            else:
                made.throw(exc)
        except StopIteration:
            return
        except BaseException as raised:
            if raised is exc:
                return
            raise
        made.close()
        raise RuntimeError(f"resource {name!r}: the generator yielded more than once")
    if exc is None:
        made.__exit__(None, None, None)
        return
    try:
        made.__exit__(type(exc), exc, exc.__traceback__)
    except BaseException as raised:
        if raised is not exc:
            raise


def _sync_exit(name: str, made: object, context: Context) -> CleanupFn:
    def exit_(exc: BaseException | None, _: object = None) -> None:
        context.run(_exit_sync, name, made, exc)

    return exit_


def _sync_exit_in(name: str, made: object, executor: ExecutorLike, context: Context) -> CleanupFn:
    async def exit_(exc: BaseException | None, _: object = None) -> None:
        _cleanup_where(context)
        await submit(Work(), executor, _exit_sync, name, made, exc, context=context)

    return exit_


def _cleanup_where(context: Context) -> None:
    """`current()` in a resource's exit (in a thread) says attempt 0, as in every cleanup."""
    where = context.run(current)
    if where is not None:
        context.run(set_where, replace(where, attempt=0))


def _exit_when_set_up(name: str, work: Work, executor: ExecutorLike, context: Context) -> CleanupFn:
    """The exit of a setup that was abandoned while it ran in the executor."""

    async def exit_(exc: BaseException | None, _: object = None) -> None:
        try:
            made, _ = cast(tuple[object, object], await work.outcome())
        except asyncio.CancelledError:
            # Waiting was cut short (cleanup_timeout=): the setup's thread exits what it made
            # once it has made it; this cleanup still fails with the timeout.
            if not work.then_in_thread(partial(_exit_orphan, name, exc, context)):
                work.when_stopped(partial(_exit_orphan_soon, name, work, exc, context))
            raise
        except BaseException:
            return  # the setup failed: nothing was acquired
        _cleanup_where(context)
        await submit(Work(), executor, _exit_sync, name, made, exc, context=context)

    return exit_


def _exit_orphan(
    name: str, exc: BaseException | None, context: Context, outcome: tuple[bool, Any]
) -> None:
    """In a thread: exit what a setup nobody waits for any more made (no run to report a
    failure to: it is logged)."""
    ok, setup = outcome  # setup: (what the factory made, what it yielded or entered)
    if not ok:
        return
    try:
        context.run(_exit_sync, name, setup[0], exc)
    except BaseException:
        logger.exception("resource %r: its exit, run after its cleanup timed out, failed", name)


def _exit_orphan_soon(
    name: str, work: Work, exc: BaseException | None, context: Context
) -> None:
    """On the loop, once an abandoned setup's outcome has arrived: exit it in a thread."""
    done = work._done  # pyright: ignore[reportPrivateUsage]  # where the outcome arrives
    if done is None:
        return

    def arrived(_: object) -> None:
        args = (name, exc, context, done.result())
        threading.Thread(target=_exit_orphan, args=args, daemon=True).start()

    done.add_done_callback(arrived)  # (soon, if it has arrived already)


# -- async resources -------------------------------------------------------------------------


def _async_gen_exit(name: str, gen: Any, context: Context) -> CleanupFn:
    def exit_(exc: BaseException | None, _: object = None) -> Awaitable[None] | None:
        # The first step runs now: most generators finish without waiting, costing no coroutine.
        step = gen.__anext__() if exc is None else gen.athrow(exc)
        try:
            waiting = context.run(step.send, None)
        except StopAsyncIteration:
            return None  # finished normally (or swallowed `exc`, which the run still reports)
        except StopIteration:
            return _yielded_again(name, gen, context)
        except BaseException as raised:
            if raised is exc:
                return None  # re-raised the run's failure: the expected way to roll back
            raise
        return _async_gen_exit_rest(name, gen, exc, step, waiting, context)

    return exit_


async def _async_gen_exit_rest(
    name: str, gen: Any, exc: BaseException | None, step: Any, waiting: Any, context: Context
) -> None:
    try:
        await in_context(context, step, waiting)
    except StopAsyncIteration:
        return
    except BaseException as raised:
        if raised is exc:
            return
        raise
    await _yielded_again(name, gen, context)


async def _yielded_again(name: str, gen: Any, context: Context) -> None:
    await in_context(context, gen.aclose())
    raise RuntimeError(f"resource {name!r}: the async generator yielded more than once")


def _async_cm_exit(cm: Any, context: Context) -> CleanupFn:
    def exit_(exc: BaseException | None, _: object = None) -> Awaitable[None] | None:
        # A true return value would suppress `exc`; a resource cannot swallow the run's failure,
        # so it is ignored.
        args = (None, None, None) if exc is None else (type(exc), exc, exc.__traceback__)
        try:
            pending = _stepped_in(context, cm.__aexit__(*args))
        except BaseException as raised:
            if raised is not exc:
                raise  # re-raising the run's failure is not a cleanup failure of its own
            return None
        if isinstance(pending, _Ready):
            return None
        return _async_cm_exit_rest(pending, exc)

    return exit_


async def _async_cm_exit_rest(pending: Awaitable[object], exc: BaseException | None) -> None:
    try:
        await pending
    except BaseException as raised:
        if raised is not exc:
            raise
