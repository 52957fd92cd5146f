"""Partial runs: `targets=` runs only what the targets need; `overrides=` treats nodes as done."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from dagwire import Dag, Node, NodeNotCompletedError, NodeStatus, build_dag

Calls = list[str]


def recorder(name: str, calls: Calls) -> Callable[..., str]:
    def body(*inputs: str) -> str:
        calls.append(name)
        return name + "(" + ",".join(inputs) + ")"

    body.__qualname__ = name
    return body


def graph(calls: Calls) -> tuple[Dag[None], dict[str, Node[str]]]:
    """
    shared ──> b ──> c
    excl ────┘
    shared ──> e
    x ──> y          z (after= y)
    """
    with build_dag() as dag:
        shared = dag.add_node(recorder("shared", calls))
        excl = dag.add_node(recorder("excl", calls))
        b = dag.add_node(recorder("b", calls), shared, excl)
        c = dag.add_node(recorder("c", calls), b)
        e = dag.add_node(recorder("e", calls), shared)
        x = dag.add_node(recorder("x", calls))
        y = dag.add_node(recorder("y", calls), x)
        z = dag.add_node(recorder("z", calls), after=y)
    nodes = {"shared": shared, "excl": excl, "b": b, "c": c, "e": e, "x": x, "y": y, "z": z}
    return dag, nodes


async def test_targets_run_only_their_ancestors() -> None:
    calls: Calls = []
    dag, n = graph(calls)
    result = await dag.invoke(None, targets=[n["b"]])
    assert sorted(calls) == ["b", "excl", "shared"]
    assert result[n["b"]] == "b(shared(),excl())"
    assert result.ok
    for name in ("c", "e", "x", "y", "z"):
        assert result.status(n[name]) is NodeStatus.PENDING, name
        with pytest.raises(NodeNotCompletedError, match="PENDING"):
            result[n[name]]


async def test_several_targets_and_after_ancestors() -> None:
    calls: Calls = []
    dag, n = graph(calls)
    result = await dag.invoke(None, targets=[n["e"], n["z"]])
    assert sorted(calls) == ["e", "shared", "x", "y", "z"]
    assert result[n["z"]] == "z()"
    assert result.status(n["b"]) is NodeStatus.PENDING


async def test_target_that_is_a_join() -> None:
    calls: Calls = []
    with build_dag() as dag:
        a = dag.add_node(recorder("a", calls))
        b = dag.add_node(recorder("b", calls))
        dag.add_node(recorder("other", calls))
        j = dag.join(a, b)
    result = await dag.invoke(None, targets=[j])
    assert sorted(calls) == ["a", "b"]
    assert result[j] is None


async def test_no_targets_runs_nothing() -> None:
    calls: Calls = []
    dag, n = graph(calls)
    result = await dag.invoke(None, targets=[])
    assert calls == []
    assert result.ok
    assert all(result.status(node) is NodeStatus.PENDING for node in n.values())


async def test_override_skips_exclusive_ancestors_but_not_shared_ones() -> None:
    calls: Calls = []
    dag, n = graph(calls)
    result = await dag.invoke(None, overrides={n["b"]: "B!"})
    assert result.status(n["b"]) is NodeStatus.SUCCEEDED
    assert result[n["b"]] == "B!"
    assert result[n["c"]] == "c(B!)"
    assert "b" not in calls
    assert "excl" not in calls  # only b needed it
    assert result.status(n["excl"]) is NodeStatus.PENDING
    assert "shared" in calls  # e still needs it
    assert result[n["e"]] == "e(shared())"
    assert sorted(calls) == ["c", "e", "shared", "x", "y", "z"]


async def test_override_with_targets_runs_only_what_is_needed() -> None:
    calls: Calls = []
    dag, n = graph(calls)
    result = await dag.invoke(None, targets=[n["c"]], overrides={n["b"]: "B!"})
    assert calls == ["c"]
    assert result[n["c"]] == "c(B!)"
    assert result.status(n["shared"]) is NodeStatus.PENDING


async def test_override_of_a_target_runs_nothing() -> None:
    calls: Calls = []
    dag, n = graph(calls)
    result = await dag.invoke(None, targets=[n["c"]], overrides={n["c"]: "given"})
    assert calls == []
    assert result[n["c"]] == "given"


async def test_override_with_a_falsy_value() -> None:
    def describe(x: int | None) -> str:
        return f"got {x!r}"

    with build_dag(int) as dag:
        a: Node[int | None] = dag.add_node(lambda p: p + 1)
        b = dag.add_node(describe, a)
    assert (await dag.invoke(1))[b] == "got 2"
    result = await dag.invoke(1, overrides={a: None})
    assert result[a] is None
    assert result[b] == "got None"
    assert (await dag.invoke(1, overrides={a: 0}))[b] == "got 0"


async def test_override_isolates_a_node_from_a_failing_upstream() -> None:
    def broken() -> int:
        raise ConnectionError("the database is down")

    async def under_test(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    with build_dag() as dag:
        db = dag.add_node(broken)
        node = dag.add_node(under_test, db)
    result = await dag.invoke(None, overrides={db: 21})
    assert result[node] == 42
    assert result.ok
    assert result.status(db) is NodeStatus.SUCCEEDED


async def test_override_of_an_immediate_node() -> None:
    with build_dag() as dag:
        imm = dag.add_immediate_node(1)
        out = dag.add_node(lambda x: x + 100, imm)
    assert (await dag.invoke(None))[out] == 101
    result = await dag.invoke(None, overrides={imm: 5})
    assert result[imm] == 5
    assert result[out] == 105
    assert (await dag.invoke(None))[out] == 101  # overrides are per run


async def test_partial_runs_leave_the_graph_intact() -> None:
    calls: Calls = []
    dag, n = graph(calls)
    await dag.invoke(None, targets=[n["y"]], overrides={n["shared"]: "S"})
    calls.clear()
    result = await dag.invoke(None)
    assert sorted(calls) == sorted(n)
    assert result[n["c"]] == "c(b(shared(),excl()))"
