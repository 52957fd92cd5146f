"""`invoke(resume_from=previous)`: what SUCCEEDED before is taken as done; the rest runs again,
with the resources and the nodes with cleanups it needs set up again."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar, cast

import pytest

from dagwire import (
    Dag,
    DagDefinitionError,
    DagError,
    ExecutionResult,
    Node,
    NodeStatus,
    Skip,
    build_dag,
    events,
)


@pytest.fixture(params=["default", "eager"])
async def task_factory(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Run the test under the loop's default task factory, and under the eager one (3.12+)."""
    if request.param == "eager":
        if sys.version_info < (3, 12):
            pytest.skip("asyncio.eager_task_factory needs Python 3.12")
        loop = asyncio.get_running_loop()
        loop.set_task_factory(asyncio.eager_task_factory)
        try:
            yield "eager"
        finally:
            loop.set_task_factory(None)
    else:
        yield "default"


T = TypeVar("T")


def const(log: list[str], name: str, value: T) -> Callable[[], T]:
    """A node body that logs its name and returns `value`."""

    def body() -> T:
        log.append(name)
        return value

    return body


class Flaky:
    """Counts calls per node; the nodes named in `failing` raise until `heal()`."""

    def __init__(self, *failing: str) -> None:
        self.calls: Counter[str] = Counter()
        self.failing = set(failing)

    def heal(self) -> None:
        self.failing.clear()

    def node(self, name: str) -> Any:
        async def body(*inputs: object) -> str:
            self.calls[name] += 1
            await asyncio.sleep(0)
            if name in self.failing:
                raise ValueError(f"{name} is down")
            return name + "(" + ",".join(map(str, inputs)) + ")"

        body.__qualname__ = name
        return body


def pipeline(flaky: Flaky, log: list[str]) -> tuple[Dag[None], dict[str, Node[Any]]]:
    """
    a ──> b ──> c ──> d          conn (resource) ──> c, e
    a ──> e
    """

    async def conn() -> AsyncIterator[str]:
        log.append("conn setup")
        try:
            yield "conn"
        finally:  # (a failure of a node using it is thrown in here in continue mode)
            log.append("conn cleanup")

    with build_dag(name="pipeline") as dag:
        cn = dag.add_resource(conn, name="conn")
        a = dag.add_node(flaky.node("a"))
        b = dag.add_node(flaky.node("b"), a)
        c = dag.add_node(flaky.node("c"), b, cn)
        d = dag.add_node(flaky.node("d"), c)
        e = dag.add_node(flaky.node("e"), a, cn)
    return dag, {"conn": cn, "a": a, "b": b, "c": c, "d": d, "e": e}


async def test_resume_runs_only_what_failed_and_its_dependents_plus_their_resources(
    task_factory: str,
) -> None:
    flaky, log = Flaky("c"), list[str]()
    dag, n = pipeline(flaky, log)
    first = await dag.invoke(None, on_error="continue")
    assert not first.ok
    assert first.status(n["d"]) is NodeStatus.SKIPPED
    assert log == ["conn setup", "conn cleanup"]
    flaky.heal()
    flaky.calls.clear()
    log.clear()
    seen: list[events.Event] = []
    second = await dag.invoke(None, resume_from=first, observers=[seen.append], timeline=True)
    assert second.ok
    assert flaky.calls == Counter({"c": 1, "d": 1})
    assert log == ["conn setup", "conn cleanup"]  # never taken over: set up and cleaned up again
    assert second[n["d"]] == "d(c(b(a()),conn))"
    for name in ("a", "b", "e"):
        assert second[n[name]] is first[n[name]]  # the very value of the previous run
    assert all(second.status(node) is NodeStatus.SUCCEEDED for node in n.values())
    resumed = {e.node for e in seen if isinstance(e, events.NodeSucceeded) and e.resumed}
    assert resumed == {"a", "b", "e"}
    started = {e.node for e in seen if isinstance(e, events.NodeStarted)}
    assert started == {"conn", "c", "d"}
    timings = {t.node: t for t in second.timeline()}
    assert {name for name, t in timings.items() if t.resumed} == {"a", "b", "e"}


async def test_a_fail_fast_failure_gives_a_result_to_resume_from() -> None:
    """`invoke` raises `DagError` in fail-fast mode, so the failed run's partial result must
    travel with it for `resume_from=` to retry only what failed (here as `DagError.result`)."""
    flaky, log = Flaky("d"), list[str]()
    dag, _n = pipeline(flaky, log)
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    previous = getattr(info.value, "result", None)
    assert isinstance(previous, ExecutionResult), "a fail-fast DagError carries no result"
    flaky.heal()
    flaky.calls.clear()
    resumed = await dag.invoke(None, resume_from=cast("ExecutionResult[None]", previous))
    assert resumed.ok
    assert flaky.calls == Counter({"d": 1})


async def test_a_resource_only_resumed_nodes_need_is_not_set_up() -> None:
    log: list[str] = []
    flaky = Flaky("late")

    async def conn() -> AsyncIterator[str]:
        log.append("setup")
        yield "conn"
        log.append("cleanup")

    with build_dag() as dag:
        cn = dag.add_resource(conn, name="conn")
        used = dag.add_node(flaky.node("used"), cn)
        late = dag.add_node(flaky.node("late"))
    first = await dag.invoke(None, on_error="continue")
    flaky.heal()
    flaky.calls.clear()
    log.clear()
    second = await dag.invoke(None, resume_from=first)
    assert flaky.calls == Counter({"late": 1})
    assert log == []
    assert second[used] == "used(conn)"
    assert second.status(cn) is NodeStatus.PENDING  # not taken over, not needed: not run
    assert second[late] == "late()"


async def test_nodes_with_post_run_again_when_something_that_runs_needs_them() -> None:
    log: list[str] = []
    flaky = Flaky("c")
    with build_dag() as dag:
        p = dag.add_node(
            flaky.node("p"),
            name="p",
            pre=lambda: log.append("p pre"),
            post=lambda: log.append("p post"),
        )
        q = dag.add_node(flaky.node("q"), name="q", post=lambda: log.append("q post"))
        c = dag.add_node(flaky.node("c"), p, name="c")
        e = dag.add_node(flaky.node("e"), q, name="e")
    first = await dag.invoke(None, on_error="continue")
    assert sorted(log) == ["p post", "p pre", "q post"]
    flaky.heal()
    flaky.calls.clear()
    log.clear()
    second = await dag.invoke(None, resume_from=first)
    assert flaky.calls == Counter({"p": 1, "c": 1})  # p runs again for c; q is not needed
    assert log == ["p pre", "p post"]
    assert second[c] == "c(p())"
    assert second[e] is first[e]
    assert second.status(q) is NodeStatus.PENDING


async def test_a_result_of_another_graph_is_refused() -> None:
    flaky, log = Flaky(), list[str]()
    dag, _ = pipeline(flaky, log)
    other, _ = pipeline(flaky, log)
    foreign = await other.invoke(None)
    with pytest.raises(DagDefinitionError, match="resume_from"):
        await dag.invoke(None, resume_from=foreign)
    with pytest.raises(DagDefinitionError, match="resume_from"):
        await dag.invoke(None, resume_from={"a": 1})  # type: ignore[arg-type]  # the misuse
    with pytest.raises(DagDefinitionError, match="resume_from"):
        _ = [c async for c in dag.stream(None, resume_from=foreign)]
    assert flaky.calls["a"] == 1  # (the other graph's run only)


async def test_overrides_win_over_resumed_values() -> None:
    flaky = Flaky("c")
    with build_dag() as dag:
        a = dag.add_node(flaky.node("a"))
        b = dag.add_node(flaky.node("b"))
        c = dag.add_node(flaky.node("c"), a, b)
    first = await dag.invoke(None, on_error="continue")
    flaky.heal()
    flaky.calls.clear()
    seen: list[events.Event] = []
    second = await dag.invoke(None, resume_from=first, overrides={a: "A!"}, observers=[seen.append])
    assert second[a] == "A!"
    assert second[c] == "c(A!,b())"
    assert flaky.calls == Counter({"c": 1})
    resumed = {e.node for e in seen if isinstance(e, events.NodeSucceeded) and e.resumed}
    assert resumed == {"b"}  # the override is not reported as resumed


async def test_targets_with_resume_from_run_only_what_the_targets_still_need() -> None:
    flaky = Flaky("c1", "c2")
    with build_dag() as dag:
        a = dag.add_node(flaky.node("a"))
        c1 = dag.add_node(flaky.node("c1"), a)
        d1 = dag.add_node(flaky.node("d1"), c1)
        c2 = dag.add_node(flaky.node("c2"), a)
        d2 = dag.add_node(flaky.node("d2"), c2)
    first = await dag.invoke(None, on_error="continue")
    flaky.heal()
    flaky.calls.clear()
    second = await dag.invoke(None, resume_from=first, targets=[d1])
    assert flaky.calls == Counter({"c1": 1, "d1": 1})
    assert second[d1] == "d1(c1(a()))"
    assert second.status(c2) is NodeStatus.PENDING
    assert second.status(d2) is NodeStatus.PENDING
    assert second.ok


async def test_a_fully_succeeded_result_resumes_without_running_anything() -> None:
    flaky, log = Flaky(), list[str]()
    dag, n = pipeline(flaky, log)
    first = await dag.invoke(None)
    flaky.calls.clear()
    log.clear()
    second = await dag.invoke(None, resume_from=first)
    assert flaky.calls == Counter()
    assert log == []
    assert second[n["d"]] == first[n["d"]]


async def test_skipped_nodes_run_again() -> None:
    flag = {"on": False}
    calls: list[str] = []

    def plus_one(b: int, _: bool) -> int:
        calls.append("recs")
        return b + 1

    def check() -> bool:
        calls.append("check")
        if not flag["on"]:
            raise Skip("flag off")
        return True

    with build_dag() as dag:
        base = dag.add_node(const(calls, "base", 1), name="base")
        ok = dag.add_node(check, name="check")
        recs = dag.add_node(plus_one, base, ok, name="recs")
    first = await dag.invoke(None)
    assert first.status(recs) is NodeStatus.SKIPPED
    flag["on"] = True
    calls.clear()
    second = await dag.invoke(None, resume_from=first)
    assert calls == ["check", "recs"]
    assert second[recs] == 2


async def test_a_resumed_result_can_be_resumed_again() -> None:
    flaky = Flaky("b", "c")
    with build_dag() as dag:
        a = dag.add_node(flaky.node("a"))
        b = dag.add_node(flaky.node("b"), a)
        c = dag.add_node(flaky.node("c"), b)
    first = await dag.invoke(None, on_error="continue")
    flaky.failing = {"c"}
    second = await dag.invoke(None, resume_from=first, on_error="continue")
    assert second.status(b) is NodeStatus.SUCCEEDED
    assert second.status(c) is NodeStatus.FAILED
    flaky.heal()
    flaky.calls.clear()
    third = await dag.invoke(None, resume_from=second)
    assert flaky.calls == Counter({"c": 1})
    assert third[c] == "c(b(a()))"


async def test_a_node_whose_failure_a_fallback_covered_runs_again() -> None:
    flaky = Flaky("a", "b")
    with build_dag() as dag:
        a = dag.add_node(flaky.node("a"), fallback="default")
        b = dag.add_node(flaky.node("b"), a)
    first = await dag.invoke(None, on_error="continue")
    assert first.status(a) is NodeStatus.SUCCEEDED
    assert first[a] == "default"
    flaky.heal()
    flaky.calls.clear()
    second = await dag.invoke(None, resume_from=first)
    # a SUCCEEDED only with its fallback: its real value is still missing, so it runs again
    assert flaky.calls == Counter({"a": 1, "b": 1})
    assert second[b] == "b(a())"


async def test_a_map_node_that_succeeded_is_taken_as_done() -> None:
    items: list[int] = []
    flaky = Flaky("total")

    def double(x: int) -> int:
        items.append(x)
        return 2 * x

    with build_dag() as dag:
        m = dag.add_map(double, [1, 2, 3], name="m")
        total = dag.add_node(flaky.node("total"), m)
    first = await dag.invoke(None, on_error="continue")
    assert first[m] == [2, 4, 6]
    assert items == [1, 2, 3]
    flaky.heal()
    items.clear()
    second = await dag.invoke(None, resume_from=first)
    assert second[total] == "total([2, 4, 6])"
    assert items == [], "the map node SUCCEEDED before, yet its items ran again"


async def test_a_sub_graph_node_that_succeeded_is_taken_as_done() -> None:
    inner_calls: list[str] = []
    with build_dag(name="inner") as inner:
        inner.add_node(const(inner_calls, "inner", 1), name="one")
    flaky = Flaky("after")
    with build_dag() as dag:
        sub = dag.add_node(inner, None, name="sub")
        after = dag.add_node(flaky.node("after"), after=sub)
    first = await dag.invoke(None, on_error="continue")
    flaky.heal()
    inner_calls.clear()
    second = await dag.invoke(None, resume_from=first)
    assert second[after] == "after()"
    assert inner_calls == [], "the sub-graph node SUCCEEDED before, yet it ran again"
    assert second[sub] is first[sub]


async def test_stream_reports_resumed_nodes_first() -> None:
    flaky = Flaky("b")
    with build_dag() as dag:
        a = dag.add_node(flaky.node("a"))
        b = dag.add_node(flaky.node("b"), a)
    first = await dag.invoke(None, on_error="continue")
    flaky.heal()
    seen = [(c.node, c.status, c.value) async for c in dag.stream(None, resume_from=first)]
    assert seen == [
        (a, NodeStatus.SUCCEEDED, "a()"),
        (b, NodeStatus.SUCCEEDED, "b(a())"),
    ]


def test_sync_resources_also_run_again() -> None:
    """(A sync generator resource: same rule as the async ones above.)"""
    log: list[str] = []
    flaky = Flaky("use")

    def conn() -> Iterator[str]:
        log.append("setup")
        try:
            yield "c"
        finally:
            log.append("cleanup")

    async def main() -> None:
        with build_dag() as dag:
            cn = dag.add_resource(conn)
            use = dag.add_node(flaky.node("use"), cn)
        first = await dag.invoke(None, on_error="continue")
        flaky.heal()
        second = await dag.invoke(None, resume_from=first)
        assert second[use] == "use(c)"

    asyncio.run(main())
    assert log == ["setup", "cleanup", "setup", "cleanup"]


async def test_a_node_that_skipped_and_took_its_fallback_runs_again() -> None:
    # Found by the skip/cache/resume properties: its value was the fallback (the real value
    # is still missing), like a node whose failure a fallback covered. Was: kept as done.
    calls: Counter[str] = Counter()
    broken = {"flag": True, "fetch": True}

    async def flag() -> int:
        calls["flag"] += 1
        if broken["flag"]:
            raise Skip("no flag yet")
        return 7

    async def fetch(f: int) -> int:
        calls["fetch"] += 1
        if broken["fetch"]:
            raise ValueError("fetch failed")
        return f + 1

    with build_dag() as dag:
        f = dag.add_node(flag, fallback=0, name="flag")
        out = dag.add_node(fetch, f, name="fetch")
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert info.value.result is not None
    assert info.value.result[f] == 0  # the fallback, for a Skip
    broken.update(flag=False, fetch=False)
    result = await dag.invoke(None, resume_from=info.value.result)
    assert result[f] == 7
    assert result[out] == 8
    assert calls == Counter(flag=2, fetch=2)
