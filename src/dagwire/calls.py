"""The slow path: one call of a node that has options, or is a resource.

`call` runs the node's `pre=` hook (registering `post=`), then its attempts: each waits for the
limiters, asks the circuit breaker, runs the body (inline, in an executor, or entering a
resource) under the node's timeout; failed attempts are retried by the node's `Retry`; a final
failure may be covered by `fallback=`. Plain nodes never come here (see `scheduler`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import types
from asyncio import CancelledError
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import replace
from functools import partial
from inspect import isawaitable, iscoroutine
from typing import TYPE_CHECKING, Any, cast

from .cache import Cache
from .context import in_thread
from .definition import NO_FALLBACK, NodeKind, NodeOptions, NodeSpec
from .errors import NodeCancelledError, Skip
from .executors import Work, submit
from .lifecycle import call_hook, enter_resource, post_hook
from .plan import SLOW, Plan, Step
from .policies import CircuitBreaker, Limiter
from .report import Observer, log_event
from .status import NodeStatus
from .tasks import start_task

if TYPE_CHECKING:
    from .graph import Dag
    from .results import ExecutionResult
    from .scheduler import Run

__all__ = ["Stopped", "call", "debug_steps"]

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


async def call(run: Run, i: int) -> object:
    """Node i with its options: hooks, attempts (retry, timeout, breaker, limits), fallback."""
    spec = run.plan.specs[i]
    opts = spec.options or _DEFAULT_OPTIONS
    run.status[i] = _RUNNING
    if run.reporter is not None:
        run.reporter.node_began(i)
    try:
        if opts.pre is not None:
            if opts.post is not None:
                # post runs for every node whose pre started (without pre: see body()).
                run.add_cleanup(i, post_hook(opts.post, opts.post_takes_param, run))
            run.phase[i] = "pre"
            await call_hook(opts.pre, opts.pre_takes_param, run.params)
        run.phase[i] = "setup" if spec.kind is NodeKind.RESOURCE else "body"
        value: object
        if spec.kind is NodeKind.MAP:
            value = await map_items(run, i, spec, opts)
        elif opts.cache is None:
            value = await attempts(run, i, spec, opts, run.args(i))
        else:
            value = await shared(run, i, spec, opts, opts.cache)
    except Skip:
        if opts.fallback is NO_FALLBACK:
            raise
        value = opts.fallback  # a node with a fallback that skips takes the fallback value
    except Exception as exc:
        phase = run.phase.get(i, "body")
        if opts.fallback is NO_FALLBACK or run.aborted or phase == "pre":
            raise
        run.record(i, phase, exc, recovered=True)
        if run.reporter is not None:
            run.reporter.recovered(i, exc)
        if logger.isEnabledFor(logging.WARNING):
            logger.warning(
                "node %r failed (%r); using its fallback value",
                spec.name,
                exc,
                extra=_extra(run, i),
            )
        value = opts.fallback
    run.phase.pop(i, None)
    return value


async def shared(run: Run, i: int, spec: NodeSpec, opts: NodeOptions, cache: Cache) -> object:
    """A cached node whose value was not stored: join or start the call its `cache` shares
    between every run needing the same inputs (single-flight).

    The shared call outlives any one run that waits for it, so it runs detached from them all:
    no run's abort, limiter or events reach into it (each waiting run reports one attempt and
    its outcome, not the call's retries).
    """
    args = run.args(i)
    limiter = run.limiter  # max_concurrency=: waiting for the call counts as running
    if limiter is not None:
        await limiter.acquire()
    try:
        if run.aborted:
            raise Stopped
        if run.reporter is not None:
            run.reporter.attempt_started(i, 1)
        value, hit = await cache.get_or_call(
            args, partial(attempts, None, i, spec, opts, args), node=spec.name
        )
    finally:
        if limiter is not None:
            limiter.release()
    if hit and run.reporter is not None:
        run.reporter.cached(i)
    return value


async def map_items(run: Run, i: int, spec: NodeSpec, opts: NodeOptions) -> list[object]:
    """An `add_map` node: one call per item, at most `limit` at once, results in input order.

    Each item's call has the node's per-call options (timeout, retry, executor, breaker,
    limiter) and runs in a task of its own; the first item that finally fails cancels the rest.
    """
    first, *others = run.args(i)
    items = list(first)
    if _is_graph(spec.fn):  # each item runs the sub-graph, observed like this run
        graph = cast("Dag[Any]", spec.fn)
        spec = replace(spec, fn=partial(graph_call, graph, inherited_observers(run)))
    results: list[object] = [None] * len(items)
    window = opts.limit or max(len(items), 1)
    if run.reporter is not None:
        run.reporter.attempt_started(i, 1)

    async def one(k: int) -> None:
        reporter = run.reporter
        if reporter is not None:
            reporter.item_started(i, k)
        limiter = run.limiter  # max_concurrency=: every item's call is a body of the run
        try:
            if limiter is not None:
                await limiter.acquire()
            try:
                if run.aborted:
                    raise Stopped
                results[k] = await attempts(None, i, spec, opts, (items[k], *others))
            finally:
                if limiter is not None:
                    limiter.release()
        except CancelledError as exc:
            task = asyncio.current_task()
            if reporter is not None:
                reporter.item_ended(i, k, exc)
            if (task is not None and task.cancelling()) or isinstance(exc, Stopped):
                raise
            raise NodeCancelledError.wrapping(exc, f"item {k}") from None
        except BaseException as exc:
            if reporter is not None:
                reporter.item_ended(i, k, exc)
            raise
        if reporter is not None:
            reporter.item_ended(i, k, None)

    pending: dict[asyncio.Task[None], int] = {}
    failures: list[tuple[int, BaseException]] = []
    k = 0
    try:
        while not failures and (k < len(items) or pending):
            while k < len(items) and len(pending) < window:
                task = start_task(run, one(k), f"{spec.name}[{k}]")
                if task is not None:  # (None: it ran to its end eagerly)
                    pending[task] = k
                k += 1
            if pending:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                _collect(done, pending, failures)
    finally:
        for task in pending:
            task.cancel()  # after a failure, or when the node itself is cancelled
        await _settle(pending, failures)
    if failures:
        k, exc = min(failures, key=lambda failure: failure[0])
        exc.add_note(f"dagwire: item {k} (of {len(items)}) of map node {spec.name!r}")
        raise exc
    return results


def _collect(
    done: set[asyncio.Task[None]],
    pending: dict[asyncio.Task[None], int],
    failures: list[tuple[int, BaseException]],
) -> None:
    """Take finished item tasks out of `pending`, keeping their failures."""
    for task in done:
        k = pending.pop(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            failures.append((k, exc))


async def _settle(
    pending: dict[asyncio.Task[None], int], failures: list[tuple[int, BaseException]]
) -> None:
    """Wait for the item tasks still running (cancelled) to end: no task outlives the node."""
    while pending:
        try:
            done, _ = await asyncio.wait(pending)
        except CancelledError:
            continue  # cancelled again: the items still end first
        _collect(done, pending, failures)


async def attempts(
    run: Run | None, i: int, spec: NodeSpec, opts: NodeOptions, args: tuple[Any, ...]
) -> object:
    """The attempts of node i's body (`run` is None in a call a `Cache` shares)."""
    retry = opts.retry
    attempt = 1
    while True:
        try:
            return await attempt_once(run, i, spec, opts, args, attempt)
        except Exception as exc:  # BaseExceptions are never retried
            if (
                retry is None
                or attempt >= retry.attempts
                or (run is not None and run.aborted)
                or isinstance(exc, Skip)
                or not retry.should_retry(exc)
            ):
                raise
            delay = retry.delay(attempt)
            if run is not None:
                run.status[i] = NodeStatus.RETRYING
                if run.reporter is not None:
                    run.reporter.retrying(i, attempt, delay, exc)
            if logger.isEnabledFor(logging.WARNING):
                logger.warning(
                    "node %r attempt %d of %d failed (%r); retrying in %.3fs",
                    spec.name,
                    attempt,
                    retry.attempts,
                    exc,
                    delay,
                    extra=_extra(run, i) if run is not None else {"dagwire_node": spec.name},
                )
            await asyncio.sleep(delay)
            attempt += 1
            if run is not None:
                run.status[i] = _RUNNING
                run.attempts[i] = attempt


async def attempt_once(
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
        if run is not None:
            if run.aborted:  # woken (limiter slot, retry delay, pre) before the abort's cancel
                raise Stopped
            if run.reporter is not None:
                run.reporter.attempt_started(i, attempt)
        running = timed_body(run, i, spec, opts, args, work, attempt)
        breaker = opts.breaker
        if breaker is None:
            return await running
        return await guarded(run, i, breaker, running)
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


async def guarded(
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
    old = breaker.state
    try:
        value = await body
    except Exception:
        breaker.on_failure(ticket)
        _breaker_changed(run, i, old, breaker)
        raise
    except BaseException:
        breaker.on_abandoned(ticket)
        raise
    breaker.on_success(ticket)
    _breaker_changed(run, i, old, breaker)
    return value


def _breaker_changed(run: Run | None, i: int, old: Any, breaker: CircuitBreaker) -> None:
    new = breaker.state
    if new is not old and run is not None and run.reporter is not None:
        run.reporter.emit_breaker(i, old, new)


async def timed_body(
    run: Run | None,
    i: int,
    spec: NodeSpec,
    opts: NodeOptions,
    args: tuple[Any, ...],
    work: Work | None,
    attempt: int,
) -> object:
    if opts.timeout is None:
        return await body(run, i, spec, opts, args, work)
    limit = asyncio.timeout(opts.timeout)
    try:
        async with limit:
            return await body(run, i, spec, opts, args, work)
    except TimeoutError as exc:
        if limit.expired():  # ours, not one the body raised itself
            retry = opts.retry
            of = f" of {retry.attempts}" if retry is not None else ""
            exc.args = (
                f"node {spec.name!r} timed out after {opts.timeout}s (attempt {attempt}{of})",
            )
        raise


async def body(
    run: Run | None,
    i: int,
    spec: NodeSpec,
    opts: NodeOptions,
    args: tuple[Any, ...],
    work: Work | None,
) -> object:
    fn = spec.fn
    assert fn is not None
    if spec.kind is NodeKind.GRAPH and run is not None:
        fn = partial(graph_call, cast("Dag[Any]", fn), inherited_observers(run))
    if run is not None and opts.post is not None and opts.pre is None:
        # Without pre, post runs iff the body started: registered at the first attempt
        # that reaches the body (not while waiting for a limiter or refused by a breaker).
        teardown = run.teardown
        own = teardown.cleanups.get(i) if teardown is not None else None
        if not own or all(phase != "post" for phase, _ in own):
            run.add_cleanup(i, post_hook(opts.post, opts.post_takes_param, run))
    if spec.kind is NodeKind.RESOURCE:
        assert run is not None  # (resources are never cached)
        return await enter_resource(run, i, fn, args, opts.executor, work)
    if work is not None:
        assert opts.executor is not None
        context = None
        if opts.executor == "thread" or _is_thread_pool(opts.executor):
            context = contextvars.copy_context()  # like asyncio.to_thread: context travels
            if run is not None:
                context.run(in_thread, run.where(i))
        return await submit(work, opts.executor, fn, *args, context=context)
    if run is not None and run.debug:
        fn = blocking_watch(fn, spec.name, run.loop.slow_callback_duration)
    value = fn(*args)
    if isawaitable(value):
        value = await value
    return value


# -- sub-graphs ----------------------------------------------------------------------------


def _is_graph(fn: object) -> bool:
    from .graph import Dag  # (graph imports the run loop, which imports this module)

    return isinstance(fn, Dag)


def inherited_observers(run: Run) -> tuple[Observer, ...]:
    """What a sub-graph's run reports to besides its own observers: this run's observers (a
    trace or log of the outer run includes the inner nodes)."""
    if run.reporter is None:
        return ()
    return tuple(o for o in run.reporter.observers if o is not log_event)


def graph_call(
    graph: Dag[Any], observers: tuple[Observer, ...], params: object
) -> Awaitable[ExecutionResult[Any]]:
    """Run sub-graph `graph` with `params` as a node's body; its value is the result."""
    own = graph.observers
    return graph.invoke(params, observers=tuple(o for o in observers if o not in own))


def _is_thread_pool(executor: object) -> bool:
    from concurrent.futures import ThreadPoolExecutor

    return isinstance(executor, ThreadPoolExecutor)


def _extra(run: Run, i: int) -> dict[str, object]:
    return {
        "dagwire_dag": run.dag.name,
        "dagwire_run_id": run.run_id,
        "dagwire_node": run.plan.specs[i].name,
        "dagwire_attempt": run.attempts.get(i, 1),
    }


# -- asyncio debug mode: name the node that blocks the loop -----------------------------------


def debug_steps(
    steps: tuple[Step, ...], plan: Plan, loop: asyncio.AbstractEventLoop
) -> tuple[Step, ...]:
    """`steps` with every fast-path body wrapped by `blocking_watch` (debug runs only).

    The run loop and its modes stay the same, so debug runs exercise the same fast path.
    """
    limit = loop.slow_callback_duration
    return tuple(
        step if step[2] == SLOW else (blocking_watch(step[0], spec.name, limit), *step[1:])
        for step, spec in zip(steps, plan.specs, strict=True)
    )


def blocking_watch(fn: Callable[..., Any], name: str, limit: float) -> Callable[..., Any]:
    """`fn`, logging a warning naming the node whenever one synchronous stretch of it (the call,
    or one step of the coroutine it returns) holds the loop longer than `limit` seconds."""

    def watched(*args: Any) -> Any:
        started = time.perf_counter()
        try:
            value = fn(*args)
        finally:
            _check(name, started, limit)
        if iscoroutine(value):
            return _watch_steps(value, name, limit)
        return value

    return watched


@types.coroutine
def _watch_steps(
    coro: Coroutine[Any, Any, Any], name: str, limit: float
) -> Generator[Any, Any, Any]:
    send, throw = coro.send, coro.throw
    value: Any = None
    error: BaseException | None = None
    while True:
        started = time.perf_counter()
        try:
            yielded = send(value) if error is None else throw(error)
        except StopIteration as stop:
            _check(name, started, limit)
            return stop.value
        except BaseException:
            _check(name, started, limit)
            raise
        _check(name, started, limit)
        value = error = None
        try:
            value = yield yielded
        except BaseException as exc:
            error = exc


def _check(name: str, started: float, limit: float) -> None:
    took = time.perf_counter() - started
    if took > limit:
        logger.warning(
            "node %r blocked the event loop for %.3fs (longer than the loop's "
            "slow_callback_duration, %.3fs): timeouts cannot interrupt it; run blocking work "
            'with executor="thread"',
            name,
            took,
            limit,
            extra={"dagwire_node": name},
        )
