"""Minimal deterministic reproductions of bugs found by the reliability properties.

Each test is a shrunk failing example turned into plain code; every one of these bugs is fixed.
"""

from __future__ import annotations

import asyncio

import pytest

from dagwire import DagError, Limiter, NodeCancelledError, build_dag


async def test_cancelled_error_raised_by_a_node_right_after_an_abort_is_reported() -> None:
    # Found by test_random_graph_invariants: "<n23 pre a0 selfcancel required> fired but is not
    # reported" (and by the concurrent property, after an invoke timeout's abort).
    # `a` and `b` wake in the same loop iteration; `a` fails first and the run aborts, but the
    # abort's cancellation reaches the nodes one iteration later. `b`, already woken, raises
    # CancelledError by itself. The bug: fail() saw `aborted` and took it for the abort's
    # cancellation (CANCELLED, nothing recorded), although nobody had cancelled `b`'s task.
    # SPEC 9: a node raising CancelledError by itself is a failure, and it is reported, like a
    # ValueError raised at the same moment (see the next test).
    async def a() -> None:
        await asyncio.sleep(0)
        raise ValueError("a failed")

    async def b() -> None:
        await asyncio.sleep(0)
        raise asyncio.CancelledError("b raised this itself")

    with build_dag() as dag:
        dag.add_node(a, name="a")
        dag.add_node(b, name="b")

    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert set(info.value.failures) == {"a", "b"}
    assert isinstance(info.value.failures["b"], NodeCancelledError)
    assert isinstance(info.value.failures["b"].__cause__, asyncio.CancelledError)


async def test_failure_raised_by_a_node_right_after_an_abort_is_reported() -> None:
    # The control for the test above: the same timing with an ordinary exception.
    async def a() -> None:
        await asyncio.sleep(0)
        raise ValueError("a failed")

    async def b() -> None:
        await asyncio.sleep(0)
        raise KeyError("b failed")

    with build_dag() as dag:
        dag.add_node(a, name="a")
        dag.add_node(b, name="b")

    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert set(info.value.failures) == {"a", "b"}


@pytest.mark.parametrize("shared", [False, True], ids=["max_concurrency", "Limiter"])
async def test_no_body_starts_after_a_fail_fast_abort_with_a_limiter(shared: bool) -> None:
    # Found by test_random_graph_invariants: "n26 began (#23) after the abort by <n22 body a1
    # retryable required> (#21)", with max_concurrency=1.
    # `a` holds the only slot and fails; releasing the slot woke `b`'s waiter before the
    # abort's (deferred) cancellation arrived, and the bug: `b`'s body then ran, after the
    # abort. SPEC 2: after the first failure "no new node starts".
    # Roots have no start order (3.12+ starts the others eagerly before the inline one), so `b`
    # waits in its `pre` hook, which holds no slot, until `a` holds the only one.
    started: list[str] = []
    a_holds_the_slot = asyncio.Event()

    async def a() -> None:
        started.append("a")
        a_holds_the_slot.set()
        for _ in range(3):  # let `b` reach the slot's queue
            await asyncio.sleep(0)
        raise ValueError("a failed")

    def b() -> None:
        started.append("b")

    limiter = Limiter(1)
    with build_dag() as dag:
        dag.add_node(a, name="a", limiter=limiter if shared else None)
        dag.add_node(b, name="b", limiter=limiter if shared else None, pre=a_holds_the_slot.wait)

    with pytest.raises(DagError):
        await dag.invoke(None, max_concurrency=None if shared else 1)
    assert started == ["a"]


async def test_no_root_starts_after_a_fail_fast_abort() -> None:
    # Found by test_random_graph_invariants: "n30 began (#58) after the abort by <n27 body a1
    # error required> (#56)", in a graph of ~30 independent roots.
    # Roots are spawned as tasks before any of them runs. When one fails, the abort's
    # cancellation reaches the other tasks one loop iteration later; the bug: a task that had
    # not taken its first step yet still started its node in that iteration.
    started: list[str] = []

    async def first() -> None:
        started.append("first")
        await asyncio.sleep(0)

    async def fails() -> None:
        started.append("fails")
        raise ValueError("boom")

    async def late() -> None:
        started.append("late")

    with build_dag() as dag:
        dag.add_node(first, name="first")
        dag.add_node(fails, name="fails")
        dag.add_node(late, name="late")

    with pytest.raises(DagError):
        await dag.invoke(None)
    assert "late" not in started
