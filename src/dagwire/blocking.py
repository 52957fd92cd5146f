"""Asyncio debug mode: name the node whose inline code blocks the event loop.

A timeout cannot interrupt code that does not await (a sync body, or an `async def` that blocks
between awaits); asyncio's debug mode reports slow callbacks by task, which for a chain of nodes
is the wrong name. In debug runs, each inline body is watched and a warning names the node.
"""

from __future__ import annotations

import asyncio
import logging
import time
import types
from collections.abc import Callable, Coroutine, Generator
from inspect import iscoroutine
from typing import Any

from .plan import SLOW, Plan, Step

__all__ = ["blocking_watch", "debug_steps"]

logger = logging.getLogger("dagwire")


def debug_steps(
    steps: tuple[Step, ...],
    plan: Plan,
    loop: asyncio.AbstractEventLoop,
    extra: dict[str, object],
) -> tuple[Step, ...]:
    """`steps` with every fast-path body wrapped by `blocking_watch` (debug runs only).

    The run loop and its modes stay the same, so debug runs exercise the same fast path.
    `extra`: the run's log record fields.
    """
    limit = loop.slow_callback_duration
    return tuple(
        step
        if step[2] == SLOW
        else (
            blocking_watch(
                step[0],
                spec.name,
                limit,
                {**extra, "dagwire_node": spec.name, "dagwire_attempt": 1},
            ),
            *step[1:],
        )
        for step, spec in zip(steps, plan.specs, strict=True)
    )


def blocking_watch(
    fn: Callable[..., Any], name: str, limit: float, extra: dict[str, object]
) -> Callable[..., Any]:
    """`fn`, logging a warning naming the node whenever one synchronous stretch of it (the call,
    or one step of the coroutine it returns) holds the loop longer than `limit` seconds;
    `extra`: the record's fields."""

    def watched(*args: Any) -> Any:
        started = time.perf_counter()
        try:
            value = fn(*args)
        finally:
            _check(name, started, limit, extra)
        if iscoroutine(value):
            return _watch_steps(value, name, limit, extra)
        return value

    return watched


@types.coroutine
def _watch_steps(
    coro: Coroutine[Any, Any, Any], name: str, limit: float, extra: dict[str, object]
) -> Generator[Any, Any, Any]:
    send, throw = coro.send, coro.throw
    value: Any = None
    error: BaseException | None = None
    while True:
        started = time.perf_counter()
        try:
            yielded = send(value) if error is None else throw(error)
        except StopIteration as stop:
            _check(name, started, limit, extra)
            return stop.value
        except BaseException:
            _check(name, started, limit, extra)
            raise
        _check(name, started, limit, extra)
        value = error = None
        try:
            value = yield yielded
        except BaseException as exc:
            error = exc


def _check(name: str, started: float, limit: float, extra: dict[str, object]) -> None:
    took = time.perf_counter() - started
    if took > limit:
        logger.warning(
            "node %r blocked the event loop for %.3fs (longer than the loop's "
            "slow_callback_duration, %.3fs): timeouts cannot interrupt it; run blocking work "
            'with executor="thread"',
            name,
            took,
            limit,
            extra=extra,
        )
