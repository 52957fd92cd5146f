"""SPEC section 4: pre/post hooks, guaranteed cleanup, cleanup order, cancellation and shielding.

Every ordering assertion here is made on recorded events, never on wall-clock durations.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import pytest

from dagwire import (
    DagError,
    Limiter,
    NodeNotCompletedError,
    NodeStatus,
    Retry,
    build_dag,
)


@dataclass
class Params:
    log: list[str] = field(default_factory=list[str])


def notes(exc: BaseException) -> str:
    return " | ".join(getattr(exc, "__notes__", []))


async def forever() -> None:
    """Wait until cancelled; fail (rather than hang the suite) if nothing ever cancels it."""
    await asyncio.sleep(5)
    raise AssertionError("nothing cancelled this wait")


def describe(p: object) -> str:
    return "param" if isinstance(p, Params) else repr(p)


def make_hook(kind: str, log: list[str], label: str) -> Callable[..., object]:
    """A pre/post hook of one of the four accepted shapes, logging what it received."""
    if kind == "sync_param":

        def sync_param(p: Params) -> None:
            log.append(f"{label}:{describe(p)}")

        return sync_param
    if kind == "sync_none":

        def sync_none() -> None:
            log.append(f"{label}:none")

        return sync_none
    if kind == "async_param":

        async def async_param(p: Params) -> None:
            await asyncio.sleep(0)
            log.append(f"{label}:{describe(p)}")

        return async_param

    async def async_none() -> None:
        await asyncio.sleep(0)
        log.append(f"{label}:none")

    return async_none


HOOK_KINDS = ["sync_param", "sync_none", "async_param", "async_none"]

# -- pre/post hooks ------------------------------------------------------------------------


@pytest.mark.parametrize("pre_kind", HOOK_KINDS)
@pytest.mark.parametrize("post_kind", HOOK_KINDS)
async def test_hook_shapes_sync_async_with_or_without_param(pre_kind: str, post_kind: str) -> None:
    log: list[str] = []

    def up_fn() -> int:
        log.append("up")
        return 1

    with build_dag(Params) as dag:
        up = dag.add_node(up_fn)

        async def body(x: int) -> int:
            log.append("body")
            return x + 1

        node = dag.add_node(
            body,
            up,
            pre=make_hook(pre_kind, log, "pre"),
            post=make_hook(post_kind, log, "post"),
        )
    result = await dag.invoke(Params())
    assert result[node] == 2
    expect_pre = "pre:param" if pre_kind.endswith("param") else "pre:none"
    expect_post = "post:param" if post_kind.endswith("param") else "post:none"
    assert log == ["up", expect_pre, "body", expect_post]


async def test_hooks_receive_the_invoke_parameter_itself() -> None:
    seen: list[object] = []
    with build_dag(Params) as dag:
        dag.add_node(lambda: None, pre=seen.append, post=seen.append)
    params = Params()
    await dag.invoke(params)
    assert len(seen) == 2
    assert seen[0] is params
    assert seen[1] is params


async def test_pre_runs_after_inputs_are_ready_and_right_before_the_body() -> None:
    log: list[str] = []

    async def slow() -> int:
        await asyncio.sleep(0.01)
        log.append("slow done")
        return 1

    async def fast() -> int:
        log.append("fast done")
        return 2

    async def pre() -> None:
        log.append("pre")

    async def body(a: int, b: int) -> int:
        log.append("body")
        return a + b

    with build_dag() as dag:
        a = dag.add_node(slow)
        b = dag.add_node(fast)
        c = dag.add_node(body, a, b, pre=pre)
    result = await dag.invoke(None)
    assert result[c] == 3
    assert log.index("pre") > log.index("slow done")
    assert log.index("pre") > log.index("fast done")
    assert log.index("body") == log.index("pre") + 1


async def test_post_runs_when_pre_raised_and_the_body_never_ran() -> None:
    log: list[str] = []
    boom = ValueError("pre failed")

    def pre() -> None:
        log.append("pre")
        raise boom

    with build_dag() as dag:
        dag.add_node(lambda: log.append("body"), name="n", pre=pre, post=lambda: log.append("post"))
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert log == ["pre", "post"]
    assert info.value.failures["n"] is boom
    assert list(info.value.exceptions) == [boom]
    assert "node 'n' failed in pre" in notes(boom)


async def test_post_runs_when_the_body_failed() -> None:
    log: list[str] = []

    def body() -> None:
        log.append("body")
        raise KeyError("x")

    with build_dag() as dag:
        dag.add_node(body, name="n", pre=lambda: log.append("pre"), post=lambda: log.append("post"))
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert log == ["pre", "body", "post"]
    assert isinstance(info.value.failures["n"], KeyError)
    assert "node 'n' failed in body" in notes(info.value.failures["n"])


@pytest.mark.parametrize("roots", [1, 2], ids=["single_root_inline", "several_roots"])
async def test_post_runs_when_pre_is_cancelled_by_the_caller(roots: int) -> None:
    log: list[str] = []
    started = asyncio.Event()

    async def pre() -> None:
        log.append("pre")
        started.set()
        await forever()

    with build_dag() as dag:
        dag.add_node(lambda: log.append("body"), pre=pre, post=lambda: log.append("post"))
        for _ in range(roots - 1):
            dag.add_node(forever)
    before = asyncio.all_tasks()
    task = asyncio.create_task(dag.invoke(None))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log == ["pre", "post"]
    assert asyncio.all_tasks() == before


async def test_post_runs_when_pre_is_cancelled_by_a_failing_sibling() -> None:
    log: list[str] = []
    started = asyncio.Event()

    async def pre() -> None:
        log.append("pre")
        started.set()
        await forever()

    async def failing() -> None:
        await started.wait()
        raise ValueError("sibling")

    with build_dag() as dag:
        dag.add_node(
            lambda: log.append("body"), name="hooked", pre=pre, post=lambda: log.append("post")
        )
        dag.add_node(failing, name="failing")
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert log == ["pre", "post"]
    # the cancelled sibling is not a failure
    assert set(info.value.failures) == {"failing"}


async def test_post_runs_when_the_invoke_times_out_during_pre() -> None:
    log: list[str] = []

    async def pre() -> None:
        log.append("pre")
        await forever()

    with build_dag() as dag:
        dag.add_node(lambda: log.append("body"), pre=pre, post=lambda: log.append("post"))
    with pytest.raises(TimeoutError):
        await dag.invoke(None, timeout=0.02)
    assert log == ["pre", "post"]


async def test_pre_is_not_bounded_by_the_node_timeout() -> None:
    """`timeout=` applies to the body (SPEC section 10), not to pre."""
    log: list[str] = []

    async def pre() -> None:
        await asyncio.sleep(0.05)
        log.append("pre")

    async def body() -> int:
        log.append("body")
        return 7

    with build_dag() as dag:
        n = dag.add_node(body, pre=pre, timeout=0.01)
    result = await dag.invoke(None)
    assert result[n] == 7
    assert log == ["pre", "body"]


async def test_post_without_pre_runs_when_the_body_started_and_failed() -> None:
    log: list[str] = []

    async def body() -> None:
        log.append("body")
        raise ValueError("x")

    with build_dag() as dag:
        dag.add_node(body, post=lambda: log.append("post"))
    with pytest.raises(DagError):
        await dag.invoke(None)
    assert log == ["body", "post"]


async def test_post_without_pre_runs_when_the_body_was_cancelled() -> None:
    log: list[str] = []
    started = asyncio.Event()

    async def body() -> None:
        log.append("body")
        started.set()
        await forever()

    async def failing() -> None:
        await started.wait()
        raise ValueError("x")

    with build_dag() as dag:
        dag.add_node(body, post=lambda: log.append("post"))
        dag.add_node(failing)
    with pytest.raises(DagError):
        await dag.invoke(None)
    assert log == ["body", "post"]


async def test_post_without_pre_does_not_run_when_the_body_never_started() -> None:
    """A node waiting for a limiter slot when the run fails never started its body: no post."""
    log: list[str] = []
    holding = asyncio.Event()
    limiter = Limiter(1)

    async def holder() -> None:
        log.append("holder")
        holding.set()
        await forever()

    async def failing() -> None:
        await holding.wait()
        for _ in range(3):  # let `waiting` reach the limiter queue
            await asyncio.sleep(0)
        raise ValueError("x")

    with build_dag() as dag:
        dag.add_node(holder, limiter=limiter)
        gate = dag.add_node(holding.wait)  # roots have no start order: queue up after holder
        dag.add_node(
            lambda: log.append("waiting body"),
            limiter=limiter,
            post=lambda: log.append("waiting post"),
            after=gate,
        )
        dag.add_node(failing)
    with pytest.raises(DagError):
        await dag.invoke(None)
    assert log == ["holder"]
    assert limiter.in_use == 0


async def test_node_that_never_started_gets_neither_pre_nor_post() -> None:
    log: list[str] = []

    def failing() -> int:
        raise ValueError("x")

    with build_dag() as dag:
        bad = dag.add_node(failing)
        dep = dag.add_node(
            lambda x: log.append("body"),
            bad,
            pre=lambda: log.append("pre"),
            post=lambda: log.append("post"),
        )
        after_dep = dag.add_node(
            lambda: log.append("body2"),
            after=[dep],
            post=lambda: log.append("post2"),
        )
    result = await dag.invoke(None, on_error="continue")
    assert log == []
    assert result.status(dep) is NodeStatus.SKIPPED
    assert result.status(after_dep) is NodeStatus.SKIPPED
    with pytest.raises(DagError):
        await dag.invoke(None)
    assert log == []


async def test_node_downstream_of_a_cancelled_node_gets_neither_in_fail_fast_mode() -> None:
    log: list[str] = []
    started = asyncio.Event()

    async def slow() -> int:
        started.set()
        await forever()
        return 1

    async def failing() -> None:
        await started.wait()
        raise ValueError("x")

    with build_dag() as dag:
        s = dag.add_node(slow)
        dag.add_node(
            lambda x: log.append("body"),
            s,
            pre=lambda: log.append("pre"),
            post=lambda: log.append("post"),
        )
        dag.add_node(failing)
    with pytest.raises(DagError):
        await dag.invoke(None)
    assert log == []


async def test_pre_and_post_run_once_per_node_not_per_attempt() -> None:
    log: list[str] = []
    calls = 0

    async def flaky() -> int:
        nonlocal calls
        calls += 1
        log.append(f"body{calls}")
        if calls < 3:
            raise ConnectionError("again")
        return calls

    with build_dag() as dag:
        n = dag.add_node(
            flaky,
            retry=Retry(attempts=3, initial_delay=0.001),
            pre=lambda: log.append("pre"),
            post=lambda: log.append("post"),
        )
    result = await dag.invoke(None)
    assert result[n] == 3
    assert log == ["pre", "body1", "body2", "body3", "post"]


async def test_pre_and_post_once_when_every_attempt_fails() -> None:
    log: list[str] = []

    async def always() -> None:
        log.append("body")
        raise ConnectionError("down")

    with build_dag() as dag:
        dag.add_node(
            always,
            retry=Retry(attempts=4, initial_delay=0.001),
            pre=lambda: log.append("pre"),
            post=lambda: log.append("post"),
        )
    with pytest.raises(DagError):
        await dag.invoke(None)
    assert log == ["pre", "body", "body", "body", "body", "post"]


async def test_post_without_pre_runs_once_however_many_attempts() -> None:
    log: list[str] = []
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        log.append("body")
        if calls < 3:
            raise TimeoutError("again")

    with build_dag() as dag:
        dag.add_node(
            flaky, retry=Retry(attempts=3, initial_delay=0.001), post=lambda: log.append("post")
        )
    await dag.invoke(None)
    assert log == ["body", "body", "body", "post"]


async def test_failing_resource_cleanup_does_not_stop_the_same_nodes_post() -> None:
    log: list[str] = []
    boom = ValueError("close failed")

    async def res() -> AsyncIterator[int]:
        yield 1
        raise boom

    def bad_post() -> None:
        log.append("post")
        raise KeyError("post failed too")

    with build_dag() as dag:
        dag.add_resource(res, name="r", post=bad_post)
    result = await dag.invoke(None, on_error="continue")
    assert log == ["post"]
    assert [(f.node, f.phase) for f in result.errors] == [("r", "cleanup"), ("r", "post")]
    assert result.errors[0].error is boom


async def test_failing_post_is_reported_with_its_phase_and_others_still_run() -> None:
    log: list[str] = []
    boom = RuntimeError("post failed")

    def bad_post() -> None:
        raise boom

    with build_dag() as dag:
        a = dag.add_node(lambda: 1, name="a", post=bad_post)
        dag.add_node(lambda x: x, a, name="b", post=lambda: log.append("b post"))
        dag.add_node(lambda: 2, name="c", post=lambda: log.append("c post"))
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert sorted(log) == ["b post", "c post"]
    assert list(info.value.exceptions) == [boom]
    assert "node 'a' failed in post" in notes(boom)


# -- cleanup order -------------------------------------------------------------------------


async def test_cleanups_run_after_every_body_of_the_run_has_finished() -> None:
    log: list[str] = []

    async def res() -> AsyncIterator[int]:
        yield 1
        log.append("res cleanup")

    async def slow_unrelated() -> None:
        await asyncio.sleep(0.02)
        log.append("slow body done")

    with build_dag() as dag:
        r = dag.add_resource(res)
        dag.add_node(lambda x: log.append("user done"), r, post=lambda: log.append("user post"))
        dag.add_node(slow_unrelated, post=lambda: log.append("slow post"))
    await dag.invoke(None)
    body_end = log.index("slow body done")
    assert log.index("user done") < body_end
    for cleanup in ("res cleanup", "user post", "slow post"):
        assert log.index(cleanup) > body_end


async def test_cleanup_in_reverse_dependency_order() -> None:
    log: list[str] = []

    def resource(name: str) -> Callable[..., AsyncIterator[str]]:
        async def gen(*_: object) -> AsyncIterator[str]:
            log.append(f"open {name}")
            yield name
            await asyncio.sleep(0)
            log.append(f"close {name}")

        return gen

    with build_dag() as dag:
        db = dag.add_resource(resource("db"), name="db")
        left = dag.add_resource(resource("left"), db, name="left")
        right = dag.add_resource(resource("right"), db, name="right")
        top = dag.add_resource(resource("top"), left, right, name="top")
        dag.add_node(lambda t: None, top, name="user", post=lambda: log.append("close user"))
    await dag.invoke(None)
    closes = [e for e in log if e.startswith("close")]
    assert closes[0] == "close user"
    assert closes[1] == "close top"
    assert set(closes[2:4]) == {"close left", "close right"}
    assert closes[4] == "close db"
    assert len(closes) == 5


async def test_after_dependency_also_orders_cleanup() -> None:
    log: list[str] = []

    async def lock() -> AsyncIterator[None]:
        yield None
        log.append("unlock")

    with build_dag() as dag:
        held = dag.add_resource(lock)
        dag.add_node(lambda: None, after=[held], post=lambda: log.append("user post"))
    await dag.invoke(None)
    assert log == ["user post", "unlock"]


async def test_independent_cleanups_run_concurrently() -> None:
    """Each cleanup waits until the other one has started: only concurrent cleanups finish."""
    log: list[str] = []
    barrier = asyncio.Barrier(2)

    def resource(name: str) -> Callable[[], AsyncIterator[str]]:
        async def gen() -> AsyncIterator[str]:
            yield name
            log.append(f"start {name}")
            await barrier.wait()
            log.append(f"end {name}")

        return gen

    with build_dag() as dag:
        dag.add_resource(resource("a"), cleanup_timeout=2.0)
        dag.add_resource(resource("b"), cleanup_timeout=2.0)
    await dag.invoke(None)
    assert set(log[:2]) == {"start a", "start b"}
    assert set(log[2:]) == {"end a", "end b"}


async def test_a_failing_cleanup_does_not_stop_the_others_and_all_are_aggregated() -> None:
    log: list[str] = []
    body_error = RuntimeError("body")
    first = ValueError("cleanup one")
    second = KeyError("cleanup two")

    def failing_resource(exc: Exception) -> Callable[[], AsyncIterator[int]]:
        async def gen() -> AsyncIterator[int]:
            try:
                yield 1
            finally:
                log.append(f"cleanup {exc!r}")
                raise exc

        return gen

    async def good() -> AsyncIterator[int]:
        try:
            yield 2
        finally:
            log.append("good cleanup")

    def fail(a: int, b: int, c: int) -> None:
        raise body_error

    with build_dag() as dag:
        r1 = dag.add_resource(failing_resource(first), name="r1")
        r2 = dag.add_resource(failing_resource(second), name="r2")
        r3 = dag.add_resource(good, name="r3")
        under = dag.add_resource(good, name="under")
        dag.add_node(lambda x: None, r1, after=[under], name="uses_r1")
        dag.add_node(fail, r1, r2, r3, after=[under], name="body")
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert log.count("good cleanup") == 2
    assert len(log) == 4
    err = info.value
    assert set(err.exceptions) == {body_error, first, second}
    assert len(err.exceptions) == 3
    assert err.failures == {"body": body_error, "r1": first, "r2": second}
    assert "node 'body' failed in body" in notes(body_error)
    assert "node 'r1' failed in cleanup" in notes(first)
    assert "node 'r2' failed in cleanup" in notes(second)


async def test_cleanup_failure_of_a_successful_run_raises_in_fail_fast_mode() -> None:
    boom = ValueError("close failed")

    def res() -> Iterator[int]:
        yield 1
        raise boom

    with build_dag() as dag:
        r = dag.add_resource(res, name="r")
        dag.add_node(lambda x: x, r)
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert list(info.value.exceptions) == [boom]


async def test_cleanup_failures_make_a_continue_mode_result_not_ok() -> None:
    boom = ValueError("close failed")

    async def res() -> AsyncIterator[int]:
        yield 1
        raise boom

    with build_dag() as dag:
        r = dag.add_resource(res, name="r")
        user = dag.add_node(lambda x: x + 1, r)
    result = await dag.invoke(None, on_error="continue")
    assert result[user] == 2
    assert not result.ok
    assert [(f.node, f.phase, f.error) for f in result.errors] == [("r", "cleanup", boom)]
    with pytest.raises(DagError) as info:
        result.raise_for_errors()
    assert list(info.value.exceptions) == [boom]


async def test_own_cleanups_of_a_node_run_in_reverse_order_of_setup() -> None:
    """A resource node with a post hook: the resource is released first, then post runs."""
    log: list[str] = []

    async def res() -> AsyncIterator[int]:
        yield 1
        log.append("resource cleanup")

    with build_dag() as dag:
        dag.add_resource(res, pre=lambda: log.append("pre"), post=lambda: log.append("post"))
    await dag.invoke(None)
    assert log == ["pre", "resource cleanup", "post"]


# -- cancellation and shielding ------------------------------------------------------------


@pytest.mark.parametrize("roots", [1, 3], ids=["single_root_inline", "several_roots"])
async def test_caller_cancellation_propagates_after_cleanup_and_leaves_no_task(roots: int) -> None:
    log: list[str] = []
    started = asyncio.Event()

    async def res() -> AsyncIterator[int]:
        try:
            yield 1
        finally:
            await asyncio.sleep(0)
            log.append("cleanup")

    async def body(x: int) -> None:
        started.set()
        await forever()

    with build_dag() as dag:
        r = dag.add_resource(res)
        dag.add_node(body, r, post=lambda: log.append("post"))
        for _ in range(roots - 1):
            dag.add_node(forever, post=lambda: log.append("other post"))
    before = asyncio.all_tasks()
    task = asyncio.create_task(dag.invoke(None))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log[:1] == ["post"]
    assert log[-1] == "cleanup"
    assert log.count("other post") == roots - 1
    assert asyncio.all_tasks() == before


async def test_cancelling_during_cleanup_lets_the_cleanup_finish_then_cancels() -> None:
    """The run succeeded; the caller is cancelled while a cleanup runs: it completes first."""
    log: list[str] = []
    in_cleanup = asyncio.Event()
    release = asyncio.Event()

    async def res() -> AsyncIterator[int]:
        yield 1
        log.append("cleanup start")
        in_cleanup.set()
        await release.wait()
        log.append("cleanup end")

    with build_dag() as dag:
        r = dag.add_resource(res)
        dag.add_node(lambda x: x, r)
    before = asyncio.all_tasks()
    task = asyncio.create_task(dag.invoke(None))
    await in_cleanup.wait()
    task.cancel()
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()
    log.append("released")
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log == ["cleanup start", "released", "cleanup end"]
    assert asyncio.all_tasks() == before


async def test_cleanup_timeout_bounds_a_hanging_cleanup_and_the_others_still_run() -> None:
    log: list[str] = []

    async def hanging() -> AsyncIterator[int]:
        yield 1
        log.append("hang start")
        await forever()

    async def fine() -> AsyncIterator[int]:
        yield 2
        log.append("fine cleanup")

    with build_dag() as dag:
        h = dag.add_resource(hanging, name="hanging", cleanup_timeout=0.02)
        under = dag.add_resource(fine, name="under")
        dag.add_resource(fine, name="other")
        dag.add_node(lambda x: x, h, after=[under])
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert log.count("fine cleanup") == 2
    assert log.index("hang start") < max(i for i, e in enumerate(log) if e == "fine cleanup")
    exc = info.value.failures["hanging"]
    assert isinstance(exc, TimeoutError)
    assert "node 'hanging' failed in cleanup" in notes(exc)
    assert len(info.value.exceptions) == 1


async def test_post_hook_cleanup_timeout() -> None:
    async def hanging_post() -> None:
        await forever()

    with build_dag() as dag:
        n = dag.add_node(lambda: 1, name="n", post=hanging_post, cleanup_timeout=0.02)
    result = await dag.invoke(None, on_error="continue")
    assert result[n] == 1
    assert not result.ok
    [failure] = result.errors
    assert (failure.node, failure.phase) == ("n", "post")
    assert isinstance(failure.error, TimeoutError)


async def test_invoke_timeout_raises_builtin_timeout_error_after_cleanup() -> None:
    log: list[str] = []

    async def res() -> AsyncIterator[int]:
        try:
            yield 1
        finally:
            log.append("cleanup")

    async def slow(x: int) -> None:
        await forever()

    with build_dag() as dag:
        r = dag.add_resource(res)
        dag.add_node(slow, r, post=lambda: log.append("post"))
    before = asyncio.all_tasks()
    with pytest.raises(TimeoutError) as info:
        await dag.invoke(None, timeout=0.02)
    assert type(info.value) is TimeoutError
    assert log == ["post", "cleanup"]
    assert asyncio.all_tasks() == before


async def test_result_of_a_skipped_node_is_not_available() -> None:
    with build_dag() as dag:
        bad = dag.add_node(lambda: 1 // 0)
        dep = dag.add_node(lambda x: x, bad, post=lambda: None)
    result = await dag.invoke(None, on_error="continue")
    with pytest.raises(NodeNotCompletedError):
        result[dep]
