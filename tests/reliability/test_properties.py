"""SPEC section 9, the reliability contract, as hypothesis properties over random graphs.

Each example builds a random graph of recording nodes (plain sync/async nodes, resources of
the three kinds, joins, pre/post hooks, timeouts, retries, fallbacks), invokes it in a fresh
debug event loop with random faults, pauses, cancellations and invoke timeouts, and checks
every invariant of `_oracle.py` on the recorded events and on what invoke returned or raised.
"""

from __future__ import annotations

from hypothesis import given

from ._harness import outcome_kind, run_scenario
from ._model import Scenario
from ._oracle import check_scenario
from ._settings import examples
from ._stats import EXAMPLES, OUTCOMES
from ._strategies import scenarios


def run_and_check(scenario: Scenario, label: str) -> None:
    trials, handles, report = run_scenario(scenario)
    check_scenario(scenario, trials, handles, report)
    EXAMPLES[label] += 1
    for t in trials:
        OUTCOMES[f"{label}: on_error={scenario.on_error} -> {outcome_kind(t.outcome)}"] += 1


@examples(1500)
@given(scenarios())
def test_random_graph_invariants(scenario: Scenario) -> None:
    """One run of a random graph: ordering, cleanup, reporting and outcome invariants."""
    run_and_check(scenario, "single run")


@examples(600)
@given(scenarios(runs=2, max_runs=4, max_nodes=20))
def test_concurrent_runs_are_isolated(scenario: Scenario) -> None:
    """Several concurrent invokes of one built graph, each with its own params and plan.

    Every value carries its run's token and the oracle checks what each body received, and
    every function records into the log of the params it was given, so a value, hook call,
    cleanup or failure crossing from one run to another breaks that run's invariants. Each
    run has its own faults, cancellation and timeout: one run failing or being cancelled must
    not disturb the others.
    """
    run_and_check(scenario, "concurrent runs")
