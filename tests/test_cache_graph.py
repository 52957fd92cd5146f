"""`cache=Cache(...)` on graph nodes: hits, single-flight across runs, expiry, eviction,
failures, sharing between graphs, and what is refused at build time."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from dagwire import (
    Cache,
    DagDefinitionError,
    DagError,
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


class Clock:
    """A fake monotonic clock, in seconds."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def succeeded(seen: list[events.Event], node: str) -> list[events.NodeSucceeded]:
    return [e for e in seen if isinstance(e, events.NodeSucceeded) and e.node == node]


# -- hits ----------------------------------------------------------------------------------------


async def test_a_hit_costs_no_body_call_and_is_a_cached_node_succeeded() -> None:
    calls: list[int] = []

    async def square(x: int) -> int:
        calls.append(x)
        return x * x

    cache = Cache()
    with build_dag(int) as dag:
        sq = dag.add_node(square, dag.params, cache=cache, name="square")
        plus = dag.add_node(lambda v: v + 1, sq, name="plus")
    first: list[events.Event] = []
    r1 = await dag.invoke(3, observers=[first.append])
    second: list[events.Event] = []
    r2 = await dag.invoke(3, observers=[second.append], timeline=True)
    assert calls == [3]
    assert r1[sq] == r2[sq] == 9
    assert r2[plus] == 10
    assert [e.cached for e in succeeded(first, "square")] == [False]
    assert [e.cached for e in succeeded(second, "square")] == [True]
    # A hit is no attempt: no node_started for it.
    assert not [e for e in second if isinstance(e, events.NodeStarted) and e.node == "square"]
    timing = {t.node: t for t in r2.timeline()}["square"]
    assert timing.cached
    assert timing.status is NodeStatus.SUCCEEDED
    await dag.invoke(4)
    assert calls == [3, 4]  # another input, another key
    assert len(cache) == 2


async def test_a_plain_hit_without_observers_returns_the_stored_object() -> None:
    made: list[list[int]] = []

    def make(n: int) -> list[int]:
        made.append(list(range(n)))
        return made[-1]

    with build_dag(int) as dag:
        node = dag.add_node(make, dag.params, cache=Cache())
    a = await dag.invoke(3)
    b = await dag.invoke(3)
    assert len(made) == 1
    assert a[node] is b[node] is made[0]


# -- single-flight -------------------------------------------------------------------------------


async def test_single_flight_under_100_concurrent_invokes(task_factory: str) -> None:
    calls = 0
    release = asyncio.Event()

    async def slow(key: str) -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return key.upper()

    with build_dag() as dag:
        k = dag.add_node(lambda: "k", name="k")
        node = dag.add_node(slow, k, cache=Cache(), name="slow")
        dag.add_node(lambda v: v + "!", node, name="bang")
    seen: list[events.Event] = []
    runs = [asyncio.ensure_future(dag.invoke(None, observers=[seen.append])) for _ in range(100)]
    for _ in range(5):
        await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*runs)
    assert calls == 1
    assert all(r[node] == "K" for r in results)
    cached = [e.cached for e in succeeded(seen, "slow")]
    assert len(cached) == 100
    assert cached.count(False) == 1  # the run whose call ran; the 99 others shared it


async def test_a_cancelled_waiter_does_not_cancel_the_call_for_the_others() -> None:
    calls: list[str] = []
    outcome: list[str] = []
    release = asyncio.Event()

    async def slow(key: str) -> str:
        calls.append(key)
        try:
            await release.wait()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        outcome.append("finished")
        return key * 2

    with build_dag(str) as dag:
        node = dag.add_node(slow, dag.params, cache=Cache(), name="slow")
    first = asyncio.ensure_future(dag.invoke("a"))  # starts the call
    await asyncio.sleep(0.01)
    others = [asyncio.ensure_future(dag.invoke("a")) for _ in range(3)]
    await asyncio.sleep(0.01)
    first.cancel()  # the caller whose run started the call goes
    with pytest.raises(asyncio.CancelledError):
        await first
    others[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await others[0]
    release.set()
    results = await asyncio.gather(*others[1:])
    assert [r[node] for r in results] == ["aa", "aa"]
    assert calls == ["a"]
    assert outcome == ["finished"]
    hit = await dag.invoke("a")  # stored for later runs
    assert hit[node] == "aa"
    assert calls == ["a"]


async def test_a_waiter_aborted_by_its_own_runs_failure_leaves_the_call_to_the_others() -> None:
    calls: list[str] = []
    release = asyncio.Event()

    async def slow(key: str) -> str:
        calls.append(key)
        await release.wait()
        return key * 2

    async def maybe_fail(fail: bool) -> None:
        await asyncio.sleep(0.01)
        if fail:
            raise ValueError("boom")

    with build_dag(bool) as dag:
        node = dag.add_node(slow, "k", cache=Cache(), name="slow")
        dag.add_node(maybe_fail, dag.params, name="maybe_fail")
    failing = asyncio.ensure_future(dag.invoke(True))
    waiting = asyncio.ensure_future(dag.invoke(False))
    with pytest.raises(DagError) as info:
        await failing  # its abort cancelled its wait for the shared call
    assert set(info.value.failures) == {"maybe_fail"}
    release.set()
    result = await waiting
    assert result[node] == "kk"
    assert calls == ["k"]


async def test_when_every_waiter_is_gone_the_call_is_cancelled_and_nothing_stored() -> None:
    calls = 0
    outcome: list[str] = []
    release = asyncio.Event()

    async def slow(key: str) -> str:
        nonlocal calls
        calls += 1
        try:
            await release.wait()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        return key

    cache = Cache()
    with build_dag(str) as dag:
        node = dag.add_node(slow, dag.params, cache=cache, name="slow")
    before = asyncio.all_tasks()
    runs = [asyncio.ensure_future(dag.invoke("a")) for _ in range(3)]
    await asyncio.sleep(0.01)
    for run in runs:
        run.cancel()
    for run in runs:
        with pytest.raises(asyncio.CancelledError):
            await run
    assert outcome == ["cancelled"]
    assert calls == 1
    assert len(cache) == 0
    assert asyncio.all_tasks() - before == set()  # the call's task ended with its last waiter
    release.set()
    again = await dag.invoke("a")  # a new call: nothing was stored
    assert again[node] == "a"
    assert calls == 2


async def test_a_run_timing_out_while_waiting_leaves_the_call_to_the_others() -> None:
    release = asyncio.Event()
    calls = 0

    async def slow(key: str) -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return key

    with build_dag(str) as dag:
        node = dag.add_node(slow, dag.params, cache=Cache(), name="slow")
    patient = asyncio.ensure_future(dag.invoke("a"))
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        await dag.invoke("a", timeout=0.02)
    release.set()
    assert (await patient)[node] == "a"
    assert calls == 1


# -- expiry and eviction -------------------------------------------------------------------------


async def test_entries_expire_after_ttl_on_the_caches_clock() -> None:
    clock = Clock()
    calls: list[int] = []

    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    with build_dag(int) as dag:
        node = dag.add_node(double, dag.params, cache=Cache(ttl=10.0, clock=clock))
    await dag.invoke(1)  # stored at 1000, fresh until 1010
    clock.now = 1009.999
    assert (await dag.invoke(1))[node] == 2
    assert calls == [1]
    clock.now = 1010.0
    assert (await dag.invoke(1))[node] == 2
    assert calls == [1, 1]  # expired: recomputed, stored again until 1020
    clock.now = 1019.0
    await dag.invoke(1)
    assert calls == [1, 1]


async def test_the_least_recently_used_entry_is_evicted_first() -> None:
    calls: list[int] = []

    def ident(x: int) -> int:
        calls.append(x)
        return x

    cache = Cache(maxsize=2)
    with build_dag(int) as dag:
        dag.add_node(ident, dag.params, cache=cache)
    await dag.invoke(1)
    await dag.invoke(2)
    await dag.invoke(1)  # a hit: 2 is now the least recently used
    assert calls == [1, 2]
    await dag.invoke(3)  # evicts 2
    assert len(cache) == 2
    await dag.invoke(1)
    assert calls == [1, 2, 3]  # 1 was kept
    await dag.invoke(2)
    assert calls == [1, 2, 3, 2]  # 2 was evicted (and now evicts 3, the least recent)
    await dag.invoke(1)
    await dag.invoke(3)
    assert calls == [1, 2, 3, 2, 3]


# -- failures ------------------------------------------------------------------------------------


async def test_a_failure_reaches_every_waiter_as_its_own_object_and_is_not_stored() -> None:
    calls = 0
    release = asyncio.Event()

    async def flaky(key: str) -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        raise ValueError(f"bad {key}")

    with build_dag(str) as dag:
        dag.add_node(flaky, dag.params, cache=Cache(), name="flaky")
    runs = [asyncio.ensure_future(dag.invoke("a")) for _ in range(5)]
    await asyncio.sleep(0.01)
    release.set()
    outcomes = await asyncio.gather(*runs, return_exceptions=True)
    assert calls == 1
    errors: list[BaseException] = []
    for outcome in outcomes:
        assert isinstance(outcome, DagError)
        assert set(outcome.failures) == {"flaky"}  # each run reports it for its own node
        errors.append(outcome.failures["flaky"])
    assert len({id(e) for e in errors}) == 5  # never one mutated object shared by runs
    for error in errors:
        assert isinstance(error, ValueError)
        assert error.args == ("bad a",)
        assert error.__notes__ == ["dagwire: node 'flaky' failed in body"]  # one note each
    release.set()
    with pytest.raises(DagError):
        await dag.invoke("a")
    assert calls == 2  # not stored: called again


async def test_a_failure_in_continue_mode_is_reported_by_each_run() -> None:
    release = asyncio.Event()

    async def flaky() -> int:
        await release.wait()
        raise KeyError("k")

    with build_dag() as dag:
        node = dag.add_node(flaky, cache=Cache(), name="flaky")
        dep = dag.add_node(lambda x: x, node, name="dep")
    runs = [asyncio.ensure_future(dag.invoke(None, on_error="continue")) for _ in range(3)]
    await asyncio.sleep(0.01)
    release.set()
    results = await asyncio.gather(*runs)
    for r in results:
        assert not r.ok
        assert [f.node for f in r.errors] == ["flaky"]
        assert r.status(dep) is NodeStatus.SKIPPED
        assert r.skip_cause(dep) == "flaky"
    assert len({id(r.errors[0].error) for r in results}) == 3


async def test_a_retried_call_is_shared_and_its_value_stored() -> None:
    attempts = 0

    async def flaky(x: int) -> int:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError("again")
        return x

    with build_dag(int) as dag:
        node = dag.add_node(
            flaky, dag.params, cache=Cache(), retry=Retry(attempts=3, initial_delay=0.0)
        )
    a, b = await asyncio.gather(dag.invoke(5), dag.invoke(5))
    assert a[node] == b[node] == 5
    assert attempts == 3
    await dag.invoke(5)
    assert attempts == 3


async def test_a_cached_node_with_a_fallback_uses_it_and_stores_nothing() -> None:
    calls = 0

    def fails(x: int) -> int:
        nonlocal calls
        calls += 1
        raise ValueError("down")

    cache = Cache()
    with build_dag(int) as dag:
        node = dag.add_node(fails, dag.params, cache=cache, fallback=-1, name="fails")
        dep = dag.add_node(lambda v: v * 10, node, name="dep")
    r1 = await dag.invoke(1)
    assert r1[node] == -1
    assert r1[dep] == -10
    assert r1.ok
    assert [f.node for f in r1.errors] == ["fails"]
    assert r1.errors[0].recovered
    r2 = await dag.invoke(1)
    assert r2[node] == -1
    assert calls == 2  # neither the failure nor the fallback value was stored
    assert len(cache) == 0


async def test_a_skip_in_a_cached_body_is_not_stored() -> None:
    calls = 0

    def maybe(x: int) -> int:
        nonlocal calls
        calls += 1
        raise Skip("not now")

    with build_dag(int) as dag:
        node = dag.add_node(maybe, dag.params, cache=Cache(), name="maybe")
    for _ in range(2):
        result = await dag.invoke(1)
        assert result.ok
        assert result.status(node) is NodeStatus.SKIPPED
    assert calls == 2


async def test_current_inside_a_cached_body_names_the_node() -> None:
    """`current()` is documented to work in every node body; a cached one is a node body too
    (the run whose miss started the call is the natural one to name)."""

    async def where(_: int) -> RunContext | None:
        await asyncio.sleep(0)
        return current()

    with build_dag(name="g") as dag:
        node = dag.add_node(where, 1, cache=Cache(), name="where")
    result = await dag.invoke(None)
    context = result[node]
    assert context is not None
    assert (context.dag, context.node, context.attempt) == ("g", "where", 1)


# -- sharing -------------------------------------------------------------------------------------


async def test_two_graphs_sharing_one_cache_share_entries_and_calls() -> None:
    calls: list[str] = []
    release = asyncio.Event()

    async def lookup(user: int) -> str:
        calls.append(f"lookup {user}")
        await release.wait()
        return f"user {user}"

    cache = Cache()
    with build_dag(int, name="one") as one:
        a = one.add_node(lookup, one.params, cache=cache)
    with build_dag(int, name="two") as two:
        b = two.add_node(lookup, two.params, cache=cache)
    ra, rb = asyncio.ensure_future(one.invoke(7)), asyncio.ensure_future(two.invoke(7))
    await asyncio.sleep(0.01)
    release.set()
    assert (await ra)[a] == (await rb)[b] == "user 7"
    assert calls == ["lookup 7"]  # one call shared by both graphs' runs
    assert (await two.invoke(7))[b] == "user 7"
    assert calls == ["lookup 7"]


async def test_a_shared_failure_is_noted_for_each_graphs_own_node() -> None:
    release = asyncio.Event()

    async def lookup(user: int) -> str:
        await release.wait()
        raise LookupError(f"no user {user}")

    cache = Cache()
    with build_dag(int, name="one") as one:
        one.add_node(lookup, one.params, cache=cache, name="in_one")
    with build_dag(int, name="two") as two:
        two.add_node(lookup, two.params, cache=cache, name="in_two")
    runs = [asyncio.ensure_future(one.invoke(7)), asyncio.ensure_future(two.invoke(7))]
    await asyncio.sleep(0.01)
    release.set()
    first, second = await asyncio.gather(*runs, return_exceptions=True)
    assert isinstance(first, DagError)
    assert isinstance(second, DagError)
    a, b = first.failures["in_one"], second.failures["in_two"]
    assert a is not b
    assert a.__notes__ == ["dagwire: node 'in_one' failed in body"]
    assert b.__notes__ == ["dagwire: node 'in_two' failed in body"]


async def test_a_cache_that_keeps_nothing_still_shares_concurrent_calls() -> None:
    calls = 0
    release = asyncio.Event()

    async def slow(x: int) -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return x

    cache = Cache(ttl=0)
    with build_dag(int) as dag:
        node = dag.add_node(slow, dag.params, cache=cache)
    runs = [asyncio.ensure_future(dag.invoke(1)) for _ in range(10)]
    await asyncio.sleep(0.01)
    release.set()
    assert [r[node] for r in await asyncio.gather(*runs)] == [1] * 10
    assert calls == 1
    assert len(cache) == 0
    await dag.invoke(1)
    assert calls == 2


async def test_what_a_key_function_raises_fails_the_node_unchanged() -> None:
    def bad_key(x: int) -> int:
        raise LookupError("key broke")

    def ident(x: int) -> int:
        return x

    with build_dag() as dag:
        node = dag.add_node(ident, 1, cache=Cache(key=bad_key), name="n")
    result = await dag.invoke(None, on_error="continue")
    assert result.status(node) is NodeStatus.FAILED
    [failure] = result.errors
    assert failure.node == "n"
    assert isinstance(failure.error, LookupError)
    assert failure.error.args == ("key broke",)


async def test_max_concurrency_counts_a_wait_for_a_shared_call() -> None:
    log: list[str] = []
    release = asyncio.Event()

    async def slow() -> int:
        log.append("slow start")
        await release.wait()
        log.append("slow end")
        return 1

    async def other() -> int:
        log.append("other start")
        await asyncio.sleep(0)
        log.append("other end")
        return 2

    with build_dag() as dag:
        s = dag.add_node(slow, cache=Cache(), name="slow")
        o = dag.add_node(other, name="other")
    run = asyncio.ensure_future(dag.invoke(None, max_concurrency=1))
    await asyncio.sleep(0.01)
    release.set()
    result = await run
    assert result[s] == 1
    assert result[o] == 2
    assert log in (  # never both at once: waiting for the shared call holds the run's slot
        ["slow start", "slow end", "other start", "other end"],
        ["other start", "other end", "slow start", "slow end"],
    )


# -- keys ----------------------------------------------------------------------------------------


@dataclass
class Params:  # not frozen: unhashable, like most parameter classes
    user: int


@pytest.mark.parametrize("on_error", ["raise", "continue"])
async def test_unhashable_inputs_without_a_key_are_a_clear_error_naming_the_node(
    on_error: str,
) -> None:
    calls = 0

    def total(xs: list[int]) -> int:
        nonlocal calls
        calls += 1
        return sum(xs)

    with build_dag() as dag:
        xs = dag.add_node(lambda: [1, 2], name="xs")
        node = dag.add_node(total, xs, cache=Cache(), name="total")
    if on_error == "raise":
        with pytest.raises(DagError) as info:
            await dag.invoke(None)
        error: BaseException = info.value.failures["total"]
    else:
        result = await dag.invoke(None, on_error="continue")
        assert result.status(node) is NodeStatus.FAILED
        error = result.errors[0].error
    assert isinstance(error, TypeError)
    assert "'total'" in str(error)
    assert "unhashable list" in str(error)
    assert "key=" in str(error)
    assert calls == 0


async def test_an_injected_unhashable_parameter_is_named_too() -> None:
    with build_dag(Params) as dag:
        dag.add_node(lambda p: p.user, cache=Cache(), name="user")
    with pytest.raises(DagError) as info:
        await dag.invoke(Params(1))
    message = str(info.value.failures["user"])
    assert "'user'" in message
    assert "unhashable Params" in message


async def test_a_key_function_keys_the_entries() -> None:
    calls: list[list[int]] = []

    def total(xs: list[int], p: Params) -> int:
        calls.append(xs)
        return sum(xs) + p.user

    def key(xs: list[int], p: Params) -> tuple[tuple[int, ...], int]:
        return (tuple(xs), p.user)

    def items(p: Params) -> list[int]:
        return [p.user, 2]

    cache = Cache(key=key)
    with build_dag(Params) as dag:
        xs = dag.add_node(items, dag.params, name="xs")
        node = dag.add_node(total, xs, cache=cache, name="total")
    assert (await dag.invoke(Params(1)))[node] == 4
    assert (await dag.invoke(Params(1)))[node] == 4
    assert (await dag.invoke(Params(2)))[node] == 6
    assert calls == [[1, 2], [2, 2]]


# -- refused at build time -----------------------------------------------------------------------


def test_cache_on_a_resource_is_refused_naming_the_option() -> None:
    def conn() -> Iterator[str]:
        yield "c"

    with build_dag() as dag, pytest.raises(DagDefinitionError, match=r"conn.*cache="):
        dag.add_resource(conn, cache=Cache())  # type: ignore[arg-type]  # the misuse under test


def test_cache_with_pre_is_refused_naming_both_options() -> None:
    def work() -> int:
        return 1

    with build_dag() as dag, pytest.raises(DagDefinitionError) as info:
        dag.add_node(work, cache=Cache(), pre=lambda: None)
    message = str(info.value)
    assert "work" in message
    assert "cache=" in message
    assert "pre=" in message


def test_cache_with_post_is_refused_naming_both_options() -> None:
    def work() -> int:
        return 1

    with build_dag() as dag, pytest.raises(DagDefinitionError) as info:
        dag.add_node(work, cache=Cache(), post=lambda: None)
    message = str(info.value)
    assert "work" in message
    assert "cache=" in message
    assert "post=" in message


def test_cache_on_add_map_and_a_non_cache_are_refused() -> None:
    with build_dag() as dag:
        with pytest.raises(DagDefinitionError, match="cache="):
            dag.add_map(str, [1], cache=Cache())  # type: ignore[arg-type]  # under test
        with pytest.raises(DagDefinitionError, match="cache="):
            dag.add_node(lambda: 1, cache={})  # type: ignore[call-overload]  # the misuse under test
