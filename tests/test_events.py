"""Events and observers on real runs: the exact kinds in order, their fields, who receives them.

Each order test asserts the exact kinds for one node and for the whole run, and checks the rules
every run obeys (`check_run`: `run_started` first, `run_finished` last after every cleanup, one
run id, times non-decreasing per node, each `node_started` followed by exactly one end for that
attempt). Every test runs under the default task factory and under an eager one (3.12+).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator

import pytest

import dagwire
from dagwire import (
    BreakerState,
    Cache,
    CircuitBreaker,
    DagDefinitionError,
    DagError,
    NodeStatus,
    Retry,
    Skip,
    build_dag,
)
from dagwire.events import (
    BreakerChanged,
    CleanupFinished,
    CleanupStarted,
    Event,
    NodeFailed,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    RunFinished,
)
from dagwire.report import Reporter
from observe_support import Recorder, check_run
from observe_support import task_factory as task_factory  # every test, both task factories

pytestmark = pytest.mark.usefixtures("task_factory")


class Down(Exception):
    """A downstream call failed."""


def finished(rec: Recorder, run_id: int | None = None) -> RunFinished:
    ends = [e for e in rec.of(None, run_id) if isinstance(e, RunFinished)]
    assert len(ends) == 1, ends
    return ends[0]


# -- success ------------------------------------------------------------------------------------


async def test_a_successful_run_reports_each_node_and_its_cleanup_in_order() -> None:
    rec = Recorder()
    closed: list[str] = []

    async def conn() -> AsyncIterator[str]:
        yield "db"
        closed.append("db")

    async def fetch(c: str) -> str:
        await asyncio.sleep(0)
        return c + ":row"

    def parse(raw: str) -> str:
        return raw.upper()

    with build_dag(name="ok") as dag:
        c = dag.add_resource(conn, name="conn")
        f = dag.add_node(fetch, c, name="fetch", tags=("http", "users"))
        p = dag.add_node(parse, f, name="parse")

    began = time.perf_counter()
    result = await dag.invoke(None, observers=[rec])
    elapsed = time.perf_counter() - began

    assert result[p] == "DB:ROW"
    assert closed == ["db"]
    assert rec.kinds() == [
        "run_started",
        "node_started",  # conn
        "node_succeeded",
        "node_started",  # fetch
        "node_succeeded",
        "node_started",  # parse
        "node_succeeded",
        "cleanup_started",  # conn
        "cleanup_finished",
        "run_finished",
    ]
    assert [e.node for e in rec.events] == [
        None,
        "conn",
        "conn",
        "fetch",
        "fetch",
        "parse",
        "parse",
        "conn",
        "conn",
        None,
    ]
    check_run(rec.events, "ok")
    assert rec.kinds("fetch") == ["node_started", "node_succeeded"]
    assert all(e.tags == ("http", "users") for e in rec.of("fetch"))
    assert all(e.tags == () for e in rec.of("parse") + rec.of("conn"))
    assert all(e.attempt == 1 for e in rec.of("fetch"))
    assert all(e.error is None for e in rec.events)
    started, succeeded = rec.of("fetch")
    assert started.duration is None
    assert succeeded.duration is not None
    assert 0.0 <= succeeded.duration <= succeeded.time - started.time + 1e-9
    end = finished(rec)
    assert end.ok is True
    assert end.error is None
    # Seconds since the run started, on the timeline's clock: within the time invoke took.
    assert end.time <= elapsed
    cleanup_end = rec.one(CleanupFinished, "conn")
    assert cleanup_end.error is None
    assert cleanup_end.duration is not None


async def test_run_ids_are_unique_per_invoke_and_shared_by_a_runs_events() -> None:
    rec = Recorder()

    async def one() -> int:
        return 1

    with build_dag(name="ids", observers=[rec]) as dag:
        dag.add_node(one, name="one")
    for _ in range(3):
        await dag.invoke(None)
    ids = rec.run_ids()
    assert len(ids) == 3
    assert len(set(ids)) == 3
    for run_id in ids:
        check_run(rec.of(None, run_id), "ids")
        assert rec.kinds(None, run_id) == [
            "run_started",
            "node_started",
            "node_succeeded",
            "run_finished",
        ]


async def test_graph_observers_are_called_before_invoke_observers_for_every_event() -> None:
    calls: list[tuple[str, str]] = []

    def graph_observer(event: Event) -> None:
        calls.append(("graph", event.kind))

    def invoke_observer(event: Event) -> None:
        calls.append(("invoke", event.kind))

    async def one() -> int:
        return 1

    with build_dag(name="both", observers=[graph_observer]) as dag:
        dag.add_node(one, name="one")
    await dag.invoke(None, observers=[invoke_observer])
    kinds = ["run_started", "node_started", "node_succeeded", "run_finished"]
    assert calls == [(who, kind) for kind in kinds for who in ("graph", "invoke")]
    calls.clear()
    await dag.invoke(None)  # the invoke observer was for that run only
    assert calls == [("graph", kind) for kind in kinds]


# -- failure ------------------------------------------------------------------------------------


async def test_a_failing_node_fails_the_run_and_cancels_its_sibling() -> None:
    rec = Recorder()
    sibling_started = asyncio.Event()

    async def slow() -> None:
        sibling_started.set()
        await asyncio.sleep(10)

    async def first() -> int:
        return 1

    async def pay(x: int) -> int:
        await sibling_started.wait()
        raise Down("payments returned 503")

    def after(x: int) -> int:
        return x

    with build_dag(name="fail") as dag:
        a = dag.add_node(first, name="first")
        b = dag.add_node(pay, a, name="pay")
        dag.add_node(after, b, name="after")
        dag.add_node(slow, name="slow")

    with pytest.raises(DagError) as caught:
        await dag.invoke(None, observers=[rec])

    check_run(rec.events, "fail")
    assert rec.kinds("first") == ["node_started", "node_succeeded"]
    assert rec.kinds("pay") == ["node_started", "node_failed"]
    assert rec.kinds("slow") == ["node_started", "node_cancelled"]
    assert rec.kinds("after") == []  # never started: nothing to report in fail-fast mode
    failed = rec.one(NodeFailed, "pay")
    assert isinstance(failed.error, Down)
    assert failed.error is caught.value.failures["pay"]
    assert isinstance(failed, NodeFailed)
    assert failed.recovered is False
    assert failed.attempt == 1
    cancelled = rec.of("slow")[1]
    assert cancelled.error is None
    # The failure is reported before the cancellation it causes.
    assert rec.events.index(failed) < rec.events.index(cancelled)
    end = finished(rec)
    assert end.ok is False
    assert end.error is caught.value  # exactly what invoke raised
    assert sorted(rec.kinds()) == sorted(
        [
            "run_started",
            "run_finished",
            "node_started",
            "node_succeeded",
            "node_started",
            "node_failed",
            "node_started",
            "node_cancelled",
        ]
    )


async def test_a_node_timeout_is_a_failure_naming_the_node() -> None:
    rec = Recorder()

    async def hang() -> None:
        await asyncio.sleep(10)

    with build_dag(name="node-timeout") as dag:
        dag.add_node(hang, name="hang", timeout=0.01)
    with pytest.raises(DagError) as caught:
        await dag.invoke(None, observers=[rec])
    check_run(rec.events, "node-timeout")
    assert rec.kinds() == ["run_started", "node_started", "node_failed", "run_finished"]
    failed = rec.one(NodeFailed, "hang")
    assert isinstance(failed.error, TimeoutError)
    assert "'hang'" in str(failed.error)
    assert "0.01" in str(failed.error)
    assert finished(rec).error is caught.value


# -- retry and fallback ---------------------------------------------------------------------------


async def test_a_retried_node_reports_each_attempt_with_its_delay() -> None:
    rec = Recorder()
    raised: list[ConnectionError] = []

    async def flaky() -> str:
        if len(raised) < 2:
            raised.append(ConnectionError(f"reset {len(raised) + 1}"))
            raise raised[-1]
        return "ok"

    with build_dag(name="retry") as dag:
        n = dag.add_node(
            flaky,
            name="flaky",
            retry=Retry(attempts=3, initial_delay=0.002, backoff=2.0, jitter=False),
        )
    result = await dag.invoke(None, observers=[rec])
    assert result[n] == "ok"
    check_run(rec.events, "retry")
    assert rec.kinds("flaky") == [
        "node_started",
        "node_retrying",
        "node_started",
        "node_retrying",
        "node_started",
        "node_succeeded",
    ]
    assert rec.kinds() == ["run_started", *rec.kinds("flaky"), "run_finished"]
    assert [e.attempt for e in rec.of("flaky")] == [1, 1, 2, 2, 3, 3]
    retries = [e for e in rec.events if isinstance(e, NodeRetrying)]
    assert [r.delay for r in retries] == [0.002, 0.004]
    assert [r.error for r in retries] == raised
    assert all(r.duration is not None for r in retries)
    assert finished(rec).ok is True


async def test_a_node_out_of_attempts_fails_with_its_last_error() -> None:
    rec = Recorder()
    raised: list[ConnectionError] = []

    async def down() -> None:
        raised.append(ConnectionError(f"reset {len(raised) + 1}"))
        raise raised[-1]

    with build_dag(name="exhausted") as dag:
        dag.add_node(down, name="down", retry=Retry(attempts=2, initial_delay=0.001))
    with pytest.raises(DagError) as caught:
        await dag.invoke(None, observers=[rec])
    check_run(rec.events, "exhausted")
    assert rec.kinds("down") == ["node_started", "node_retrying", "node_started", "node_failed"]
    failed = rec.one(NodeFailed, "down")
    assert failed.attempt == 2
    assert failed.error is raised[1]
    assert finished(rec).error is caught.value


async def test_a_node_cancelled_in_its_retry_delay_ends_with_node_cancelled() -> None:
    rec = Recorder()
    retrying = asyncio.Event()
    raised: list[BaseException] = []

    async def flaky() -> None:
        raise ConnectionError("reset")

    def watch(event: Event) -> None:
        if isinstance(event, NodeRetrying):
            retrying.set()

    with build_dag(name="retry-cancel") as dag:
        dag.add_node(flaky, name="flaky", retry=Retry(attempts=3, initial_delay=10.0))

    async def caller() -> None:
        try:
            await dag.invoke(None, observers=[watch, rec])
        except asyncio.CancelledError as exc:
            raised.append(exc)
            raise

    task = asyncio.create_task(caller())
    await retrying.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    check_run(rec.events, "retry-cancel")
    assert rec.kinds() == [
        "run_started",
        "node_started",
        "node_retrying",
        "node_cancelled",
        "run_finished",
    ]
    # The retrying event ends attempt 1; the cancel ends attempt 2, which it waited for and
    # which never started (was: a second end for attempt 1).
    attempts = [getattr(e, "attempt", None) for e in rec.events[1:4]]
    assert attempts == [1, 1, 2]
    assert finished(rec).error is raised[0]


async def test_a_fallback_reports_the_failure_as_recovered_and_dependents_run() -> None:
    rec = Recorder()
    boom = Down("flags service down")

    async def flags() -> dict[str, bool]:
        raise boom

    def use(f: dict[str, bool]) -> bool:
        return f.get("beta", False)

    with build_dag(name="fallback") as dag:
        fl = dag.add_node(flags, name="flags", fallback={"beta": True})
        u = dag.add_node(use, fl, name="use")
    result = await dag.invoke(None, observers=[rec])
    assert result[u] is True
    check_run(rec.events, "fallback")
    assert rec.kinds() == [
        "run_started",
        "node_started",
        "node_failed",
        "node_started",
        "node_succeeded",
        "run_finished",
    ]
    failed = rec.one(NodeFailed, "flags")
    assert isinstance(failed, NodeFailed)
    assert failed.recovered is True
    assert failed.error is boom
    assert failed.duration is not None
    end = finished(rec)
    assert end.ok is True
    assert end.error is None
    assert [(f.node, f.recovered) for f in result.errors] == [("flags", True)]


async def test_a_retried_node_with_a_fallback_reports_retries_then_the_recovered_failure() -> None:
    rec = Recorder()

    async def down() -> int:
        raise ConnectionError("refused")

    with build_dag(name="retry-fallback") as dag:
        dag.add_node(down, name="down", retry=Retry(attempts=2, initial_delay=0.001), fallback=-1)
    await dag.invoke(None, observers=[rec])
    check_run(rec.events, "retry-fallback")
    assert rec.kinds("down") == ["node_started", "node_retrying", "node_started", "node_failed"]
    failed = rec.one(NodeFailed, "down")
    assert isinstance(failed, NodeFailed)
    assert failed.recovered
    assert failed.attempt == 2


# -- skips ------------------------------------------------------------------------------------


async def test_continue_mode_skips_dependents_naming_the_failed_node() -> None:
    rec = Recorder()

    async def broken() -> int:
        raise Down("no")

    def dep(x: int) -> int:
        return x

    async def alone() -> int:
        await asyncio.sleep(0)
        return 2

    with build_dag(name="continue") as dag:
        b = dag.add_node(broken, name="broken")
        d1 = dag.add_node(dep, b, name="d1")
        d2 = dag.add_node(dep, d1, name="d2", tags=("late",))
        a = dag.add_node(alone, name="alone")
    result = await dag.invoke(None, on_error="continue", observers=[rec])
    assert result[a] == 2
    assert result.ok is False
    check_run(rec.events, "continue")
    assert rec.kinds("broken") == ["node_started", "node_failed"]
    assert rec.kinds("d1") == ["node_skipped"]
    assert rec.kinds("d2") == ["node_skipped"]
    assert rec.kinds("alone") == ["node_started", "node_succeeded"]
    for name in ("d1", "d2"):
        skipped = rec.one(NodeSkipped, name)
        assert isinstance(skipped, NodeSkipped)
        assert skipped.cause == "broken"
        assert skipped.error is None
    assert rec.one(NodeSkipped, "d2").tags == ("late",)
    # Skips come after the failure that caused them.
    assert rec.events.index(rec.one(NodeFailed, "broken")) < rec.events.index(
        rec.one(NodeSkipped, "d1")
    )
    end = finished(rec)
    assert end.ok is False  # a result that is not ok, returned: no error
    assert end.error is None
    assert result.skip_cause(d2) == "broken"
    assert result.status(d2) is NodeStatus.SKIPPED


async def test_skip_raised_in_a_body_skips_the_node_and_its_dependents() -> None:
    rec = Recorder()

    async def maybe() -> int:
        await asyncio.sleep(0)
        raise Skip("nothing to do today")

    def dep(x: int) -> int:
        return x

    with build_dag(name="skip-body") as dag:
        m = dag.add_node(maybe, name="maybe")
        d1 = dag.add_node(dep, m, name="d1")
        d2 = dag.add_node(dep, d1, name="d2")
    result = await dag.invoke(None, observers=[rec])  # fail-fast mode: a skip is no failure
    assert result.ok is True
    assert result.errors == ()
    assert result.status(m) is NodeStatus.SKIPPED
    assert result.skip_cause(m) == "maybe"
    assert result.skip_cause(d1) == "maybe"
    assert result.skip_cause(d2) == "maybe"
    assert rec.kinds() == [
        "run_started",
        "node_started",
        "node_skipped",  # maybe
        "node_skipped",  # d1
        "node_skipped",  # d2
        "run_finished",
    ]
    assert rec.kinds("maybe") == ["node_started", "node_skipped"]
    for name in ("maybe", "d1", "d2"):
        skipped = rec.one(NodeSkipped, name)
        assert isinstance(skipped, NodeSkipped)
        assert skipped.cause == "maybe"
    end = finished(rec)
    assert end.ok is True
    assert end.error is None


async def test_skip_raised_in_a_body_ends_the_attempt_it_started() -> None:
    """`node_started` is followed by exactly one event ending that attempt: for a body that
    raised Skip that is its `node_skipped`, which carries the attempt and its duration."""
    rec = Recorder()

    async def maybe() -> int:
        raise Skip("later")

    with build_dag(name="skip-attempt") as dag:
        dag.add_node(maybe, name="maybe")
    await dag.invoke(None, observers=[rec])
    started, skipped = rec.of("maybe")
    assert isinstance(started, NodeStarted)
    assert isinstance(skipped, NodeSkipped)
    assert skipped.attempt == started.attempt == 1
    assert skipped.duration is not None
    check_run(rec.events, "skip-attempt")


async def test_skip_raised_in_a_pre_hook_skips_the_node_without_an_attempt() -> None:
    rec = Recorder()
    bodies: list[str] = []
    posts: list[str] = []

    def gate() -> None:
        raise Skip("feature off")

    def body(x: int) -> int:
        bodies.append("gated")
        return x

    def dep(x: int) -> int:
        bodies.append("dep")
        return x

    with build_dag(name="skip-pre") as dag:
        g = dag.add_node(body, 1, name="gated", pre=gate, post=lambda: posts.append("post"))
        d = dag.add_node(dep, g, name="dep")
    result = await dag.invoke(None, observers=[rec])
    assert bodies == []
    assert posts == ["post"]  # post runs for every node whose pre started
    assert result.ok is True
    assert result.skip_cause(g) == "gated"
    assert result.skip_cause(d) == "gated"
    check_run(rec.events, "skip-pre")
    assert rec.kinds() == [
        "run_started",
        "node_skipped",  # gated: its pre raised Skip, no attempt started
        "node_skipped",  # dep
        "cleanup_started",  # gated's post
        "cleanup_finished",
        "run_finished",
    ]
    for name in ("gated", "dep"):
        skipped = rec.one(NodeSkipped, name)
        assert isinstance(skipped, NodeSkipped)
        assert skipped.cause == "gated"
    assert finished(rec).ok is True


# -- cancellation and timeouts ------------------------------------------------------------------


async def test_a_caller_cancel_reports_running_nodes_cancelled_and_the_run_last() -> None:
    rec = Recorder()
    started = asyncio.Event()
    raised: list[BaseException] = []

    async def wait() -> None:
        started.set()
        await asyncio.sleep(10)

    async def other(x: int) -> None:
        await asyncio.sleep(10)

    async def conn() -> AsyncIterator[int]:
        yield 1

    def user(c: int) -> int:
        return c

    with build_dag(name="cancel") as dag:
        c = dag.add_resource(conn, name="conn")
        u = dag.add_node(user, c, name="user")
        dag.add_node(wait, name="wait")
        dag.add_node(other, u, name="other")

    async def caller() -> None:
        try:
            await dag.invoke(None, observers=[rec])
        except asyncio.CancelledError as exc:
            raised.append(exc)
            raise

    task = asyncio.create_task(caller())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    check_run(rec.events, "cancel")
    assert rec.kinds("wait") == ["node_started", "node_cancelled"]
    assert rec.kinds("other") == ["node_started", "node_cancelled"]
    assert rec.kinds("conn") == [
        "node_started",
        "node_succeeded",
        "cleanup_started",
        "cleanup_finished",
    ]
    # The cleanup follows the ends of every node that depends on the resource.
    cleanup = rec.events.index(rec.one(CleanupStarted, "conn"))
    for name in ("user", "other"):
        assert rec.events.index(rec.of(name)[-1]) < cleanup
    end = finished(rec)
    assert end.ok is False
    assert len(raised) == 1
    assert end.error is raised[0]


async def test_an_invoke_timeout_cancels_running_nodes_and_is_the_runs_error() -> None:
    rec = Recorder()

    async def hang() -> None:
        await asyncio.sleep(10)

    async def quick() -> int:
        return 1

    with build_dag(name="run-timeout") as dag:
        dag.add_node(quick, name="quick")
        dag.add_node(hang, name="hang")
    with pytest.raises(TimeoutError) as caught:
        await dag.invoke(None, observers=[rec], timeout=0.02)
    check_run(rec.events, "run-timeout")
    assert rec.kinds("quick") == ["node_started", "node_succeeded"]
    assert rec.kinds("hang") == ["node_started", "node_cancelled"]
    end = finished(rec)
    assert end.ok is False
    assert end.error is caught.value


# -- cleanups ---------------------------------------------------------------------------------


async def test_a_failing_cleanup_reports_its_error_and_fails_the_run() -> None:
    rec = Recorder()
    closing = OSError("close failed")

    async def conn() -> AsyncIterator[str]:
        yield "db"
        raise closing

    def user(c: str) -> str:
        return c

    with build_dag(name="cleanup-fail") as dag:
        c = dag.add_resource(conn, name="conn", tags=("db",))
        dag.add_node(user, c, name="user")
    with pytest.raises(DagError) as caught:
        await dag.invoke(None, observers=[rec])
    check_run(rec.events, "cleanup-fail")
    assert rec.kinds() == [
        "run_started",
        "node_started",
        "node_succeeded",
        "node_started",
        "node_succeeded",
        "cleanup_started",
        "cleanup_finished",
        "run_finished",
    ]
    done = rec.one(CleanupFinished, "conn")
    assert done.error is closing
    assert done.tags == ("db",)
    assert done.duration is not None
    assert rec.one(CleanupStarted, "conn").error is None
    end = finished(rec)
    assert end.ok is False
    assert end.error is caught.value
    assert caught.value.failures == {"conn": closing}


async def test_cleanups_follow_the_ends_of_every_node_depending_on_them() -> None:
    rec = Recorder()

    async def outer() -> AsyncIterator[str]:
        yield "outer"

    async def inner(o: str) -> AsyncIterator[str]:
        yield o + "/inner"

    async def slow(x: str) -> str:
        for _ in range(5):
            await asyncio.sleep(0)
        return x

    def quick(x: str) -> str:
        return x

    def last(a: str, b: str) -> str:
        return a + b

    with build_dag(name="order") as dag:
        o = dag.add_resource(outer, name="outer")
        i = dag.add_resource(inner, o, name="inner", post=lambda: None)
        s = dag.add_node(slow, i, name="slow")
        q = dag.add_node(quick, o, name="quick")
        dag.add_node(last, s, q, name="last")
    await dag.invoke(None, observers=[rec])
    check_run(rec.events, "order")
    pos = {(e.kind, e.node): k for k, e in enumerate(rec.events)}
    for name in ("inner", "slow", "quick", "last"):
        assert pos[("node_succeeded", name)] < pos[("cleanup_started", "outer")]
    for name in ("slow", "last"):
        assert pos[("node_succeeded", name)] < pos[("cleanup_started", "inner")]
    assert pos[("cleanup_finished", "inner")] < pos[("cleanup_started", "outer")]
    assert rec.kinds("inner") == [
        "node_started",
        "node_succeeded",
        "cleanup_started",  # its exit and its post=, together
        "cleanup_finished",
    ]


async def test_an_early_released_resource_is_cleaned_after_each_of_its_users_ended() -> None:
    rec = Recorder()
    gate = asyncio.Event()

    async def conn() -> AsyncIterator[str]:
        yield "c"

    async def user_a(c: str) -> str:
        await gate.wait()
        return c

    def user_b(c: str) -> str:
        gate.set()
        return c

    async def later(a: str) -> str:
        for _ in range(5):
            await asyncio.sleep(0)
        return a

    with build_dag(name="early") as dag:
        c = dag.add_resource(conn, name="conn", release="early")
        a = dag.add_node(user_a, c, name="user_a")
        dag.add_node(user_b, c, name="user_b")
        dag.add_node(later, a, name="later")
    await dag.invoke(None, observers=[rec])
    check_run(rec.events, "early")
    pos = {(e.kind, e.node): k for k, e in enumerate(rec.events)}
    for name in ("user_a", "user_b"):
        assert pos[("node_succeeded", name)] < pos[("cleanup_started", "conn")]
    # Released early: before the run's end, while a later node still runs.
    assert pos[("cleanup_finished", "conn")] < pos[("node_succeeded", "later")]


# -- breakers, caches, resume -------------------------------------------------------------------


async def test_breaker_changes_reach_only_the_run_whose_call_changed_the_breaker() -> None:
    graph_rec, rec_a, rec_b = Recorder(), Recorder(), Recorder()
    breaker = CircuitBreaker(fail_max=1, reset_timeout=60.0)
    a_may_fail = asyncio.Event()
    b_admitted = asyncio.Event()
    opened = asyncio.Event()
    breaker.add_listener(lambda old, new: opened.set() if new is BreakerState.OPEN else None)

    async def call(who: str) -> str:
        if who == "a":
            await b_admitted.wait()
            raise ConnectionError("refused")
        b_admitted.set()
        await a_may_fail.wait()
        return who

    with build_dag(str, name="breaker", observers=[graph_rec]) as dag:
        dag.add_node(call, dag.params, name="call", breaker=breaker, fallback="fallback")

    async def run_b() -> None:
        await dag.invoke("b", observers=[rec_b])

    task_b = asyncio.create_task(run_b())
    run_a = asyncio.create_task(dag.invoke("a", observers=[rec_a]))
    await opened.wait()
    a_may_fail.set()
    await asyncio.gather(task_b, run_a)

    changes_a = [e for e in rec_a.events if isinstance(e, BreakerChanged)]
    assert [(e.old, e.new, e.node) for e in changes_a] == [
        (BreakerState.CLOSED, BreakerState.OPEN, "call")
    ]
    assert rec_a.kinds("call") == ["node_started", "breaker_changed", "node_failed"]
    # b's call was admitted before the breaker opened: it changed nothing, and b hears nothing.
    assert rec_b.kinds("call") == ["node_started", "node_succeeded"]
    graph_changes = [e for e in graph_rec.events if isinstance(e, BreakerChanged)]
    assert len(graph_changes) == 1
    assert graph_changes[0].run_id == changes_a[0].run_id == rec_a.events[0].run_id
    check_run(rec_a.events, "breaker")
    check_run(rec_b.events, "breaker")


async def test_a_half_open_trial_reports_both_changes_it_causes() -> None:
    now = [0.0]
    breaker = CircuitBreaker(fail_max=1, reset_timeout=10.0, clock=lambda: now[0])
    outcomes = iter([ConnectionError("down"), None])

    async def call() -> str:
        error = next(outcomes)
        if error is not None:
            raise error
        return "up"

    with build_dag(name="half-open") as dag:
        dag.add_node(call, name="call", breaker=breaker, fallback="fallback")
    first = Recorder()
    await dag.invoke(None, observers=[first])
    assert breaker.state is BreakerState.OPEN
    now[0] = 11.0
    rec = Recorder()
    await dag.invoke(None, observers=[rec])
    assert rec.kinds("call") == [
        "node_started",
        "breaker_changed",
        "breaker_changed",
        "node_succeeded",
    ]
    changes = [e for e in rec.events if isinstance(e, BreakerChanged)]
    assert [(e.old, e.new) for e in changes] == [
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]
    assert all(e.attempt == 1 and e.duration is None for e in changes)
    check_run(rec.events, "half-open")


async def test_a_cache_hit_is_a_cached_success_without_a_start() -> None:
    calls: list[int] = []
    cache = Cache(ttl=60.0)

    async def square(x: int) -> int:
        calls.append(x)
        return x * x

    with build_dag(int, name="cached") as dag:
        n = dag.add_node(square, dag.params, name="square", cache=cache)
    miss, hit = Recorder(), Recorder()
    assert (await dag.invoke(7, observers=[miss]))[n] == 49
    assert (await dag.invoke(7, observers=[hit]))[n] == 49
    assert calls == [7]
    check_run(miss.events, "cached")
    check_run(hit.events, "cached")
    assert miss.kinds("square") == ["node_started", "node_succeeded"]
    first = miss.one(NodeSucceeded, "square")
    assert isinstance(first, NodeSucceeded)
    assert first.cached is False
    assert hit.kinds() == ["run_started", "node_succeeded", "run_finished"]
    again = hit.one(NodeSucceeded, "square")
    assert isinstance(again, NodeSucceeded)
    assert again.cached is True
    assert again.resumed is False


async def test_every_event_ending_something_carries_a_duration_even_a_cache_hit() -> None:
    """`duration` is set on events that end something: a cache hit ends the node (0 seconds
    of body), like a resumed node, whose `node_succeeded` has ``duration == 0.0``."""
    cache = Cache(ttl=60.0)

    async def square(x: int) -> int:
        return x * x

    with build_dag(int, name="cached-duration") as dag:
        dag.add_node(square, dag.params, name="square", cache=cache)
    await dag.invoke(3)
    hit = Recorder()
    await dag.invoke(3, observers=[hit])
    assert hit.one(NodeSucceeded, "square").duration is not None


async def test_a_resumed_run_reports_taken_nodes_as_resumed_successes() -> None:
    fails = [True]

    async def load() -> int:
        return 20

    async def flaky(x: int) -> int:
        if fails.pop(0) if fails else False:
            raise Down("first time")
        return x + 1

    def total(x: int) -> int:
        return x * 2

    with build_dag(name="resume") as dag:
        ld = dag.add_node(load, name="load")
        fl = dag.add_node(flaky, ld, name="flaky")
        t = dag.add_node(total, fl, name="total")
    previous = await dag.invoke(None, on_error="continue")
    assert not previous.ok
    rec = Recorder()
    result = await dag.invoke(None, resume_from=previous, observers=[rec])
    assert result[t] == 42
    check_run(rec.events, "resume")
    assert rec.kinds() == [
        "run_started",
        "node_succeeded",  # load, taken from `previous`
        "node_started",
        "node_succeeded",  # flaky
        "node_started",
        "node_succeeded",  # total
        "run_finished",
    ]
    taken = rec.one(NodeSucceeded, "load")
    assert isinstance(taken, NodeSucceeded)
    assert taken.resumed is True
    assert taken.cached is False
    ran = rec.one(NodeSucceeded, "flaky")
    assert isinstance(ran, NodeSucceeded)
    assert ran.resumed is False


# -- add_map items and sub-graphs ---------------------------------------------------------------


async def test_map_items_are_reported_as_name_index_inside_the_nodes_attempt() -> None:
    rec = Recorder()

    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    with build_dag(name="map") as dag:
        m = dag.add_map(double, [10, 20, 30], name="m", limit=1, tags=("batch",))
    result = await dag.invoke(None, observers=[rec])
    assert result[m] == [20, 40, 60]
    assert rec.kinds("m") == ["node_started", "node_succeeded"]
    assert [(e.kind, e.node) for e in rec.events[1:-1]] == [
        ("node_started", "m"),
        ("node_started", "m[0]"),
        ("node_succeeded", "m[0]"),
        ("node_started", "m[1]"),
        ("node_succeeded", "m[1]"),
        ("node_started", "m[2]"),
        ("node_succeeded", "m[2]"),
        ("node_succeeded", "m"),
    ]
    assert all(e.tags == ("batch",) for e in rec.events[1:-1])
    run_id = rec.events[0].run_id
    assert all(e.run_id == run_id and e.dag == "map" for e in rec.events)


async def test_a_failing_map_item_is_reported_and_cancels_the_others() -> None:
    rec = Recorder()
    others_started = asyncio.Event()

    async def fetch(x: int) -> int:
        if x == 1:
            await others_started.wait()
            raise Down(f"item {x}")
        others_started.set()
        await asyncio.sleep(10)
        return x

    with build_dag(name="map-fail") as dag:
        dag.add_map(fetch, [0, 1], name="m")
    with pytest.raises(DagError):
        await dag.invoke(None, observers=[rec])
    assert rec.kinds("m[0]") == ["node_started", "node_cancelled"]
    assert rec.kinds("m[1]") == ["node_started", "node_failed"]
    assert rec.kinds("m") == ["node_started", "node_failed"]
    assert isinstance(rec.one(NodeFailed, "m[1]").error, Down)


async def test_map_item_ends_carry_their_duration() -> None:
    rec = Recorder()

    async def double(x: int) -> int:
        return 2 * x

    with build_dag(name="map-durations") as dag:
        dag.add_map(double, [1, 2], name="m")
    await dag.invoke(None, observers=[rec])
    check_run(rec.events, "map-durations")  # each item's end carries a duration


async def test_a_retried_map_item_reports_its_retries() -> None:
    """Items are reported as nodes named "name[index]", so their attempts follow the rules of
    any node's: a retry is a `node_retrying` before the item's next `node_started`."""
    rec = Recorder()
    failed_once: set[int] = set()

    async def fetch(x: int) -> int:
        if x == 1 and x not in failed_once:
            failed_once.add(x)
            raise ConnectionError("reset")
        return x

    with build_dag(name="map-retry") as dag:
        dag.add_map(fetch, [0, 1], name="m", retry=Retry(attempts=2, initial_delay=0.001))
    await dag.invoke(None, observers=[rec])
    assert rec.kinds("m[1]") == [
        "node_started",
        "node_retrying",
        "node_started",
        "node_succeeded",
    ]
    assert [e.attempt for e in rec.of("m[1]")] == [1, 1, 2, 2]


async def test_a_sub_graphs_events_reach_the_outer_runs_observers() -> None:
    outer_graph_rec, outer_invoke_rec, inner_rec = Recorder(), Recorder(), Recorder()

    async def lookup(x: int) -> int:
        return x + 1

    with build_dag(int, name="inner", observers=[inner_rec]) as inner:
        inner.add_node(lookup, inner.params, name="lookup")

    def prepare(x: int) -> int:
        return x

    with build_dag(int, name="outer", observers=[outer_graph_rec]) as outer:
        p = outer.add_node(prepare, outer.params, name="prepare")
        sub = outer.add_node(inner, p, name="sub")
    result = await outer.invoke(1, observers=[outer_invoke_rec])
    assert result[sub].ok
    inner_kinds = ["run_started", "node_started", "node_succeeded", "run_finished"]
    for rec in (outer_graph_rec, outer_invoke_rec):
        outer_id, inner_id = rec.run_ids()
        assert outer_id != inner_id
        assert rec.kinds(None, inner_id) == inner_kinds
        assert {e.dag for e in rec.of(None, inner_id)} == {"inner"}
        check_run(rec.of(None, outer_id), "outer")
        check_run(rec.of(None, inner_id), "inner")
        # The inner run happens within the sub-graph node's attempt.
        sub_start, sub_end = rec.of("sub")
        inner_events = rec.of(None, inner_id)
        assert rec.events.index(sub_start) < rec.events.index(inner_events[0])
        assert rec.events.index(inner_events[-1]) < rec.events.index(sub_end)
    # The inner graph's own observer hears its runs once, and nothing of the outer run.
    assert inner_rec.kinds() == inner_kinds
    assert inner_rec.run_ids() == [outer_graph_rec.run_ids()[1]]


async def test_an_observer_of_both_the_inner_graph_and_the_outer_run_hears_each_event_once() -> (
    None
):
    rec = Recorder()

    async def one(x: int) -> int:
        return x

    with build_dag(int, name="inner", observers=[rec]) as inner:
        inner.add_node(one, inner.params, name="one")
    with build_dag(int, name="outer") as outer:
        outer.add_node(inner, outer.params, name="sub")
    await outer.invoke(1, observers=[rec])
    inner_id = rec.run_ids()[1]
    assert rec.kinds(None, inner_id) == [
        "run_started",
        "node_started",
        "node_succeeded",
        "run_finished",
    ]


# -- concurrent runs ---------------------------------------------------------------------------


async def test_concurrent_runs_of_one_graph_never_mix_their_events() -> None:
    graph_rec = Recorder()
    seen_in_body: dict[int, int] = {}  # param -> run id seen by current() in the body

    async def fetch(x: int) -> int:
        for _ in range(3):
            await asyncio.sleep(0)
        where = dagwire.current()
        assert where is not None
        seen_in_body[x] = where.run_id
        return x

    def square(x: int) -> int:
        return x * x

    with build_dag(int, name="many", observers=[graph_rec]) as dag:
        f = dag.add_node(fetch, dag.params, name="fetch")
        s = dag.add_node(square, f, name="square")
    per_run = [Recorder() for _ in range(20)]
    results = await asyncio.gather(
        *(dag.invoke(k, observers=[rec]) for k, rec in enumerate(per_run))
    )
    assert [r[s] for r in results] == [k * k for k in range(20)]
    ids = [rec.events[0].run_id for rec in per_run]
    assert len(set(ids)) == 20
    for k, rec in enumerate(per_run):
        assert rec.run_ids() == [ids[k]]  # only its own run's events
        check_run(rec.events, "many")
        assert rec.kinds() == [
            "run_started",
            "node_started",
            "node_succeeded",
            "node_started",
            "node_succeeded",
            "run_finished",
        ]
        assert seen_in_body[k] == ids[k]
    assert sorted(graph_rec.run_ids()) == sorted(ids)
    for run_id in ids:
        check_run(graph_rec.of(None, run_id), "many")
    # The runs really overlapped: some run started before another one finished.
    positions = {
        run_id: [k for k, e in enumerate(graph_rec.events) if e.run_id == run_id] for run_id in ids
    }
    assert any(
        positions[a][0] < positions[b][-1] and positions[b][0] < positions[a][-1]
        for a, b in itertools.combinations(ids, 2)
    )


# -- a raising observer -------------------------------------------------------------------------


class Broken(Exception):
    """An observer's own bug."""


def _broken(event: Event) -> None:
    raise Broken(f"cannot handle {event.kind}")


@pytest.fixture
def dagwire_errors(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="dagwire")
    return caplog


def _observer_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "dagwire" and "observer" in r.getMessage()]


async def test_a_raising_observer_is_reported_once_per_run_and_changes_nothing(
    dagwire_errors: pytest.LogCaptureFixture,
) -> None:
    good = Recorder()
    reference = Recorder()

    async def a() -> int:
        return 1

    def b(x: int) -> int:
        return x + 1

    with build_dag(name="raising") as dag:
        na = dag.add_node(a, name="a")
        nb = dag.add_node(b, na, name="b")
    await dag.invoke(None, observers=[reference])
    result = await dag.invoke(None, observers=[_broken, good])
    assert result[nb] == 2
    assert result.ok
    assert good.kinds() == reference.kinds()  # every event still delivered to the others
    records = _observer_records(dagwire_errors)
    assert len(records) == 1  # once per run, although it raised on each of 6 events
    record = records[0]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], Broken)
    assert "run_started" in record.getMessage()
    # The next run reports it again (once).
    await dag.invoke(None, observers=[_broken])
    assert len(_observer_records(dagwire_errors)) == 2


async def test_a_raising_observer_never_changes_a_failing_runs_outcome(
    dagwire_errors: pytest.LogCaptureFixture,
) -> None:
    good = Recorder()

    async def down() -> None:
        raise Down("503")

    with build_dag(name="raising-fail", observers=[_broken]) as dag:
        dag.add_node(down, name="down")
    with pytest.raises(DagError) as caught:
        await dag.invoke(None, observers=[good])
    assert list(caught.value.failures) == ["down"]
    assert finished(good).error is caught.value
    check_run(good.events, "raising-fail")
    assert len(_observer_records(dagwire_errors)) == 1


async def test_each_raising_observer_is_reported_once_and_only_where_it_raises(
    dagwire_errors: pytest.LogCaptureFixture,
) -> None:
    good = Recorder()

    def at_the_end(event: Event) -> None:
        if event.kind == "run_finished":
            raise Broken("end")

    async def one() -> int:
        return 1

    with build_dag(name="two-broken") as dag:
        dag.add_node(one, name="one")
    await dag.invoke(None, observers=[_broken, at_the_end, good])
    records = _observer_records(dagwire_errors)
    assert len(records) == 2
    assert [str(r.exc_info[1]) for r in records if r.exc_info is not None] == [
        "cannot handle run_started",
        "end",
    ]
    assert good.kinds() == ["run_started", "node_started", "node_succeeded", "run_finished"]


# -- a run without observers pays nothing -------------------------------------------------------


@pytest.fixture
def reporters(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every `Reporter` created from now on (the run's per-run event and timeline state)."""
    made: list[object] = []
    original = Reporter.__init__

    def counting(self: Reporter, *args: object, **kwargs: object) -> None:
        made.append(self)
        original(self, *args, **kwargs)  # type: ignore[arg-type]  # passed through unchanged

    monkeypatch.setattr(Reporter, "__init__", counting)
    return made


async def test_a_plain_run_creates_no_reporter(
    reporters: list[object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dagwire")

    async def a() -> int:
        return 1

    def b(x: int) -> int:
        return x

    async def conn() -> AsyncIterator[int]:
        yield 1

    with build_dag(name="plain") as dag:
        na = dag.add_node(a, name="a")
        dag.add_node(b, na, name="b", retry=2)
        dag.add_resource(conn, name="conn")
    await dag.invoke(None)
    await dag.invoke(None, on_error="continue", timeout=10.0)
    assert reporters == []
    await dag.invoke(None, observers=[Recorder()])
    assert len(reporters) == 1


async def test_a_graph_observer_or_a_timeline_creates_one_reporter_per_run(
    reporters: list[object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dagwire")

    async def a() -> int:
        return 1

    with build_dag(name="observed", observers=[Recorder()]) as dag:
        dag.add_node(a, name="a")
    await dag.invoke(None)
    assert len(reporters) == 1
    with build_dag(name="plain") as plain:
        plain.add_node(a, name="a")
    await plain.invoke(None, timeline=True)
    assert len(reporters) == 2


async def test_a_run_creates_a_reporter_when_the_dagwire_logger_is_enabled_for_debug(
    reporters: list[object], caplog: pytest.LogCaptureFixture
) -> None:
    async def a() -> int:
        return 1

    with build_dag(name="logged") as dag:
        dag.add_node(a, name="a")
    caplog.set_level(logging.DEBUG, logger="dagwire")
    await dag.invoke(None)
    assert len(reporters) == 1
    caplog.set_level(logging.INFO, logger="dagwire")
    await dag.invoke(None)
    assert len(reporters) == 1


# -- timelines ---------------------------------------------------------------------------------


async def test_a_retried_node_has_one_interval_per_attempt() -> None:
    tries = [ConnectionError("1"), ConnectionError("2")]

    async def flaky() -> int:
        if tries:
            raise tries.pop(0)
        return 1

    with build_dag(name="tl-retry") as dag:
        dag.add_node(flaky, name="flaky", retry=Retry(attempts=3, initial_delay=0.001))
    result = await dag.invoke(None, timeline=True)
    (timing,) = result.timeline()
    assert timing.node == "flaky"
    assert timing.status is NodeStatus.SUCCEEDED
    assert timing.attempts == 3
    assert [(iv.what, iv.attempt, iv.outcome) for iv in timing.intervals] == [
        ("attempt", 1, "retrying"),
        ("attempt", 2, "retrying"),
        ("attempt", 3, "succeeded"),
    ]
    for before, after in itertools.pairwise(timing.intervals):
        assert before.start <= before.end <= after.start <= after.end
    assert timing.start <= timing.intervals[0].start
    assert timing.intervals[-1].end <= timing.end


async def test_timeline_intervals_match_the_events_durations() -> None:
    rec = Recorder()
    tries = [ConnectionError("1")]

    async def flaky() -> int:
        if tries:
            raise tries.pop(0)
        return 1

    with build_dag(name="tl-events") as dag:
        dag.add_node(flaky, name="flaky", retry=Retry(attempts=2, initial_delay=0.001))
    result = await dag.invoke(None, timeline=True, observers=[rec])
    (timing,) = result.timeline()
    ends = [e for e in rec.of("flaky") if not isinstance(e, NodeStarted)]
    starts = [e for e in rec.of("flaky") if isinstance(e, NodeStarted)]
    assert [iv.start for iv in timing.intervals] == [e.time for e in starts]
    assert [iv.end for iv in timing.intervals] == [e.time for e in ends]
    for iv, end in zip(timing.intervals, ends, strict=True):
        assert end.duration == pytest.approx(iv.end - iv.start)


async def test_a_fallback_interval_is_recovered() -> None:
    async def down() -> int:
        raise Down("x")

    with build_dag(name="tl-fallback") as dag:
        dag.add_node(down, name="down", fallback=0)
    result = await dag.invoke(None, timeline=True)
    (timing,) = result.timeline()
    assert timing.status is NodeStatus.SUCCEEDED
    assert [(iv.what, iv.attempt, iv.outcome) for iv in timing.intervals] == [
        ("attempt", 1, "recovered")
    ]


async def test_a_failed_cleanup_has_a_failed_cleanup_interval() -> None:
    async def conn() -> AsyncIterator[int]:
        yield 1
        raise OSError("close failed")

    def user(c: int) -> int:
        return c

    with build_dag(name="tl-cleanup") as dag:
        c = dag.add_resource(conn, name="conn")
        dag.add_node(user, c, name="user")
    result = await dag.invoke(None, timeline=True, on_error="continue")
    assert not result.ok
    timings = {t.node: t for t in result.timeline()}
    assert [(iv.what, iv.attempt, iv.outcome) for iv in timings["conn"].intervals] == [
        ("attempt", 1, "succeeded"),
        ("cleanup", 0, "failed"),
    ]
    attempt, cleanup = timings["conn"].intervals
    assert attempt.end <= timings["user"].end <= cleanup.start <= cleanup.end


async def test_timeline_needs_timeline_true_even_with_observers() -> None:
    async def one() -> int:
        return 1

    with build_dag(name="no-timeline", observers=[Recorder()]) as dag:
        dag.add_node(one, name="one")
    result = await dag.invoke(None, observers=[Recorder()])
    with pytest.raises(DagDefinitionError, match="timeline=True"):
        result.timeline()
    plain = await dag.invoke(None)
    with pytest.raises(DagDefinitionError, match="timeline=True"):
        plain.timeline()


async def test_mapped_sub_graph_runs_report_to_the_outer_runs_observers() -> None:
    rec = Recorder()

    async def lookup(x: int) -> int:
        return x * 10

    with build_dag(int, name="per-item") as inner:
        inner.add_node(lookup, inner.params, name="lookup")
    with build_dag(name="mapped-graph") as outer:
        m = outer.add_map(inner, [1, 2], name="m", limit=1)
    result = await outer.invoke(None, observers=[rec])
    assert [r.ok for r in result[m]] == [True, True]
    outer_id, *inner_ids = rec.run_ids()
    assert len(inner_ids) == 2
    # (the items' own durations: test_map_item_ends_carry_their_duration)
    assert rec.kinds("m", outer_id) == ["node_started", "node_succeeded"]
    assert rec.kinds("m[0]", outer_id) == ["node_started", "node_succeeded"]
    assert rec.kinds("m[1]", outer_id) == ["node_started", "node_succeeded"]
    for inner_id in inner_ids:
        check_run(rec.of(None, inner_id), "per-item")
        assert rec.kinds("lookup", inner_id) == ["node_started", "node_succeeded"]


async def test_event_order_is_the_same_with_max_concurrency() -> None:
    rec = Recorder()

    async def a() -> int:
        await asyncio.sleep(0)
        return 1

    def b(x: int) -> int:
        return x + 1

    async def c(x: int) -> int:
        return x + 1

    with build_dag(name="capped") as dag:
        na = dag.add_node(a, name="a")
        nb = dag.add_node(b, na, name="b")
        dag.add_node(c, nb, name="c")
    await dag.invoke(None, observers=[rec], max_concurrency=1)
    check_run(rec.events, "capped")
    assert [(e.kind, e.node) for e in rec.events] == [
        ("run_started", None),
        ("node_started", "a"),
        ("node_succeeded", "a"),
        ("node_started", "b"),
        ("node_succeeded", "b"),
        ("node_started", "c"),
        ("node_succeeded", "c"),
        ("run_finished", None),
    ]
