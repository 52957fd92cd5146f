"""The invariants, checked on one run's recorded events and on what invoke returned or raised.

`check_scenario` raises an AssertionError listing every violation, followed by the event log of
the run that broke, so that a hypothesis failure report is readable on its own.

Vocabulary used below, for node i of one run:
- an *attempt* is one call of its body (a resource's setup); attempts are numbered from 1;
- a *fired* fault is injected code that actually ran and raised (see `Trial.fired`); a fault
  whose moment never came (the node was cancelled, skipped, never started) did not fire;
- a *timeout* is an attempt of a node with `timeout=` that ended by CancelledError: in a run
  that was not aborted that can only be the node's own timeout;
- an attempt failure is *policy-final* when the node's Retry would not retry it (not
  retryable, or no attempts left) and *last* when no later attempt started.

The checks (each method of `RunCheck` says more):
- well-formed: nothing happens after invoke returned or raised; attempts are consecutive, at
  most Retry.attempts, a retry only after a retryable failure; pre ends before the body starts
  and a failed pre means no body;
- start after deps: a node's first activity (pre or body) comes after every input and after=
  node (through joins) succeeded, or failed on a last attempt covered by its fallback; every
  attempt received exactly the values of this run's inputs (or their fallbacks);
- cleanup pairing: post runs once iff pre started (no pre: iff the body started); a resource's
  code after `yield` (`__aexit__`) runs once iff its setup completed; nothing else;
- cleanup order: every cleanup/post starts after every body/pre event of the run; a node's
  cleanup starts after the cleanups of all its transitive dependents ended; a resource's own
  cleanup ends before its post starts;
- outcome: a fired BaseException surfaces as itself; a cancelled invoke raises CancelledError;
  otherwise a result (fail-fast: only if nothing unrecovered failed), a DagError (fail-fast:
  only if something did) or, with invoke(timeout=), TimeoutError (its cause the DagError
  if anything failed);
- reporting: every reported exception is a fault that fired (or a node/cleanup timeout),
  noted with its node and phase, reported once; every required failure is reported; a retried
  attempt's failure is not; `recovered` is set exactly for fallback-covered ones; continue
  mode: statuses (FAILED / SKIPPED downstream / SUCCEEDED) and values are right;
- fail fast: after the failure that aborts the run no pre/body/retry starts, and running
  nodes stop within a few loop iterations (counted by `Ticker`);
- failures reach resources: what each resource's cleanup received (`check_received`).
Loop-level (`check_scenario`): no task outlives the runs, no loop error, no unraisable
exception, no warning, no hang.

Interpretations where the spec leaves room (made explicit here):
- a setup that raises (before `yield` / in `__aenter__`) has nothing to undo: no cleanup;
- `fallback=` covers Exceptions of the body/setup (timeouts included), not a failing pre, a
  self-raised CancelledError or a BaseException;
- a cancellation that arrives after the cleanups started may leave them receiving None.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from dagwire import (
    DagError,
    ExecutionResult,
    Node,
    NodeCancelledError,
    NodeNotCompletedError,
    NodeStatus,
)

from ._harness import (
    WATCHDOG_SECONDS,
    Event,
    Fired,
    InjectedBase,
    InjectedError,
    LoopReport,
    Trial,
    fallback_value,
    outcome_kind,
)
from ._model import NodeShape, Scenario

COVERED_BY_FALLBACK = frozenset({"error", "retryable", "timeout"})  # Exceptions, not Base
RETRYABLE = frozenset({"retryable", "timeout"})
_NOTE = re.compile(r"^dagwire: node '([^']*)' failed in (\w+)$")
BODY_EVENTS = frozenset({"pre_start", "pre_end", "start", "end"})
CLEANUP_STARTS = frozenset({"cleanup_start", "post_start"})
CLEANUP_ENDS = frozenset({"cleanup_end", "post_end"})
ABORT_SLACK = 4  # loop iterations: cancel sent one iteration late, delivered one later, +-1


def leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    out: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            members: tuple[BaseException, ...] = cast(
                "BaseExceptionGroup[BaseException]", exc
            ).exceptions
            stack.extend(reversed(members))
        else:
            out.append(exc)
    return out


def as_result(
    outcome: ExecutionResult[Trial] | BaseException | None,
) -> ExecutionResult[Trial] | None:
    return outcome if isinstance(outcome, ExecutionResult) else None


def dagwire_notes(exc: BaseException) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for note in getattr(exc, "__notes__", ()):
        m = _NOTE.match(note)
        if m:
            found.append((m.group(1), m.group(2)))
    return found


@dataclass(eq=False)
class Failure:
    """One failure that a report could contain: a fired fault, or a node timeout."""

    node: int
    phase: str  # the library's phase name: pre, body, setup, cleanup, post
    kind: str  # error, retryable, selfcancel, base, timeout
    attempt: int
    fired: Fired | None  # None for a timeout (the TimeoutError is the library's)
    status: str  # required, optional, forbidden (see _classify)
    covered: bool  # a fallback= may have recovered it

    def __repr__(self) -> str:
        return f"<n{self.node} {self.phase} a{self.attempt} {self.kind} {self.status}>"


class RunCheck:
    """All the checks of one trial. `problems` collects the violations."""

    def __init__(self, scenario: Scenario, trial: Trial, handles: Sequence[Node[Any]]) -> None:
        self.scenario = scenario
        self.trial = trial
        self.handles = handles
        self.shapes: tuple[NodeShape, ...] = scenario.shapes
        self.n = len(self.shapes)
        self.raise_mode = scenario.on_error == "raise"
        self.kind = outcome_kind(trial.outcome)
        self.problems: list[str] = []
        self.ev: list[dict[str, list[Event]]] = [{} for _ in range(self.n)]
        for e in trial.events:
            if e.node >= 0:
                self.ev[e.node].setdefault(e.what, []).append(e)
        self.dependents: list[set[int]] = [set() for _ in range(self.n)]
        for k, s in enumerate(self.shapes):
            for d in s.deps:
                self.dependents[d].add(k)
        self.downstream: list[set[int]] = [set() for _ in range(self.n)]
        for i in reversed(range(self.n)):
            for d in self.dependents[i]:
                self.downstream[i] |= {d} | self.downstream[d]
        self.failures = self._failures()
        self.base_fired = [f for f in trial.fired if f.kind == "base"]

    # -- helpers -----------------------------------------------------------------------------

    def bad(self, message: str) -> None:
        self.problems.append(message)

    def events(self, i: int, what: str) -> list[Event]:
        return self.ev[i].get(what, [])

    def last_attempt(self, i: int) -> int:
        return len(self.events(i, "start"))

    def end_of(self, i: int, attempt: int) -> Event | None:
        return next((e for e in self.events(i, "end") if e.attempt == attempt), None)

    def timed_out(self, i: int, e: Event) -> bool:
        return e.outcome == "cancelled" and self.shapes[i].timeout is not None

    def policy_final(self, i: int, attempt: int, kind: str) -> bool:
        return kind not in RETRYABLE or attempt >= self.shapes[i].max_attempts

    def body_phase(self, i: int) -> str:
        return "setup" if self.shapes[i].is_resource else "body"

    def real_deps(self, k: int) -> set[int]:
        """The non-join nodes k waits for (a join is transparent: it waits for its own)."""
        out: set[int] = set()
        stack = list(self.shapes[k].deps)
        while stack:
            j = stack.pop()
            if self.shapes[j].is_join:
                stack.extend(self.shapes[j].deps)
            else:
                out.add(j)
        return out

    def final_state(self, i: int) -> str:
        """How non-join node i ended, from its own events: ok, fallback, failed, or none."""
        if self.events(i, "pre_end") and self.events(i, "pre_end")[0].outcome != "ok":
            return "failed"
        last = self.last_attempt(i)
        if not last:
            return "none"
        e = self.end_of(i, last)
        if e is None:
            return "none"
        if e.outcome == "ok":
            return "ok"
        kind = "timeout" if self.timed_out(i, e) else e.outcome
        if (
            self.shapes[i].fallback
            and kind in COVERED_BY_FALLBACK
            and self.policy_final(i, last, kind)
        ):
            return "fallback"
        return "failed"

    def expected_value(self, j: int) -> object:
        if self.shapes[j].is_join:
            return None
        return fallback_value(j) if self.final_state(j) == "fallback" else self.trial.value(j)

    # -- classifying failures --------------------------------------------------------------

    def _failures(self) -> list[Failure]:
        out: list[Failure] = []
        fired_by_exc = {id(f.exc): f for f in self.trial.fired}
        for f in self.trial.fired:
            if f.phase != "body":
                phase = f.phase
                status = "forbidden" if f.kind == "base" else "required"
                out.append(Failure(f.node, phase, f.kind, 0, f, status, False))
        for i in range(self.n):  # cleanups are shielded: only cleanup_timeout= cancels one
            for what, phase in (("cleanup_end", "cleanup"), ("post_end", "post")):
                for e in self.events(i, what):
                    if e.outcome == "cancelled":
                        out.append(Failure(i, phase, "timeout", 0, None, "required", False))
        for i in range(self.n):
            last = self.last_attempt(i)
            for e in self.events(i, "end"):
                if e.outcome == "ok":
                    continue
                if e.outcome == "cancelled" and not self.timed_out(i, e):
                    continue  # cancelled by an abort or the caller: not a failure
                fired = fired_by_exc.get(id(e.exc)) if e.exc is not None else None
                kind = "timeout" if e.outcome == "cancelled" else e.outcome
                covered = (
                    self.shapes[i].fallback
                    and kind in COVERED_BY_FALLBACK
                    and self.policy_final(i, e.attempt, kind)
                )
                if e.attempt < last or kind == "base":
                    status = "forbidden"  # retried (only the last attempt is reported)
                elif kind == "timeout" or covered or not self.policy_final(i, e.attempt, kind):
                    # a timeout may have been an abort's cancellation; a fallback may have
                    # recovered it; an interrupted retry need not be reported
                    status = "optional"
                else:
                    status = "required"
                out.append(Failure(i, self.body_phase(i), kind, e.attempt, fired, status, covered))
        return out

    def aborts(self, f: Failure) -> bool:
        """Whether this fired failure makes the library abort the run (fail fast)."""
        return f.phase not in ("cleanup", "post") and (
            f.kind == "base" or (self.raise_mode and (f.phase == "pre" or f.status == "required"))
        )

    def identify(self, exc: BaseException) -> Failure | None:
        notes = dagwire_notes(exc)
        if len(notes) != 1:
            self.bad(f"{exc!r} carries {len(notes)} dagwire notes: {notes} (expected one)")
        target: BaseException | None = exc
        if isinstance(exc, NodeCancelledError):
            target = exc.__cause__
            if not isinstance(target, asyncio.CancelledError):
                self.bad(f"{exc!r} has no CancelledError as __cause__")
        if isinstance(target, InjectedError | asyncio.CancelledError):
            for f in self.failures:
                if f.fired is not None and f.fired.exc is target:
                    if isinstance(exc, asyncio.CancelledError):
                        self.bad(f"raw CancelledError reported for {f}: must be wrapped")
                    if notes and notes[0] != (f"n{f.node}", f.phase):
                        self.bad(f"{exc!r} of {f} has the note {notes[0]}")
                    return f
            self.bad(f"reported {exc!r} is not a fault that fired")
            return None
        if isinstance(exc, TimeoutError) and notes:
            name, phase = notes[0]
            same = [
                f
                for f in self.failures
                if f.kind == "timeout" and f"n{f.node}" == name and f.phase == phase
            ]
            if same:  # the last attempt's, if it timed out (earlier ones are forbidden)
                return next((f for f in same if f.status != "forbidden"), same[0])
            self.bad(f"TimeoutError reported for {name} ({phase}), which had no timed-out attempt")
            return None
        self.bad(f"reported an exception that was never injected: {exc!r} notes={notes}")
        return None

    def check_reported(
        self, reported: Iterable[BaseException], *, all_timeouts: bool
    ) -> list[Failure]:
        """Every reported exception is a real failure, once; every required one is there.

        `all_timeouts`: the run was not aborted, so every timed-out last attempt is a real
        timeout and must be reported (recovered or not) too.
        """
        seen: dict[int, BaseException] = {}
        found: set[int] = set()
        identified: list[Failure] = []
        for exc in reported:
            if id(exc) in seen:
                self.bad(f"{exc!r} reported twice")
            seen[id(exc)] = exc
            f = self.identify(exc)
            if f is None:
                continue
            if f.status == "forbidden":
                self.bad(f"{f} must not be reported (a later attempt ran, or a BaseException)")
            if id(f) in found:
                self.bad(f"{f} reported twice")
            found.add(id(f))
            identified.append(f)
        for f in self.failures:
            if id(f) in found:
                continue
            if f.status == "required":
                self.bad(f"{f} fired but is not reported")
            elif all_timeouts and f.status == "optional" and f.kind == "timeout":
                self.bad(f"{f} timed out but is not reported")
        return identified

    # -- the checks --------------------------------------------------------------------------

    def run(self) -> list[str]:
        if not self.trial.started:
            if self.trial.events:
                self.bad("events recorded although invoke never started")
            return self.problems
        self.check_well_formed()
        self.check_start_after_deps()
        self.check_cleanup_pairing()
        self.check_cleanup_order()
        self.check_outcome()
        self.check_fail_fast_stops()
        self.check_received()
        return self.problems

    def check_well_formed(self) -> None:
        end = self.trial.invoke_end
        if end < 0:
            self.bad("invoke_end was never recorded")
        for e in self.trial.events:
            if e.seq > end and e.what != "invoke_end":
                self.bad(f"{e} happened after invoke returned/raised (#{end})")
            if e.outcome == "other":
                self.bad(f"{e}: ended by an unexpected exception")
        for i, s in enumerate(self.shapes):
            if s.is_join:
                if any(self.ev[i].values()):
                    self.bad(f"join n{i} has events")
                continue
            starts, ends = self.events(i, "start"), self.events(i, "end")
            if [e.attempt for e in starts] != list(range(1, len(starts) + 1)):
                self.bad(f"n{i}: attempts {[e.attempt for e in starts]} not consecutive")
            if len(starts) > s.max_attempts:
                self.bad(f"n{i}: {len(starts)} attempts, at most {s.max_attempts} allowed")
            if sorted(e.attempt for e in ends) != [e.attempt for e in starts]:
                self.bad(f"n{i}: attempts {len(starts)} started, ends {[e.attempt for e in ends]}")
            for e in starts[1:]:
                prev = self.end_of(i, e.attempt - 1)
                if prev is None or not (prev.outcome == "retryable" or self.timed_out(i, prev)):
                    self.bad(f"n{i}: attempt {e.attempt} after a non-retryable end {prev}")
                elif prev.seq > e.seq:
                    self.bad(f"n{i}: attempt {e.attempt} started before the previous ended")
            pre_s, pre_e = self.events(i, "pre_start"), self.events(i, "pre_end")
            if s.pre is None and (pre_s or pre_e):
                self.bad(f"n{i} has pre events but no pre hook")
            if len(pre_s) > 1 or len(pre_e) != len(pre_s):
                self.bad(f"n{i}: pre started {len(pre_s)} times, ended {len(pre_e)} times")
            if s.pre is not None and starts:
                if not pre_e:
                    self.bad(f"n{i}: body started without its pre")
                elif pre_e[0].outcome != "ok":
                    self.bad(f"n{i}: body started although its pre failed")
                elif pre_e[0].seq > starts[0].seq:
                    self.bad(f"n{i}: body started before its pre ended")

    def check_start_after_deps(self) -> None:
        for k, s in enumerate(self.shapes):
            if s.is_join:
                continue
            firsts = [e.seq for w in ("pre_start", "start") for e in self.events(k, w)]
            if not firsts:
                continue
            first = min(firsts)
            for j in sorted(self.real_deps(k)):
                state = self.final_state(j)
                last = self.end_of(j, self.last_attempt(j))
                if state not in ("ok", "fallback") or last is None:
                    self.bad(f"n{k} started (#{first}) although its dependency n{j} is {state}")
                elif last.seq > first:
                    self.bad(f"n{k} started (#{first}) before dependency n{j} finished ({last})")
            expected = tuple(self.expected_value(j) for j in s.inputs)
            for e in self.events(k, "start"):
                if e.args != expected:
                    self.bad(f"n{k} attempt {e.attempt} received {e.args}, expected {expected}")

    def check_cleanup_pairing(self) -> None:
        for i, s in enumerate(self.shapes):
            if s.is_join:
                continue
            starts = self.events(i, "start")
            post_s, post_e = self.events(i, "post_start"), self.events(i, "post_end")
            if s.post is None:
                want_post = 0
            elif s.pre is not None:
                want_post = 1 if self.events(i, "pre_start") else 0
            else:
                want_post = 1 if starts else 0
            if len(post_s) != want_post or len(post_e) != len(post_s):
                self.bad(
                    f"n{i}: post started {len(post_s)} times and ended {len(post_e)} times, "
                    f"expected {want_post} (pre={s.pre}, pre started="
                    f"{bool(self.events(i, 'pre_start'))}, body started={bool(starts)})"
                )
            cl_s, cl_e = self.events(i, "cleanup_start"), self.events(i, "cleanup_end")
            set_up = sum(1 for e in self.events(i, "end") if e.outcome == "ok")
            want_cleanup = set_up if s.is_resource else 0
            if len(cl_s) != want_cleanup or len(cl_e) != len(cl_s):
                self.bad(
                    f"n{i}: cleanup started {len(cl_s)} times and ended {len(cl_e)} times, "
                    f"expected {want_cleanup} (setups that completed: {set_up})"
                )
            if cl_e and post_s and cl_e[-1].seq > post_s[0].seq:
                self.bad(f"n{i}: post started before the resource's own cleanup ended")

    def check_cleanup_order(self) -> None:
        body = [e.seq for e in self.trial.events if e.node >= 0 and e.what in BODY_EVENTS]
        clean = [e for e in self.trial.events if e.node >= 0 and e.what in CLEANUP_STARTS]
        if body and clean and min(e.seq for e in clean) < max(body):
            first = min(clean, key=lambda e: e.seq)
            self.bad(f"cleanup {first} started before every body ended (last at #{max(body)})")
        first_clean: dict[int, int] = {}
        last_clean_end: dict[int, int] = {}
        for e in self.trial.events:
            if e.what in CLEANUP_STARTS:
                first_clean.setdefault(e.node, e.seq)
            elif e.what in CLEANUP_ENDS:
                last_clean_end[e.node] = e.seq
        for i, start in first_clean.items():
            for d in self.downstream[i]:
                if d in last_clean_end and last_clean_end[d] > start:
                    self.bad(
                        f"n{i} cleanup started (#{start}) before dependent n{d}'s cleanup "
                        f"ended (#{last_clean_end[d]})"
                    )

    def check_outcome(self) -> None:
        t = self.trial
        kind = self.kind
        plan = t.plan
        if self.base_fired:
            if kind != "base":
                self.bad(f"a BaseException fired ({self.base_fired}) but invoke gave {kind}")
            elif not any(f.exc is t.outcome for f in self.base_fired):
                self.bad(f"invoke raised {t.outcome!r}, not the fired BaseException")
            return
        if t.cancel_requested:
            if kind != "cancelled":
                self.bad(f"invoke was cancelled but gave {kind}: {t.outcome!r}")
            return
        allowed = {"result"}
        if self.raise_mode:
            allowed.add("dagerror")
        if plan.timeout is not None:
            allowed.add("timeout")
        if kind not in allowed:
            self.bad(f"invoke gave {kind} ({t.outcome!r}); allowed here: {sorted(allowed)}")
            return
        if kind == "result":
            result = as_result(t.outcome)
            assert result is not None
            self.check_result(result)
        elif kind == "dagerror":
            assert isinstance(t.outcome, DagError)
            self.check_dag_error(t.outcome, raised=True)
        else:
            assert isinstance(t.outcome, TimeoutError)
            cause = t.outcome.__cause__
            if cause is None:
                self.check_reported([], all_timeouts=False)
            elif isinstance(cause, DagError):
                self.check_dag_error(cause, raised=False)
            else:
                self.bad(f"the invoke TimeoutError's cause is {cause!r}, not a DagError")

    def check_dag_error(self, err: DagError, *, raised: bool) -> None:
        """`raised`: invoke raised it (fail-fast, not cancelled, not timed out), so some
        unrecovered failure must have happened: a required one, or a node timeout."""
        found = leaves(err)
        identified = self.check_reported(found, all_timeouts=False)
        if raised and not any(
            f.status == "required" or (f.kind == "timeout" and not f.covered) for f in identified
        ):
            self.bad(f"invoke raised a DagError, but no unrecovered failure happened: {identified}")
        for name, exc in err.failures.items():
            if not any(exc is x for x in found):
                self.bad(f"DagError.failures[{name!r}] is not one of its exceptions")
            notes = dagwire_notes(exc)
            if notes and notes[0][0] != name:
                self.bad(f"DagError.failures[{name!r}] is a failure of {notes[0][0]}")
        named = {n for exc in found for n, _ in dagwire_notes(exc)}
        if named != set(err.failures):
            self.bad(f"DagError.failures names {sorted(err.failures)}, failures of {named}")

    def check_result(self, result: ExecutionResult[Any]) -> None:
        # No abort happened, so every timed-out last attempt is a real timeout.
        errors = result.errors
        self.check_reported([f.error for f in errors], all_timeouts=True)
        for nf in errors:
            notes = dagwire_notes(nf.error)
            if notes and (nf.node, nf.phase) != notes[0]:
                self.bad(f"{nf} does not match its note {notes[0]}")
            f = next(
                (
                    f
                    for f in self.failures
                    if f.fired is not None
                    and (f.fired.exc is nf.error or f.fired.exc is nf.error.__cause__)
                ),
                None,
            )
            if f is not None:
                covered = f.covered
            else:  # a timeout: of a body (covered by a fallback), or of a cleanup (never)
                covered = nf.phase in ("body", "setup") and self.shapes[int(nf.node[1:])].fallback
            if nf.recovered != covered:
                self.bad(f"{nf}: recovered={nf.recovered}, fallback covers it: {covered}")
        if self.raise_mode and not result.ok:
            self.bad(f"fail-fast invoke returned a result that is not ok: {errors}")
        failed = [
            j
            for j in range(self.n)
            if not self.shapes[j].is_join and self.final_state(j) == "failed"
        ]
        for i, s in enumerate(self.shapes):
            status = result.status(self.handles[i])
            upstream_failed = any(i in self.downstream[j] for j in failed)
            state = "none" if s.is_join else self.final_state(i)
            if state in ("ok", "fallback") or (s.is_join and not upstream_failed):
                want = NodeStatus.SUCCEEDED
            elif state == "failed":
                want = NodeStatus.FAILED
            elif upstream_failed:
                want = NodeStatus.SKIPPED
            else:
                self.bad(f"n{i} never ran, but nothing it depends on failed")
                continue
            if status is not want:
                self.bad(f"n{i} has status {status.name}, expected {want.name}")
            if status is NodeStatus.SUCCEEDED:
                value = result[self.handles[i]]
                if value != self.expected_value(i):
                    self.bad(f"result[n{i}] is {value!r}, expected {self.expected_value(i)!r}")
            else:
                try:
                    result[self.handles[i]]
                except NodeNotCompletedError:
                    pass
                else:
                    self.bad(f"result[n{i}] did not raise although its status is {status.name}")
        if self.trial.plan.timeline:
            for timing in result.timeline():
                if timing.end < timing.start:
                    self.bad(f"timeline entry ends before it starts: {timing}")

    def check_fail_fast_stops(self) -> None:
        """After the failure that aborts the run, nothing starts and running nodes stop promptly.

        Nothing starts: no node, no body after its pre, no retry. "Promptly": the library
        sends the cancellation one loop iteration after the abort, so nodes already woken in
        that iteration may still finish; everything must be over a few iterations later.
        """
        aborting = [f for f in self.failures if f.fired is not None and self.aborts(f)]
        if not aborting:
            return
        first = min(aborting, key=lambda f: f.fired.seq if f.fired else 0)
        assert first.fired is not None
        at, at_it = first.fired.seq, first.fired.it
        for i in range(self.n):
            for e in self.events(i, "pre_start") + self.events(i, "start"):
                if e.seq > at:  # neither a new node, nor a body after its pre, nor a retry
                    self.bad(f"{e} began after the abort by {first} (#{at})")
            for w in BODY_EVENTS:
                for e in self.events(i, w):
                    if e.seq > at and e.it > at_it + ABORT_SLACK:
                        self.bad(
                            f"{e} happened {e.it - at_it} loop iterations after the abort by "
                            f"{first} (#{at} @{at_it}): running nodes must be cancelled"
                        )

    def check_received(self) -> None:
        """Failures reach resources: what each resource cleanup received (SPEC 4 and 10).

        Fail-fast: the run's failure (a node's, not a cleanup's) goes to every resource.
        Otherwise (continue mode, or only cleanups failed) a resource hears the failure of a
        node that depends on it, transitively, if there is one; else it closes normally.
        """
        kind, t = self.kind, self.trial
        if self.base_fired:
            return
        unrecovered: list[tuple[int, str, BaseException]] = []
        result = as_result(t.outcome)
        if result is not None:
            unrecovered = [
                (int(nf.node[1:]), nf.phase, nf.error) for nf in result.errors if not nf.recovered
            ]
        elif isinstance(t.outcome, DagError):
            for x in leaves(t.outcome):
                unrecovered.extend((int(n[1:]), p, x) for n, p in dagwire_notes(x)[:1])
        elif kind not in ("cancelled", "timeout"):
            return
        run_failures = [x for _, p, x in unrecovered if p not in ("cleanup", "post")]
        for i in range(self.n):
            for e in self.events(i, "cleanup_start"):
                got = e.exc
                if kind == "timeout":
                    # the timer fires while bodies run, so before any cleanup starts
                    if got is None:
                        self.bad(f"n{i} cleanup received no exception although the run {kind}")
                elif kind == "cancelled":
                    # a cancellation may arrive after the cleanups started: None is fine then
                    if (
                        got is not None
                        and not isinstance(
                            got, asyncio.CancelledError | InjectedError | NodeCancelledError
                        )
                        and not isinstance(got, TimeoutError)
                    ):
                        self.bad(f"n{i} cleanup received {got!r} in a cancelled run")
                elif self.raise_mode and run_failures:
                    if not any(got is x for x in run_failures):
                        self.bad(f"n{i} cleanup received {got!r}, not the run's failure")
                else:
                    below = [x for n, _, x in unrecovered if n in self.downstream[i]]
                    if not below and got is not None:
                        self.bad(f"n{i} cleanup received {got!r} though no dependent failed")
                    if below and not any(got is x for x in below):
                        self.bad(f"n{i} cleanup received {got!r}, not a dependent's failure")


def check_scenario(
    scenario: Scenario, trials: Sequence[Trial], handles: Sequence[Node[Any]], report: LoopReport
) -> None:
    problems: list[str] = []
    if report.hung:
        problems.append(f"the runs did not finish within {WATCHDOG_SECONDS}s: {report.hung}")
    if report.leaked_tasks:
        problems.append(f"tasks outlived the runs: {report.leaked_tasks}")
    if report.loop_errors:
        problems.append(f"the event loop reported errors: {report.loop_errors}")
    if report.unraisable:
        problems.append(f"unraisable exceptions: {report.unraisable}")
    if report.warnings:
        problems.append(f"warnings: {report.warnings}")
    dumps: list[str] = []
    for t in trials:
        found = RunCheck(scenario, t, handles).run()
        if found:
            problems.extend(f"run {t.token}: {p}" for p in found)
            dumps.append(
                f"--- run {t.token}: outcome {t.outcome!r} cancel_requested={t.cancel_requested}"
                + "".join(f"\n  {e!r}" for e in t.events)
                + "".join(f"\n  fired {f.kind} n{f.node} {f.phase} a{f.attempt}" for f in t.fired)
            )
    if problems:
        raise AssertionError("\n".join(problems + dumps))


__all__ = ["InjectedBase", "RunCheck", "check_scenario"]
