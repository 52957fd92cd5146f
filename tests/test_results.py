"""Reading results: values through handles, statuses, NodeNotCompletedError, errors, timelines."""

from __future__ import annotations

import asyncio

import pytest

from dagwire import (
    DagDefinitionError,
    ExecutionResult,
    NodeFailure,
    NodeNotCompletedError,
    NodeStatus,
    build_dag,
)


def parse(text: str) -> int:
    return int(text)


def halve(x: int) -> float:
    return x / 2


def fail(x: int) -> int:
    raise LookupError(f"no {x}")


async def test_values_through_handles() -> None:
    with build_dag(str) as dag:
        n = dag.add_node(parse, dag.params)
        h = dag.add_node(halve, n)
    result = await dag.invoke("8")
    assert result[n] == 8
    assert n.extract_result(result) == 8
    assert result[h] == 4.0
    assert h.extract_result(result) == result[h]
    assert result.params == "8"
    assert result[dag.params] == "8"
    assert result.ok
    assert result.errors == ()
    for node in dag.nodes:
        assert result.status(node) is NodeStatus.SUCCEEDED


def test_node_status_members() -> None:
    assert {s.name for s in NodeStatus} == {
        "PENDING",
        "RUNNING",
        "SUCCEEDED",
        "FAILED",
        "RETRYING",
        "CANCELLED",
        "SKIPPED",
    }


async def test_failed_node_raises_with_its_exception_as_cause() -> None:
    with build_dag(int) as dag:
        bad = dag.add_node(fail, dag.params, name="lookup")
        after_bad = dag.add_node(halve, bad, name="halve_it")
        fine = dag.add_node(halve, dag.params)
    result = await dag.invoke(3, on_error="continue")
    assert result[fine] == 1.5
    assert result.status(bad) is NodeStatus.FAILED
    assert result.status(after_bad) is NodeStatus.SKIPPED
    (failure,) = result.errors
    assert isinstance(failure, NodeFailure)
    assert (failure.node, failure.phase, failure.recovered) == ("lookup", "body", False)
    assert isinstance(failure.error, LookupError)

    with pytest.raises(NodeNotCompletedError) as caught:
        result[bad]
    err = caught.value
    assert err.node_name == "lookup"
    assert err.status is NodeStatus.FAILED
    assert "'lookup'" in str(err)
    assert "FAILED" in str(err)
    assert "__cause__" in str(err)
    assert err.__cause__ is failure.error

    with pytest.raises(NodeNotCompletedError, match="FAILED") as again:
        bad.extract_result(result)
    assert again.value.__cause__ is failure.error


async def test_skipped_node_raises_naming_its_status() -> None:
    with build_dag(int) as dag:
        bad = dag.add_node(fail, dag.params)
        skipped = dag.add_node(halve, bad, name="halve_it")
    result = await dag.invoke(3, on_error="continue")
    with pytest.raises(NodeNotCompletedError) as caught:
        result[skipped]
    err = caught.value
    assert err.node_name == "halve_it"
    assert err.status is NodeStatus.SKIPPED
    assert "'halve_it'" in str(err)
    assert "SKIPPED" in str(err)
    assert "which it depends on, failed" in str(err)
    assert "'fail'" in str(err) or "fail" in str(err)  # names the node that failed
    assert err.__cause__ is None


async def test_node_that_did_not_run_raises_naming_its_status() -> None:
    with build_dag(int) as dag:
        wanted = dag.add_node(halve, dag.params)
        unwanted = dag.add_node(halve, dag.params, name="unwanted")
    result = await dag.invoke(2, targets=[wanted])
    assert result[wanted] == 1.0
    assert result.status(unwanted) is NodeStatus.PENDING
    with pytest.raises(NodeNotCompletedError, match=r"'unwanted'.*PENDING.*targets=") as caught:
        unwanted.extract_result(result)
    assert caught.value.status is NodeStatus.PENDING
    assert caught.value.__cause__ is None


async def test_cancelled_node_raises_naming_its_status() -> None:
    # A fail-fast run raises instead of returning a result, so a CANCELLED node is only seen
    # through results made by other runners (stream(), nested graphs): build one directly.
    with build_dag() as dag:
        node = dag.add_node(lambda: 1, name="stopped")
    result = ExecutionResult(dag, None, [None, None], [NodeStatus.SUCCEEDED] * 2, (), None)
    assert result[node] is None
    cancelled = ExecutionResult(
        dag, None, [None, None], [NodeStatus.SUCCEEDED, NodeStatus.CANCELLED], (), None
    )
    assert cancelled.status(node) is NodeStatus.CANCELLED
    with pytest.raises(NodeNotCompletedError, match=r"'stopped'.*CANCELLED") as caught:
        cancelled[node]
    assert caught.value.status is NodeStatus.CANCELLED

    boom = RuntimeError("boom")
    with_error = ExecutionResult(
        dag,
        None,
        [None, None],
        [NodeStatus.SUCCEEDED, NodeStatus.CANCELLED],
        (NodeFailure("stopped", "post", boom),),
        None,
    )
    with pytest.raises(NodeNotCompletedError, match="__cause__") as caught:
        with_error[node]
    assert caught.value.__cause__ is boom
    assert not with_error.ok


async def test_fallback_failures_are_listed_but_ok() -> None:
    with build_dag(int) as dag:
        covered = dag.add_node(fail, dag.params, fallback=-1)
        downstream = dag.add_node(lambda x: x * 10, covered)
    result = await dag.invoke(1)
    assert result.ok
    assert result[covered] == -1
    assert result[downstream] == -10
    (failure,) = result.errors
    assert failure.recovered
    result.raise_for_errors()  # recovered failures do not raise


async def test_result_status_of_every_node_in_a_mixed_run() -> None:
    gate = asyncio.Event()

    async def slow_ok() -> str:
        await gate.wait()
        return "ok"

    def failing() -> str:
        gate.set()
        raise ValueError("bad")

    with build_dag() as dag:
        ok = dag.add_node(slow_ok)
        bad = dag.add_node(failing)
        skipped = dag.add_node(lambda a, b: a + b, ok, bad)
    result = await dag.invoke(None, on_error="continue")
    assert [result.status(n) for n in (ok, bad, skipped)] == [
        NodeStatus.SUCCEEDED,
        NodeStatus.FAILED,
        NodeStatus.SKIPPED,
    ]
    assert result.status(dag.params) is NodeStatus.SUCCEEDED


async def test_timeline_only_when_asked() -> None:
    with build_dag() as dag:
        a = dag.add_node(lambda: 1)
    plain = await dag.invoke(None)
    with pytest.raises(DagDefinitionError, match="timeline=True"):
        plain.timeline()
    timed = await dag.invoke(None, timeline=True)
    (entry,) = timed.timeline()
    assert entry.node == a.name
    assert entry.status is NodeStatus.SUCCEEDED
    assert entry.attempts == 1
    assert 0 <= entry.start <= entry.end


async def test_results_of_separate_runs_are_independent() -> None:
    with build_dag(int) as dag:
        box = dag.add_node(lambda p: [p])
    first = await dag.invoke(1)
    second = await dag.invoke(2)
    assert first[box] == [1]
    assert second[box] == [2]
    assert first[box] is not second[box]
