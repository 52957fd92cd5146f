"""Shared policies (SPEC sections 2, 10): CircuitBreaker, Limiter, invoke(max_concurrency=)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from dagwire import (
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    DagDefinitionError,
    DagError,
    Limiter,
    NodeStatus,
    Retry,
    build_dag,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state(breaker: CircuitBreaker) -> BreakerState:
    """Read the state afresh (a plain attribute read would be narrowed by type checkers)."""
    return breaker.state


async def forever() -> None:
    """Wait until cancelled; fail (rather than hang the suite) if nothing ever cancels it."""
    await asyncio.sleep(5)
    raise AssertionError("nothing cancelled this wait")


class Tracker:
    """Counts node bodies running at once."""

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0
        self.calls = 0

    async def body(self) -> None:
        self.calls += 1
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            for _ in range(3):
                await asyncio.sleep(0.002)
        finally:
            self.active -= 1


# -- CircuitBreaker ------------------------------------------------------------------------


class Service:
    """A dependency that fails while `down` is set, counting its calls."""

    def __init__(self) -> None:
        self.down = True
        self.calls = 0

    async def call(self) -> str:
        self.calls += 1
        if self.down:
            raise ConnectionError("down")
        return "up"


async def test_breaker_opens_after_fail_max_failures_and_then_fails_fast() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(fail_max=3, reset_timeout=10.0, clock=clock)
    changes: list[tuple[BreakerState, BreakerState]] = []
    breaker.add_listener(lambda old, new: changes.append((old, new)))
    service = Service()
    with build_dag() as dag:
        dag.add_node(service.call, name="call", breaker=breaker)
    for k in range(3):
        assert state(breaker) is BreakerState.CLOSED
        with pytest.raises(DagError) as info:
            await dag.invoke(None)
        assert isinstance(info.value.failures["call"], ConnectionError)
        assert service.calls == k + 1
    assert state(breaker) is BreakerState.OPEN
    assert changes == [(BreakerState.CLOSED, BreakerState.OPEN)]
    clock.now += 9.9
    for _ in range(2):
        with pytest.raises(DagError) as info:
            await dag.invoke(None)
        assert isinstance(info.value.failures["call"], CircuitOpenError)
    assert service.calls == 3  # refused calls never reach the service


@pytest.mark.parametrize("trial_succeeds", [True, False])
async def test_breaker_lets_one_trial_through_after_reset_timeout(trial_succeeds: bool) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(fail_max=1, reset_timeout=5.0, clock=clock)
    changes: list[tuple[BreakerState, BreakerState]] = []
    breaker.add_listener(lambda old, new: changes.append((old, new)))
    service = Service()
    with build_dag() as dag:
        n = dag.add_node(service.call, name="call", breaker=breaker)
    with pytest.raises(DagError):
        await dag.invoke(None)
    assert state(breaker) is BreakerState.OPEN
    clock.now += 5.0
    service.down = not trial_succeeds
    result = await dag.invoke(None, on_error="continue")
    assert service.calls == 2
    if trial_succeeds:
        assert result[n] == "up"
        assert state(breaker) is BreakerState.CLOSED
        assert changes[-2:] == [
            (BreakerState.OPEN, BreakerState.HALF_OPEN),
            (BreakerState.HALF_OPEN, BreakerState.CLOSED),
        ]
        assert (await dag.invoke(None))[n] == "up"
        assert service.calls == 3
    else:
        assert isinstance(result.errors[0].error, ConnectionError)
        assert state(breaker) is BreakerState.OPEN
        assert changes[-2:] == [
            (BreakerState.OPEN, BreakerState.HALF_OPEN),
            (BreakerState.HALF_OPEN, BreakerState.OPEN),
        ]
        # a failed trial re-opens at once, for another full reset_timeout
        result = await dag.invoke(None, on_error="continue")
        assert isinstance(result.errors[0].error, CircuitOpenError)
        assert service.calls == 2


async def test_half_open_breaker_lets_only_one_trial_run_at_a_time() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(fail_max=1, reset_timeout=1.0, clock=clock)
    trial_started = asyncio.Event()
    finish = asyncio.Event()
    calls = 0

    async def call() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("opens the breaker")
        if calls > 2:
            return "a second trial went through"
        trial_started.set()
        await finish.wait()
        return "trial ok"

    with build_dag() as dag:
        n = dag.add_node(call, name="call", breaker=breaker)
    await dag.invoke(None, on_error="continue")
    clock.now += 1.0
    trial = asyncio.create_task(dag.invoke(None))
    await trial_started.wait()
    assert state(breaker) is BreakerState.HALF_OPEN
    second = await dag.invoke(None, on_error="continue")
    assert isinstance(second.errors[0].error, CircuitOpenError)
    finish.set()
    assert (await trial)[n] == "trial ok"
    assert state(breaker) is BreakerState.CLOSED
    assert calls == 2


async def test_breaker_counts_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(fail_max=3, reset_timeout=60.0, clock=FakeClock())
    service = Service()
    with build_dag() as dag:
        dag.add_node(service.call, breaker=breaker)
    for down in (True, True, False, True, True):
        service.down = down
        await dag.invoke(None, on_error="continue")
    assert state(breaker) is BreakerState.CLOSED
    await dag.invoke(None, on_error="continue")
    assert state(breaker) is BreakerState.OPEN


async def test_open_breaker_uses_the_fallback() -> None:
    breaker = CircuitBreaker(fail_max=1, reset_timeout=60.0, clock=FakeClock())
    service = Service()
    with build_dag() as dag:
        n = dag.add_node(service.call, name="call", breaker=breaker, fallback="cached")
        dep = dag.add_node(lambda v: f"got {v}", n)
    first = await dag.invoke(None)
    assert first[dep] == "got cached"
    assert isinstance(first.errors[0].error, ConnectionError)
    second = await dag.invoke(None)  # fail-fast mode, still no error
    assert second[dep] == "got cached"
    assert second.ok
    assert second.status(n) is NodeStatus.SUCCEEDED
    [failure] = second.errors
    assert isinstance(failure.error, CircuitOpenError)
    assert failure.recovered
    assert service.calls == 1


async def test_breaker_is_shared_across_nodes_and_graphs() -> None:
    breaker = CircuitBreaker(fail_max=2, reset_timeout=60.0, clock=FakeClock())
    a, b = Service(), Service()
    b.down = False
    with build_dag() as first:
        first.add_node(a.call, name="a1", breaker=breaker)
        first.add_node(a.call, name="a2", breaker=breaker)
    with build_dag() as second:
        n = second.add_node(b.call, name="b", breaker=breaker)
    result = await first.invoke(None, on_error="continue")
    assert len(result.errors) == 2
    assert state(breaker) is BreakerState.OPEN
    refused = await second.invoke(None, on_error="continue")
    assert isinstance(refused.errors[0].error, CircuitOpenError)
    assert refused.status(n) is NodeStatus.FAILED
    assert b.calls == 0


async def test_cancelled_call_is_not_a_breaker_failure() -> None:
    breaker = CircuitBreaker(fail_max=1, reset_timeout=60.0, clock=FakeClock())
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await forever()

    async def failing() -> None:
        await started.wait()
        raise ValueError("elsewhere")

    with build_dag() as dag:
        dag.add_node(slow, breaker=breaker)
        dag.add_node(failing)
    with pytest.raises(DagError):
        await dag.invoke(None)
    assert state(breaker) is BreakerState.CLOSED


async def test_each_failed_attempt_counts_and_an_open_breaker_ends_the_retries() -> None:
    breaker = CircuitBreaker(fail_max=2, reset_timeout=60.0, clock=FakeClock())
    service = Service()
    with build_dag() as dag:
        dag.add_node(
            service.call,
            name="call",
            breaker=breaker,
            retry=Retry(attempts=5, initial_delay=0.001),
        )
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert service.calls == 2
    assert isinstance(info.value.failures["call"], CircuitOpenError)


async def test_refused_call_never_started_its_body_so_post_without_pre_does_not_run() -> None:
    breaker = CircuitBreaker(fail_max=1, reset_timeout=60.0, clock=FakeClock())
    log: list[str] = []
    service = Service()
    first_done = asyncio.Event()

    async def first_call() -> None:
        try:
            await service.call()
        finally:
            first_done.set()

    with build_dag() as dag:
        dag.add_node(first_call, breaker=breaker, post=lambda: log.append("post"))
        gate = dag.add_node(first_done.wait)  # roots have no start order: this one goes second
        dag.add_node(
            service.call,
            breaker=breaker,
            pre=lambda: log.append("pre2"),
            post=lambda: log.append("post2"),
            after=gate,
        )
    await dag.invoke(None, on_error="continue")  # both calls fail; the breaker opens
    assert sorted(log) == ["post", "post2", "pre2"]
    log.clear()
    result = await dag.invoke(None, on_error="continue")  # both refused
    assert all(isinstance(f.error, CircuitOpenError) for f in result.errors)
    assert sorted(log) == ["post2", "pre2"]  # pre started, so post2 runs; "post" does not


@pytest.mark.parametrize(
    "make",
    [
        lambda: CircuitBreaker(fail_max=0),
        lambda: CircuitBreaker(fail_max=-1),
        lambda: CircuitBreaker(reset_timeout=-1.0),
    ],
)
def test_invalid_breakers_are_definition_errors(make: Callable[[], object]) -> None:
    with pytest.raises(DagDefinitionError):
        make()


def test_breaker_option_must_be_a_breaker() -> None:
    with build_dag() as dag, pytest.raises(DagDefinitionError, match="breaker"):
        dag.add_node(lambda: 1, breaker="breaker")  # type: ignore[call-overload]  # deliberate


# -- Limiter -------------------------------------------------------------------------------


async def test_limiter_caps_bodies_across_concurrent_invokes() -> None:
    tracker = Tracker()
    limiter = Limiter(2)
    with build_dag() as dag:
        for k in range(4):
            dag.add_node(tracker.body, name=f"n{k}", limiter=limiter)
    await asyncio.gather(dag.invoke(None), dag.invoke(None))
    assert tracker.calls == 8
    assert tracker.peak == 2
    assert limiter.in_use == 0


async def test_limiter_is_shared_across_graphs_and_only_by_nodes_holding_it() -> None:
    limited = Tracker()
    free = Tracker()
    limiter = Limiter(1)
    with build_dag() as one:
        for _ in range(3):
            one.add_node(limited.body, limiter=limiter)
        for _ in range(3):
            one.add_node(free.body)
    with build_dag() as two:
        for _ in range(3):
            two.add_node(limited.body, limiter=limiter)
    await asyncio.gather(one.invoke(None), two.invoke(None))
    assert limited.peak == 1
    assert limited.calls == 6
    assert free.peak == 3


async def test_limiter_slot_is_released_after_failure_and_cancellation() -> None:
    limiter = Limiter(1)
    started = asyncio.Event()

    async def failing() -> None:
        raise ValueError("x")

    async def slow() -> None:
        started.set()
        await forever()

    with build_dag() as failing_dag:
        failing_dag.add_node(failing, limiter=limiter)
    with pytest.raises(DagError):
        await failing_dag.invoke(None)
    assert limiter.in_use == 0

    with build_dag() as slow_dag:
        slow_dag.add_node(slow, limiter=limiter)
        slow_dag.add_node(slow, limiter=limiter)  # waits for the slot
    task = asyncio.create_task(slow_dag.invoke(None))
    await started.wait()
    assert limiter.in_use == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert limiter.in_use == 0
    tracker = Tracker()
    with build_dag() as after:
        after.add_node(tracker.body, limiter=limiter)
    await after.invoke(None)  # the limiter still works
    assert tracker.calls == 1


async def test_limiter_is_released_between_retry_attempts() -> None:
    limiter = Limiter(1)
    log: list[str] = []
    calls = 0

    first_call = asyncio.Event()

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        log.append(f"flaky {calls}")
        first_call.set()
        if calls == 1:
            raise ConnectionError("once")

    async def other() -> None:
        log.append("other")

    with build_dag() as dag:
        dag.add_node(flaky, limiter=limiter, retry=Retry(attempts=2, initial_delay=0.01))
        gate = dag.add_node(first_call.wait)  # roots have no start order
        dag.add_node(other, limiter=limiter, after=gate)
    await dag.invoke(None)
    assert log == ["flaky 1", "other", "flaky 2"]


@pytest.mark.parametrize("limit", [0, -1, 1.5, "2"])
def test_invalid_limiters_are_definition_errors(limit: object) -> None:
    with pytest.raises(DagDefinitionError):
        Limiter(limit)  # type: ignore[arg-type]  # deliberately wrong


def test_limiter_option_must_be_a_limiter() -> None:
    with build_dag() as dag, pytest.raises(DagDefinitionError, match="limiter"):
        dag.add_node(lambda: 1, limiter=3)  # type: ignore[call-overload]  # deliberate


# -- invoke(max_concurrency=) --------------------------------------------------------------


@pytest.mark.parametrize("cap", [1, 3])
async def test_max_concurrency_caps_bodies_in_one_run(cap: int) -> None:
    tracker = Tracker()
    with build_dag() as dag:
        roots = [dag.add_node(tracker.body, name=f"n{k}") for k in range(8)]
        dag.add_node(lambda *_: None, *roots, name="sink")
    result = await dag.invoke(None, max_concurrency=cap)
    assert result.ok
    assert tracker.calls == 8
    assert tracker.peak == cap
    uncapped = Tracker()
    with build_dag() as free:
        for k in range(8):
            free.add_node(uncapped.body, name=f"n{k}")
    await free.invoke(None)
    assert uncapped.peak == 8


async def test_max_concurrency_is_per_run() -> None:
    """Two runs, each capped at 1, still run one body each at the same time."""
    barrier = asyncio.Barrier(2)

    async def meet() -> str:
        async with asyncio.timeout(2.0):
            await barrier.wait()
        return "met"

    with build_dag() as dag:
        n = dag.add_node(meet)
    first, second = await asyncio.gather(
        dag.invoke(None, max_concurrency=1), dag.invoke(None, max_concurrency=1)
    )
    assert first[n] == second[n] == "met"


async def test_max_concurrency_and_a_limiter_both_apply() -> None:
    tracker = Tracker()
    limiter = Limiter(2)
    with build_dag() as dag:
        for k in range(6):
            dag.add_node(tracker.body, name=f"n{k}", limiter=limiter)
    await dag.invoke(None, max_concurrency=3)
    assert tracker.peak == 2
    tracker.peak = 0
    await dag.invoke(None, max_concurrency=1)
    assert tracker.peak == 1


@pytest.mark.parametrize("cap", [0, -1, 1.5])
async def test_invalid_max_concurrency_is_a_definition_error(cap: object) -> None:
    with build_dag() as dag:
        dag.add_node(lambda: 1)
    with pytest.raises(DagDefinitionError):
        await dag.invoke(None, max_concurrency=cap)  # type: ignore[arg-type]  # deliberately wrong
