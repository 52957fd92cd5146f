"""Setups and their guaranteed cleanup: resources, pre/post hooks, and the cleanup phase.

Rules (SPEC section 4): every started setup is cleaned up exactly once, after the run's bodies
have finished, in reverse dependency order, independent cleanups concurrently; one failing
cleanup does not stop the others; the run's failure is thrown into still-open resources.
"""

# pyright: reportPrivateUsage=false
# (package-internal access between the graph, its handles, results and the run)

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import TYPE_CHECKING, Any, cast

from .errors import NodeCancelledError

if TYPE_CHECKING:
    from .scheduler import _Run

__all__ = [
    "Cleanup",
    "call_hook",
    "clean_node",
    "enter_resource",
    "logger",
    "post_hook",
    "run_cleanups",
]

logger = logging.getLogger("dagwire")

# A registered cleanup: called once with the exception to report to it (None on success).
Cleanup = tuple[str, Callable[[BaseException | None], Awaitable[None]]]


async def call_hook(hook: Callable[..., object], takes_param: bool, params: object) -> None:
    result = hook(params) if takes_param else hook()
    if inspect.isawaitable(result):
        await result


def post_hook(hook: Callable[..., object], takes_param: bool, run: _Run) -> Cleanup:
    async def post(_: BaseException | None) -> None:
        await call_hook(hook, takes_param, run.params)

    return ("post", post)


async def enter_resource(
    run: _Run, i: int, factory: Callable[..., object], args: tuple[Any, ...]
) -> object:
    """Set a resource up and register its exit; the value it yields/enters flows downstream."""
    name = run.plan.specs[i].name
    made = factory(*args)
    if inspect.isasyncgen(made):
        try:
            value = await anext(made)
        except StopAsyncIteration:
            raise RuntimeError(
                f"resource {name!r}: the async generator finished without yielding a value"
            ) from None
        run.add_cleanup(i, ("cleanup", _async_gen_exit(name, made)))
        return value
    if inspect.isgenerator(made):
        try:
            value = next(made)
        except StopIteration:
            raise RuntimeError(
                f"resource {name!r}: the generator finished without yielding a value"
            ) from None
        run.add_cleanup(i, ("cleanup", _gen_exit(name, made)))
        return value
    if isinstance(made, AbstractAsyncContextManager):
        entered = await cast(AbstractAsyncContextManager[object], made).__aenter__()
        run.add_cleanup(i, ("cleanup", _async_cm_exit(made)))
        return entered
    if isinstance(made, AbstractContextManager):
        entered = cast(AbstractContextManager[object], made).__enter__()
        run.add_cleanup(i, ("cleanup", _cm_exit(made)))
        return entered
    if inspect.isawaitable(made):
        close = getattr(made, "close", None)
        if close is not None:
            close()  # do not leave a never-awaited coroutine behind
    raise TypeError(
        f"resource {name!r}: the factory returned {made!r}; add_resource() needs an (async) "
        "generator function that yields once, or a callable returning an (async) context manager"
    )


def _async_gen_exit(name: str, gen: Any) -> Callable[[BaseException | None], Awaitable[None]]:
    async def exit_(exc: BaseException | None) -> None:
        try:
            if exc is None:
                await anext(gen)
            else:
                await gen.athrow(exc)
        except StopAsyncIteration:
            return  # finished normally (or swallowed `exc`, which the run still reports)
        except BaseException as raised:
            if raised is exc:
                return  # re-raised the run's failure: the expected way to roll back
            raise
        await gen.aclose()
        raise RuntimeError(f"resource {name!r}: the async generator yielded more than once")

    return exit_


def _gen_exit(name: str, gen: Any) -> Callable[[BaseException | None], Awaitable[None]]:
    async def exit_(exc: BaseException | None) -> None:
        try:
            if exc is None:
                next(gen)
            else:
                gen.throw(exc)
        except StopIteration:
            return
        except BaseException as raised:
            if raised is exc:
                return
            raise
        gen.close()
        raise RuntimeError(f"resource {name!r}: the generator yielded more than once")

    return exit_


def _async_cm_exit(cm: Any) -> Callable[[BaseException | None], Awaitable[None]]:
    async def exit_(exc: BaseException | None) -> None:
        # A true return value would suppress `exc`; a resource cannot swallow the run's failure,
        # so it is ignored.
        if exc is None:
            await cm.__aexit__(None, None, None)
            return
        try:
            await cm.__aexit__(type(exc), exc, exc.__traceback__)
        except BaseException as raised:
            if raised is not exc:
                raise  # re-raising the run's failure is not a cleanup failure of its own

    return exit_


def _cm_exit(cm: Any) -> Callable[[BaseException | None], Awaitable[None]]:
    async def exit_(exc: BaseException | None) -> None:
        if exc is None:
            cm.__exit__(None, None, None)
            return
        try:
            cm.__exit__(type(exc), exc, exc.__traceback__)
        except BaseException as raised:
            if raised is not exc:
                raise

    return exit_


def _run_failure(run: _Run) -> BaseException | None:
    """What a fail-fast, cancelled or timed-out run throws into every open resource."""
    if run.fail_fast and run.first_failure is not None:
        return run.first_failure
    # Continue mode stopped by a BaseException (KeyboardInterrupt, SystemExit, ...): the run was
    # aborted and its running nodes cancelled, so no resource may close as if all went well.
    fatal = next((e for e in run.failed.values() if not isinstance(e, Exception)), None)
    if fatal is not None:
        return fatal
    if run.cancelled is not None:
        return run.cancelled
    if run.timed_out:
        return TimeoutError(f"dag {run.dag.name!r} timed out")
    return None


async def clean_node(run: _Run, i: int, cleanups: list[Cleanup], exc: BaseException | None) -> None:
    """Undo node i's setups in reverse order; each bounded by its cleanup_timeout=, each failure
    recorded, none stopping the others."""
    options = run.plan.specs[i].options
    limit = options.cleanup_timeout if options is not None else None
    for phase, cleanup in reversed(cleanups):
        try:
            if limit is None:
                await cleanup(exc)
            else:
                async with asyncio.timeout(limit):
                    await cleanup(exc)
        except BaseException as err:
            if isinstance(err, asyncio.CancelledError):
                # Cleanups are never cancelled (shielded; cleanup_timeout= raises TimeoutError):
                # this one raised CancelledError by itself. It is a failure, and must not make
                # invoke() look cancelled (SPEC section 9).
                where = f"node {run.plan.specs[i].name!r}: its {phase}"
                err = NodeCancelledError.wrapping(err, where)
            run.record(i, phase, err)


async def run_cleanups(run: _Run) -> None:
    """Run every registered cleanup once, each after the cleanups of the nodes that use it.

    Walks the graph backwards with per-node counters of not-yet-released dependents, so
    independent cleanups overlap and the walk is O(nodes + edges), without recursion.
    """
    cleanups = run.cleanups or {}
    plan, loop = run.plan, asyncio.get_running_loop()
    deps = plan.deps
    n = plan.size
    remaining = [0] * n
    for ds in deps:
        for d in ds:
            remaining[d] += 1
    run_failure = _run_failure(run)
    # Continue mode: a resource hears of the failure of a node that depends on it.
    below: list[BaseException | None] = [None] * n
    failed = run.failed
    finished = loop.create_future()
    tasks: list[asyncio.Task[None]] = []
    outstanding = 0

    def release(i: int) -> None:
        """Node i is cleaned up (or had nothing to clean): its inputs may now go."""
        nonlocal outstanding
        stack = [i]
        while stack:
            j = stack.pop()
            heard = failed.get(j) or below[j]
            for d in deps[j]:
                if below[d] is None:
                    below[d] = heard
                remaining[d] -= 1
                if not remaining[d]:
                    if d in cleanups:
                        outstanding += 1
                        tasks.append(loop.create_task(clean(d)))
                    else:
                        stack.append(d)

    async def clean(i: int) -> None:
        nonlocal outstanding
        exc = run_failure if run_failure is not None else below[i]
        await clean_node(run, i, cleanups[i], exc)
        release(i)
        outstanding -= 1
        if not outstanding:
            finished.set_result(None)

    for i in [i for i in range(n) if not remaining[i]]:  # the sinks, taken before any release
        if i in cleanups:
            outstanding += 1
            tasks.append(loop.create_task(clean(i)))
        else:
            release(i)
    if outstanding:
        await finished
