"""Failures at run time: fail-fast, continue mode, caller cancellation, invoke timeouts, a body
raising CancelledError by itself, and 10,000-node chains that fail."""

from __future__ import annotations

import asyncio
from asyncio import CancelledError
from collections.abc import Awaitable, Callable, Coroutine, Generator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest

from dagwire import (
    Dag,
    DagError,
    Node,
    NodeCancelledError,
    NodeFailure,
    NodeNotCompletedError,
    NodeStatus,
    build_dag,
)

T = TypeVar("T")

# A safety net only (a hung run fails instead of blocking the suite), never a speed check.
HANG = 5.0

Log = list[str]


def forever(name: str, log: Log) -> Callable[[], Awaitable[str]]:
    """A body that runs until cancelled, logging `start`, then `cancelled` or `finished`."""

    async def body() -> str:
        log.append(f"start {name}")
        try:
            await asyncio.Event().wait()
        except CancelledError:
            log.append(f"cancelled {name}")
            raise
        log.append(f"finished {name}")  # pragma: no cover - only if cancellation is broken
        return name

    body.__qualname__ = name
    return body


def fails_after(name: str, delay: float, log: Log, exc: Exception) -> Callable[[], Awaitable[str]]:
    async def body() -> str:
        log.append(f"start {name}")
        await asyncio.sleep(delay)
        log.append(f"fail {name}")
        raise exc

    body.__qualname__ = name
    return body


def note_of(exc: BaseException) -> str:
    return " | ".join(getattr(exc, "__notes__", []))


async def finishes(aw: Coroutine[Any, Any, T] | asyncio.Future[T]) -> T:
    """Await `aw` in a task of its own; fail (not hang) if it has not finished after HANG s.

    Unlike `asyncio.timeout`, this never cancels the awaiting task, so it cannot stand in for
    the cancellation that the library itself must deliver.
    """
    task = asyncio.ensure_future(aw)
    done, _ = await asyncio.wait({task}, timeout=HANG)
    if not done:
        task.cancel()
        await asyncio.wait({task})
        pytest.fail(f"still running after {HANG}s")
    return task.result()


@contextmanager
def no_new_tasks() -> Generator[None, None, None]:
    before = asyncio.all_tasks()
    yield
    assert asyncio.all_tasks() == before


# -- fail-fast ------------------------------------------------------------------------------


async def test_first_failure_cancels_every_running_sibling() -> None:
    log: Log = []
    boom = ValueError("boom")

    def relay(x: str) -> str:
        return x

    with build_dag() as dag:
        # The first root runs inside the invoking task itself; it must be cancelled as well.
        dag.add_node(forever("inline_root", log))
        bad = dag.add_node(fails_after("bad", 0.01, log, boom))
        dag.add_node(forever("task_root", log))
        mid = dag.add_node(relay, "x")
        dag.add_node(lambda x, y: (x, y), mid, dag.add_node(forever("never_ends", log)))
        dag.add_node(forever("downstream", log), after=mid)

    with no_new_tasks(), pytest.raises(DagError) as caught:
        await finishes(dag.invoke(None))

    for name in ("inline_root", "task_root", "never_ends", "downstream"):
        assert f"start {name}" in log
        assert f"cancelled {name}" in log, f"{name} was not cancelled: {log}"
        assert f"finished {name}" not in log
    err = caught.value
    # Cancelled siblings are not failures: only the real one is in the DagError.
    assert list(err.exceptions) == [boom]
    assert dict(err.failures) == {bad.name: boom}
    current = asyncio.current_task()
    assert current is not None
    assert current.cancelling() == 0


async def test_no_node_starts_after_the_first_failure() -> None:
    log: Log = []
    ev_first, ev_second = asyncio.Event(), asyncio.Event()

    async def quick() -> int:
        await ev_first.wait()  # woken in the same loop iteration as `bad`, just before it
        log.append("done quick")
        return 1

    async def bad() -> int:
        await ev_second.wait()
        log.append("fail bad")
        raise ValueError("bad")

    async def open_gates() -> None:
        await asyncio.sleep(0.01)
        ev_first.set()
        ev_second.set()

    def step(name: str) -> Callable[[int], Awaitable[int]]:
        async def body(x: int) -> int:
            log.append(f"start {name}")
            await asyncio.sleep(0)
            log.append(f"end {name}")
            return x

        body.__qualname__ = name
        return body

    with build_dag() as dag:
        dag.add_node(open_gates)
        q = dag.add_node(quick)
        dag.add_node(bad)
        # Three dependents of `quick`: one continues in quick's task, two get tasks of their own.
        dep1 = dag.add_node(step("dep1"), q)
        dag.add_node(step("dep2"), q)
        dag.add_node(step("dep3"), q)
        dag.add_node(step("grandchild"), dep1)

    with no_new_tasks(), pytest.raises(DagError) as caught:
        await finishes(dag.invoke(None))

    assert "fail bad" in log
    failed_at = log.index("fail bad")
    late = [e for e in log[failed_at:] if e.startswith("start ")]
    assert late == [], f"nodes started after the failure: {log}"
    assert "start grandchild" not in log
    assert [type(e) for e in caught.value.exceptions] == [ValueError]


async def test_failures_at_the_same_moment_are_all_reported() -> None:
    gate = asyncio.Event()
    first, second = ValueError("first"), KeyError("second")

    def failing(name: str, exc: Exception) -> Callable[[], Awaitable[None]]:
        async def body() -> None:
            await gate.wait()
            raise exc

        body.__qualname__ = name
        return body

    async def opener() -> None:
        await asyncio.sleep(0.01)
        gate.set()

    with build_dag() as dag:
        a = dag.add_node(failing("a", first))
        b = dag.add_node(failing("b", second))
        dag.add_node(opener)

    with pytest.raises(DagError) as caught:
        await dag.invoke(None)
    err = caught.value
    assert isinstance(err, ExceptionGroup)
    assert set(map(id, err.exceptions)) == {id(first), id(second)}
    assert dict(err.failures) == {a.name: first, b.name: second}


async def test_dag_error_is_an_exception_group_with_notes() -> None:
    boom = ValueError("boom")

    def bad(x: int) -> int:
        raise boom

    with build_dag(int) as dag:
        a = dag.add_node(lambda p: p)
        b = dag.add_node(bad, a, name="the_bad_one")

    with pytest.raises(DagError) as caught:
        await dag.invoke(1)
    err = caught.value
    assert isinstance(err, ExceptionGroup)
    assert isinstance(err, DagError)
    assert err.exceptions == (boom,)
    assert err.failures[b.name] is boom
    assert "the_bad_one" in str(err)
    assert "'the_bad_one'" in note_of(boom)
    assert "body" in note_of(boom)
    assert len(boom.__notes__) == 1


async def test_except_star_selects_failures_by_type() -> None:
    gate = asyncio.Event()
    value_error, key_error = ValueError("v"), KeyError("k")

    def failing(exc: Exception) -> Callable[[], Awaitable[None]]:
        async def body() -> None:
            await gate.wait()
            raise exc

        return body

    async def opener() -> None:
        await asyncio.sleep(0)
        gate.set()

    with build_dag() as dag:
        v = dag.add_node(failing(value_error), name="v")
        dag.add_node(failing(key_error), name="k")
        dag.add_node(opener)

    caught: list[BaseExceptionGroup[BaseException]] = []
    try:
        await dag.invoke(None)
    except* ValueError as group:
        caught.append(group)
    except* KeyError as group:
        caught.append(group)
    assert len(caught) == 2
    values, keys = caught
    assert values.exceptions == (value_error,)
    assert keys.exceptions == (key_error,)
    assert isinstance(values, DagError)
    assert dict(values.failures) == {v.name: value_error}

    gate.clear()
    with pytest.raises(ExceptionGroup) as rest:  # noqa: PT012 - the except* block is the subject
        try:
            await dag.invoke(None)
        except* ValueError:
            pass
    assert rest.value.exceptions == (key_error,)


# -- continue mode ---------------------------------------------------------------------------


async def test_continue_mode_skips_exactly_the_dependents_of_a_failure() -> None:
    calls: list[str] = []
    boom = RuntimeError("boom")

    def rec(name: str) -> Callable[..., Awaitable[str]]:
        async def body(*inputs: object) -> str:
            calls.append(name)
            return name

        body.__qualname__ = name
        return body

    async def bad() -> str:
        await asyncio.sleep(0.005)
        raise boom

    async def slow_independent() -> str:
        await asyncio.sleep(0.03)  # still running when `bad` fails
        calls.append("slow_independent")
        return "slow"

    with build_dag() as dag:
        b = dag.add_node(bad)
        ok = dag.add_node(rec("ok"))
        dep = dag.add_node(rec("dep"), b)
        dep2 = dag.add_node(rec("dep2"), dep)
        aft = dag.add_node(rec("aft"), after=b)
        aft2 = dag.add_node(rec("aft2"), ok, after=[aft])
        mixed = dag.add_node(rec("mixed"), ok, dep)
        j = dag.join(ok, b)
        after_join = dag.add_node(rec("after_join"), j)
        slow = dag.add_node(slow_independent)
        slow_next = dag.add_node(rec("slow_next"), slow)
        ok_join = dag.join(ok, slow)

    result = await dag.invoke(None, on_error="continue")
    assert not result.ok
    assert result.errors == (NodeFailure(b.name, "body", boom),)
    assert result.status(b) is NodeStatus.FAILED
    for skipped in (dep, dep2, aft, aft2, mixed, j, after_join):
        assert result.status(skipped) is NodeStatus.SKIPPED, skipped.name
    for done in (ok, slow, slow_next, ok_join):
        assert result.status(done) is NodeStatus.SUCCEEDED, done.name
    assert sorted(calls) == ["ok", "slow_independent", "slow_next"]
    assert result[slow_next] == "slow_next"

    with pytest.raises(DagError) as caught:
        result.raise_for_errors()
    assert caught.value.exceptions == (boom,)
    assert dict(caught.value.failures) == {b.name: boom}


async def test_continue_mode_reports_every_failure() -> None:
    e1, e2 = ValueError("one"), TypeError("two")

    def raiser(exc: Exception) -> Callable[[], None]:
        def body() -> None:
            raise exc

        return body

    with build_dag() as dag:
        a = dag.add_node(raiser(e1), name="a")
        b = dag.add_node(raiser(e2), name="b")
        both = dag.add_node(lambda x, y: (x, y), a, b)
    result = await dag.invoke(None, on_error="continue")
    assert {(f.node, f.error) for f in result.errors} == {("a", e1), ("b", e2)}
    assert result.status(both) is NodeStatus.SKIPPED
    with pytest.raises(DagError) as caught:
        result.raise_for_errors()
    assert dict(caught.value.failures) == {"a": e1, "b": e2}


async def test_continue_mode_without_failures() -> None:
    with build_dag() as dag:
        a = dag.add_node(lambda: 1)
    result = await dag.invoke(None, on_error="continue")
    assert result.ok
    assert result.errors == ()
    result.raise_for_errors()  # nothing to raise
    assert result[a] == 1


# -- caller cancellation and invoke(timeout=) ------------------------------------------------


def build_long_graph(log: Log, started: asyncio.Event) -> tuple[Dag[None], list[str]]:
    count = 0
    names = ["inline_root", "task_root", "child"]

    def body(name: str) -> Callable[..., Awaitable[None]]:
        async def run(*_: object) -> None:
            nonlocal count
            log.append(f"start {name}")
            count += 1
            if count == len(names):
                started.set()
            try:
                await asyncio.Event().wait()
            except CancelledError:
                log.append(f"cancelled {name}")
                raise

        run.__qualname__ = name
        return run

    with build_dag() as dag:
        dag.add_node(body("inline_root"))
        dag.add_node(body("task_root"))
        first = dag.add_node(lambda: 1)
        dag.add_node(body("child"), first)
    return dag, names


async def test_caller_cancellation_cancels_every_node() -> None:
    log: Log = []
    started = asyncio.Event()
    dag, names = build_long_graph(log, started)
    before = asyncio.all_tasks()
    task = asyncio.create_task(dag.invoke(None))
    async with asyncio.timeout(HANG):
        await started.wait()
    task.cancel()
    with pytest.raises(CancelledError):
        await task
    assert task.cancelled()
    for name in names:
        assert f"cancelled {name}" in log, log
    assert asyncio.all_tasks() == before


async def test_caller_cancellation_during_a_fail_fast_abort_still_propagates() -> None:
    log: Log = []
    gate = asyncio.Event()
    started = asyncio.Event()

    async def inline_root() -> None:
        started.set()
        await forever("inline_root", log)()

    async def bad() -> None:
        await gate.wait()
        raise ValueError("bad")

    async def opener() -> None:
        await asyncio.sleep(0.01)
        gate.set()

    with build_dag() as dag:
        dag.add_node(inline_root)  # runs in the invoke task: the one the caller cancels
        dag.add_node(bad)
        dag.add_node(opener)

    before = asyncio.all_tasks()
    task = asyncio.create_task(dag.invoke(None))
    await started.wait()
    await gate.wait()  # woken right after `bad` failed, before the abort reached the nodes
    task.cancel()
    with pytest.raises(CancelledError):
        await finishes(task)
    assert "cancelled inline_root" in log
    assert asyncio.all_tasks() == before


async def test_invoke_timeout_raises_timeout_error() -> None:
    log: Log = []
    started = asyncio.Event()
    dag, names = build_long_graph(log, started)
    before = asyncio.all_tasks()
    with pytest.raises(TimeoutError, match="did not finish within"):
        async with asyncio.timeout(HANG):
            await dag.invoke(None, timeout=0.05)
    assert started.is_set()
    for name in names:
        assert f"cancelled {name}" in log, log
    assert asyncio.all_tasks() == before
    current = asyncio.current_task()
    assert current is not None
    assert current.cancelling() == 0


async def test_invoke_timeout_not_reached() -> None:
    with build_dag(int) as dag:
        a = dag.add_node(lambda p: p * 2)
    result = await dag.invoke(4, timeout=5)
    assert result[a] == 8


# -- a body that raises CancelledError by itself ---------------------------------------------


async def raises_cancelled_async() -> int:
    await asyncio.sleep(0)
    raise CancelledError


def raises_cancelled_sync(x: int) -> int:
    raise CancelledError


@pytest.mark.parametrize("where", ["inline_root", "task_root", "sync_child"])
async def test_self_raised_cancelled_error_is_a_failure(where: str) -> None:
    with build_dag() as dag:
        if where == "task_root":
            dag.add_node(lambda: 0)  # takes the inline slot; the culprit gets a task
        culprit: Node[int] = (
            dag.add_node(raises_cancelled_sync, dag.add_node(lambda: 1))
            if where == "sync_child"
            else dag.add_node(raises_cancelled_async)
        )
        dependent = dag.add_node(lambda x: x + 1, culprit)

    with pytest.raises(DagError) as caught:
        await finishes(dag.invoke(None))
    err = caught.value
    assert len(err.exceptions) == 1
    wrapped = err.exceptions[0]
    assert isinstance(wrapped, NodeCancelledError)
    assert isinstance(wrapped.__cause__, CancelledError)
    assert err.failures[culprit.name] is wrapped
    assert culprit.name in note_of(wrapped)
    current = asyncio.current_task()
    assert current is not None
    assert current.cancelling() == 0  # the invoking task was not left cancelled

    result = await dag.invoke(None, on_error="continue")
    assert result.status(culprit) is NodeStatus.FAILED
    assert result.status(dependent) is NodeStatus.SKIPPED
    assert not result.ok
    with pytest.raises(NodeNotCompletedError, match="FAILED") as not_done:
        result[culprit]
    assert isinstance(not_done.value.__cause__, NodeCancelledError)


async def test_self_raised_cancelled_error_right_after_an_abort_is_reported() -> None:
    gate = asyncio.Event()
    first = ValueError("first")

    async def fails() -> None:
        await gate.wait()
        raise first

    async def self_cancels() -> None:
        await gate.wait()  # woken together with `fails`, before the abort's cancel arrives
        raise CancelledError("raised by the body itself")

    async def opener() -> None:
        await asyncio.sleep(0.01)
        gate.set()

    with build_dag() as dag:
        a = dag.add_node(fails)
        b = dag.add_node(self_cancels)
        dag.add_node(opener)

    with pytest.raises(DagError) as caught:
        await finishes(dag.invoke(None))
    assert set(caught.value.failures) == {a.name, b.name}
    wrapped = caught.value.failures[b.name]
    assert isinstance(wrapped, NodeCancelledError)
    assert isinstance(wrapped.__cause__, CancelledError)


# -- 10,000-node chains that fail ----------------------------------------------------------

CHAIN = 10_000


def inc(x: int) -> int:
    return x + 1


async def ainc(x: int) -> int:
    await asyncio.sleep(0)
    return x + 1


def explode(x: int) -> int:
    raise ValueError(f"failed at {x}")


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_10000_node_chain_failing_at_the_end(kind: str) -> None:
    with build_dag(int) as dag:
        node: Node[int] = dag.params
        for _ in range(CHAIN - 1):
            node = dag.add_node(inc, node) if kind == "sync" else dag.add_node(ainc, node)
        last = dag.add_node(explode, node, name="last")

    with pytest.raises(DagError) as caught:
        await dag.invoke(0)
    assert dict(caught.value.failures).keys() == {"last"}
    assert str(caught.value.exceptions[0]) == f"failed at {CHAIN - 1}"

    result = await dag.invoke(0, on_error="continue")
    assert not result.ok
    assert result.status(last) is NodeStatus.FAILED
    assert result[node] == CHAIN - 1
    with pytest.raises(DagError):
        result.raise_for_errors()


async def test_10000_node_chain_failing_in_the_middle_skips_the_rest() -> None:
    with build_dag(int) as dag:
        node: Node[int] = dag.params
        chain: list[Node[int]] = []
        for k in range(CHAIN):
            node = dag.add_node(explode, node) if k == CHAIN // 2 else dag.add_node(inc, node)
            chain.append(node)
    result = await dag.invoke(0, on_error="continue")
    statuses = [result.status(n) for n in chain]
    assert statuses[: CHAIN // 2] == [NodeStatus.SUCCEEDED] * (CHAIN // 2)
    assert statuses[CHAIN // 2] is NodeStatus.FAILED
    assert statuses[CHAIN // 2 + 1 :] == [NodeStatus.SKIPPED] * (CHAIN // 2 - 1)
    with pytest.raises(DagError):
        await dag.invoke(0)
