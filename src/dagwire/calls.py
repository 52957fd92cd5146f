"""The slow path: one call of a node that has options, or is a resource.

`call` runs the node's `pre=` hook (registering `post=`), then its attempts; a final failure
may be covered by `fallback=`. `attempts` is the retry loop: an attempt of a node with only
`timeout=`/`retry=`/hooks calls the body right there (the common case, kept to one coroutine);
an attempt that must wait for limiters, ask a circuit breaker, run in an executor, enter a
resource or run a sub-graph goes through `guarded_attempt`. Plain nodes never come here (see
`scheduler`); cached nodes, `add_map` and sub-graphs build on this (see `composite`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from asyncio import CancelledError
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from inspect import isawaitable
from typing import TYPE_CHECKING, Any, Protocol, cast

from . import composite
from .blocking import blocking_watch
from .context import set_where
from .definition import NO_FALLBACK, NodeKind, NodeOptions, NodeSpec
from .errors import Skip
from .executors import Work, submit
from .lifecycle import Cleanup, enter_resource
from .policies import BreakerState, CircuitBreaker, Limiter, Retry
from .status import NodeStatus

if TYPE_CHECKING:
    from .graph import Dag
    from .scheduler import Run

__all__ = ["Stopped", "attempts", "call"]

logger = logging.getLogger("dagwire")

_DEFAULT_OPTIONS = NodeOptions()
_RUNNING = NodeStatus.RUNNING


class Stopped(CancelledError):
    """Raised by the run itself to stop a node that resumes after a fail-fast abort.

    An abort's cancellation reaches the nodes one loop iteration later (see `Run.abort`); a
    node that resumes in between (a limiter slot, a retry delay or a `pre` hook that ended)
    must not start its body: raise this. It counts as CANCELLED, never as a failure, unlike a
    CancelledError that a body raises by itself.
    """


def call(run: Run, i: int, args: tuple[Any, ...]) -> Awaitable[object]:
    """Node i, called with `args`, with its options: hooks, attempts (retry, timeout, breaker,
    limits), fallback. Returns what the run loop awaits: for most nodes the one coroutine of
    `attempts`.
    """
    spec = run.plan.specs[i]
    opts = spec.options or _DEFAULT_OPTIONS
    run.status[i] = _RUNNING
    if run.reporter is not None:
        run.reporter.node_began(i)
    if spec.kind is NodeKind.MAP or opts.cache is not None:
        return _composite(run, i, spec, opts, args)
    if opts.lean and spec.kind is NodeKind.CALL and run.reporter is None and run.limiter is None:
        return _lean(run, i, spec, opts, args)
    return attempts(run, i, spec, opts, args)


async def _lean(
    run: Run, i: int, spec: NodeSpec, opts: NodeOptions, args: tuple[Any, ...]
) -> object:
    fn: Callable[..., Any] | None = spec.fn
    assert fn is not None
    timeout, direct = opts.timeout, spec.is_async
    attempt = 1
    while True:
        try:
            if run.aborted:
                raise Stopped
            if timeout is None:
                if direct:  # an async body: nothing to inspect
                    return await fn(*args)
                value = fn(*args)
                return await value if isawaitable(value) else value
            value = fn(*args)
            if direct or isawaitable(value):
                limit = asyncio.timeout(timeout)
                try:
                    async with limit:
                        value = await value
                except TimeoutError as exc:
                    _name_timeout(exc, limit, spec, opts, attempt)
                    raise
            return value
        except Exception as exc:
            delay = _retry_delay(run, i, spec, opts.retry, attempt, exc)
            if delay is None:
                if not _recoverable(run, i, opts, exc):
                    raise
                return _recovered(run, i, spec, opts, exc)
            run.attempts[i] = attempt + 1  # (a cancel in the delay ends the attempt waited for)
            await asyncio.sleep(delay)
            attempt += 1
            run.status[i] = _RUNNING


async def _composite(
    run: Run, i: int, spec: NodeSpec, opts: NodeOptions, args: tuple[Any, ...]
) -> object:
    """A map node or a cached node (see `composite`), with the node's hooks and fallback."""
    try:
        if opts.pre is not None:
            try:
                pending = _start_pre(run, i, opts)
                if pending is not None:
                    await pending
            except BaseException:
                run.phase[i] = "pre"
                raise
        if spec.kind is NodeKind.MAP:
            return await composite.map_items(run, i, spec, opts, args)
        assert opts.cache is not None
        return await composite.shared(run, i, spec, opts, opts.cache, args)
    except Exception as exc:
        if not _recoverable(run, i, opts, exc):
            raise
        return _recovered(run, i, spec, opts, exc)


def _post(run: Run, i: int) -> Cleanup:
    post = run.plan.posts[i]
    assert post is not None
    return post


def _start_pre(run: Run, i: int, opts: NodeOptions) -> Awaitable[object] | None:
    """Call node i's `pre=` hook, registering its `post=` first: post runs for every node whose
    pre started (a node without pre gets its post when its body starts: see `attempts`).
    Returns what an async hook gives to await. (A failure is the caller's to mark phase
    "pre": only failures pay for it.)"""
    assert opts.pre is not None
    post = run.plan.posts[i]
    if post is not None:
        run.add_cleanup(i, post)
    started = opts.pre(run.params) if opts.pre_takes_param else opts.pre()
    return started if started is not None and isawaitable(started) else None


def _recoverable(run: Run, i: int, opts: NodeOptions, exc: Exception) -> bool:
    """Whether node i's `fallback=` covers `exc` (its last attempt's failure, or a Skip):
    always, but for a failing `pre` hook. (Also while a fail-fast run aborts: a failure at the
    same moment as the run's first one is still covered, never an unrecovered failure.)"""
    if opts.fallback is NO_FALLBACK:
        return False
    return isinstance(exc, Skip) or run.phase.get(i) != "pre"


def _recovered(run: Run, i: int, spec: NodeSpec, opts: NodeOptions, exc: Exception) -> object:
    """Node i takes its fallback value instead of failing; the failure is still reported."""
    if isinstance(exc, Skip):  # a node with a fallback that skips takes the fallback value
        run.phase.pop(i, None)
        return opts.fallback
    run.record(i, run.phase_of(i), exc, recovered=True)
    if run.reporter is not None:
        run.reporter.recovered(i, exc)
    if logger.isEnabledFor(logging.WARNING):
        logger.warning(
            "node %r failed (%r); using its fallback value", spec.name, exc, extra=run.log_extra(i)
        )
    return opts.fallback


class Listener(Protocol):
    """Hears the attempts of a call that is not one run's own (an `add_map` item, a `Cache`'s
    shared call): to report them and to tell `dagwire.current()` where it is."""

    def attempt_started(self, attempt: int) -> None: ...

    def retrying(self, attempt: int, delay: float, error: Exception) -> None: ...

    def log_extra(self, attempt: int) -> dict[str, object]: ...


async def attempts(
    run: Run | None,
    i: int,
    spec: NodeSpec,
    opts: NodeOptions,
    args: tuple[Any, ...],
    listener: Listener | None = None,
) -> object:
    """Node i's `pre=` hook and the attempts of its body with `args`, retried as its `retry=`
    says; a final failure its `fallback=` covers gives the fallback value.

    `run` is None in a call that is not one run's own (a `Cache`'s shared call, an `add_map`
    item): no run's abort, limiter, events or hooks reach into it, and failures propagate;
    `listener` hears its attempts.
    """
    fn: Callable[..., Any] | None = spec.fn
    assert fn is not None
    guarded = opts.guarded or (run is not None and run.limiter is not None)
    kind = spec.kind
    # await fn(*args) right away: an async body (of a node, or of each item of a map node)
    direct = spec.is_async and kind is not NodeKind.RESOURCE and kind is not NodeKind.GRAPH
    if run is not None:
        if opts.pre is not None:
            try:
                pending = _start_pre(run, i, opts)
                if pending is not None:
                    await pending
            except BaseException as exc:  # (a pre hook's failure is the node's, not covered)
                run.phase[i] = "pre"
                if not isinstance(exc, Exception) or not _recoverable(run, i, opts, exc):
                    raise
                return _recovered(run, i, spec, opts, exc)
        if not guarded:
            if opts.post is not None and opts.pre is None:
                run.add_cleanup(i, _post(run, i))
            if run.debug and (kind is NodeKind.CALL or kind is NodeKind.JOIN):  # a body's call
                fn = blocking_watch(
                    fn, spec.name, run.loop.slow_callback_duration, run.log_extra(i)
                )
    timeout = opts.timeout
    attempt = 1
    while True:
        try:
            if run is not None:
                if run.aborted:  # woken (a retry delay, pre) before the abort's cancel arrived
                    raise Stopped
                if run.reporter is not None:
                    run.reporter.attempt_started(i, attempt)
            elif listener is not None:
                listener.attempt_started(attempt)
            if guarded:
                value = await guarded_attempt(run, i, spec, opts, args, attempt)
            elif direct and timeout is None:
                value = await fn(*args)
            else:
                if kind is NodeKind.RESOURCE:
                    assert run is not None  # (resources are never shared)
                    value = enter_resource(run, i, fn, args, None, None)
                elif kind is NodeKind.GRAPH and run is not None:
                    graph = cast("Dag[Any]", fn)
                    value = composite.graph_call(graph, composite.inherited_observers(run), *args)
                else:
                    value = fn(*args)
                if isawaitable(value):
                    if timeout is None:
                        value = await value
                    else:
                        limit = asyncio.timeout(timeout)
                        try:
                            async with limit:
                                value = await value
                        except TimeoutError as exc:
                            _name_timeout(exc, limit, spec, opts, attempt)
                            raise
            return value
        except Exception as exc:  # BaseExceptions are never retried
            delay = _retry_delay(run, i, spec, opts.retry, attempt, exc, listener)
            if delay is None:
                if run is None or not _recoverable(run, i, opts, exc):
                    raise
                return _recovered(run, i, spec, opts, exc)
            if run is not None:  # (a cancel in the delay ends the attempt waited for)
                run.attempts[i] = attempt + 1
            await asyncio.sleep(delay)
            attempt += 1
            if run is not None:
                run.status[i] = _RUNNING


def _retry_delay(
    run: Run | None,
    i: int,
    spec: NodeSpec,
    retry: Retry | None,
    attempt: int,
    exc: Exception,
    listener: Listener | None = None,
) -> float | None:
    """Seconds to wait before retrying after `exc`, or None when it is not retried."""
    if (
        retry is None
        or attempt >= retry.attempts
        or (run is not None and run.aborted)
        or isinstance(exc, Skip)
        or not retry.should_retry(exc)
    ):
        return None
    delay = retry.delay(attempt)
    if run is not None:
        run.status[i] = NodeStatus.RETRYING
        if run.reporter is not None:
            run.reporter.retrying(i, attempt, delay, exc)
        extra = run.log_extra(i)
    elif listener is not None:
        listener.retrying(attempt, delay, exc)
        extra = listener.log_extra(attempt)
    else:
        extra = {"dagwire_node": spec.name}
    if logger.isEnabledFor(logging.WARNING):
        logger.warning(
            "node %r attempt %d of %d failed (%r); retrying in %.3fs",
            spec.name,
            attempt,
            retry.attempts,
            exc,
            delay,
            extra=extra,
        )
    return delay


def _name_timeout(
    exc: TimeoutError, limit: asyncio.Timeout, spec: NodeSpec, opts: NodeOptions, attempt: int
) -> None:
    """Make the `TimeoutError` of an expired node timeout say which node, limit and attempt."""
    if limit.expired():  # ours, not one the body raised itself
        of = f" of {opts.retry.attempts}" if opts.retry is not None else ""
        exc.args = (f"node {spec.name!r} timed out after {opts.timeout}s (attempt {attempt}{of})",)


# -- attempts that wait for limiters, ask a breaker, or do more than call ---------------------


async def guarded_attempt(
    run: Run | None,
    i: int,
    spec: NodeSpec,
    opts: NodeOptions,
    args: tuple[Any, ...],
    attempt: int,
) -> object:
    per_run = run.limiter if run is not None else None
    limiters = [
        lim for lim in (per_run, opts.limiter) if lim is not None and spec.kind is not NodeKind.JOIN
    ]
    for k, lim in enumerate(limiters):
        try:
            await lim.acquire()
        except BaseException:
            for held in limiters[:k]:
                held.release()
            raise
    work = Work() if opts.executor is not None else None
    try:
        if run is not None and run.aborted:  # woken by a limiter slot after an abort
            raise Stopped
        running = _timed_body(run, i, spec, opts, args, work, attempt)
        breaker = opts.breaker
        if breaker is None:
            return await running
        return await _through_breaker(run, i, breaker, running)
    finally:
        if limiters:
            _release_when_stopped(limiters, work)


def _release_when_stopped(limiters: list[Limiter], work: Work | None) -> None:
    """A slot is held until the body has really stopped: a thread that outlived its attempt
    (a timeout, a cancellation) keeps its slots until it ends."""

    def release() -> None:
        for lim in limiters:
            lim.release()

    if work is None:
        release()
    else:
        work.when_stopped(release)


async def _through_breaker(
    run: Run | None, i: int, breaker: CircuitBreaker, body: Coroutine[Any, Any, object]
) -> object:
    """Run `body` through `breaker`; report the state changes this call causes."""
    old = breaker.state
    try:
        ticket = breaker.before_call()
    except BaseException:
        body.close()
        _breaker_changed(run, i, old, breaker)
        raise
    _breaker_changed(run, i, old, breaker)
    try:
        value = await body
    except Exception:
        old = breaker.state  # (other runs may have changed it meanwhile: not this call's doing)
        breaker.on_failure(ticket)
        _breaker_changed(run, i, old, breaker)
        raise
    except BaseException:
        breaker.on_abandoned(ticket)
        raise
    old = breaker.state
    breaker.on_success(ticket)
    _breaker_changed(run, i, old, breaker)
    return value


def _breaker_changed(run: Run | None, i: int, old: BreakerState, breaker: CircuitBreaker) -> None:
    new = breaker.state
    if new is not old and run is not None and run.reporter is not None:
        run.reporter.emit_breaker(i, old, new)


async def _timed_body(
    run: Run | None,
    i: int,
    spec: NodeSpec,
    opts: NodeOptions,
    args: tuple[Any, ...],
    work: Work | None,
    attempt: int,
) -> object:
    if opts.timeout is None:
        return await _guarded_body(run, i, spec, opts, args, work)
    limit = asyncio.timeout(opts.timeout)
    try:
        async with limit:
            return await _guarded_body(run, i, spec, opts, args, work)
    except TimeoutError as exc:
        _name_timeout(exc, limit, spec, opts, attempt)
        raise


async def _guarded_body(
    run: Run | None,
    i: int,
    spec: NodeSpec,
    opts: NodeOptions,
    args: tuple[Any, ...],
    work: Work | None,
) -> object:
    fn = spec.fn
    assert fn is not None
    if run is not None and opts.post is not None and opts.pre is None:
        # Without pre, post runs iff the body started: registered at the first attempt
        # that reaches the body (not while waiting for a limiter or refused by a breaker).
        teardown = run.teardown
        own = teardown.cleanups.get(i) if teardown is not None else None
        if not own or all(cleanup[0] != "post" for cleanup in own):
            run.add_cleanup(i, _post(run, i))
    if spec.kind is NodeKind.RESOURCE:
        assert run is not None  # (resources are never shared)
        return await enter_resource(run, i, fn, args, opts.executor, work)
    if spec.kind is NodeKind.GRAPH and run is not None:
        graph = cast("Dag[Any]", fn)
        fn = partial(composite.graph_call, graph, composite.inherited_observers(run))
    if work is not None:
        assert opts.executor is not None
        context = None
        if opts.executor == "thread" or _is_thread_pool(opts.executor):
            context = contextvars.copy_context()  # like asyncio.to_thread: context travels
            if run is not None:
                context.run(set_where, run.where(i))
        return await submit(work, opts.executor, fn, *args, context=context)
    if run is not None and run.debug:
        limit = run.loop.slow_callback_duration
        fn = blocking_watch(fn, spec.name, limit, run.log_extra(i))
    value = fn(*args)
    if isawaitable(value):
        value = await value
    return value


def _is_thread_pool(executor: object) -> bool:
    from concurrent.futures import ThreadPoolExecutor

    return isinstance(executor, ThreadPoolExecutor)
