"""`dag.add_map(fn, items, *others, limit=None, **options)`: one call per item, in input order,
per-item options, the first failure cancels the rest; and limits shared across runs."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any, assert_type

import pytest

from dagwire import (
    DagDefinitionError,
    DagError,
    ExecutionResult,
    Limiter,
    Node,
    NodeStatus,
    Retry,
    RunContext,
    Skip,
    build_dag,
    current,
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


class InFlight:
    """Counts calls running at once; `peak` is the most ever seen."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    def enter(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        self.now -= 1


async def steps(n: int) -> None:
    """Let the loop go round `n` times (no clock involved)."""
    for _ in range(n):
        await asyncio.sleep(0)


# -- values --------------------------------------------------------------------------------------


async def test_results_come_in_input_order_while_items_finish_out_of_order(
    task_factory: str,
) -> None:
    finished: list[int] = []

    async def work(k: int) -> str:
        await steps(10 - k)  # the last item finishes first
        finished.append(k)
        return f"r{k}"

    with build_dag() as dag:
        items = dag.add_node(lambda: list(range(10)), name="items")
        m = dag.add_map(work, items, name="m")
    assert_type(m, Node[list[str]])
    result = await dag.invoke(None)
    assert finished == list(range(9, -1, -1))
    assert result[m] == [f"r{k}" for k in range(10)]


async def test_no_items_give_an_empty_list_without_a_call() -> None:
    calls: list[int] = []

    def work(x: int) -> int:
        calls.append(x)
        return x

    def none() -> Iterator[int]:
        return iter(())

    with build_dag() as dag:
        from_node = dag.add_map(work, dag.add_node(lambda: list[int](), name="empty"), name="a")
        from_const = dag.add_map(work, [], name="b")
        from_gen = dag.add_map(work, dag.add_node(none, name="gen"), name="c")
        sized = dag.add_node(len, from_node, name="sized")
    for limit_run in (None, 1):
        result = await dag.invoke(None, max_concurrency=limit_run)
        assert result[from_node] == []
        assert result[from_const] == []
        assert result[from_gen] == []
        assert result[sized] == 0
    assert calls == []


async def test_items_from_a_generator_are_taken_once_and_constants_work() -> None:
    def gen() -> Iterator[int]:
        # A generator object (a generator *function* given to add_node is refused: that is a
        # resource), which add_map must take once.
        return (x for x in (3, 1, 2))

    def times_ten(x: int) -> int:
        return x * 10

    def plus_one(x: int) -> int:
        return x + 1

    with build_dag() as dag:
        g = dag.add_node(gen, name="gen")
        m = dag.add_map(times_ten, g, name="m")
        c = dag.add_map(plus_one, (5, 6), name="c")
    result = await dag.invoke(None)
    assert result[m] == [30, 10, 20]
    assert result[c] == [6, 7]


async def test_other_inputs_and_the_injected_parameter_reach_every_call() -> None:
    def scale(item: int, factor: int, offset: int, params: int) -> int:
        return item * factor + offset + params

    def pair(x: int, p: int) -> tuple[int, int]:
        return (x, p)

    with build_dag(int) as dag:
        factor = dag.add_node(lambda: 10, name="factor")
        m = dag.add_map(scale, [1, 2, 3], factor, 5, name="m")
        explicit = dag.add_map(pair, [1, 2], dag.params, name="explicit")
    result = await dag.invoke(1000)
    assert result[m] == [1015, 1025, 1035]
    assert result[explicit] == [(1, 1000), (2, 1000)]


# -- how many at once ----------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 3, 7])
async def test_limit_is_never_exceeded_and_is_reached(limit: int, task_factory: str) -> None:
    flight = InFlight()
    order: list[int] = []

    async def work(k: int) -> int:
        flight.enter()
        order.append(k)
        await steps(3 + k % 4)
        flight.leave()
        return k

    with build_dag() as dag:
        m = dag.add_map(work, range(20), limit=limit, name="m")
    result = await dag.invoke(None)
    assert result[m] == list(range(20))
    assert flight.peak == limit
    assert flight.now == 0
    if limit == 1:
        assert order == list(range(20))  # one at a time: in input order


async def test_max_concurrency_counts_every_item() -> None:
    flight = InFlight()

    async def work(k: int) -> int:
        flight.enter()
        await steps(3)
        flight.leave()
        return k

    with build_dag() as dag:
        m = dag.add_map(work, range(12), name="m")
        dag.add_map(work, range(12), limit=5, name="m2")
    result = await dag.invoke(None, max_concurrency=2)
    assert result[m] == list(range(12))
    assert flight.peak == 2


async def test_a_limiter_caps_work_across_50_concurrent_runs(task_factory: str) -> None:
    flight = InFlight()
    lim = Limiter(3)

    async def work(k: int) -> int:
        flight.enter()
        await steps(2)
        flight.leave()
        return k

    async def single(x: int) -> int:
        flight.enter()
        await steps(1)
        flight.leave()
        return x

    with build_dag(int) as dag:
        m = dag.add_map(work, [0, 1, 2, 3, 4], limiter=lim, name="m")
        s = dag.add_node(single, dag.params, limiter=lim, name="s")
        both = dag.add_node(lambda xs, x: sum(xs) + x, m, s, name="both")
    runs = await asyncio.gather(*(dag.invoke(r) for r in range(50)))
    assert [r[both] for r in runs] == [10 + r for r in range(50)]
    assert flight.peak == 3  # never more than the limiter's 3, across every run and item
    assert flight.now == 0


async def test_max_concurrency_across_50_runs_is_per_run() -> None:
    flights: dict[int, InFlight] = {}

    async def work(k: int, run: int) -> int:
        flight = flights.setdefault(run, InFlight())
        flight.enter()
        await steps(2)
        flight.leave()
        return k

    with build_dag(int) as dag:
        dag.add_map(work, range(6), name="m")
        dag.add_map(work, range(6), name="n")
    await asyncio.gather(*(dag.invoke(r, max_concurrency=2) for r in range(50)))
    assert sorted(flights) == list(range(50))
    assert {f.peak for f in flights.values()} == {2}


# -- per-item options ----------------------------------------------------------------------------


async def test_timeout_bounds_each_item_not_the_whole_node() -> None:
    async def work(k: int) -> int:
        await asyncio.sleep(0.01)
        return k

    with build_dag() as dag:
        m = dag.add_map(work, range(30), limit=1, timeout=0.2, name="m")
    result = await dag.invoke(None)  # ~0.3 s in all, each item far below 0.2 s
    assert result[m] == list(range(30))


async def test_an_item_that_times_out_fails_the_node_with_its_index() -> None:
    forever = asyncio.Event()
    cancelled: list[int] = []

    async def work(k: int) -> int:
        if k == 0:
            return 0
        try:
            await forever.wait()
        except asyncio.CancelledError:
            cancelled.append(k)
            raise
        return k

    with build_dag() as dag:
        dag.add_map(work, range(4), timeout=0.05, name="m")
    before = asyncio.all_tasks()
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert asyncio.all_tasks() - before == set()
    error = info.value.failures["m"]
    assert isinstance(error, TimeoutError)
    assert "'m'" in str(error)
    assert "0.05" in str(error)
    items = [note for note in error.__notes__ if "of map node" in note]
    assert items in (  # the item whose timeout fired first; the other two were cancelled
        [f"dagwire: item {k} (of 4) of map node 'm'"] for k in (1, 2, 3)
    ), error.__notes__
    # Every item but one timed out by itself (cancelled by its own timeout) or was cancelled.
    assert sorted(cancelled) == [1, 2, 3]


async def test_retry_applies_to_each_item() -> None:
    calls: Counter[int] = Counter()

    async def work(k: int) -> int:
        calls[k] += 1
        if k % 2 and calls[k] < 3:
            raise ConnectionError(f"item {k} again")
        return k

    seen: list[events.Event] = []
    with build_dag() as dag:
        m = dag.add_map(work, range(5), retry=Retry(attempts=3, initial_delay=0.0), name="m")
    result = await dag.invoke(None, observers=[seen.append])
    assert result[m] == [0, 1, 2, 3, 4]
    assert calls == Counter({0: 1, 1: 3, 2: 1, 3: 3, 4: 1})


async def test_retries_that_run_out_fail_the_node_naming_the_item() -> None:
    calls: Counter[int] = Counter()

    async def work(k: int) -> int:
        calls[k] += 1
        await asyncio.sleep(0)
        if k == 2:
            raise ConnectionError("down")
        return k

    with build_dag() as dag:
        dag.add_map(work, range(3), retry=Retry(attempts=2, initial_delay=0.0), name="m")
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    error = info.value.failures["m"]
    assert isinstance(error, ConnectionError)
    assert calls[2] == 2
    assert [n for n in error.__notes__ if "item" in n] == ["dagwire: item 2 (of 3) of map node 'm'"]


async def test_executor_thread_runs_each_item_in_a_thread() -> None:
    main = threading.get_ident()
    threads: list[int] = []

    def work(k: int) -> int:
        threads.append(threading.get_ident())
        return k * k

    with build_dag() as dag:
        m = dag.add_map(work, range(6), executor="thread", name="m")
    result = await dag.invoke(None)
    assert result[m] == [0, 1, 4, 9, 16, 25]
    assert len(threads) == 6
    assert main not in threads


# -- failures ------------------------------------------------------------------------------------


@pytest.mark.parametrize("on_error", ["raise", "continue"])
async def test_the_first_failing_item_cancels_the_others_and_is_named(
    on_error: str, task_factory: str
) -> None:
    forever = asyncio.Event()
    cancelled: list[int] = []
    started: list[int] = []

    async def work(k: int) -> int:
        started.append(k)
        await asyncio.sleep(0)
        if k == 4:
            raise ValueError("item four")
        try:
            await forever.wait()
        except asyncio.CancelledError:
            cancelled.append(k)
            raise
        return k

    with build_dag() as dag:
        m = dag.add_map(work, range(10), name="m")
        dep = dag.add_node(lambda xs: xs, m, name="dep")
        other = dag.add_node(lambda: "fine", name="other")
    before = asyncio.all_tasks()
    if on_error == "raise":
        with pytest.raises(DagError) as info:
            await dag.invoke(None)
        error: BaseException = info.value.failures["m"]
        assert set(info.value.failures) == {"m"}
    else:
        result = await dag.invoke(None, on_error="continue")
        assert result.status(m) is NodeStatus.FAILED
        assert result.status(dep) is NodeStatus.SKIPPED
        assert result.skip_cause(dep) == "m"
        assert result[other] == "fine"
        error = result.errors[0].error
    assert asyncio.all_tasks() - before == set()  # no item task left
    assert isinstance(error, ValueError)
    assert error.args == ("item four",)
    assert "dagwire: item 4 (of 10) of map node 'm'" in error.__notes__
    assert sorted(started) == list(range(10))
    assert sorted(cancelled) == [k for k in range(10) if k != 4]


async def test_the_item_that_fails_first_in_time_is_named_not_the_lowest_index() -> None:
    gate = asyncio.Event()

    async def work(k: int) -> int:
        if k == 7:
            await asyncio.sleep(0)
            gate.set()
            raise KeyError("seven")
        if k == 2:
            await gate.wait()
            await steps(5)  # fails later: by then it was cancelled
            raise KeyError("two")
        await asyncio.Event().wait()
        return k

    with build_dag() as dag:
        dag.add_map(work, range(10), name="m")
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    error = info.value.failures["m"]
    assert error.args == ("seven",)
    assert "dagwire: item 7 (of 10) of map node 'm'" in error.__notes__


SHARED_ERROR = ValueError("raised by every run")


async def test_the_item_note_is_added_once_however_many_runs_see_the_exception() -> None:
    """dagwire never mutates a user's exception object more than once: a memoised exception
    raised by an item in three runs carries each of dagwire's notes once."""

    def work(k: int) -> int:
        raise SHARED_ERROR

    with build_dag() as dag:
        dag.add_map(work, [0], name="m")
    for _ in range(3):
        with pytest.raises(DagError):
            await dag.invoke(None)
    assert sorted(SHARED_ERROR.__notes__) == [
        "dagwire: item 0 (of 1) of map node 'm'",
        "dagwire: node 'm' failed in body",
    ]


async def test_a_fallback_on_the_map_node_covers_a_failing_item() -> None:
    def work(k: int) -> int:
        if k == 1:
            raise ValueError("one")
        return k

    with build_dag() as dag:
        m = dag.add_map(work, range(3), fallback=[], name="m")
        size = dag.add_node(len, m, name="size")
    result = await dag.invoke(None)
    assert result[m] == []
    assert result[size] == 0
    assert result.ok
    assert [(f.node, f.recovered) for f in result.errors] == [("m", True)]


async def test_pre_and_post_run_once_for_the_whole_node() -> None:
    log: list[str] = []

    def item(k: int) -> int:
        log.append(f"item {k}")
        return k

    with build_dag() as dag:
        m = dag.add_map(
            item,
            range(3),
            pre=lambda: log.append("pre"),
            post=lambda: log.append("post"),
            name="m",
        )
    result = await dag.invoke(None)
    assert result[m] == [0, 1, 2]
    assert log[0] == "pre"
    assert log[-1] == "post"
    assert sorted(log[1:-1]) == ["item 0", "item 1", "item 2"]


async def test_cancelling_the_run_cancels_every_item_and_leaves_no_task() -> None:
    started = 0
    cancelled = 0

    async def work(k: int) -> int:
        nonlocal started, cancelled
        started += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled += 1
            raise
        return k

    with build_dag() as dag:
        dag.add_map(work, range(8), limit=4, name="m")
    before = asyncio.all_tasks()
    run = asyncio.ensure_future(dag.invoke(None))
    await steps(5)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert started == 4
    assert cancelled == 4
    assert asyncio.all_tasks() - before == set()


async def test_items_are_reported_as_indexed_nodes() -> None:
    seen: list[events.Event] = []

    def work(k: int) -> int:
        if k == 1:
            raise ValueError("x")
        return k

    with build_dag(name="g") as dag:
        dag.add_map(work, range(2), limit=1, name="m")
    with pytest.raises(DagError):
        await dag.invoke(None, observers=[seen.append])
    items = [(type(e).__name__, e.node) for e in seen if e.node and "[" in e.node]
    assert items == [
        ("NodeStarted", "m[0]"),
        ("NodeSucceeded", "m[0]"),
        ("NodeStarted", "m[1]"),
        ("NodeFailed", "m[1]"),
    ]
    assert [(type(e).__name__) for e in seen if e.node == "m"] == ["NodeStarted", "NodeFailed"]


async def test_current_inside_an_item_names_the_run_and_the_map_node() -> None:
    """`current()` is documented to work in every node body, thread executors included."""

    async def where(_: int) -> RunContext | None:
        await asyncio.sleep(0)
        return current()

    def where_sync(_: int) -> RunContext | None:
        return current()

    with build_dag(name="g") as dag:
        m = dag.add_map(where, [1, 2], name="m")
        t = dag.add_map(where_sync, [1], executor="thread", name="t")
    result = await dag.invoke(None)
    contexts = [*result[m], *result[t]]
    assert all(c is not None for c in contexts), contexts
    assert {(c.dag, c.node.split("[")[0]) for c in contexts if c is not None} == {
        ("g", "m"),
        ("g", "t"),
    }


async def test_an_item_that_skips_is_not_reported_as_failed() -> None:
    """Skip never counts as a failure: the map node is SKIPPED and no event says FAILED."""
    seen: list[events.Event] = []

    def work(k: int) -> int:
        if k == 1:
            raise Skip("nothing for item 1")
        return k

    with build_dag() as dag:
        m = dag.add_map(work, range(3), limit=1, name="m")
    result = await dag.invoke(None, observers=[seen.append])
    assert result.ok
    assert result.errors == ()
    assert result.status(m) is NodeStatus.SKIPPED
    failed = [e.node for e in seen if isinstance(e, events.NodeFailed)]
    assert failed == [], failed


# -- a built graph per item ----------------------------------------------------------------------


async def test_a_built_graph_as_fn_runs_once_per_item_with_its_cleanups() -> None:
    log: list[str] = []

    async def conn(user: int) -> AsyncIterator[str]:
        log.append(f"open {user}")
        yield f"conn{user}"
        log.append(f"close {user}")

    with build_dag(int, name="per_user") as inner:
        c = inner.add_resource(conn, inner.params, name="conn")
        name = inner.add_node(lambda cn, u: f"{cn}:{u}", c, inner.params, name="name")
    with build_dag(name="outer") as dag:
        users = dag.add_node(lambda: [1, 2, 3], name="users")
        m = dag.add_map(inner, users, limit=2, name="m")
        closed = dag.add_node(lambda _: sum(e.startswith("close") for e in log), m, name="closed")
    assert_type(m, Node[list[ExecutionResult[int]]])
    result = await dag.invoke(None)
    assert [r[name] for r in result[m]] == ["conn1:1", "conn2:2", "conn3:3"]
    assert [r.params for r in result[m]] == [1, 2, 3]
    assert result[closed] == 3  # every item's cleanup finished before the map node ended
    assert sorted(log) == ["close 1", "close 2", "close 3", "open 1", "open 2", "open 3"]


async def test_a_failing_sub_graph_item_fails_the_map_with_the_inner_dag_error() -> None:
    log: list[str] = []

    async def conn(user: int) -> AsyncIterator[int]:
        try:
            yield user
        finally:
            log.append(f"close {user}")

    def check(u: int) -> int:
        if u == 2:
            raise PermissionError("no")
        return u

    with build_dag(int, name="per_user") as inner:
        c = inner.add_resource(conn, inner.params)
        inner.add_node(check, c, name="check")
    with build_dag() as dag:
        dag.add_map(inner, [1, 2, 3], limit=1, name="m")
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    error = info.value.failures["m"]
    assert isinstance(error, DagError)
    assert isinstance(error.failures["check"], PermissionError)
    assert "dagwire: item 1 (of 3) of map node 'm'" in error.__notes__
    assert log == ["close 1", "close 2"]  # item 3 never started


# -- refused at build time -----------------------------------------------------------------------


@pytest.mark.parametrize("limit", [0, -1, True, 1.5, "2"])
def test_a_limit_that_cannot_work_is_refused(limit: Any) -> None:
    with build_dag() as dag, pytest.raises(DagDefinitionError, match="limit"):
        dag.add_map(str, [1], limit=limit)


def test_a_graph_mapped_with_other_inputs_is_refused() -> None:
    with build_dag(int) as inner:
        inner.add_node(lambda p: p, inner.params)
    with build_dag() as dag, pytest.raises(DagDefinitionError, match="one parameter"):
        dag.add_map(inner, [1], 2)  # type: ignore[arg-type]  # the misuse under test


def test_a_function_that_cannot_take_an_item_is_refused() -> None:
    def two(a: int, b: int, c: int) -> int:
        return a + b + c

    with build_dag() as dag, pytest.raises(DagDefinitionError, match="two"):
        dag.add_map(two, [1])  # type: ignore[arg-type]  # the misuse under test


def _sync_work(x: int) -> int:
    return x


async def _async_work(x: int) -> int:
    return x


@pytest.mark.parametrize(
    ("fn", "options", "named"),
    [
        ("sync", {"timeout": 1.0}, "timeout="),  # cannot interrupt a sync function run inline
        ("async", {"executor": "thread"}, "executor="),  # an executor cannot run a coroutine
        ("graph", {"executor": "thread"}, "executor="),  # nor a graph
        ("sync", {"release": "early"}, "release="),
    ],
)
def test_options_that_cannot_work_on_an_item_call_are_refused(
    fn: str, options: dict[str, Any], named: str
) -> None:
    """Every option is honoured or refused at build time, naming the option."""
    with build_dag(int) as inner:
        inner.add_node(_sync_work, inner.params)
    target: Any = {"sync": _sync_work, "async": _async_work, "graph": inner}[fn]
    with build_dag() as dag, pytest.raises(DagDefinitionError, match=named):
        dag.add_map(target, [1], **options)
