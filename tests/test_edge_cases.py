"""SPEC section 9 edge cases that older libraries get wrong (and a few close relatives).

Jitter seeding and "CancelledError/KeyboardInterrupt/SystemExit are never retried; an
ExceptionGroup only if all its leaves are retryable" are in test_retry_timeout_fallback.py.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from typing import Literal

import pytest

from dagwire import (
    DagError,
    NodeCancelledError,
    NodeNotCompletedError,
    NodeStatus,
    build_dag,
)

CHAIN = 10_000


def notes(exc: BaseException) -> str:
    return " | ".join(getattr(exc, "__notes__", []))


async def forever() -> None:
    """Wait until cancelled; fail (rather than hang the suite) if nothing ever cancels it."""
    await asyncio.sleep(5)
    raise AssertionError("nothing cancelled this wait")


def not_cancelled() -> bool:
    """The calling task has no pending cancellation request (invoke did not leave one)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() == 0


class Fatal(BaseException):
    """A BaseException that is not an Exception, nor one asyncio knows about."""


# -- CancelledError raised by a node itself ------------------------------------------------


def cancelling_body(is_async: bool) -> Callable[..., object]:
    async def async_body(*_: object) -> int:
        await asyncio.sleep(0)
        raise asyncio.CancelledError

    def sync_body(*_: object) -> int:
        raise asyncio.CancelledError

    return async_body if is_async else sync_body


@pytest.mark.parametrize("is_async", [True, False], ids=["async", "sync"])
@pytest.mark.parametrize("position", ["root", "inner"])
async def test_body_raising_cancelled_error_itself_fails_and_dependents_are_skipped(
    is_async: bool, position: str
) -> None:
    log: list[str] = []
    with build_dag() as dag:
        upstream = dag.add_node(lambda: 1) if position == "inner" else None
        inputs = () if upstream is None else (upstream,)
        bad = dag.add_node(cancelling_body(is_async), *inputs, name="bad")
        dep = dag.add_node(lambda x: log.append("dep"), bad, name="dep")
        trans = dag.add_node(lambda x: log.append("trans"), dep, name="trans")
        ordered = dag.add_node(lambda: log.append("after"), after=[bad], name="ordered")
        joined = dag.join(bad, name="joined")
        other = dag.add_node(lambda: "independent", name="other")
    result = await dag.invoke(None, on_error="continue")
    assert not_cancelled()
    assert not result.ok
    assert result.status(bad) is NodeStatus.FAILED
    for skipped in (dep, trans, ordered, joined):
        assert result.status(skipped) is NodeStatus.SKIPPED
        with pytest.raises(NodeNotCompletedError, match="SKIPPED"):
            result[skipped]
    assert result[other] == "independent"
    assert log == []
    [failure] = result.errors
    assert failure.node == "bad"
    assert isinstance(failure.error, NodeCancelledError)
    assert isinstance(failure.error.__cause__, asyncio.CancelledError)
    with pytest.raises(NodeNotCompletedError) as info:
        result[bad]
    assert info.value.__cause__ is failure.error

    with pytest.raises(DagError) as err:
        await dag.invoke(None)
    assert isinstance(err.value.failures["bad"], NodeCancelledError)
    assert log == []


async def test_pre_hook_raising_cancelled_error_itself_fails_the_node() -> None:
    log: list[str] = []

    def pre() -> None:
        raise asyncio.CancelledError

    with build_dag() as dag:
        n = dag.add_node(
            lambda: log.append("body"), name="n", pre=pre, post=lambda: log.append("post")
        )
        dep = dag.add_node(lambda x: log.append("dep"), n)
    result = await dag.invoke(None, on_error="continue")
    assert log == ["post"]
    assert result.status(n) is NodeStatus.FAILED
    assert result.status(dep) is NodeStatus.SKIPPED
    [failure] = result.errors
    assert (failure.node, failure.phase) == ("n", "pre")
    assert isinstance(failure.error, NodeCancelledError)
    with pytest.raises(DagError):
        await dag.invoke(None)


@pytest.mark.parametrize("where", ["post", "resource"])
async def test_cleanup_raising_cancelled_error_itself_is_a_failure_not_a_cancellation(
    where: str,
) -> None:
    log: list[str] = []

    async def post() -> None:
        raise asyncio.CancelledError

    async def res() -> AsyncIterator[int]:
        yield 1
        raise asyncio.CancelledError

    with build_dag() as dag:
        if where == "post":
            n = dag.add_node(lambda: 1, name="n", post=post)
        else:
            n = dag.add_resource(res, name="n")
        dag.add_node(lambda x: None, n, post=lambda: log.append("other post"))
    result = await dag.invoke(None, on_error="continue")  # must not raise CancelledError
    assert not_cancelled()
    assert not result.ok
    [failure] = result.errors
    assert failure.node == "n"
    assert failure.phase == ("post" if where == "post" else "cleanup")
    assert isinstance(failure.error, NodeCancelledError)
    assert isinstance(failure.error.__cause__, asyncio.CancelledError)
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert isinstance(info.value.failures["n"], NodeCancelledError)
    assert log == ["other post", "other post"]


# -- BaseExceptions that are not Exceptions ------------------------------------------------


@pytest.mark.parametrize("fatal_type", [Fatal, KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("on_error", ["raise", "continue"])
async def test_base_exception_from_a_body_gets_cleanup_and_surfaces_intact(
    fatal_type: type[BaseException], on_error: Literal["raise", "continue"]
) -> None:
    log: list[str] = []
    fatal = fatal_type()
    started = asyncio.Event()

    def resource(name: str) -> Callable[[], AsyncIterator[str]]:
        async def gen() -> AsyncIterator[str]:
            try:
                yield name
            except BaseException as exc:
                log.append(f"{name} got {type(exc).__name__}{' (same)' if exc is fatal else ''}")
                raise
            log.append(f"{name} closed normally")

        return gen

    async def sibling(x: str) -> None:
        started.set()
        try:
            await forever()
        except asyncio.CancelledError:
            log.append("sibling cancelled")
            raise

    async def dies(x: str) -> None:
        await started.wait()
        raise fatal

    with build_dag() as dag:
        used = dag.add_resource(resource("used"))
        unrelated = dag.add_resource(resource("unrelated"))
        dag.add_node(sibling, unrelated, post=lambda: log.append("sibling post"))
        dag.add_node(dies, used, name="dies", post=lambda: log.append("dies post"))
    before = asyncio.all_tasks()
    with pytest.raises(fatal_type) as info:
        await dag.invoke(None, on_error=on_error)
    assert info.value is fatal
    assert asyncio.all_tasks() == before
    assert "sibling cancelled" in log
    assert "sibling post" in log
    assert "dies post" in log
    # The run was aborted: no resource closes as if it had succeeded, in either mode.
    assert f"used got {fatal_type.__name__} (same)" in log
    assert f"unrelated got {fatal_type.__name__} (same)" in log
    assert len(log) == 5
    assert "node 'dies' failed in body" in notes(fatal)


@pytest.mark.parametrize("fatal_type", [Fatal, KeyboardInterrupt, SystemExit])
async def test_base_exception_from_a_post_hook_surfaces_after_every_other_cleanup(
    fatal_type: type[BaseException],
) -> None:
    log: list[str] = []
    fatal = fatal_type()

    def post() -> None:
        raise fatal

    async def res() -> AsyncIterator[int]:
        try:
            yield 1
        finally:  # it hears its user's failure (a BaseException), which it re-raises
            log.append("resource closed")

    with build_dag() as dag:
        r = dag.add_resource(res)
        dag.add_node(lambda x: x, r, post=post)
        dag.add_node(lambda: None, post=lambda: log.append("other post"))
    with pytest.raises(fatal_type) as info:
        await dag.invoke(None)
    assert info.value is fatal
    assert sorted(log) == ["other post", "resource closed"]


async def test_keyboard_interrupt_in_pre_still_runs_post() -> None:
    log: list[str] = []

    def pre() -> None:
        raise KeyboardInterrupt

    with build_dag() as dag:
        dag.add_node(lambda: log.append("body"), pre=pre, post=lambda: log.append("post"))
    with pytest.raises(KeyboardInterrupt):
        await dag.invoke(None)
    assert log == ["post"]


# -- failures while being cancelled; cancelled siblings ------------------------------------


async def test_cancelled_siblings_are_not_failures_but_their_own_errors_are() -> None:
    started = asyncio.Event()
    first = ValueError("first")
    during_cancel = RuntimeError("raised while being cancelled")

    async def quiet() -> None:
        started.set()
        await forever()

    async def noisy() -> None:
        try:
            await forever()
        except asyncio.CancelledError:
            raise during_cancel from None

    async def failing() -> None:
        await started.wait()
        raise first

    with build_dag() as dag:
        dag.add_node(quiet, name="quiet")
        dag.add_node(noisy, name="noisy")
        dag.add_node(failing, name="failing")
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert info.value.failures == {"failing": first, "noisy": during_cancel}


# -- cleanup under repeated cancellation; overlapping cleanups -----------------------------


async def test_second_cancellation_during_cleanup_does_not_abort_it() -> None:
    log: list[str] = []
    started = asyncio.Event()
    in_cleanup = asyncio.Event()
    release = asyncio.Event()

    async def res() -> AsyncIterator[int]:
        try:
            yield 1
        finally:
            log.append("cleanup start")
            in_cleanup.set()
            await release.wait()
            await asyncio.sleep(0)
            log.append("cleanup end")

    async def body(x: int) -> None:
        started.set()
        await forever()

    with build_dag() as dag:
        r = dag.add_resource(res)
        dag.add_node(body, r, post=lambda: log.append("post"))
    before = asyncio.all_tasks()
    task = asyncio.create_task(dag.invoke(None))
    await started.wait()
    task.cancel()  # first cancellation: stops the run, starts the cleanup
    await in_cleanup.wait()
    for _ in range(3):  # second, third, fourth cancellation, while the cleanup waits
        task.cancel()
        await asyncio.sleep(0)
    assert not task.done()
    log.append("release")
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log == ["post", "cleanup start", "release", "cleanup end"]
    assert asyncio.all_tasks() == before


async def test_an_unrelated_cleanup_never_waits_for_a_slow_one() -> None:
    """The slow cleanup can only finish after the unrelated one has: if they were serialized
    (in either order) the slow one would hit its cleanup_timeout and the test would fail."""
    log: list[str] = []
    fast_done = asyncio.Event()

    async def slow(_: str) -> AsyncIterator[str]:
        yield "slow"
        log.append("slow start")
        await fast_done.wait()
        log.append("slow end")

    async def below_slow() -> AsyncIterator[str]:
        yield "below"
        log.append("below")

    async def fast() -> AsyncIterator[str]:
        yield "fast"
        await asyncio.sleep(0)
        log.append("fast end")
        fast_done.set()

    with build_dag() as dag:
        b = dag.add_resource(below_slow)
        dag.add_resource(slow, b, cleanup_timeout=2.0)
        dag.add_resource(fast, cleanup_timeout=2.0)
    result = await dag.invoke(None, on_error="continue")
    assert result.ok, result.errors
    assert log == ["slow start", "fast end", "slow end", "below"]


# -- 10,000-node chains --------------------------------------------------------------------


async def test_chain_of_resources_fails_at_the_end_and_cleans_up_in_reverse() -> None:
    order: list[int] = []
    boom = ValueError("end of the chain")
    limit = sys.getrecursionlimit()

    async def link(prev: int) -> AsyncIterator[int]:
        k = prev + 1
        try:
            yield k
        except ValueError as exc:
            order.append(k if exc is boom else -k)
            raise

    def last(x: int) -> None:
        raise boom

    with build_dag() as dag:
        node = dag.add_immediate_node(0)
        for k in range(1, CHAIN + 1):
            node = dag.add_resource(link, node, name=f"r{k}")
        dag.add_node(last, node, name="last")
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert info.value.exceptions == (boom,)
    assert order == list(range(CHAIN, 0, -1))
    assert sys.getrecursionlimit() == limit


def inc(x: int) -> int:
    return x + 1


def _post(order: list[int], k: int) -> Callable[[], None]:
    return lambda: order.append(k)


async def test_chain_of_nodes_with_post_hooks_fails_and_cleans_up_in_reverse() -> None:
    order: list[int] = []
    boom = KeyError("end")

    def last(x: int) -> None:
        raise boom

    with build_dag() as dag:
        node = dag.add_immediate_node(0)
        for k in range(1, CHAIN + 1):
            node = dag.add_node(inc, node, name=f"n{k}", post=_post(order, k))
        dag.add_node(last, node, name="last")
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert info.value.exceptions == (boom,)
    assert order == list(range(CHAIN, 0, -1))


async def test_chain_failing_at_the_start_skips_everything_in_continue_mode() -> None:
    def first() -> int:
        raise ValueError("start")

    with build_dag() as dag:
        head = dag.add_node(first, name="head")
        node = head
        for k in range(1, CHAIN):
            node = dag.add_node(inc, node, name=f"n{k}", post=lambda: None)
    result = await dag.invoke(None, on_error="continue")
    assert result.status(head) is NodeStatus.FAILED
    statuses = [result.status(n) for n in dag.nodes[2:]]
    assert len(statuses) == CHAIN - 1
    assert set(statuses) == {NodeStatus.SKIPPED}
