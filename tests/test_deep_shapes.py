"""Deep and wide graphs never hit RecursionError, hang, or leave a coroutine behind.

`comb` is the trap for a scheduler that continues with one ready dependent and starts the other
as an eager task: every chain node also feeds a leaf that becomes ready first, so each chain
step is one more nested eager start, unless the nesting is bounded.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Generator
from contextlib import contextmanager

import pytest

from dagwire import Dag, DagError, Node, build_dag


async def f(*xs: int) -> int:
    return sum(xs) + 1


async def boom(*_: int) -> int:
    raise ValueError("boom")


def comb(k: int, *, fail_at: int | None = None) -> tuple[Dag[None], Node[int]]:
    with build_dag() as dag:
        last = dag.add_node(f)
        leaves: list[Node[int]] = []
        for j in range(k):
            leaves.append(dag.add_node(f, last))
            last = dag.add_node(boom if j == fail_at else f, last)
        sink = dag.add_node(f, *leaves, last)
    return dag, sink


def expected_comb_sink(k: int) -> int:
    last, leaves = 1, list[int]()
    for _ in range(k):
        leaves.append(last + 1)
        last += 1
    return sum(leaves) + last + 1


@contextmanager
def loop_task_factory(eager: bool) -> Generator[None, None, None]:
    loop = asyncio.get_running_loop()
    if eager:
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]  # 3.12+
    try:
        yield
    finally:
        loop.set_task_factory(None)


FACTORIES = [False] + ([True] if sys.version_info >= (3, 12) else [])


@pytest.mark.parametrize("eager_loop", FACTORIES, ids=lambda e: "eager-loop" if e else "default")
async def test_comb_runs_without_recursion(eager_loop: bool) -> None:
    dag, sink = comb(1000)
    with loop_task_factory(eager_loop):
        done, _ = await asyncio.wait([asyncio.ensure_future(dag.invoke(None))], timeout=30)
    assert done, "the run hung"
    assert done.pop().result()[sink] == expected_comb_sink(1000)


@pytest.mark.parametrize("eager_loop", FACTORIES, ids=lambda e: "eager-loop" if e else "default")
async def test_comb_fails_cleanly_deep_inside(eager_loop: bool) -> None:
    dag, _ = comb(1000, fail_at=700)
    with loop_task_factory(eager_loop):
        task = asyncio.ensure_future(dag.invoke(None))
        done, _ = await asyncio.wait([task], timeout=30)
    assert done, "the run hung"
    with pytest.raises(DagError) as caught:
        task.result()
    assert [type(e) for e in caught.value.exceptions] == [ValueError]


@pytest.mark.parametrize("eager_loop", FACTORIES, ids=lambda e: "eager-loop" if e else "default")
async def test_wide_fan_of_ready_nodes(eager_loop: bool) -> None:
    with build_dag() as dag:
        root = dag.add_node(f)
        middle = [dag.add_node(f, root) for _ in range(5_000)]
        sink = dag.add_node(f, *middle)
    with loop_task_factory(eager_loop):
        result = await dag.invoke(None)
    assert result[sink] == 5_000 * 2 + 1
