"""What `pre=`/`post=` hooks receive, and what a `fallback=` value is (shared, not copied)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from dagwire import Dag, DagDefinitionError, DagError, NodeStatus, build_dag


def loose(value: object) -> Any:
    return value


async def work() -> str:
    return "done"


# -- hooks receive the invoke parameter only through a required positional parameter ----------


Seen = list[tuple[str, object]]


def required(seen: Seen) -> Callable[..., object]:
    def hook(p: str) -> None:
        seen.append(("param", p))

    return hook


def no_parameter(seen: Seen) -> Callable[..., object]:
    def hook() -> None:
        seen.append(("none", None))

    return hook


def defaulted(seen: Seen) -> Callable[..., object]:
    # A parameter with a default keeps its default: the same rule as node injection.
    def hook(k: str = "default") -> None:
        seen.append(("default", k))

    return hook


def var_positional(seen: Seen) -> Callable[..., object]:
    def hook(*args: object) -> None:
        seen.append(("args", args))

    return hook


def required_and_defaulted(seen: Seen) -> Callable[..., object]:
    def hook(p: str, k: int = 1) -> None:
        seen.append(("param", p))

    return hook


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (required, [("param", "P")]),
        (no_parameter, [("none", None)]),
        (defaulted, [("default", "default")]),
        (var_positional, [("args", ())]),
        (required_and_defaulted, [("param", "P")]),
    ],
    ids=["required", "none", "defaulted", "var-positional", "required-and-defaulted"],
)
async def test_what_a_hook_receives(
    make: Callable[[Seen], Callable[..., object]], expected: Seen
) -> None:
    seen: Seen = []
    with build_dag(str) as dag:
        dag.add_node(work, pre=make(seen))
        dag.add_node(work, post=make(seen))
    await dag.invoke("P")
    assert seen == expected * 2


async def test_a_loop_of_hooks_binding_a_variable_through_a_default() -> None:
    # The classic closure idiom: each hook keeps its own k; none receives the parameter.
    seen: list[object] = []
    with build_dag(str) as dag:
        for k in range(3):
            # pyright does not infer a lambda parameter's type from its default; the idiom is
            # the point of this test, so it stays a lambda.
            hook = lambda k=k: seen.append(k)  # noqa: E731  # pyright: ignore[reportUnknownLambdaType, reportUnknownVariableType]
            dag.add_node(work, pre=hook, name=f"n{k}")
    await dag.invoke("P")
    assert sorted(seen, key=str) == [0, 1, 2]


async def test_async_hooks_follow_the_same_rule() -> None:
    seen: list[object] = []

    async def with_param(p: str) -> None:
        await asyncio.sleep(0)
        seen.append(p)

    async def with_default(p: str = "default") -> None:
        seen.append(p)

    with build_dag(str) as dag:
        dag.add_node(work, pre=with_param, post=with_default)
    await dag.invoke("P")
    assert seen == ["P", "default"]


def two_required(a: str, b: str) -> None:
    pass


def keyword_only(*, key: str) -> None:
    pass


@pytest.mark.parametrize("hook", [two_required, keyword_only])
def test_a_hook_that_cannot_be_called_is_refused(hook: Callable[..., object]) -> None:
    dag = Dag[str]()
    with pytest.raises(DagDefinitionError, match=r"add_node\(work\) pre= hook .*cannot be called"):
        dag.add_node(work, pre=hook)


# -- fallback= is one value, shared by every run (like a default argument) ---------------------


async def test_a_fallback_value_is_shared_by_every_run_not_copied() -> None:
    """The documented rule: the fallback object itself becomes the node's value in every run
    that needs it, so a mutable fallback changed downstream stays changed. Use an immutable
    value (a tuple, None, a frozen dataclass), as for a default argument."""

    def broken() -> list[str]:
        raise ConnectionError("down")

    def append(items: list[str]) -> int:
        items.append("x")
        return len(items)

    shared: list[str] = []
    with build_dag() as dag:
        rows = dag.add_node(broken, fallback=shared)
        count = dag.add_node(append, rows)
    first = await dag.invoke(None)
    second = await dag.invoke(None)
    assert first[rows] is shared
    assert second[rows] is shared
    assert (first[count], second[count]) == (1, 2)  # the second run saw the first's append
    assert shared == ["x", "x"]


async def test_an_immutable_fallback_is_the_safe_choice() -> None:
    def broken() -> tuple[str, ...]:
        raise ConnectionError("down")

    def extend(items: tuple[str, ...]) -> tuple[str, ...]:
        return (*items, "x")

    with build_dag() as dag:
        rows = dag.add_node(broken, fallback=())
        more = dag.add_node(extend, rows)
    results = await asyncio.gather(*(dag.invoke(None) for _ in range(3)))
    assert [r[more] for r in results] == [("x",)] * 3
    assert all(r[rows] == () for r in results)


async def test_a_fallback_covers_a_failure_while_a_fail_fast_run_aborts() -> None:
    # `covered` fails in the same loop iteration as `boom`, the run's first failure. Was: the
    # abort made `covered` an unrecovered failure (FAILED, in DagError.failures) although its
    # fallback= covers it.
    async def boom() -> int:
        await asyncio.sleep(0)
        raise KeyError("boom")

    async def covered() -> int:
        await asyncio.sleep(0)
        raise ValueError("covered")

    for first in ("boom", "covered"):  # either may be the first to fail
        with build_dag() as dag:
            if first == "boom":
                dag.add_node(boom, name="boom")
                node = dag.add_node(covered, fallback=-1, name="covered")
            else:
                node = dag.add_node(covered, fallback=-1, name="covered")
                dag.add_node(boom, name="boom")
        with pytest.raises(DagError) as info:
            await dag.invoke(None)
        assert set(info.value.failures) == {"boom"}
        result = info.value.result
        assert result is not None
        assert [(f.node, f.recovered) for f in result.errors if f.node == "covered"] in (
            [("covered", True)],
            [],  # cancelled by the abort before it failed
        )
        assert result.status(node) in (NodeStatus.SUCCEEDED, NodeStatus.CANCELLED)
