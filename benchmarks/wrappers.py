"""Hand-written code with exactly the behaviour each node option promises: the wrappers the
floors of the option rows put around the node functions (``shapes.f``), and the resource they
enter. Stateful ones (``with_hooks``, ``entering``, ``entering_list``) take their run's state
first, for ``floor_state.py``; their ``end`` functions (``call_posts``, ``unwind``,
``close_list``) are the cleanup phase."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from shapes import NodeFn

TIMEOUT = 10.0
RETRY = 3
FALLBACK = 0


async def res(*xs: int) -> Any:
    """The resource of every resource row: yields what ``shapes.f`` returns."""
    yield sum(xs) + 1


def noop() -> None:
    """The pre= and post= hook: a sync no-op."""


def with_timeout(fn: NodeFn, limit: float = TIMEOUT) -> NodeFn:
    async def node(*xs: Any) -> Any:
        try:
            async with asyncio.timeout(limit):
                return await fn(*xs)
        except TimeoutError as exc:  # name the node, as dagwire does (never taken here)
            exc.args = (f"node timed out after {limit}s",)
            raise

    return node


def with_retry(fn: NodeFn, attempts: int = RETRY) -> NodeFn:
    """``Retry(attempts)``'s defaults: retried types, 0.1 s * 2**k capped at 30 s, jitter."""
    from dagwire import RetryableError

    on = (TimeoutError, ConnectionError, RetryableError)
    uniform = random.uniform

    async def node(*xs: Any) -> Any:
        attempt = 1
        while True:
            try:
                return await fn(*xs)
            except on:
                if attempt >= attempts:
                    raise
                await asyncio.sleep(min(0.1 * 2.0 ** (attempt - 1), 30.0) * uniform(0.5, 1.0))
                attempt += 1

    return node


def with_fallback(fn: NodeFn, value: Any = FALLBACK) -> NodeFn:
    async def node(*xs: Any) -> Any:
        try:
            return await fn(*xs)
        except Exception:
            return value

    return node


def with_hooks(fn: NodeFn, pre: Callable[[], object], post: Callable[[], object]) -> NodeFn:
    """A stateful node (``floor_state``): its run's state is the list of posts to call."""

    async def node(posts: list[Callable[[], object]], *xs: Any) -> Any:
        posts.append(post)  # before pre: post runs for every node whose pre started
        pre()
        return await fn(*xs)

    return node


async def call_posts(posts: list[Callable[[], object]], error: BaseException | None) -> None:
    """After the run: every post in reverse, none stopping the others, failures aggregated."""
    failures: list[Exception] = []
    for post in reversed(posts):
        try:
            post()
        except Exception as exc:
            failures.append(exc)
    if failures:
        raise ExceptionGroup("post hooks failed", failures)


def entering(factory: Callable[..., Any]) -> NodeFn:
    """A stateful node entering `factory`'s async generator on its run's AsyncExitStack."""
    cm = asynccontextmanager(factory)

    async def node(stack: AsyncExitStack, *xs: Any) -> Any:
        return await stack.enter_async_context(cm(*xs))

    return node


async def unwind(stack: AsyncExitStack, error: BaseException | None) -> None:
    """After the run: unwind the stack, throwing the run's failure into each generator."""
    if error is None:
        await stack.aclose()
    else:
        await stack.__aexit__(type(error), error, error.__traceback__)


def entering_list(factory: Callable[..., Any]) -> NodeFn:
    """The same without the stack: the run's state is a list of open generators."""

    async def node(gens: list[Any], *xs: Any) -> Any:
        gen = factory(*xs)
        value = await anext(gen)
        gens.append(gen)
        return value

    return node


async def close_list(gens: list[Any], error: BaseException | None) -> None:
    failures: list[BaseException] = []
    for gen in reversed(gens):
        try:
            if error is None:
                await anext(gen)
            else:
                await gen.athrow(error)
        except StopAsyncIteration:
            continue
        except BaseException as exc:
            if exc is not error:
                failures.append(exc)
            continue
        failures.append(RuntimeError("a resource yielded twice"))
    if failures:
        raise BaseExceptionGroup("cleanups failed", failures)
