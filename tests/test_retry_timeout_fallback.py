"""SPEC sections 2 and 10: Retry (formula, jitter, what is retried), timeouts and fallback."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest

from dagwire import (
    DagDefinitionError,
    DagError,
    NodeCancelledError,
    NodeNotCompletedError,
    NodeStatus,
    Retry,
    RetryableError,
    build_dag,
)
from dagwire import policies as dagwire_policies

FAST = 0.001  # initial_delay used by run tests: keeps the suite fast


def notes(exc: BaseException) -> list[str]:
    return list(getattr(exc, "__notes__", []))


async def forever() -> None:
    """Wait until cancelled; fail (rather than hang the suite) if nothing ever cancels it."""
    await asyncio.sleep(5)
    raise AssertionError("nothing cancelled this wait")


class RecordingRandom(random.Random):
    """A seeded random source that records the jitter factors drawn from it."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.draws: list[float] = []

    def uniform(self, a: float, b: float) -> float:
        value = super().uniform(a, b)
        self.draws.append(value)
        return value


def flaky(failures: list[BaseException], log: list[str] | None = None) -> Callable[[], Any]:
    """A body raising the given exceptions one per call, then returning the call count."""
    calls = 0

    async def body() -> int:
        nonlocal calls
        calls += 1
        if log is not None:
            log.append(f"call {calls}")
        if calls <= len(failures):
            raise failures[calls - 1]
        return calls

    return body


# -- Retry.delay ---------------------------------------------------------------------------


def test_delay_formula_without_jitter() -> None:
    policy = Retry(initial_delay=0.1, backoff=2.0, max_delay=1.0, jitter=False)
    delays = [policy.delay(k) for k in range(1, 8)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])


def test_delay_formula_with_another_backoff_and_no_growth() -> None:
    policy = Retry(initial_delay=0.5, backoff=3.0, max_delay=100.0, jitter=False)
    assert [policy.delay(k) for k in (1, 2, 3, 4)] == pytest.approx([0.5, 1.5, 4.5, 13.5])
    flat = Retry(initial_delay=0.25, backoff=1.0, jitter=False)
    assert [flat.delay(k) for k in (1, 2, 10)] == pytest.approx([0.25, 0.25, 0.25])
    zero = Retry(initial_delay=0.0, jitter=False)
    assert zero.delay(5) == 0.0


def test_delay_with_jitter_is_the_capped_delay_times_a_seeded_uniform_factor() -> None:
    policy = Retry(initial_delay=0.1, backoff=2.0, max_delay=1.0, rng=random.Random(1234))
    twin = random.Random(1234)
    for k in range(1, 10):
        base = min(0.1 * 2.0 ** (k - 1), 1.0)
        assert policy.delay(k) == pytest.approx(base * twin.uniform(0.5, 1.0))


def test_jitter_factor_is_within_half_and_one_and_varies() -> None:
    policy = Retry(initial_delay=0.2, backoff=2.0, max_delay=30.0, rng=random.Random(7))
    factors = [policy.delay(3) / 0.8 for _ in range(500)]
    assert all(0.5 <= f <= 1.0 for f in factors)
    assert min(factors) < 0.6
    assert max(factors) > 0.9


def test_jitter_is_applied_after_the_cap() -> None:
    """Capped delays still vary: the factor multiplies min(delay, max_delay)."""
    policy = Retry(initial_delay=1.0, backoff=10.0, max_delay=2.0, rng=random.Random(3))
    delays = [policy.delay(6) for _ in range(200)]
    assert all(1.0 <= d <= 2.0 for d in delays)
    assert min(delays) < 1.2


def test_huge_retry_numbers_are_capped_without_overflow() -> None:
    policy = Retry(attempts=100_000, initial_delay=1.0, backoff=2.0, max_delay=30.0, jitter=False)
    assert policy.delay(5_000) == 30.0
    assert Retry(initial_delay=0.0, jitter=False).delay(5_000) == 0.0
    jittered = Retry(initial_delay=1.0, max_delay=30.0, rng=random.Random(0))
    assert 15.0 <= jittered.delay(5_000) <= 30.0


def test_default_random_source_is_seedable() -> None:
    source = dagwire_policies.default_rng
    state = source.getstate()
    try:
        policy = Retry(initial_delay=0.1)
        source.seed(99)
        first = [policy.delay(k) for k in range(1, 6)]
        source.seed(99)
        assert [policy.delay(k) for k in range(1, 6)] == first
        source.seed(100)
        assert [policy.delay(k) for k in range(1, 6)] != first
    finally:
        source.setstate(state)


async def test_run_sleeps_the_policy_delays_drawn_from_its_random_source(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(delay: float, result: Any = None) -> Any:
        if delay > 0:
            slept.append(delay)
        return await real_sleep(0)

    rng = RecordingRandom(42)
    twin = random.Random(42)
    policy = Retry(attempts=4, initial_delay=0.01, backoff=3.0, max_delay=0.05, rng=rng)
    with build_dag() as dag:
        n = dag.add_node(flaky([ConnectionError(), TimeoutError(), RetryableError()]), retry=policy)
    monkeypatch.setattr(asyncio, "sleep", recording_sleep)
    result = await dag.invoke(None)
    monkeypatch.undo()
    assert result[n] == 4
    assert len(rng.draws) == 3
    expected = [min(0.01 * 3.0 ** (k - 1), 0.05) * twin.uniform(0.5, 1.0) for k in (1, 2, 3)]
    assert slept == pytest.approx(expected)


async def test_run_without_own_rng_draws_jitter_from_the_default_source(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = RecordingRandom(5)
    monkeypatch.setattr(dagwire_policies, "default_rng", rng)
    with build_dag() as dag:
        jittered = dag.add_node(flaky([ConnectionError()] * 2), retry=Retry(initial_delay=FAST))
        plain = dag.add_node(
            flaky([ConnectionError()] * 2), retry=Retry(initial_delay=FAST, jitter=False)
        )
    result = await dag.invoke(None)
    assert result[jittered] == 3
    assert result[plain] == 3
    assert len(rng.draws) == 2  # only the jittered node drew


# -- what is retried -----------------------------------------------------------------------


def test_retry_int_is_short_for_retry_attempts() -> None:
    assert Retry(attempts=3) == Retry()
    assert Retry(attempts=5).attempts == 5


@pytest.mark.parametrize("retry", [3, Retry(attempts=3, initial_delay=FAST)], ids=["int", "Retry"])
async def test_three_attempts_mean_three_calls_in_total(retry: int | Retry) -> None:
    log: list[str] = []
    with build_dag() as dag:
        dag.add_node(flaky([ConnectionError()] * 10, log), name="n", retry=retry)
    with pytest.raises(DagError):
        await dag.invoke(None)
    assert log == ["call 1", "call 2", "call 3"]


async def test_retry_one_means_a_single_call() -> None:
    log: list[str] = []
    with build_dag() as dag:
        dag.add_node(flaky([ConnectionError()], log), retry=1)
    with pytest.raises(DagError):
        await dag.invoke(None)
    assert log == ["call 1"]


@pytest.mark.parametrize(
    "exc",
    [
        TimeoutError("t"),
        ConnectionError("c"),
        ConnectionResetError("subclass of ConnectionError"),
        RetryableError("r"),
        type("MyRetryable", (RetryableError,), {})("subclass of RetryableError"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_default_policy_retries_its_listed_types(exc: Exception) -> None:
    with build_dag() as dag:
        n = dag.add_node(flaky([exc]), retry=Retry(initial_delay=FAST))
    result = await dag.invoke(None)
    assert result[n] == 2


@pytest.mark.parametrize(
    "exc", [ValueError("v"), KeyError("k"), RuntimeError("r"), OSError("not a ConnectionError")]
)
async def test_default_policy_does_not_retry_other_exceptions(exc: Exception) -> None:
    log: list[str] = []
    with build_dag() as dag:
        dag.add_node(flaky([exc], log), name="n", retry=Retry(initial_delay=FAST))
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert log == ["call 1"]
    assert info.value.failures["n"] is exc


async def test_only_types_listed_in_on_are_retried() -> None:
    log_v: list[str] = []
    log_c: list[str] = []
    policy = Retry(attempts=3, initial_delay=FAST, on=(ValueError,))
    with build_dag() as dag:
        v = dag.add_node(flaky([ValueError()] * 2, log_v), retry=policy)
        dag.add_node(flaky([ConnectionError()], log_c), name="c", retry=policy)
    result = await dag.invoke(None, on_error="continue")
    assert result[v] == 3
    assert log_c == ["call 1"]
    assert isinstance(result.errors[0].error, ConnectionError)


def test_should_retry_rules() -> None:
    policy = Retry()
    assert policy.should_retry(ConnectionError())
    assert not policy.should_retry(ValueError())
    anything = Retry(on=(Exception,))
    for never in (asyncio.CancelledError(), KeyboardInterrupt(), SystemExit(1), GeneratorExit()):
        assert not policy.should_retry(never)
        assert not anything.should_retry(never)
    assert policy.should_retry(ExceptionGroup("all", [ConnectionError(), TimeoutError()]))
    assert not policy.should_retry(ExceptionGroup("mixed", [ConnectionError(), ValueError()]))
    nested = ExceptionGroup("outer", [ExceptionGroup("inner", [RetryableError()]), TimeoutError()])
    assert policy.should_retry(nested)
    bad_nested = ExceptionGroup("outer", [ExceptionGroup("inner", [KeyError()]), TimeoutError()])
    assert not policy.should_retry(bad_nested)
    assert not anything.should_retry(
        BaseExceptionGroup("base", [KeyboardInterrupt(), ValueError()])
    )


async def test_exception_group_is_retried_only_when_every_leaf_is_retryable() -> None:
    all_log: list[str] = []
    mixed_log: list[str] = []
    policy = Retry(attempts=3, initial_delay=FAST)
    retryable = ExceptionGroup("net", [ConnectionError(), TimeoutError()])
    mixed = ExceptionGroup("mixed", [ConnectionError(), ValueError()])
    with build_dag() as dag:
        ok = dag.add_node(flaky([retryable], all_log), retry=policy)
        dag.add_node(flaky([mixed], mixed_log), name="mixed", retry=policy)
    result = await dag.invoke(None, on_error="continue")
    assert result[ok] == 2
    assert all_log == ["call 1", "call 2"]
    assert mixed_log == ["call 1"]
    assert [f.error for f in result.errors] == [mixed]


async def test_cancelled_error_raised_by_a_body_is_never_retried() -> None:
    log: list[str] = []

    async def cancels_itself() -> None:
        log.append("call")
        raise asyncio.CancelledError

    with build_dag() as dag:
        n = dag.add_node(
            cancels_itself,
            name="n",
            retry=Retry(attempts=5, initial_delay=FAST, on=(Exception,)),
        )
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert log == ["call"]
    assert isinstance(info.value.failures["n"], NodeCancelledError)
    result = await dag.invoke(None, on_error="continue")
    assert result.status(n) is NodeStatus.FAILED
    assert log == ["call", "call"]


@pytest.mark.parametrize("fatal", [KeyboardInterrupt, SystemExit], ids=lambda t: t.__name__)
async def test_keyboard_interrupt_and_system_exit_are_never_retried(
    fatal: type[BaseException],
) -> None:
    log: list[str] = []
    exc = fatal()
    with build_dag() as dag:
        dag.add_node(
            flaky([exc], log), retry=Retry(attempts=5, initial_delay=FAST, on=(Exception,))
        )
    with pytest.raises(fatal) as info:
        await dag.invoke(None)
    assert info.value is exc
    assert log == ["call 1"]


async def test_exhausted_attempts_report_the_last_exception_once() -> None:
    errors: list[BaseException] = [ConnectionError(f"attempt {k}") for k in (1, 2, 3)]
    with build_dag() as dag:
        dag.add_node(flaky(errors), name="n", retry=Retry(attempts=3, initial_delay=FAST))
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert info.value.exceptions == (errors[2],)
    assert info.value.failures == {"n": errors[2]}
    assert notes(errors[2]) == ["dagwire: node 'n' failed in body"]
    assert notes(errors[0]) == []
    assert notes(errors[1]) == []


async def test_exhausted_retries_in_continue_mode_record_one_failure() -> None:
    errors: list[BaseException] = [TimeoutError(f"attempt {k}") for k in (1, 2)]
    with build_dag() as dag:
        n = dag.add_node(flaky(errors), name="n", retry=Retry(attempts=2, initial_delay=FAST))
    result = await dag.invoke(None, on_error="continue")
    assert [(f.node, f.error) for f in result.errors] == [("n", errors[1])]
    assert result.status(n) is NodeStatus.FAILED


async def test_no_retry_after_the_run_failed_elsewhere() -> None:
    log: list[str] = []
    first_call = asyncio.Event()

    async def always_failing() -> None:
        log.append("call")
        first_call.set()
        raise ConnectionError("down")

    async def other() -> None:
        await first_call.wait()
        raise ValueError("the run's failure")

    with build_dag() as dag:
        dag.add_node(
            always_failing,
            name="retrying",
            retry=Retry(attempts=1000, initial_delay=0.005, backoff=1.0, jitter=False),
        )
        dag.add_node(other, name="other")
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert set(info.value.failures) == {"other"}  # the cancelled retrier is not a failure
    assert len(log) <= 2


def _bad_policies() -> list[Callable[[], object]]:
    return [
        lambda: Retry(attempts=0),
        lambda: Retry(attempts=-1),
        lambda: Retry(attempts=1.5),  # type: ignore[arg-type]  # deliberately wrong type
        lambda: Retry(initial_delay=-0.1),
        lambda: Retry(max_delay=-1.0),
        lambda: Retry(backoff=0.5),
        lambda: Retry(on=()),
        lambda: Retry(on=(KeyboardInterrupt,)),  # type: ignore[arg-type]  # not an Exception
        lambda: Retry(on=(asyncio.CancelledError,)),  # type: ignore[arg-type]  # not an Exception
        lambda: Retry(on=(int,)),  # type: ignore[arg-type]  # not an exception type
    ]


@pytest.mark.parametrize("make", _bad_policies())
def test_policies_that_cannot_work_are_definition_errors(make: Callable[[], object]) -> None:
    with pytest.raises(DagDefinitionError, match="Retry"):
        make()


@pytest.mark.parametrize("retry", [0, -2, True, "3", 2.5])
def test_invalid_retry_option_is_a_definition_error(retry: Any) -> None:
    with build_dag() as dag, pytest.raises(DagDefinitionError):
        dag.add_node(lambda: 1, retry=retry)


@pytest.mark.parametrize("option", ["timeout", "cleanup_timeout"])
@pytest.mark.parametrize("value", [0, -1.0, "1"])
def test_invalid_timeouts_are_definition_errors(option: str, value: Any) -> None:
    options: Any = {option: value}
    with build_dag() as dag, pytest.raises(DagDefinitionError, match=option):
        dag.add_node(lambda: 1, **options)


async def test_invalid_invoke_timeout_is_a_definition_error() -> None:
    with build_dag() as dag:
        dag.add_node(lambda: 1)
    for bad in (0, -1.0):
        with pytest.raises(DagDefinitionError):
            await dag.invoke(None, timeout=bad)


# -- timeouts ------------------------------------------------------------------------------


async def test_node_timeout_bounds_each_attempt() -> None:
    """A hanging first attempt times out; the retried second attempt succeeds."""
    log: list[str] = []
    calls = 0

    async def body() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            try:
                await forever()
            except asyncio.CancelledError:
                log.append("first attempt cancelled")
                raise
        log.append("second attempt")
        return "ok"

    with build_dag() as dag:
        n = dag.add_node(body, timeout=0.02, retry=Retry(attempts=2, initial_delay=FAST))
    result = await dag.invoke(None)
    assert result[n] == "ok"
    assert log == ["first attempt cancelled", "second attempt"]


async def test_node_timeout_without_retry_is_a_builtin_timeout_error() -> None:
    with build_dag() as dag:
        dag.add_node(forever, name="slow", timeout=0.01)
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    err = info.value.failures["slow"]
    assert type(err) is TimeoutError
    assert notes(err) == ["dagwire: node 'slow' failed in body"]
    caught: list[BaseException] = []
    try:
        await dag.invoke(None)
    except* TimeoutError as group:
        caught.extend(group.exceptions)
    assert len(caught) == 1


async def test_timed_out_attempts_exhausted() -> None:
    calls = 0

    async def hang() -> None:
        nonlocal calls
        calls += 1
        await forever()

    with build_dag() as dag:
        dag.add_node(hang, name="hang", timeout=0.005, retry=Retry(attempts=3, initial_delay=FAST))
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert calls == 3
    assert isinstance(info.value.failures["hang"], TimeoutError)


async def test_invoke_timeout_is_a_builtin_timeout_error_and_cancels_nodes() -> None:
    log: list[str] = []

    async def slow() -> None:
        try:
            await forever()
        except asyncio.CancelledError:
            log.append("cancelled")
            raise

    with build_dag() as dag:
        a = dag.add_node(slow)
        dag.add_node(slow)
        dag.add_node(lambda x: log.append("never"), a)
    before = asyncio.all_tasks()
    with pytest.raises(TimeoutError) as info:
        await dag.invoke(None, timeout=0.02)
    assert type(info.value) is TimeoutError
    assert log == ["cancelled", "cancelled"]
    assert asyncio.all_tasks() == before


async def test_invoke_timeout_stops_a_retrying_node() -> None:
    with build_dag() as dag:
        dag.add_node(
            flaky([ConnectionError()] * 10_000),
            retry=Retry(attempts=10_000, initial_delay=0.002, backoff=1.0, jitter=False),
        )
    with pytest.raises(TimeoutError):
        await dag.invoke(None, timeout=0.03)


async def test_invoke_timeout_not_reached_returns_normally() -> None:
    with build_dag() as dag:
        n = dag.add_node(lambda: 5)
    result = await dag.invoke(None, timeout=5.0)
    assert result[n] == 5


# -- fallback ------------------------------------------------------------------------------


async def test_fallback_value_is_used_and_the_run_succeeds_in_fail_fast_mode() -> None:
    boom = ValueError("down")
    log: list[object] = []

    def failing() -> int:
        raise boom

    def times_ten(x: int) -> int:
        log.append(x)
        return x * 10

    with build_dag() as dag:
        n = dag.add_node(failing, name="n", fallback=-1)
        dep = dag.add_node(times_ten, n)
    result = await dag.invoke(None)  # does not raise
    assert result[n] == -1
    assert result[dep] == -10
    assert log == [-1]
    assert result.status(n) is NodeStatus.SUCCEEDED
    assert result.status(dep) is NodeStatus.SUCCEEDED
    assert result.ok
    [failure] = result.errors
    assert (failure.node, failure.phase, failure.error, failure.recovered) == (
        "n",
        "body",
        boom,
        True,
    )
    result.raise_for_errors()  # ok: nothing to raise


async def test_fallback_none_is_a_value() -> None:
    def failing() -> int | None:
        raise ValueError("down")

    with build_dag() as dag:
        n = dag.add_node(failing, fallback=None)
        dep = dag.add_node(lambda x: x is None, n)
    result = await dag.invoke(None)
    assert result[n] is None
    assert result[dep] is True


async def test_fallback_after_retries_are_exhausted() -> None:
    log: list[str] = []
    errors: list[BaseException] = [ConnectionError("1"), ConnectionError("2")]
    with build_dag() as dag:
        n = dag.add_node(
            flaky(errors, log), retry=Retry(attempts=2, initial_delay=FAST), fallback=0
        )
    result = await dag.invoke(None, on_error="continue")
    assert result[n] == 0
    assert log == ["call 1", "call 2"]
    assert result.ok
    assert [(f.error, f.recovered) for f in result.errors] == [(errors[1], True)]


async def test_fallback_covers_a_node_timeout() -> None:
    with build_dag() as dag:
        n = dag.add_node(forever, timeout=0.01, fallback="late")
    result = await dag.invoke(None)
    assert result[n] == "late"
    assert isinstance(result.errors[0].error, TimeoutError)
    assert result.errors[0].recovered


async def test_fallback_is_not_used_when_the_run_was_cancelled_by_another_failure() -> None:
    started = asyncio.Event()

    async def slow() -> int:
        started.set()
        await forever()
        return 1

    async def failing() -> None:
        await started.wait()
        raise KeyError("the failure")

    with build_dag() as dag:
        dag.add_node(slow, name="slow", fallback=0)
        dag.add_node(failing, name="failing")
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert set(info.value.failures) == {"failing"}  # slow was cancelled, not recovered


async def test_fallback_and_a_real_failure_in_continue_mode() -> None:
    def failing() -> int:
        raise ValueError("recovered")

    def also_failing() -> int:
        raise KeyError("not recovered")

    with build_dag() as dag:
        n = dag.add_node(failing, name="n", fallback=1)
        m = dag.add_node(also_failing, name="m")
        dep = dag.add_node(lambda x: x, m)
    result = await dag.invoke(None, on_error="continue")
    assert result[n] == 1
    assert not result.ok
    assert result.status(dep) is NodeStatus.SKIPPED
    with pytest.raises(NodeNotCompletedError):
        result[m]
    with pytest.raises(DagError) as info:
        result.raise_for_errors()
    assert set(info.value.failures) == {"m"}
