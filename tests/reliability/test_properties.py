"""SPEC section 9, the reliability contract, as hypothesis properties over random graphs.

Each example builds random graphs of recording nodes (see `_strategies` for what they cover:
every kind of node and option, sub-graphs, shared breakers and limiters, executors), invokes
the outer one in a fresh debug event loop with random faults, pauses, cancellations, invoke
timeouts, targets and overrides, and checks every invariant of `_oracle.py` on the recorded
events and on what invoke returned or raised.

Every property runs under each loop kind of `_loops.LOOP_KINDS`: the default task factory
and, on Python 3.12+, `asyncio.eager_task_factory` (the README promises it changes nothing).
A property's examples are split between the loop kinds, so that each Python checks the same
number of examples in all.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import pytest
from hypothesis import given

from ._harness import outcome_kind, run_scenario
from ._loops import LOOP_KINDS, LoopKind
from ._model import Scenario
from ._oracle import check_scenario
from ._settings import examples
from ._stats import EXAMPLES, OUTCOMES
from ._strategies import Features, scenarios

PROCESS_FEATURES = Features(
    max_nodes=6,
    kinds=("async", "sync", "sync", "agen", "join"),
    executors=("process",),
    executor_percent=70,
    sub_percent=0,
)


def run_and_check(
    scenario: Scenario, label: str, kind: LoopKind, pool: ProcessPoolExecutor | None = None
) -> None:
    trials, built, report = run_scenario(scenario, kind, pool)
    recorder = trials[0].recorder
    check_scenario(scenario, trials, built, report, recorder.logs, recorder.breaker_log)
    EXAMPLES[f"{label} [{kind} loop]"] += 1
    for t in trials:
        OUTCOMES[f"{label}: on_error={scenario.on_error} -> {outcome_kind(t.outcome)}"] += 1


@pytest.mark.parametrize("kind", LOOP_KINDS)
@examples(1500)
@given(scenario=scenarios())
def test_random_graph_invariants(kind: LoopKind, scenario: Scenario) -> None:
    """One run of a random graph: ordering, cleanup, reporting and outcome invariants."""
    run_and_check(scenario, "single run", kind)


@pytest.mark.parametrize("kind", LOOP_KINDS)
@examples(600)
@given(scenario=scenarios(runs=2, max_runs=4, features=Features(max_nodes=20)))
def test_concurrent_runs_are_isolated(kind: LoopKind, scenario: Scenario) -> None:
    """Several concurrent invokes of one built graph, each with its own params and plan.

    Every value carries its run's token and the oracle checks what each body received, and
    every function records into the log of the params it was given, so a value, hook call,
    cleanup or failure crossing from one run to another breaks that run's invariants; each
    run's nodes must see that run's caller's context variables. Each run has its own faults,
    cancellation, timeout, targets and overrides: one run failing or being cancelled must not
    disturb the others. The breakers and limiters are shared by the runs, as in production.
    """
    run_and_check(scenario, "concurrent runs", kind)


@pytest.mark.parametrize("kind", LOOP_KINDS)
@examples(40)
@given(scenario=scenarios(runs=1, max_runs=2, features=PROCESS_FEATURES))
def test_process_pool_nodes(
    kind: LoopKind, scenario: Scenario, process_pool: ProcessPoolExecutor
) -> None:
    """Small graphs whose sync nodes may run in a ProcessPoolExecutor (the session's): values
    and failures cross the process boundary, and a cancelled or failed run gives up a call
    still running in a worker without leaving anything behind."""
    run_and_check(scenario, "process pool", kind, process_pool)
