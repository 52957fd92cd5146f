"""`dagwire.Skip`: a node skipped at run time, its dependents skipped in both error modes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Literal, TypeVar

import pytest

from dagwire import (
    DagError,
    NodeNotCompletedError,
    NodeStatus,
    Retry,
    Skip,
    build_dag,
    events,
)

OnError = Literal["raise", "continue"]
MODES: list[OnError] = ["raise", "continue"]
T = TypeVar("T")


def const(log: list[str], name: str, value: T) -> Callable[[], T]:
    """A node body that logs its name and returns `value`."""

    def body() -> T:
        log.append(name)
        return value

    return body


def same(log: list[str], name: str) -> Callable[[T], T]:
    """A node body that logs its name and returns its input."""

    def body(x: T) -> T:
        log.append(name)
        return x

    return body


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


def skipper(reason: str, calls: list[str], name: str) -> Callable[[], int]:
    def body() -> int:
        calls.append(name)
        raise Skip(reason)

    body.__qualname__ = name
    return body


# -- the node and its dependents -----------------------------------------------------------------


@pytest.mark.parametrize("on_error", MODES)
@pytest.mark.parametrize("kind", ["sync", "async", "options", "thread"])
async def test_a_body_that_skips_is_skipped_with_its_dependents_and_the_run_is_ok(
    on_error: OnError, kind: str, task_factory: str
) -> None:
    calls: list[str] = []

    async def async_skip() -> int:
        calls.append("flag")
        await asyncio.sleep(0)
        raise Skip("flag off")

    def sync_skip() -> int:
        calls.append("flag")
        raise Skip("flag off")

    with build_dag() as dag:
        if kind == "sync":
            flag = dag.add_node(sync_skip, name="flag")
        elif kind == "async":
            flag = dag.add_node(async_skip, name="flag")
        elif kind == "options":  # the slow path: a node with options
            flag = dag.add_node(async_skip, name="flag", timeout=10.0, tags=("t",))
        else:
            flag = dag.add_node(sync_skip, name="flag", executor="thread")
        recs = dag.add_node(same(calls, "recs"), flag, name="recs")
        page = dag.add_node(same(calls, "page"), recs, name="page")
        other = dag.add_node(const(calls, "other", 7), name="other")
    result = await dag.invoke(None, on_error=on_error)
    assert sorted(calls) == ["flag", "other"]
    assert result.ok
    assert result.errors == ()
    result.raise_for_errors()  # nothing to raise
    assert result.status(flag) is NodeStatus.SKIPPED
    assert result.status(recs) is NodeStatus.SKIPPED
    assert result.status(page) is NodeStatus.SKIPPED
    assert result[other] == 7
    assert result.skip_cause(flag) == "flag"
    assert result.skip_cause(recs) == "flag"
    assert result.skip_cause(page) == "flag"
    assert result.skip_cause(other) is None
    with pytest.raises(NodeNotCompletedError, match=r"'page'.*SKIPPED"):
        result[page]


async def test_a_skip_does_not_stop_a_fail_fast_run() -> None:
    release = asyncio.Event()
    ended: list[str] = []

    async def slow() -> str:
        await release.wait()
        ended.append("slow")
        return "done"

    async def skips() -> int:
        release.set()  # the sibling is still running when this node skips
        raise Skip("nothing to do")

    with build_dag() as dag:
        s = dag.add_node(slow, name="slow")
        k = dag.add_node(skips, name="skips")
        after_slow = dag.add_node(lambda v: v + "!", s, name="after_slow")
    result = await dag.invoke(None)  # fail-fast: no DagError, nothing cancelled
    assert ended == ["slow"]
    assert result[after_slow] == "done!"
    assert result.status(k) is NodeStatus.SKIPPED
    assert result.ok


async def test_skip_cascades_through_after_and_join(task_factory: str) -> None:
    calls: list[str] = []
    with build_dag() as dag:
        a = dag.add_node(skipper("no", calls, "a"))
        c = dag.add_node(const(calls, "c", 1), name="c")
        b = dag.add_node(const(calls, "b", 2), name="b", after=a)
        j = dag.join(a, c, name="j")
        d = dag.add_node(const(calls, "d", 3), name="d", after=j)
        e = dag.add_node(same(calls, "e"), c, name="e", after=[b])
    for on_error in MODES:
        calls.clear()
        result = await dag.invoke(None, on_error=on_error)
        assert sorted(calls) == ["a", "c"], on_error
        assert result.ok
        assert result[c] == 1
        for node in (a, b, j, d, e):
            assert result.status(node) is NodeStatus.SKIPPED, (on_error, node.name)
            assert result.skip_cause(node) == "a", (on_error, node.name)


async def test_a_diamond_of_dependents_is_skipped_once_each() -> None:
    seen: list[events.Event] = []
    with build_dag() as dag:
        a = dag.add_node(skipper("no", [], "a"))
        left = dag.add_node(lambda x: x, a, name="left")
        right = dag.add_node(lambda x: x, a, name="right")
        bottom = dag.add_node(lambda x, y: x + y, left, right, name="bottom")
    result = await dag.invoke(None, observers=[seen.append])
    skipped = [str(e.node) for e in seen if isinstance(e, events.NodeSkipped)]
    assert sorted(skipped) == ["a", "bottom", "left", "right"]  # each exactly once
    assert result.skip_cause(bottom) == "a"


# -- pre hooks, post hooks, resources ------------------------------------------------------------


@pytest.mark.parametrize("on_error", MODES)
async def test_skip_in_pre_skips_the_node_without_its_body_and_post_still_runs(
    on_error: OnError,
) -> None:
    log: list[str] = []

    def pre() -> None:
        log.append("pre")
        raise Skip("not today")

    with build_dag() as dag:
        n = dag.add_node(
            const(log, "body", 1),
            name="n",
            pre=pre,
            post=lambda: log.append("post"),
        )
        dep = dag.add_node(same(log, "dep"), n, name="dep")
    result = await dag.invoke(None, on_error=on_error)
    assert log == ["pre", "post"]
    assert result.ok
    assert result.status(n) is NodeStatus.SKIPPED
    assert result.status(dep) is NodeStatus.SKIPPED
    assert result.skip_cause(dep) == "n"


async def test_skip_in_an_async_pre_taking_the_parameter() -> None:
    log: list[str] = []

    async def pre(flag: bool) -> None:
        log.append(f"pre {flag}")
        if not flag:
            raise Skip("flag off")

    with build_dag(bool) as dag:
        n = dag.add_node(const(log, "body", "v"), name="n", pre=pre, post=log.append)
    off = await dag.invoke(False)
    assert off.status(n) is NodeStatus.SKIPPED
    assert log == ["pre False", False]  # post took the parameter
    log.clear()
    on = await dag.invoke(True)
    assert on[n] == "v"
    assert log == ["pre True", "body", True]


async def test_skip_in_a_body_with_hooks_runs_post_once() -> None:
    log: list[str] = []

    def body() -> int:
        log.append("body")
        raise Skip("no")

    with build_dag() as dag:
        n = dag.add_node(
            body, name="n", pre=lambda: log.append("pre"), post=lambda: log.append("post")
        )
    result = await dag.invoke(None)
    assert log == ["pre", "body", "post"]
    assert result.status(n) is NodeStatus.SKIPPED


async def test_a_resource_whose_setup_skips_is_not_cleaned_up() -> None:
    log: list[str] = []

    class Conn:
        async def __aenter__(self) -> str:
            log.append("enter")
            raise Skip("no database configured")

        async def __aexit__(
            self,
            et: type[BaseException] | None,
            ev: BaseException | None,
            tb: TracebackType | None,
        ) -> None:
            log.append("exit")  # must never run: nothing was acquired

    async def gen() -> AsyncIterator[str]:
        log.append("gen setup")
        raise Skip("no cache configured")
        yield "never"  # pragma: no cover  # (makes this an async generator)

    with build_dag() as dag:
        conn = dag.add_resource(Conn, name="conn", post=lambda: log.append("post"))
        g = dag.add_resource(gen, name="gen")
        use = dag.add_node(lambda c, x: c + x, conn, g, name="use")
    for on_error in MODES:
        log.clear()
        result = await dag.invoke(None, on_error=on_error)
        assert sorted(log) == ["enter", "gen setup", "post"], on_error  # post: its body started
        assert result.ok
        assert result.status(conn) is NodeStatus.SKIPPED
        assert result.status(g) is NodeStatus.SKIPPED
        assert result.status(use) is NodeStatus.SKIPPED
        assert result.skip_cause(use) in ("conn", "gen")


@pytest.mark.parametrize("on_error", MODES)
async def test_a_resource_closes_normally_when_a_node_using_it_skips(on_error: OnError) -> None:
    log: list[str] = []

    @asynccontextmanager
    async def transaction() -> AsyncGenerator[str, None]:
        try:
            yield "tx"
        except BaseException as exc:
            log.append(f"rollback {type(exc).__name__}")
            raise
        log.append("commit")

    def write(tx: str) -> str:
        raise Skip("nothing to write")

    with build_dag() as dag:
        tx = dag.add_resource(transaction, name="tx")
        dag.add_node(write, tx, name="write")
    result = await dag.invoke(None, on_error=on_error)
    assert result.ok
    assert log == ["commit"]  # a skip is not a failure: nothing is thrown into the resource


# -- causes, failures, fallback, retry -----------------------------------------------------------


async def test_skip_cause_names_the_failed_node_in_continue_mode() -> None:
    def boom() -> int:
        raise ValueError("boom")

    with build_dag() as dag:
        b = dag.add_node(boom, name="boom")
        d1 = dag.add_node(lambda x: x, b, name="d1")
        d2 = dag.add_node(lambda x: x, d1, name="d2")
        a = dag.add_node(lambda: 1, after=b, name="after_boom")
        s = dag.add_node(skipper("no", [], "s"))
        both = dag.add_node(lambda x, y: x + y, d1, s, name="both")
        fine = dag.add_node(lambda: 0, name="fine")
    result = await dag.invoke(None, on_error="continue")
    assert not result.ok
    assert [f.node for f in result.errors] == ["boom"]
    assert result.status(b) is NodeStatus.FAILED
    assert result.skip_cause(b) is None  # failed, not skipped
    assert result.skip_cause(d1) == "boom"
    assert result.skip_cause(d2) == "boom"
    assert result.skip_cause(a) == "boom"
    assert result.skip_cause(s) == "s"
    assert result.skip_cause(both) in ("boom", "s")  # both are causes; either one started it
    assert result.skip_cause(fine) is None
    assert result.status(both) is NodeStatus.SKIPPED


async def test_skip_cause_of_a_node_of_another_graph_is_refused() -> None:
    from dagwire import DagDefinitionError

    with build_dag() as one:
        one.add_node(lambda: 1)
    with build_dag() as two:
        foreign = two.add_node(lambda: 1)
    result = await one.invoke(None)
    with pytest.raises(DagDefinitionError):
        result.skip_cause(foreign)


@pytest.mark.parametrize("where", ["body", "pre"])
async def test_a_node_with_a_fallback_that_skips_takes_the_fallback_and_succeeds(
    where: str,
) -> None:
    calls: list[str] = []

    def raise_skip() -> None:
        raise Skip("use the default")

    with build_dag() as dag:
        if where == "body":
            n = dag.add_node(skipper("no", calls, "n"), name="n", fallback=-1)
        else:
            n = dag.add_node(lambda: 5, name="n", pre=raise_skip, fallback=-1)
        dep = dag.add_node(lambda x: same(calls, "dep")(x) * 10, n, name="dep")
    seen: list[events.Event] = []
    result = await dag.invoke(None, observers=[seen.append])
    assert result.status(n) is NodeStatus.SUCCEEDED
    assert result[n] == -1
    assert result[dep] == -10
    assert "dep" in calls
    assert result.ok
    assert result.errors == ()  # a skip is not a failure, even covered by a fallback
    assert result.skip_cause(n) is None
    assert not any(isinstance(e, events.NodeSkipped | events.NodeFailed) for e in seen)


async def test_skip_is_never_retried() -> None:
    calls: list[str] = []
    with build_dag() as dag:
        n = dag.add_node(
            skipper("no", calls, "n"),
            name="n",
            retry=Retry(attempts=5, initial_delay=0.0, on=(Exception,)),
        )
    seen: list[events.Event] = []
    result = await dag.invoke(None, observers=[seen.append])
    assert calls == ["n"]
    assert result.status(n) is NodeStatus.SKIPPED
    assert not any(isinstance(e, events.NodeRetrying) for e in seen)


async def test_a_skip_and_a_failure_in_one_fail_fast_run() -> None:
    def boom(_: int) -> int:
        raise ValueError("boom")

    with build_dag() as dag:
        s = dag.add_node(skipper("no", [], "s"))
        after_s = dag.add_node(lambda x: x, s, name="after_s")
        one = dag.add_node(lambda: 1, name="one")
        dag.add_node(boom, one, name="boom")
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert set(info.value.failures) == {"boom"}  # the skip is not in it
    result = await dag.invoke(None, on_error="continue")
    assert result.status(s) is NodeStatus.SKIPPED
    assert result.skip_cause(after_s) == "s"


# -- what the user sees --------------------------------------------------------------------------


async def test_node_skipped_events_carry_the_cause() -> None:
    seen: list[events.Event] = []
    with build_dag(name="g") as dag:
        dag.add_node(skipper("flag off", [], "flag"))
        dag.add_node(lambda x: x, dag.node("flag"), name="recs")
    await dag.invoke(None, observers=[seen.append])
    kinds = [(e.kind, e.node) for e in seen]
    assert kinds == [
        ("run_started", None),
        ("node_started", "flag"),
        ("node_skipped", "flag"),
        ("node_skipped", "recs"),
        ("run_finished", None),
    ]
    skipped = [e for e in seen if isinstance(e, events.NodeSkipped)]
    assert [e.cause for e in skipped] == ["flag", "flag"]
    finished = seen[-1]
    assert isinstance(finished, events.RunFinished)
    assert finished.ok


async def test_the_timeline_and_the_stream_show_skipped_nodes() -> None:
    with build_dag() as dag:
        flag = dag.add_node(skipper("no", [], "flag"))
        recs = dag.add_node(lambda x: x, flag, name="recs")
    result = await dag.invoke(None, timeline=True)
    by_name = {t.node: t for t in result.timeline()}
    assert by_name["flag"].status is NodeStatus.SKIPPED
    completions = [(c.node, c.status, c.value, c.error) async for c in dag.stream(None)]
    assert [c[:3] for c in completions] == [
        (flag, NodeStatus.SKIPPED, None),
        (recs, NodeStatus.SKIPPED, None),
    ]
    # The node that skipped carries its Skip (its reason); the cascade carries none.
    assert isinstance(completions[0][3], Skip)
    assert completions[0][3].reason == "no"
    assert completions[1][3] is None


async def test_not_completed_error_of_a_skipped_node_does_not_say_a_dependency_failed() -> None:
    """A node that skipped (or whose input skipped) did not fail, and nothing it depends on
    failed: the error must not say so (it names the node and SKIPPED)."""
    with build_dag() as dag:
        flag = dag.add_node(skipper("flag off", [], "flag"))
        recs = dag.add_node(lambda x: x, flag, name="recs")
    result = await dag.invoke(None)
    for node in (flag, recs):
        with pytest.raises(NodeNotCompletedError) as info:
            result[node]
        message = str(info.value)
        assert f"{node.name!r}" in message
        assert "SKIPPED" in message
        assert "failed" not in message, message


async def test_skip_reason_is_kept() -> None:
    reason = Skip("flag off").reason
    assert reason == "flag off"
    assert str(Skip("flag off")) == "flag off"
    assert Skip().reason == ""
