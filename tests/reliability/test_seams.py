"""The failing inputs of issue 8 ("correctness at the seams"), one test each, values asserted.

Each scenario runs in a fresh debug event loop that is dropped if the library hangs
(`_loops.run_in_fresh_loop`): several of these inputs hung `invoke` for good, and a hang must
fail the test, not freeze the session. `Outcome.get()` also fails on a task left behind, an
error the loop saw, an unraisable exception or a warning. Scenarios that involve task
creation run under the default loop and, on 3.12+, under `asyncio.eager_task_factory`.

No test measures wall-clock time: where a node must still be running, it waits on an event;
the watchdog only turns a hang into a failure.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import multiprocessing
import threading
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Literal

import pytest

from dagwire import (
    BreakerState,
    CircuitBreaker,
    DagError,
    Limiter,
    NodeNotCompletedError,
    NodeStatus,
    Retry,
    build_dag,
)

from . import _workers
from ._loops import HAS_EAGER, LOOP_KINDS, LoopKind, run_in_fresh_loop
from ._oracle import reachable

OnError = Literal["raise", "continue"]
MODES: tuple[OnError, ...] = ("raise", "continue")
EAGER_ONLY = pytest.mark.skipif(not HAS_EAGER, reason="asyncio.eager_task_factory needs 3.12")


class Stop(BaseException):
    """A BaseException that is not an Exception (like KeyboardInterrupt, but safe to raise)."""


async def ticks(n: int) -> None:
    """Let `n` loop iterations pass."""
    for _ in range(n):
        await asyncio.sleep(0)


def dagwire_notes(exc: BaseException) -> list[str]:
    return [n for n in getattr(exc, "__notes__", ()) if n.startswith("dagwire:")]


# -- 1. partial runs in continue mode ------------------------------------------------------


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_continue_mode_targets_with_a_failing_target_return(kind: LoopKind) -> None:
    # `a` succeeds, `b` fails a moment later, `c = f(a, b)` is outside the targets.
    # Was: invoke never returned (c was counted as skipped, the run's counter went negative).
    async def a() -> str:
        return "a"

    async def b() -> str:
        await ticks(3)
        raise ValueError("b")

    def f(x: str, y: str) -> str:
        raise AssertionError("c is not part of the run")

    with build_dag() as dag:
        na = dag.add_node(a, name="a")
        nb = dag.add_node(b, name="b")
        nc = dag.add_node(f, na, nb, name="c")

    async def main() -> None:
        result = await dag.invoke(None, on_error="continue", targets=[na, nb])
        assert result[na] == "a"
        assert result.status(nb) is NodeStatus.FAILED
        assert result.status(nc) is NodeStatus.PENDING
        with pytest.raises(NodeNotCompletedError, match="PENDING"):
            result[nc]
        assert [(f.node, type(f.error)) for f in result.errors] == [("b", ValueError)]

    run_in_fresh_loop(main, kind).get()


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_override_with_a_failing_sibling_returns(kind: LoopKind) -> None:
    # `x` is needed only by the overridden `o`; it is fed by `y` (succeeds) and `z` (fails).
    # Was: invoke hung (x, outside the run, was counted as skipped).
    calls: list[str] = []

    async def y() -> int:
        calls.append("y")
        return 1

    async def z() -> int:
        calls.append("z")
        await ticks(3)
        raise ValueError("z")

    def x(p: int, q: int) -> int:
        calls.append("x")
        return p + q

    def o(p: int) -> int:
        calls.append("o")
        return p

    def sink(p: int, q: int, r: int) -> int:
        calls.append("sink")
        return p + q + r

    with build_dag() as dag:
        ny = dag.add_node(y, name="y")
        nz = dag.add_node(z, name="z")
        nx = dag.add_node(x, ny, nz, name="x")
        no = dag.add_node(o, nx, name="o")
        ns = dag.add_node(sink, no, ny, nz, name="sink")

    async def main() -> None:
        result = await dag.invoke(None, on_error="continue", overrides={no: 5})
        assert sorted(calls) == ["y", "z"]
        assert result[ny] == 1
        assert result[no] == 5
        assert result.status(no) is NodeStatus.SUCCEEDED
        assert result.status(nz) is NodeStatus.FAILED
        assert result.status(nx) is NodeStatus.PENDING  # outside the run: never skipped
        assert result.status(ns) is NodeStatus.SKIPPED

    run_in_fresh_loop(main, kind).get()


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_partial_run_returns_only_after_its_slow_target(kind: LoopKind) -> None:
    # targets=[slow, b]: `a` feeds `slow`; `b` fails while `slow` still runs; `a` and `b` both
    # feed c1 and c2, outside the run. Was: both were counted as skipped, so invoke returned
    # while `slow` still ran (PENDING in the result, its task left behind, the result
    # changing afterwards), and c1/c2 were reported SKIPPED.
    b_failed = asyncio.Event()
    log: list[str] = []

    async def a() -> str:
        return "a"

    async def slow(x: str) -> str:
        await b_failed.wait()
        await ticks(5)
        log.append("slow ended")
        return "slow"

    async def b() -> str:
        await ticks(2)
        b_failed.set()
        raise ValueError("b")

    def c(x: str, y: str) -> str:
        raise AssertionError("outside the run")

    with build_dag() as dag:
        nb = dag.add_node(b, name="b")  # first: the root run inline, which fails
        na = dag.add_node(a, name="a")
        ns = dag.add_node(slow, na, name="slow")
        c1 = dag.add_node(c, na, nb, name="c1")
        c2 = dag.add_node(c, na, nb, name="c2")

    async def main() -> None:
        result = await dag.invoke(None, on_error="continue", targets=[ns, nb])
        assert log == ["slow ended"], "invoke returned before its target ended"
        statuses = [result.status(n) for n in (na, ns, nb, c1, c2)]
        assert statuses == [
            NodeStatus.SUCCEEDED,
            NodeStatus.SUCCEEDED,
            NodeStatus.FAILED,
            NodeStatus.PENDING,
            NodeStatus.PENDING,
        ]
        assert result[ns] == "slow"
        await ticks(10)
        assert [result.status(n) for n in (na, ns, nb, c1, c2)] == statuses

    run_in_fresh_loop(main, kind).get()


# -- 2. the end of a node is announced after its outcome is recorded -----------------------


def transaction(log: list[str]) -> Any:
    async def tx() -> AsyncIterator[str]:
        try:
            yield "tx"
        except BaseException as exc:
            log.append(f"rollback {type(exc).__name__}")
            raise
        else:
            log.append("commit")

    return tx


@pytest.mark.parametrize("on_error", MODES)
@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_early_release_whose_only_user_fails_rolls_back(kind: LoopKind, on_error: OnError) -> None:
    # Was (eager task factory): the release started before the user's failure was recorded,
    # so the transaction committed.
    log: list[str] = []

    async def use(t: str) -> None:
        await asyncio.sleep(0)
        raise ValueError("the only user failed")

    with build_dag() as dag:
        tx = dag.add_resource(transaction(log), name="tx", release="early")
        dag.add_node(use, tx, name="use")

    async def main() -> None:
        if on_error == "raise":
            with pytest.raises(DagError):
                await dag.invoke(None)
        else:
            result = await dag.invoke(None, on_error=on_error)
            assert not result.ok
        assert log == ["rollback ValueError"]

    run_in_fresh_loop(main, kind).get()


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_fail_fast_abort_right_after_an_early_release_was_scheduled_rolls_back(
    kind: LoopKind,
) -> None:
    # `use` ends (its resource can go) and wakes `bad`, which fails in the next step. A release
    # that starts after that failure must hear it. Was: the release, scheduled before the
    # failure but started after it, committed although the run had failed.
    log: list[str] = []
    used = asyncio.Event()

    async def use(t: str) -> str:
        used.set()
        return t

    async def bad() -> None:
        await used.wait()
        log.append("bad failed")
        raise ValueError("bad")

    with build_dag() as dag:
        tx = dag.add_resource(transaction(log), name="tx", release="early")
        dag.add_node(use, tx, name="use")
        dag.add_node(bad, name="bad")

    async def main() -> None:
        with pytest.raises(DagError) as info:
            await dag.invoke(None)
        assert set(info.value.failures) == {"bad"}
        # A release that started before the failure may commit (the run had not failed yet);
        # one that started after it must roll back.
        assert log in (["commit", "bad failed"], ["bad failed", "rollback ValueError"])
        if not HAS_EAGER:  # 3.11 cannot start the release eagerly: it comes after the failure
            assert log == ["bad failed", "rollback ValueError"]

    run_in_fresh_loop(main, kind).get()


# -- 3. eager task factories, graphs of any depth ------------------------------------------

CHAIN = 2000


@pytest.mark.parametrize("fail", [False, True], ids=["ok", "last_fails"])
@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_long_chain_with_post_hooks(kind: LoopKind, fail: bool) -> None:
    # Was (eager task factory): the cleanup phase created its tasks through the loop's factory,
    # recursed into RecursionError, lost it, and invoke hung for good.
    posts: list[int] = []

    def post_of(k: int) -> Any:
        return lambda: posts.append(k)

    async def step(x: int) -> int:
        return x + 1

    async def boom(x: int) -> int:
        raise ValueError("last")

    with build_dag() as dag:
        last = dag.add_node(step, 0, name="n0", post=post_of(0))
        for k in range(1, CHAIN + 1):
            fn = boom if fail and k == CHAIN else step
            last = dag.add_node(fn, last, name=f"n{k}", post=post_of(k))

    async def main() -> None:
        if fail:
            with pytest.raises(DagError) as info:
                await dag.invoke(None)
            assert set(info.value.failures) == {f"n{CHAIN}"}
        else:
            result = await dag.invoke(None)
            assert result[last] == CHAIN + 1
        assert posts == list(reversed(range(CHAIN + 1)))  # reverse dependency order, once each

    run_in_fresh_loop(main, kind).get()


# -- 4. early release and the cleanup phase ------------------------------------------------


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_slow_early_release_does_not_delay_unrelated_cleanups(kind: LoopKind) -> None:
    # The early release of `slow` can only end once the unrelated `other` is cleaned up: if the
    # cleanup phase waited for the early releases first (as it did), this would never end.
    log: list[str] = []
    other_cleaned = asyncio.Event()

    async def slow() -> AsyncIterator[str]:
        yield "slow"
        log.append("slow release starts")
        await other_cleaned.wait()
        log.append("slow release ends")

    async def other() -> AsyncIterator[str]:
        yield "other"
        log.append("other cleaned")
        other_cleaned.set()

    async def use(x: str) -> str:
        return x

    with build_dag() as dag:
        s = dag.add_resource(slow, name="slow", release="early")
        dag.add_node(use, s, name="use_slow")
        o = dag.add_resource(other, name="other")
        dag.add_node(use, o, name="use_other")

    async def main() -> None:
        await dag.invoke(None)
        assert log == ["slow release starts", "other cleaned", "slow release ends"]

    run_in_fresh_loop(main, kind).get()


@pytest.mark.parametrize("on_error", MODES)
@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_base_exception_in_an_early_release_stops_the_run(
    kind: LoopKind, on_error: OnError
) -> None:
    # README: a BaseException stops the run even in continue mode; an early release is a
    # cleanup like any other. Was (continue mode): the run went on, waiting for `waits`.
    log: list[str] = []

    async def res() -> AsyncIterator[str]:
        yield "r"
        raise Stop("in the early release")

    async def use(x: str) -> str:
        return x

    async def waits() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            log.append("waits cancelled")
            raise

    with build_dag() as dag:
        r = dag.add_resource(res, name="r", release="early")
        dag.add_node(use, r, name="use")
        dag.add_node(waits, name="waits")

    async def main() -> None:
        with pytest.raises(Stop):
            await dag.invoke(None, on_error=on_error)
        assert log == ["waits cancelled"]

    run_in_fresh_loop(main, kind).get()


# -- 5. shared policies --------------------------------------------------------------------


class Peak:
    """Counts bodies running at once, from the threads that run them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.started = 0

    def __enter__(self) -> None:
        with self.lock:
            self.running += 1
            self.started += 1
            self.peak = max(self.peak, self.running)

    def __exit__(self, *_: object) -> None:
        with self.lock:
            self.running -= 1


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_limiter_slot_is_held_until_a_timed_out_thread_stops(kind: LoopKind) -> None:
    # Limiter(1), executor="thread", timeout, three attempts: each attempt times out while its
    # thread keeps running. Was: the timed-out attempt gave its slot back at once, so three
    # bodies ran at once.
    limiter = Limiter(1)
    peak = Peak()

    def body() -> None:
        with peak:
            time.sleep(0.15)  # outlives the attempt's timeout (no timing is asserted)

    with build_dag() as dag:
        dag.add_node(
            body,
            name="body",
            executor="thread",
            timeout=0.05,
            retry=Retry(attempts=3, initial_delay=0.0),
            limiter=limiter,
        )

    async def main() -> None:
        with pytest.raises(DagError) as info:
            await dag.invoke(None)
        assert isinstance(info.value.failures["body"], TimeoutError)
        # The last thread still runs and holds the slot. (The Limiter offers nothing to wait
        # on; the watchdog turns a slot never given back into a failure.)
        while limiter.in_use:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    run_in_fresh_loop(main, kind).get()
    assert peak.peak == 1
    assert peak.started >= 2  # (a thread that starts after its timeout never runs its body)


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_limiter_shared_by_concurrent_runs_counts_timed_out_threads(kind: LoopKind) -> None:
    limiter = Limiter(2)
    peak = Peak()

    def body() -> None:
        with peak:
            time.sleep(0.06)

    with build_dag() as dag:
        for k in range(3):
            dag.add_node(body, name=f"b{k}", executor="thread", timeout=0.02, limiter=limiter)

    async def main() -> None:
        runs = [dag.invoke(None, on_error="continue") for _ in range(3)]
        results = await asyncio.gather(*runs)
        assert all(not r.ok for r in results)
        while limiter.in_use:  # noqa: ASYNC110  (as above)
            await asyncio.sleep(0.01)

    run_in_fresh_loop(main, kind).get()
    assert peak.peak <= 2
    assert peak.started >= 3


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_breaker_is_not_closed_by_a_success_admitted_before_it_opened(kind: LoopKind) -> None:
    # `slow` is admitted while the breaker is closed; `fails` then opens it; `slow` succeeds.
    # Was: that stale success closed the breaker 0 s into its 30 s reset_timeout.
    breaker = CircuitBreaker(fail_max=1, reset_timeout=30.0)
    changes: list[tuple[BreakerState, BreakerState]] = []
    breaker.add_listener(lambda old, new: changes.append((old, new)))
    slow_admitted = asyncio.Event()
    opened = asyncio.Event()

    async def slow() -> str:
        slow_admitted.set()
        await opened.wait()
        return "slow"

    async def fails() -> str:
        await slow_admitted.wait()
        opened.set()
        raise ConnectionError("down")

    with build_dag() as dag:
        ns = dag.add_node(slow, name="slow", breaker=breaker)
        nf = dag.add_node(fails, name="fails", breaker=breaker)

    async def main() -> None:
        result = await dag.invoke(None, on_error="continue")
        assert result[ns] == "slow"
        assert result.status(nf) is NodeStatus.FAILED

    run_in_fresh_loop(main, kind).get()
    assert breaker.state is BreakerState.OPEN
    assert changes == [(BreakerState.CLOSED, BreakerState.OPEN)]


# -- 6. context ----------------------------------------------------------------------------

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


@pytest.mark.parametrize("timeout", [None, 5.0], ids=["no_timeout", "invoke_timeout"])
@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_context_var_set_in_a_node_does_not_leak_to_the_caller(
    kind: LoopKind, timeout: float | None
) -> None:
    # Was: the first root runs inline in the caller's task, so its set() stayed visible to the
    # caller after invoke() (not with invoke(timeout=), where every node has a task).
    async def sets_async() -> str:
        VAR.set("set by an async node")
        return VAR.get()

    def sets_sync() -> str:
        VAR.set("set by a sync node")
        return VAR.get()

    def pre() -> None:
        VAR.set("set by a pre hook")

    with build_dag() as dag:
        a = dag.add_node(sets_async, name="a")
        s = dag.add_node(sets_sync, name="s")
        dag.add_node(sets_async, name="hooked", pre=pre)

    async def main() -> None:
        VAR.set("caller")
        result = await dag.invoke(None, timeout=timeout)
        assert result[a] == "set by an async node"
        assert result[s] == "set by a sync node"
        assert VAR.get() == "caller"

    run_in_fresh_loop(main, kind).get()


@pytest.mark.parametrize("executor", ["thread", "pool"])
@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_thread_executor_nodes_see_the_callers_context(kind: LoopKind, executor: str) -> None:
    # Was: a node with executor="thread" saw none of the caller's context variables (unlike
    # asyncio.to_thread).
    def read() -> str:
        return VAR.get()

    async def main() -> None:
        with ThreadPoolExecutor(max_workers=1) as pool:
            with build_dag() as dag:
                node = dag.add_node(read, executor="thread" if executor == "thread" else pool)
            VAR.set("caller")
            result = await dag.invoke(None)
        assert result[node] == "caller"

    run_in_fresh_loop(main, kind).get()


# -- 7. exceptions -------------------------------------------------------------------------


@pytest.fixture
def own_pool() -> Iterator[ProcessPoolExecutor]:
    """A pool of this test's own: an exception that cannot be unpickled breaks its pool."""
    with ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        yield pool


def test_a_failing_graph_run_in_a_process_pool_worker_reports_its_dag_error(
    own_pool: ProcessPoolExecutor,
) -> None:
    # Was: DagError could not be pickled, so the parent got a TypeError or BrokenProcessPool.
    process_pool = own_pool
    future = process_pool.submit(_workers.run_failing_graph)
    with pytest.raises(DagError) as info:
        future.result(timeout=60)
    assert set(info.value.failures) == {"boom"}
    assert isinstance(info.value.failures["boom"], ValueError)
    assert [type(e) for e in info.value.exceptions] == [ValueError]
    assert dagwire_notes(info.value.exceptions[0]) == ["dagwire: node 'boom' failed in body"]
    assert process_pool.submit(_workers.pid).result(timeout=60) > 0  # the pool still works


def test_node_not_completed_error_from_a_process_pool_worker(
    own_pool: ProcessPoolExecutor,
) -> None:
    # Was: NodeNotCompletedError could not be unpickled (its __init__ takes two arguments),
    # which broke the pool.
    process_pool = own_pool
    future = process_pool.submit(_workers.read_failed_node)
    with pytest.raises(NodeNotCompletedError) as info:
        future.result(timeout=60)
    assert info.value.node_name == "boom"
    assert info.value.status is NodeStatus.FAILED
    assert process_pool.submit(_workers.pid).result(timeout=60) > 0


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_the_same_exception_object_gets_one_note_however_many_runs(kind: LoopKind) -> None:
    # A memoised failed fetch re-raises one exception object in every run. Was: one more note
    # per run (2,000 notes after 2,000 runs), and concurrent runs saw each other's notes.
    memo = ConnectionError("the memoised failure")

    async def fetch() -> None:
        raise memo

    with build_dag() as dag:
        dag.add_node(fetch, name="fetch")

    async def main() -> None:
        for _ in range(2000):
            with pytest.raises(DagError) as info:
                await dag.invoke(None)
            assert info.value.failures["fetch"] is memo
        outcomes = await asyncio.gather(
            *(dag.invoke(None) for _ in range(50)), return_exceptions=True
        )
        assert all(isinstance(o, DagError) and o.failures["fetch"] is memo for o in outcomes)

    run_in_fresh_loop(main, kind).get()
    assert dagwire_notes(memo) == ["dagwire: node 'fetch' failed in body"]


def first_failure_frames(resources: int, kind: LoopKind) -> int:
    first = ValueError("first")

    async def res(k: int) -> AsyncIterator[int]:
        yield k  # the run's failure is thrown in here, and re-raised: a rollback

    async def boom(*_: int) -> None:
        await asyncio.sleep(0)
        raise first

    with build_dag() as dag:
        handles = [dag.add_resource(res, k, name=f"r{k}") for k in range(resources)]
        dag.add_node(boom, *handles, name="boom")

    async def main() -> None:
        with pytest.raises(DagError) as info:
            await dag.invoke(None)
        assert info.value.failures["boom"] is first

    run_in_fresh_loop(main, kind).get()
    return len(traceback.extract_tb(first.__traceback__))


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_first_failure_traceback_does_not_grow_with_open_resources(kind: LoopKind) -> None:
    # Was: about two frames more per resource the failure was thrown into (4,000 frames with
    # 2,000 resources). The count must not depend on how many resources heard it.
    one = first_failure_frames(1, kind)
    many = first_failure_frames(2000, kind)
    assert many <= one + 4, f"{one} frames with 1 open resource, {many} with 2,000"


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def dagwire_log() -> Iterator[list[logging.LogRecord]]:
    """Every record of the `dagwire` logger while the test runs."""
    handler = ListHandler()
    logger = logging.getLogger("dagwire")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_a_run_ended_by_a_base_exception_reports_every_other_failure(
    kind: LoopKind, dagwire_log: list[logging.LogRecord]
) -> None:
    # Continue mode: `b` fails, then `a` raises a BaseException that ends the run; the
    # resource's cleanup fails too. Was: invoke re-raised the BaseException and nothing
    # reported the other two (a cancelled run at least logs its failures).
    b_failed = asyncio.Event()
    b_error = ValueError("b failed")
    cleanup_error = KeyError("cleanup failed")
    stop = Stop("a stops the run")

    async def res() -> AsyncIterator[str]:
        try:
            yield "r"
        finally:  # hears the BaseException, and fails in its own way
            raise cleanup_error

    async def a(r: str) -> None:
        await b_failed.wait()
        await asyncio.sleep(0)
        raise stop

    async def b() -> None:
        b_failed.set()
        raise b_error

    with build_dag() as dag:
        r = dag.add_resource(res, name="r")
        dag.add_node(a, r, name="a")
        dag.add_node(b, name="b")

    async def main() -> None:
        with pytest.raises(Stop) as info:
            await dag.invoke(None, on_error="continue")
        assert info.value is stop

    run_in_fresh_loop(main, kind).get()
    missing = [e for e in (b_error, cleanup_error) if not reachable(e, stop, dagwire_log)]
    assert not missing, f"not reported anywhere: {missing}"


# -- found by the extended reliability properties (same kinds as issue 8, points 1, 2, 4) ----


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_early_release_hears_a_transitive_users_failure_recorded_before_it(
    kind: LoopKind,
) -> None:
    # Continue mode: `use` is the only user of the early resource `tx`; `after_use` depends on
    # `use` and fails right after it. README: a resource hears the failure of a node that
    # depends on it, directly or transitively. Was: the release, started after that failure,
    # only looked at direct users and committed.
    log: list[str] = []

    async def use(t: str) -> str:
        return t

    def after_use(u: str) -> None:
        log.append("after_use failed")
        raise ValueError("after_use")

    with build_dag() as dag:
        tx = dag.add_resource(transaction(log), name="tx", release="early")
        u = dag.add_node(use, tx, name="use")
        dag.add_node(after_use, u, name="after_use")

    async def main() -> None:
        result = await dag.invoke(None, on_error="continue")
        assert not result.ok
        # A release that started before the failure may commit; one that started after it
        # must roll back.
        assert log in (["commit", "after_use failed"], ["after_use failed", "rollback ValueError"])
        if not HAS_EAGER:  # 3.11: the release is a task of its own, it starts after the failure
            assert log == ["after_use failed", "rollback ValueError"]

    run_in_fresh_loop(main, kind).get()


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_early_release_hears_a_failure_below_a_user_that_ended_earlier(kind: LoopKind) -> None:
    # Continue mode: `tx` has two users; `use` ends at once and `v`, which depends on it,
    # fails; `w` keeps `tx` a few iterations longer. The release, which starts after `v`
    # failed, must roll back. Was (also after the run loop rewrite): it committed.
    log: list[str] = []

    async def use(t: str) -> str:
        return t

    def v(u: str) -> None:
        log.append("v failed")
        raise ValueError("v")

    async def w(t: str) -> str:
        await ticks(5)
        log.append("w ends")
        return t

    with build_dag() as dag:
        tx = dag.add_resource(transaction(log), name="tx", release="early")
        u = dag.add_node(use, tx, name="use")
        dag.add_node(v, u, name="v")
        dag.add_node(w, tx, name="w")

    async def main() -> None:
        result = await dag.invoke(None, on_error="continue")
        assert not result.ok
        assert log == ["v failed", "w ends", "rollback ValueError"]

    run_in_fresh_loop(main, kind).get()


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_a_skipped_user_does_not_release_a_resource_still_being_set_up(kind: LoopKind) -> None:
    # Continue mode: `bad` fails while the early resource `r` is still setting up; `d`, which
    # uses both, is skipped. Was: skipping `d` counted as `r`'s last user ending, so `r`'s
    # post hook ran while its setup was still running (and its own cleanup came later).
    log: list[str] = []
    bad_failed = asyncio.Event()

    async def res() -> AsyncIterator[str]:
        log.append("setup starts")
        await bad_failed.wait()
        await ticks(3)
        log.append("setup ends")
        yield "r"
        log.append("cleanup")

    async def bad() -> str:
        await ticks(2)  # (roots have no start order: let `r` start first)
        bad_failed.set()
        raise ValueError("bad")

    def d(r: str, b: str) -> None:
        raise AssertionError("skipped")

    with build_dag() as dag:
        r = dag.add_resource(res, name="r", release="early", post=lambda: log.append("post"))
        b = dag.add_node(bad, name="bad")
        nd = dag.add_node(d, r, b, name="d")

    async def main() -> None:
        result = await dag.invoke(None, on_error="continue")
        assert result.status(nd) is NodeStatus.SKIPPED
        assert result[r] == "r"
        assert log == ["setup starts", "setup ends", "cleanup", "post"]

    run_in_fresh_loop(main, kind).get()


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_a_failing_early_release_stops_a_fail_fast_run_at_once(kind: LoopKind) -> None:
    # README: a failing early release fails the run like any failure: no node starts after it.
    # Was: the abort waited until the resource's other cleanups (its post hook) had finished,
    # and `y` started meanwhile.
    log: list[str] = []
    cleanup_failed = asyncio.Event()

    async def res() -> AsyncIterator[str]:
        yield "r"
        cleanup_failed.set()
        raise ValueError("the early release failed")

    async def slow_post() -> None:
        await ticks(5)

    async def use(r: str) -> str:
        return r

    async def x() -> str:
        await cleanup_failed.wait()
        return "x"

    def y(v: str) -> None:
        log.append("y started")

    with build_dag() as dag:
        r = dag.add_resource(res, name="r", release="early", post=slow_post)
        dag.add_node(use, r, name="use")
        nx = dag.add_node(x, name="x")
        dag.add_node(y, nx, name="y")

    async def main() -> None:
        with pytest.raises(DagError) as info:
            await dag.invoke(None)
        assert set(info.value.failures) == {"r"}
        assert log == []

    run_in_fresh_loop(main, kind).get()
