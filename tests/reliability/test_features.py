"""`Skip`, `cache=` and `resume_from=` as hypothesis properties over random graphs.

The graphs (`_features.plans`: 3-12 async and sync nodes, generator resources, joins, `after=`,
`pre=` hooks, `fallback=`, `cache=`) are built of recording functions whose behaviour in each
run is drawn: return the value, raise an `Exception`, raise `Skip` in the body or in `pre=`.
What a run must produce is computed from the plan by `_features.model_run`, never by dagwire.

- `test_skip_fallback_and_cache_in_sequential_runs`: 1-3 runs one after another, sharing the
  graph's caches, some after the caches' clock passed their TTL; each run's statuses, values,
  skip causes, failures, body and hook calls, cache hits and cleanups are checked exactly (a
  fail-fast run aborted by a failure: everything it reports must agree with the model).
- `test_concurrent_runs_share_one_call_per_key`: 5-20 concurrent invokes with equal params (one
  or two groups); each cached node's calls follow a drawn script per key. Single-flight (no two
  calls of a key at once), one successful call per key, the very same value object in every
  run, failures and skips never stored (a later run calls again).
- `test_resume_from_a_failed_run`: a fail-fast run fails; the failing nodes are healed and the
  run resumed from `DagError.result`: what succeeded (but resources and nodes whose value was
  their fallback, as the README says) is not called again and keeps its very value; what the
  graph's sinks still need runs (resources set up again); the values equal a fresh run's.

Every example runs in a fresh debug event loop (`_loops.run_in_fresh_loop`), which fails it on
a leaked task, a loop error, an unraisable exception or a warning; every resource that was set
up must be cleaned up exactly once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from typing import Any, Literal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from dagwire import DagError, ExecutionResult, NodeStatus, Skip, events
from dagwire.cache import MISSING

from ._features import (
    FALLBACKS,
    TTL,
    Behaviour,
    Built,
    Expected,
    Key,
    Plan,
    Planned,
    Recorder,
    Val,
    behaviour_maps,
    build,
    model_run,
    plans,
    resume_scope,
    value_of,
)
from ._loops import LOOP_KINDS, LoopKind, run_in_fresh_loop
from ._settings import examples
from ._stats import EXAMPLES, OUTCOMES

OnError = Literal["raise", "continue"]
ON_ERROR: st.SearchStrategy[OnError] = st.sampled_from(["raise", "continue"])
Stored = dict[tuple[int, Key], Val]
OK: tuple[Behaviour] = ("ok",)


def heal(b: Behaviour) -> Behaviour:
    """The behaviour once the failing nodes are fixed: a failure succeeds, a skip stays."""
    return "ok" if b == "fail" else b


SUCCEEDED, FAILED, SKIPPED = NodeStatus.SUCCEEDED, NodeStatus.FAILED, NodeStatus.SKIPPED


def count(label: str, kind: LoopKind, outcomes: list[str]) -> None:
    EXAMPLES[f"{label} [{kind} loop]"] += 1
    for o in outcomes:
        OUTCOMES[f"{label}: {o}"] += 1


# -- one run against the model -------------------------------------------------------------------


async def invoke(
    built: Built, params: int, on_error: OnError, seen: list[events.Event], **kw: Any
) -> ExecutionResult[int] | DagError:
    try:
        return await built.dag.invoke(params, on_error=on_error, observers=[seen.append], **kw)
    except DagError as error:
        return error


async def checked_run(
    plan: Plan,
    built: Built,
    rec: Recorder,
    beh: tuple[Behaviour, ...],
    params: int,
    on_error: OnError,
    stored: Stored,
    done: dict[int, object] | None = None,
    scope: set[int] | None = None,
    **kw: Any,
) -> ExecutionResult[int] | DagError:
    """Invoke once, check everything against `model_run`, update `stored` (the model of the
    caches) and return what invoke returned or raised."""
    rec.now = {params: beh}
    exp = model_run(plan, beh, params, stored, done, scope)
    marks = (len(rec.calls), len(rec.pres), len(rec.entered))
    seen: list[events.Event] = []
    outcome = await invoke(built, params, on_error, seen, resume_from=kw.get("resume_from"))
    aborted = isinstance(outcome, DagError)
    where = f"on_error={on_error} params={params} behaviours={beh}"
    # 4. every resource this run set up was cleaned up exactly once
    cleanups = [r for r in rec.entered[marks[2] :] if r[1] != 1]
    assert not cleanups, f"{where}: resources [node, cleanups]: {cleanups}"
    bodies, pres = rec.body_counts(marks[0]), rec.pre_counts(marks[1])
    if isinstance(outcome, DagError):
        check_aborted(plan, built, exp, outcome, bodies, pres, where)
    else:
        assert on_error == "continue" or not exp.unrecovered, (
            f"{where}: fail-fast invoke returned although {plan_failures(plan, exp)} failed"
        )
        check_complete(plan, built, exp, outcome, bodies, pres, stored, done, seen, where)
    update_stored(plan, built, rec, marks[0], stored, aborted, where)
    return outcome


def plan_failures(plan: Plan, exp: Expected) -> list[str]:
    return [plan.name(i) for i, recovered in exp.errors.items() if not recovered]


def check_complete(
    plan: Plan,
    built: Built,
    exp: Expected,
    result: ExecutionResult[int],
    bodies: Counter[int],
    pres: Counter[int],
    stored: Stored,
    done: dict[int, object] | None,
    seen: list[events.Event],
    where: str,
) -> None:
    h = built.handles
    for i, n in enumerate(plan.nodes):
        name = plan.name(i)
        status = result.status(h[i])
        assert status is exp.status[i], (
            f"{where}: {name} is {status.name}, not {exp.status[i].name}"
        )
        if status is SKIPPED:
            cause = result.skip_cause(h[i])
            allowed = {plan.name(c) for c in exp.causes[i]}
            assert cause in allowed, f"{where}: {name} skipped by {cause}, not one of {allowed}"
        else:
            assert result.skip_cause(h[i]) is None, f"{where}: {name} has a skip cause"
        if status is SUCCEEDED and n.kind != "join":
            value = result[h[i]]
            assert value == exp.value[i], f"{where}: {name} = {value}, not {exp.value[i]}"
            if exp.value[i] is FALLBACKS[i] or (done and i in done):
                assert value is exp.value[i], f"{where}: {name}: not the very object"
            key = exp.keys.get(i)
            if key is not None and (i, key) in stored:
                assert value is stored[i, key], f"{where}: {name}: not the cached object"
    failures = {(f.node, f.recovered) for f in result.errors}
    assert failures == {(plan.name(i), r) for i, r in exp.errors.items()}, where
    for f in result.errors:  # 1. a skip is never a failure; only the planned errors are
        assert isinstance(f.error, Planned), (where, f)
        assert not isinstance(f.error, Skip), (where, f)
    assert result.ok is (not exp.unrecovered), where
    want_bodies = Counter({i: c for i, c in enumerate(exp.body) if c})
    assert bodies == want_bodies, f"{where}: body calls {dict(bodies)} != {dict(want_bodies)}"
    want_pres = Counter({i: c for i, c in enumerate(exp.pre) if c})
    assert pres == want_pres, f"{where}: pre calls {dict(pres)} != {dict(want_pres)}"
    hits = {
        e.node for e in seen if isinstance(e, events.NodeSucceeded) and e.cached and not e.resumed
    }
    want_hits = {plan.name(i) for i, key in exp.keys.items() if (i, key) in stored}
    assert hits == want_hits, f"{where}: cache hits {hits} != {want_hits}"
    resumed = {e.node for e in seen if isinstance(e, events.NodeSucceeded) and e.resumed}
    assert resumed == {plan.name(i) for i in done or {}}, f"{where}: resumed {resumed}"


def check_aborted(
    plan: Plan,
    built: Built,
    exp: Expected,
    error: DagError,
    bodies: Counter[int],
    pres: Counter[int],
    where: str,
) -> None:
    """A fail-fast run that raised: it must have had an unrecovered failure, and whatever it
    did before aborting must agree with the model."""
    failing = plan_failures(plan, exp)
    assert failing, f"{where}: DagError {error.failures} although only skips/fallbacks planned"
    assert error.failures, where
    assert set(error.failures) <= set(failing), f"{where}: {set(error.failures)} vs {failing}"
    for exc in error.failures.values():
        assert isinstance(exc, Planned), (where, exc)
    result = error.result
    assert result is not None, f"{where}: DagError without a result"
    h = built.handles
    for i, n in enumerate(plan.nodes):
        name, status = plan.name(i), result.status(h[i])
        if status is SUCCEEDED:
            assert exp.status[i] is SUCCEEDED, f"{where}: {name} SUCCEEDED, model {exp.status[i]}"
            if n.kind != "join":
                assert result[h[i]] == exp.value[i], f"{where}: {name} = {result[h[i]]}"
        elif status is FAILED:
            assert exp.status[i] is FAILED, f"{where}: {name} FAILED, model {exp.status[i]}"
        elif status is SKIPPED:
            assert exp.status[i] is SKIPPED, f"{where}: {name} SKIPPED, model {exp.status[i]}"
            cause = result.skip_cause(h[i])
            assert cause in {plan.name(c) for c in exp.causes[i]}, f"{where}: {name}: {cause}"
        assert bodies[i] <= exp.body[i], f"{where}: {name} called {bodies[i]} times"
        assert pres[i] <= exp.pre[i], f"{where}: pre of {name} called {pres[i]} times"


def update_stored(
    plan: Plan, built: Built, rec: Recorder, mark: int, stored: Stored, aborted: bool, where: str
) -> None:
    """What the caches hold after a run: every value a cached call returned, except (only in
    a run aborted by a failure) a call every run had abandoned; nothing else ever goes."""
    for (i, key), value in stored.items():
        held = built.caches[i].lookup(key, plan.name(i))
        assert held is value, f"{where}: {plan.name(i)}'s cache lost or replaced {key}"
    for call in rec.calls[mark:]:
        if call.end != "ok" or call.node not in built.caches:
            continue
        held = built.caches[call.node].lookup(call.key, plan.name(call.node))
        if held is MISSING:
            assert aborted, f"{where}: {plan.name(call.node)}'s value for {call.key} not stored"
        else:
            assert isinstance(held, Val), f"{where}: {plan.name(call.node)} stored {held!r}"
            assert held is call.value, f"{where}: {plan.name(call.node)} stored another object"
            stored[call.node, call.key] = held


def expire(built: Built, stored: Stored) -> None:
    """Move the caches' clock past their TTL: every entry is stale."""
    built.clock[0] += TTL + 1.0
    for (i, key), _ in stored.items():
        assert built.caches[i].lookup(key, f"n{i}") is MISSING, "an entry outlived its TTL"
    stored.clear()


def describe(outcome: ExecutionResult[int] | DagError, on_error: OnError) -> str:
    if isinstance(outcome, DagError):
        return f"on_error={on_error} -> DagError"
    return f"on_error={on_error} -> {'ok' if outcome.ok else 'not ok'}"


# -- 1. Skip, fallback and cache in runs one after another ---------------------------------------

Run = tuple[int, tuple[Behaviour, ...], bool]  # params, behaviours, expire the caches first


@st.composite
def sequential(draw: st.DrawFn) -> tuple[Plan, OnError, list[Run]]:
    plan = draw(plans())
    runs = draw(
        st.lists(
            st.tuples(
                st.integers(0, 1), behaviour_maps(plan), st.integers(0, 4).map(lambda k: k == 0)
            ),
            min_size=1,
            max_size=3,
        )
    )
    return plan, draw(ON_ERROR), runs


@pytest.mark.parametrize("kind", LOOP_KINDS)
@examples(400)
@given(example=sequential())
def test_skip_fallback_and_cache_in_sequential_runs(
    kind: LoopKind, example: tuple[Plan, OnError, list[Run]]
) -> None:
    """Each run exactly as the model says: a node that raises `Skip` (body or `pre=`) and its
    dependents are SKIPPED, never failures, and alone never make a fail-fast run raise; a
    fallback node that skips or fails takes its fallback; a cached node is a hit exactly when
    an earlier run stored its key and the TTL has not passed."""
    plan, on_error, runs = example
    outcomes: list[str] = []

    async def main() -> None:
        rec = Recorder()
        built = build(plan, rec)
        stored: Stored = {}
        for params, beh, stale in runs:
            if stale:
                expire(built, stored)
            outcome = await checked_run(plan, built, rec, beh, params, on_error, stored)
            outcomes.append(describe(outcome, on_error))

    run_in_fresh_loop(main, kind).get()
    count("sequential runs", kind, outcomes)


# -- 2. concurrent runs and single-flight --------------------------------------------------------

Batch = tuple[
    Plan, OnError, int, int, dict[int, tuple[Behaviour, ...]], dict[int, tuple[Behaviour, ...]]
]


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    plan = draw(plans(cache_weight=6))
    cached = [i for i, n in enumerate(plan.nodes) if n.cached]
    assume(cached)
    groups = draw(st.integers(1, 2))
    beh = {p: draw(behaviour_maps(plan, ok_weight=8)) for p in range(groups)}
    choices: tuple[Behaviour, ...] = ("ok", "fail", "skip_body")
    outcome = st.sampled_from(choices)
    scripts: dict[int, tuple[Behaviour, ...]] = {
        i: tuple(draw(st.lists(outcome, max_size=3))) for i in cached
    }
    return plan, draw(ON_ERROR), draw(st.integers(5, 20)), groups, beh, scripts


def check_concurrent_run(
    plan: Plan,
    built: Built,
    rec: Recorder,
    params: int,
    outcome: ExecutionResult[int] | DagError,
    on_error: OnError,
    where: str,
) -> None:
    """One of the concurrent runs, node by node from what it reports: a node whose inputs
    succeeded did what its behaviour (a cached node: some call of its key) says."""
    aborted = isinstance(outcome, DagError)
    result = outcome.result if isinstance(outcome, DagError) else outcome
    assert result is not None
    h = built.handles
    causes: list[set[int]] = [set() for _ in plan.nodes]
    failed: set[int] = set()
    may_recover: set[str] = set()  # fallback values that a failure may explain
    must_recover: set[str] = set()  # fallback values only a failure explains
    for i, n in enumerate(plan.nodes):
        name, status = plan.name(i), result.status(h[i])
        bad = [d for d in n.deps if result.status(h[d]) is not SUCCEEDED]
        if bad:
            for d in bad:
                causes[i] |= {d} if result.status(h[d]) is FAILED else causes[d]
            allowed = {SKIPPED, NodeStatus.PENDING} if aborted else {SKIPPED}
            assert status in allowed, f"{where}: {name} is {status.name} after {bad}"
            if status is SKIPPED:
                assert result.skip_cause(h[i]) in {plan.name(c) for c in causes[i]}, where
            continue
        if status in (NodeStatus.PENDING, NodeStatus.CANCELLED):
            assert aborted, f"{where}: {name} is {status.name} in a run that completed"
            continue
        if n.kind == "join":
            assert status is SUCCEEDED, f"{where}: join {name} is {status.name}"
            continue
        args = tuple(result[h[d]] for d in n.inputs)
        key = (params, *args)
        calls = [c for c in rec.calls if c.node == i and c.key == key]
        if n.cached:
            ends = {c.end for c in calls}
        else:
            b = rec.now[params][i]
            ends = {"ok" if b == "ok" else "fail" if b == "fail" else "skip"}
        if status is SUCCEEDED:
            value = result[h[i]]
            if value is FALLBACKS[i]:
                assert n.fallback, f"{where}: {name}: a fallback value"
                assert ends & {"fail", "skip"}, f"{where}: {name} fell back, calls {ends}"
                if "fail" in ends:
                    may_recover.add(name)
                if not ends & {"skip", "cancelled"}:
                    must_recover.add(name)
            else:
                assert "ok" in ends, f"{where}: {name} SUCCEEDED but its calls ended {ends}"
                assert value == value_of(i, params, args), f"{where}: {name} = {value}"
                if n.cached:  # the very object its one successful call returned
                    assert any(value is c.value for c in calls), f"{where}: {name}: a copy"
        elif status is FAILED:
            assert "fail" in ends, f"{where}: {name} FAILED, calls {ends}"
            assert not n.fallback, f"{where}: {name} FAILED (not recovered) despite its fallback"
            failed.add(i)
        elif status is SKIPPED:
            assert "skip" in ends, f"{where}: {name} SKIPPED, calls {ends}"
            assert not n.fallback, f"{where}: {name} SKIPPED despite its fallback"
            assert result.skip_cause(h[i]) == name, where
            causes[i] = {i}
        else:
            raise AssertionError(f"{where}: {name} is {status.name}")
    for f in result.errors:  # planned failures only (a Skip is never one)
        assert isinstance(f.error, Planned), (where, f)
    assert {f.node for f in result.errors if not f.recovered} == {plan.name(i) for i in failed}
    recovered = {f.node for f in result.errors if f.recovered}
    assert recovered <= may_recover, f"{where}: recovered {recovered}, possible {may_recover}"
    assert must_recover <= recovered, f"{where}: recovered {recovered}, needed {must_recover}"
    if aborted:
        assert on_error == "raise", f"{where}: continue mode raised"
        assert failed, f"{where}: DagError without a failed node"
    else:
        assert on_error == "continue" or not failed, f"{where}: fail-fast run did not raise"
        assert result.ok is (not failed), where


def check_single_flight(plan: Plan, rec: Recorder, aborts: bool, where: str) -> None:
    """Per key: calls one after another (single-flight), an abandoned (cancelled) one aside;
    at most one successful call, and nothing after it, unless a run aborted (a call every
    waiting run abandoned may have returned without being stored)."""
    keys: dict[tuple[int, Key], list[Any]] = {}
    for c in rec.calls:
        if plan.nodes[c.node].cached:
            keys.setdefault((c.node, c.key), []).append(c)
    for (i, key), calls in keys.items():
        for before, after in itertools.pairwise(calls):
            if before.end != "cancelled":
                assert after.start > before.stop, (
                    f"{where}: two calls of {plan.name(i)} for {key} at once (single-flight)"
                )
            if not aborts:
                assert before.end != "ok", f"{where}: {plan.name(i)} called after a stored value"
        ends = [c.end for c in calls]
        assert "running" not in ends, f"{where}: a call of {plan.name(i)} never ended: {ends}"


@pytest.mark.parametrize("kind", LOOP_KINDS)
@examples(240)
@given(batch=batches())
def test_concurrent_runs_share_one_call_per_key(kind: LoopKind, batch: Batch) -> None:
    """N concurrent invokes with equal params: one call per key (single-flight), the same
    value object in every run, failures and skips delivered to every waiter and never stored;
    then one more run per params: a key nobody stored is called again, a stored one is a hit."""
    plan, on_error, runs, groups, beh, scripts = batch
    outcomes: list[str] = []

    async def main() -> None:
        rec = Recorder(now=dict(beh), scripts=dict(scripts))
        built = build(plan, rec)
        seen: list[events.Event] = []
        results = await asyncio.gather(
            *(invoke(built, r % groups, on_error, seen) for r in range(runs))
        )
        aborts = any(isinstance(o, DagError) for o in results)
        where = f"on_error={on_error} runs={runs} behaviours={beh} scripts={scripts}"
        for r, outcome in enumerate(results):
            check_concurrent_run(
                plan, built, rec, r % groups, outcome, on_error, f"run {r} {where}"
            )
            outcomes.append(describe(outcome, on_error))
        check_single_flight(plan, rec, aborts, where)
        # Then one more run per params, nothing failing but what the scripts say: a key whose
        # call never succeeded is called again (failures and skips are not stored).
        for p in range(groups):
            rec.now[p] = OK * len(plan.nodes)
            mark = len(rec.calls)
            after = await invoke(built, p, "continue", seen)
            assert isinstance(after, ExecutionResult)
            check_concurrent_run(plan, built, rec, p, after, "continue", f"after, {where}")
            for i in scripts:
                h = built.handles
                if any(after.status(h[d]) is not SUCCEEDED for d in plan.nodes[i].deps):
                    continue
                key = (p, *(after[h[d]] for d in plan.nodes[i].inputs))
                before = [c for c in rec.calls[:mark] if c.node == i and c.key == key]
                now = [c for c in rec.calls[mark:] if c.node == i]
                if not any(c.end == "ok" for c in before):
                    assert len(now) == 1, f"{where}: {plan.name(i)} {key} not called again"
                elif not aborts:
                    assert not now, f"{where}: {plan.name(i)} called despite a stored value"
                    ok = next(c.value for c in before if c.end == "ok")
                    assert after[h[i]] is ok, f"{where}: {plan.name(i)}: not the stored object"
                else:
                    assert len(now) <= 1, where
        cleanups = [r for r in rec.entered if r[1] != 1]
        assert not cleanups, f"{where}: resources [node, cleanups]: {cleanups}"

    run_in_fresh_loop(main, kind).get()
    count("concurrent runs", kind, outcomes)


# -- 3. resume_from ------------------------------------------------------------------------------

Resume = tuple[Plan, int, tuple[Behaviour, ...] | None, tuple[Behaviour, ...], OnError]


@st.composite
def resumes(draw: st.DrawFn) -> Resume:
    plan = draw(plans())
    eligible = [i for i, n in enumerate(plan.nodes) if n.kind != "join" and not n.fallback]
    assume(eligible)
    failing = draw(st.sampled_from(eligible))
    warm = draw(st.none() | behaviour_maps(plan))  # an earlier run that fills the caches
    if warm is not None:  # (but not with the failing node's value: it would be a hit)
        warm = (*warm[:failing], "fail", *warm[failing + 1 :])
    beh = list(draw(behaviour_maps(plan)))
    beh[failing] = "fail"
    todo = list(plan.nodes[failing].deps)  # its ancestors succeed, so that it runs and fails
    while todo:
        d = todo.pop()
        beh[d] = "ok"
        todo.extend(plan.nodes[d].deps)
    return plan, draw(st.integers(0, 1)), warm, tuple(beh), draw(ON_ERROR)


@pytest.mark.parametrize("kind", LOOP_KINDS)
@examples(360)
@given(example=resumes())
def test_resume_from_a_failed_run(kind: LoopKind, example: Resume) -> None:
    """A fail-fast run fails; healed, it resumes from `DagError.result`: what SUCCEEDED (but
    a resource or a fallback value) is not called again and keeps its very value, the rest
    runs with the resources it needs set up again, and the values are a fresh run's."""
    plan, params, warm, beh, on_error = example
    outcomes: list[str] = []

    async def main() -> None:
        rec = Recorder()
        built = build(plan, rec)
        stored: Stored = {}
        if warm is not None:
            await checked_run(plan, built, rec, warm, params, "continue", stored)
        failed = await checked_run(plan, built, rec, beh, params, "raise", stored)
        assert isinstance(failed, DagError), "a planned failure did not make fail-fast raise"
        previous = failed.result
        assert previous is not None
        h = built.handles
        healed: tuple[Behaviour, ...] = tuple(heal(b) for b in beh)
        succeeded = {i for i in range(len(plan.nodes)) if previous.status(h[i]) is SUCCEEDED}
        reenter = {i for i in succeeded if plan.nodes[i].is_resource}
        kept = {i for i in succeeded - reenter if previous[h[i]] is not FALLBACKS[i]}
        done = {i: previous[h[i]] for i in kept}
        scope = resume_scope(plan, set(done))
        resumed = await checked_run(
            plan, built, rec, healed, params, on_error, stored, done, scope, resume_from=previous
        )
        outcomes.append(describe(resumed, on_error))
        assert isinstance(resumed, ExecutionResult), "a healed resume raised"
        # A fresh full run of the healed plan computes the same values (but a node taken as
        # done keeps the value it computed from a fallback its input had then: the README's
        # "values are taken as they were").
        fresh = await checked_run(plan, built, rec, healed, params, "continue", stored)
        assert isinstance(fresh, ExecutionResult)
        stale = any(
            previous.status(h[i]) is SUCCEEDED and previous[h[i]] is FALLBACKS[i]
            for i in range(len(plan.nodes))
        )
        for i, n in enumerate(plan.nodes):
            name, status = plan.name(i), resumed.status(h[i])
            if i not in scope and i not in done:
                assert status is NodeStatus.PENDING, f"{name}: not needed, yet {status.name}"
                continue
            assert status is fresh.status(h[i]), f"{name}: {status.name} in the resumed run"
            if status is SUCCEEDED and n.kind != "join" and not stale:
                assert resumed[h[i]] == fresh[h[i]], f"{name}: not a fresh run's value"

    run_in_fresh_loop(main, kind).get()
    count("resume", kind, outcomes)
