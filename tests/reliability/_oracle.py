"""The invariants, checked on one example's recorded events and on what each invoke gave.

`check_scenario` raises an AssertionError listing every violation, followed by the event log of
the runs that broke, so that a hypothesis failure report is readable on its own.

Vocabulary, for node i of one graph of one run:
- an *attempt* is one call of its body (a resource's setup) that started; attempts are
  numbered from 1 in the order their bodies started;
- a *fired* fault is injected code that actually ran and raised (see `Trial.fired`); a fault
  whose moment never came (the node was cancelled, skipped, never started) did not fire;
- a *timeout* is an attempt of a node with `timeout=` that ended by CancelledError: in a run
  that was not aborted that can only be the node's own timeout;
- an attempt failure is *policy-final* when the node's Retry would not retry it (not
  retryable, or no attempts left) and *last* when no later attempt started;
- a node is *in the run* unless `targets=` leave it out or `overrides=` give its value (an
  overridden node is done, and what only it needs is out of the run);
- an *uncertain* node runs its body in an executor with `timeout=`: its attempt may be given
  up while (or before) its thread runs, so its outcome is read from the evidence (what the
  result says, what its dependents received, what was reported), not from its body's log;
  likewise a node with a circuit breaker may be refused without any event.

The checks (each method of `RunCheck` says more):
- well-formed: nothing happens after invoke returned (a thread or process body that was
  given up excepted); attempts at most Retry.attempts, a retry only after a retryable failure;
  pre ends before the body starts and a failed pre means no body; nodes outside the run and
  overridden nodes never run;
- start after deps: a node's first activity comes after every input and after= node (through
  joins, and through a sub-graph's whole inner run) succeeded, or failed on a last attempt
  covered by its fallback; every attempt received exactly the values of this run's inputs
  (overrides and fallbacks included);
- cleanup pairing: post runs once iff pre started (no pre: iff the body started); a
  resource's code after `yield` (`__aexit__`) runs once iff its setup completed;
- cleanup order: cleanups of the cleanup phase start after every body of the run ended
  (a sub-graph's inner run is a body), in reverse dependency order; a release="early"
  resource is released after each direct user ended and after the users that hold cleanups
  of their own were released; independent cleanups overlap: the cleanup phase and each
  early release start within a few loop iterations of being due (not after an unrelated,
  slow cleanup);
- outcome: a fired BaseException surfaces as itself; a cancelled invoke raises
  CancelledError; otherwise a result (fail-fast: only if nothing unrecovered failed), a
  DagError (fail-fast: only if something did) or, with invoke(timeout=), TimeoutError (its
  cause the DagError if anything failed);
- reporting: every reported exception is a real failure (a fault that fired, a node or
  cleanup timeout, a CircuitOpenError of a node with a breaker, a sub-graph's DagError),
  noted once with its node and phase, reported once; every required failure is reported —
  in the DagError or result, or, when the run ended cancelled or by a BaseException,
  reachable from what was raised or logged on the `dagwire` logger; continue mode: statuses
  (FAILED / SKIPPED downstream / SUCCEEDED / PENDING outside the run) and values are right;
- fail fast: after the failure that aborts the run no pre/body/retry starts, and running
  nodes (a sub-graph's inner nodes included) stop within a few loop iterations;
- failures reach resources: what each resource's cleanup received (`check_received`),
  decided from the run's outcome as recorded when the cleanup started.
Example-level (`check_scenario`): no task outlives the runs, no loop error, no unraisable
exception, no warning, no hang; no Limiter ever has more bodies running than its limit and no
run more than its max_concurrency (bodies in threads count until they really stopped); each
CircuitBreaker changes state only as its rules say; nodes (threads included) see their own
caller's context variables and the caller never sees what they set.

Interpretations where the spec leaves room (made explicit here):
- a setup that raises (before `yield` / in `__aenter__`) has nothing to undo: no cleanup;
- `fallback=` covers Exceptions of the body/setup (timeouts included), not a failing pre, a
  self-raised CancelledError or a BaseException;
- a cancellation that arrives after the cleanups started may leave them receiving None;
- a resource released early, before any failure happened, committed legitimately.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from dagwire import (
    BreakerState,
    CircuitOpenError,
    DagError,
    ExecutionResult,
    NodeCancelledError,
    NodeNotCompletedError,
    NodeStatus,
)

from ._harness import (
    BreakerChange,
    Built,
    Event,
    Fired,
    Trial,
    fallback_value,
    outcome_kind,
    override_value,
)
from ._loops import LoopReport
from ._model import NodeShape, Scenario
from ._workers import InjectedBase, InjectedError

COVERED_BY_FALLBACK = frozenset({"error", "retryable", "timeout", "open"})  # Exceptions
RETRYABLE = frozenset({"retryable", "timeout"})
_NOTE = re.compile(r"^dagwire: node '([^']*)' failed in (\w+)$")
BODY_EVENTS = frozenset({"pre_start", "pre_end", "start", "end"})
CLEANUP_STARTS = frozenset({"cleanup_start", "post_start"})
CLEANUP_ENDS = frozenset({"cleanup_end", "post_end"})
# DAGWIRE_RELIABILITY_ONLY=<regex>: fail only on violations matching it (to shrink one kind)
ONLY = os.environ.get("DAGWIRE_RELIABILITY_ONLY")
ABORT_SLACK = 4  # loop iterations: cancel sent one iteration late, delivered one later, +-1
INNER_ABORT_SLACK = 2 * ABORT_SLACK + 2  # the outer cancels the sub node, which cancels inside
CANCEL_SLACK = 4  # loop iterations for a caller's cancellation to reach the run
DUE_SLACK = 16  # loop iterations between a cleanup being due and starting (it takes ~2-8)
NEVER = 1 << 62  # a sequence number after everything


def is_dagwire_noted(exc: BaseException) -> bool:
    return bool(dagwire_notes(exc))


def leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    """The exceptions of a DagError, flattened through plain groups, but not into a member
    that dagwire noted (a sub-graph's DagError is one node's failure)."""
    out: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        grouped = as_group(exc)
        if grouped is not None and (grouped is group or not is_dagwire_noted(grouped)):
            stack.extend(reversed(grouped.exceptions))
            continue
        out.append(exc)
    return out


def as_group(exc: BaseException) -> BaseExceptionGroup[BaseException] | None:
    if isinstance(exc, BaseExceptionGroup):
        return cast("BaseExceptionGroup[BaseException]", exc)
    return None


def as_result(outcome: object) -> ExecutionResult[Any] | None:
    return outcome if isinstance(outcome, ExecutionResult) else None  # pyright: ignore[reportUnknownVariableType]


def dagwire_notes(exc: BaseException) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for note in getattr(exc, "__notes__", ()):
        m = _NOTE.match(note)
        if m:
            found.append((m.group(1), m.group(2)))
    return found


@dataclass(frozen=True)
class SubValue:
    """The expected value of a sub-graph node: the inner ExecutionResult of these params."""

    params: object


def same_value(got: object, expected: object) -> bool:
    if isinstance(expected, SubValue):
        result = as_result(got)
        return result is not None and (
            result.params is expected.params or result.params == expected.params
        )
    return got == expected


@dataclass(eq=False)
class Failure:
    """One failure that a report could contain: a fired fault, a node timeout, a refusal by
    an open circuit breaker, or a sub-graph's failure."""

    node: int
    phase: str  # the library's phase name: pre, body, setup, cleanup, post
    kind: str  # error, retryable, selfcancel, base, timeout, open, sub
    attempt: int
    fired: Fired | None  # None for a timeout (the TimeoutError is the library's), open, sub
    status: str  # required, optional, forbidden (see _failures)
    covered: bool  # a fallback= may have recovered it
    when: int = NEVER  # when it happened (a loop-side sequence number), if known

    def __repr__(self) -> str:
        return f"<n{self.node} {self.phase} a{self.attempt} {self.kind} {self.status}>"


class RunCheck:
    """All the checks of one graph (0: the outer one) of one trial; `problems` collects the
    violations. A sub-graph's run is checked by a RunCheck of its own, made by the outer
    one's (`inner_checks`), with what the outer run tells of the inner run's outcome."""

    def __init__(
        self,
        scenario: Scenario,
        trial: Trial,
        built: Built,
        logs: Sequence[logging.LogRecord],
        graph: int = 0,
        inner: tuple[object, bool] | None = None,
    ) -> None:
        self.scenario = scenario
        self.trial = trial
        self.built = built
        self.logs = logs
        self.g = graph
        self.shapes: tuple[NodeShape, ...] = scenario.graph(graph)
        self.n = len(self.shapes)
        self.handles = built.handles[graph]
        plan = trial.plan
        if graph == 0:
            self.raise_mode = scenario.on_error == "raise"
            self.outcome: object = trial.outcome
            self.cancelled = trial.cancel_requested
            self.invoke_timeout = plan.timeout
            self.overridden = set(plan.overrides)
            targets = plan.targets
        else:
            assert inner is not None
            self.raise_mode = True  # `await dag(params)` is `dag.invoke(params)`
            self.outcome, self.cancelled = inner
            self.invoke_timeout = None
            self.overridden = set[int]()
            targets = None
        self.kind = "unknown" if self.outcome is None else outcome_kind(self.outcome)
        self.problems: list[str] = []
        self.ev: list[dict[str, list[Event]]] = [{} for _ in range(self.n)]
        self.all_events = [e for e in trial.events if e.graph == graph]
        for e in self.all_events:
            if e.node >= 0:
                self.ev[e.node].setdefault(e.what, []).append(e)
        self.fired_here = [f for f in trial.fired if f.graph == graph]
        self.dependents: list[set[int]] = [set() for _ in range(self.n)]
        for k, s in enumerate(self.shapes):
            for d in s.deps:
                self.dependents[d].add(k)
        self.in_run = self._membership(targets)
        # downstream along edges of the run (an overridden node cuts its upstream off), and
        # along every edge of the graph (what an implementation may order cleanups by)
        self.downstream: list[set[int]] = [set() for _ in range(self.n)]
        self.static_down: list[set[int]] = [set() for _ in range(self.n)]
        for i in reversed(range(self.n)):
            for d in self.dependents[i]:
                self.static_down[i] |= {d} | self.static_down[d]
                if self.in_run[i] and self.in_run[d]:
                    self.downstream[i] |= {d} | self.downstream[d]
        self.sub_nodes = {s.sub + 1: k for k, s in enumerate(self.shapes) if s.sub is not None}
        self.reported: list[BaseException] | None = self._reported()
        self._state: dict[int, str] = {}
        self._identified: dict[int, Failure | None] = {}
        self._last_body: int | None = None
        # the cleanup phase began with the first cleanup of a node not released early
        self.phase_start = min(
            (
                e.seq
                for e in self.all_events
                if e.node >= 0
                and e.what in CLEANUP_STARTS
                and self.shapes[e.node].release != "early"
            ),
            default=NEVER,
        )
        self.failures = self._failures()
        self.base_fired = [f for f in self.trial.fired if f.kind == "base"]
        run_level = [e for e in trial.events if e.node < 0] if graph == 0 else []
        self.cancel_events = [e for e in run_level if e.what == "cancel"]

    # -- helpers -----------------------------------------------------------------------------

    def bad(self, message: str) -> None:
        where = f"g{self.g}: " if self.g else ""
        self.problems.append(where + message)

    def events(self, i: int, what: str) -> list[Event]:
        return self.ev[i].get(what, [])

    def node_events(self, i: int) -> list[Event]:
        """Every event of node i, and of the inner run if node i is a sub-graph."""
        own = [e for es in self.ev[i].values() for e in es]
        s = self.shapes[i]
        if s.sub is not None:
            own += [e for e in self.trial.events if e.graph == s.sub + 1 and e.node >= 0]
        return sorted(own, key=lambda e: e.seq)

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
            if self.shapes[j].is_join and j not in self.overridden:
                stack.extend(self.shapes[j].deps)
            else:
                out.add(j)
        return out

    def _membership(self, targets: tuple[int, ...] | None) -> list[bool]:
        if targets is None and not self.overridden:
            return [True] * self.n
        used = {d for s in self.shapes for d in s.deps}
        wanted = [i for i in range(self.n) if i not in used] if targets is None else targets
        needed: set[int] = set()
        stack = [i for i in wanted if i not in self.overridden]
        while stack:
            i = stack.pop()
            if i not in needed:
                needed.add(i)
                stack.extend(d for d in self.shapes[i].deps if d not in self.overridden)
        return [i in needed for i in range(self.n)]

    # -- what the outcome tells -------------------------------------------------------------

    def _reported(self) -> list[BaseException] | None:
        """The exceptions this run reported, if its outcome tells (None: it does not)."""
        result = as_result(self.outcome)
        if result is not None:
            return [f.error for f in result.errors]
        if isinstance(self.outcome, DagError):
            return leaves(self.outcome)
        if isinstance(self.outcome, TimeoutError):
            cause = self.outcome.__cause__
            return leaves(cause) if isinstance(cause, DagError) else []
        return None

    def reported_for(self, i: int, *, unrecovered: bool = True) -> list[BaseException]:
        """What the run reported as node i's failure to run (its pre, body or setup; not
        its cleanups)."""
        name = f"n{i}"
        running = ("pre", "body", "setup")
        out: list[BaseException] = []
        result = as_result(self.outcome)
        if result is not None:
            for nf in result.errors:
                if nf.node == name and nf.phase in running and not (unrecovered and nf.recovered):
                    out.append(nf.error)
            return out
        for exc in self.reported or ():
            if any(n == name and p in running for n, p in dagwire_notes(exc)[:1]):
                out.append(exc)
        return out

    def received(self, j: int) -> list[object]:
        """The values j's dependents received for it (in this run)."""
        out: list[object] = []
        for k in self.dependents[j]:
            s = self.shapes[k]
            for pos, d in enumerate(s.inputs):
                if d == j and not s.is_join and not s.is_sub:
                    out.extend(e.args[pos] for e in self.events(k, "start") if pos < len(e.args))
        return out

    def events_state(self, i: int) -> str:
        """How node i ended, from its own events: ok, fallback, failed, or none."""
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

    def state(self, i: int) -> str:
        """How node i ended: ok, fallback, failed, none (did not finish), override, out (not
        in the run) or join. Uncertain, breaker and sub-graph nodes read the evidence."""
        if i not in self._state:
            self._state[i] = self._resolve(i)
        return self._state[i]

    def _resolve(self, i: int) -> str:
        s = self.shapes[i]
        if i in self.overridden:
            return "override"
        if not self.in_run[i]:
            return "out"
        if s.is_join:
            return "join"
        guess = "none" if s.is_sub else self.events_state(i)
        if not (s.uncertain or s.breaker is not None or s.is_sub):
            return guess
        if guess == "failed" and not s.uncertain and s.breaker is None:
            return guess  # a pre or a body that failed for sure
        result = as_result(self.outcome)
        if result is not None:
            status = result.status(self.handles[i])
            if status is NodeStatus.SUCCEEDED:
                fallback = s.fallback and result[self.handles[i]] == fallback_value(self.g, i)
                return "fallback" if fallback else "ok"
            if status is NodeStatus.FAILED:
                return "failed"
            return guess
        got = self.received(i)
        if got:
            return "fallback" if s.fallback and got[0] == fallback_value(self.g, i) else "ok"
        if s.is_sub and any(
            as_result(e.args[pos]) is not None
            for k in self.dependents[i]
            for pos, d in enumerate(self.shapes[k].inputs)
            if d == i
            for e in self.events(k, "start")
        ):
            return "ok"
        if self.reported_for(i):
            return "failed"
        users = [k for k in range(self.n) if not self.shapes[k].is_join and i in self.real_deps(k)]
        if any(self.node_events(k) for k in users):  # a user (after=, or through a join) ran
            return "fallback" if s.fallback and guess != "ok" else "ok"
        return guess

    def expected_value(self, j: int) -> object:
        state = self.state(j)
        if state == "override":
            return override_value(self.trial.token, j)
        s = self.shapes[j]
        if s.is_join:
            return None
        if state == "fallback":
            return fallback_value(self.g, j)
        if s.is_sub:
            return SubValue(self.expected_value_of_param(j))
        return self.trial.value(self.g, j)

    def expected_value_of_param(self, j: int) -> object:
        s = self.shapes[j]
        return self.expected_value(s.inputs[0]) if s.inputs else self.trial

    def inner_outcome(self, k: int) -> tuple[object, bool]:
        """What the inner run of sub node k gave, and whether it was cancelled, as far as
        the outer run tells: its result, its DagError, a BaseException, or None (unknown)."""
        result = as_result(self.outcome)
        if result is not None and result.status(self.handles[k]) is NodeStatus.SUCCEEDED:
            return result[self.handles[k]], False
        for d in self.dependents[k]:
            for pos, j in enumerate(self.shapes[d].inputs):
                if j == k:
                    for e in self.events(d, "start"):
                        if pos < len(e.args) and as_result(e.args[pos]) is not None:
                            return e.args[pos], False
        for exc in self.reported_for(k, unrecovered=False):
            if isinstance(exc, DagError):
                return exc, False
        g = self.shapes[k].sub
        assert g is not None
        if isinstance(self.outcome, InjectedBase) and f":g{g + 1}:" in self.outcome.tag:
            return self.outcome, False
        # the outer run stopped while the inner one ran (or the outcome is not known)
        return None, self.kind in ("cancelled", "timeout", "dagerror", "base")

    # -- classifying failures --------------------------------------------------------------

    def _failures(self) -> list[Failure]:
        out: list[Failure] = []
        fired_by_exc = {id(f.exc): f for f in self.fired_here if f.exc is not None}
        fired_by_tag = {f.tag: f for f in self.fired_here}
        for f in self.fired_here:
            if f.phase != "body":
                status = "forbidden" if f.kind == "base" else "required"
                when = f.seq if not f.off_loop else NEVER
                out.append(Failure(f.node, f.phase, f.kind, 0, f, status, False, when))
        for i in range(self.n):  # cleanups are shielded: only cleanup_timeout= cancels one
            for what, phase in (("cleanup_end", "cleanup"), ("post_end", "post")):
                for e in self.events(i, what):
                    if e.outcome == "cancelled":
                        out.append(Failure(i, phase, "timeout", 0, None, "required", False, e.seq))
        for i in range(self.n):
            s = self.shapes[i]
            last = self.last_attempt(i)
            for e in self.events(i, "end"):
                if e.outcome == "ok":
                    continue
                if e.outcome == "cancelled" and not self.timed_out(i, e):
                    continue  # cancelled by an abort or the caller: not a failure
                fired = None
                if e.exc is not None:
                    fired = fired_by_exc.get(id(e.exc))
                elif e.off_loop and e.outcome not in ("cancelled", "ok"):
                    fired = fired_by_tag.get(f"t{self.trial.token}:g{self.g}:n{i}:body:{e.attempt}")
                kind = "timeout" if e.outcome == "cancelled" else e.outcome
                covered = (
                    s.fallback
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
                if s.uncertain and status == "required":
                    status = "optional"  # the loop may have given up on it first
                when = e.seq if not e.off_loop else NEVER
                out.append(
                    Failure(i, self.body_phase(i), kind, e.attempt, fired, status, covered, when)
                )
        # A failure in a thread or process reaches the loop only if the run still waits for
        # it: not after the run stopped for another reason (which, in fail-fast mode, any
        # other failure may be, a timeout included).
        stopped = self.kind in ("cancelled", "timeout", "unknown") or any(
            x.kind == "base" for x in out
        )
        for x in out:
            if x.fired is None or not x.fired.off_loop or x.status != "required":
                continue
            others = [y for y in out if y is not x and y.status != "forbidden"]
            reported_others = [e for e in self.reported or () if e is not x.fired.exc]
            if stopped or (self.raise_mode and (others or reported_others)):
                x.status = "optional"
        return out

    def body_like(self, i: int) -> list[Event]:
        """Node i's events while it runs: pre and body events, and for a sub-graph every
        event of its inner run (its cleanups included: they end before the node does)."""
        if self.shapes[i].is_sub:
            return self.node_events(i)
        return [e for e in self.node_events(i) if e.what in BODY_EVENTS]

    def last_body_seq(self) -> int:
        if self._last_body is None:
            seqs = [e.seq for i in range(self.n) for e in self.body_like(i) if not e.off_loop]
            self._last_body = max(seqs, default=0)
        return self._last_body

    def aborts(self, f: Failure) -> bool:
        """Whether this fired failure makes the library stop the run (fail fast, or a
        BaseException in any phase, or, in fail-fast mode, a failing early release)."""
        if f.kind == "base":
            return True
        if not self.raise_mode:
            return False
        if f.phase in ("cleanup", "post"):
            # a failing early release while nodes still run (after they all ended, and in the
            # cleanup phase, a failing cleanup reaches only the resources below it)
            end = min(self.phase_start, self.last_body_seq())
            return self.shapes[f.node].release == "early" and f.when < end
        return f.phase == "pre" or f.status == "required"

    def identify(self, exc: BaseException) -> Failure | None:
        if id(exc) not in self._identified:
            self._identified[id(exc)] = self._identify(exc)
        return self._identified[id(exc)]

    def _identify(self, exc: BaseException) -> Failure | None:
        notes = dagwire_notes(exc)
        if len(notes) != 1:
            self.bad(f"{exc!r} carries {len(notes)} dagwire notes: {notes} (expected one)")
        target: BaseException | None = exc
        if isinstance(exc, NodeCancelledError):
            target = exc.__cause__
            if not isinstance(target, asyncio.CancelledError):
                self.bad(f"{exc!r} has no CancelledError as __cause__")
        if isinstance(target, InjectedError | asyncio.CancelledError):
            tag = getattr(target, "tag", None)
            for f in self.failures:
                if f.fired is None:
                    continue
                if f.fired.exc is target or (f.fired.exc is None and f.fired.tag == tag):
                    if isinstance(exc, asyncio.CancelledError):
                        self.bad(f"raw CancelledError reported for {f}: must be wrapped")
                    if notes and notes[0] != (f"n{f.node}", f.phase):
                        self.bad(f"{exc!r} of {f} has the note {notes[0]}")
                    return f
            self.bad(f"reported {exc!r} is not a fault that fired")
            return None
        if not notes:
            self.bad(f"reported an exception without a dagwire note: {exc!r}")
            return None
        name, phase = notes[0]
        i = int(name[1:]) if name[1:].isdigit() else -1
        if not 0 <= i < self.n:
            self.bad(f"{exc!r} names {name}, which is not a node of this graph")
            return None
        s = self.shapes[i]
        if isinstance(exc, TimeoutError):
            same = [
                f for f in self.failures if f.kind == "timeout" and f.node == i and f.phase == phase
            ]
            if same:  # the last attempt's, if it timed out (earlier ones are forbidden)
                return next((f for f in same if f.status != "forbidden"), same[0])
            if s.uncertain and phase in ("body", "setup"):
                f = Failure(i, phase, "timeout", 0, None, "optional", s.fallback)
                self.failures.append(f)
                return f
            self.bad(f"TimeoutError reported for {name} ({phase}), which had no timed-out attempt")
            return None
        if (
            isinstance(exc, CircuitOpenError)
            and s.breaker is not None
            and phase in ("body", "setup")
        ):
            f = Failure(i, phase, "open", 0, None, "optional", s.fallback)
            self.failures.append(f)
            return f
        if isinstance(exc, DagError) and s.is_sub and phase == "body":
            f = Failure(i, phase, "sub", 0, None, "optional", False)
            self.failures.append(f)
            return f
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
                s = self.shapes[f.node]
                if s.breaker is not None and not self.policy_final(f.node, f.attempt, "timeout"):
                    continue  # its retry may have been refused: the refusal is reported
                self.bad(f"{f} timed out but is not reported")
        return identified

    # -- the checks --------------------------------------------------------------------------

    def run(self) -> list[str]:
        if self.g == 0 and not self.trial.started:
            if self.trial.events:
                self.bad("events recorded although invoke never started")
            return self.problems
        self.check_well_formed()
        self.check_start_after_deps()
        self.check_cleanup_pairing()
        self.check_cleanup_order()
        self.check_overlap()
        self.check_outcome()
        self.check_fail_fast_stops()
        self.check_received()
        for g, k in sorted(self.sub_nodes.items()):
            if not self.in_run[k]:
                continue  # never invoked (check_well_formed: no inner event either)
            inner = RunCheck(
                self.scenario, self.trial, self.built, self.logs, g, self.inner_outcome(k)
            )
            self.problems.extend(inner.run())
        return self.problems

    def check_well_formed(self) -> None:
        end = self.trial.invoke_end
        if end < 0:
            self.bad("invoke_end was never recorded")
        for e in self.all_events:
            if e.node < 0:
                continue
            elsewhere = self.shapes[e.node].runs_elsewhere and e.off_loop
            if e.seq > end and not elsewhere:
                self.bad(f"{e} happened after invoke returned/raised (#{end})")
            if e.outcome == "other":
                self.bad(f"{e}: ended by an unexpected exception")
        for i, s in enumerate(self.shapes):
            if not self.in_run[i] and self.node_events(i):
                why = "overridden" if i in self.overridden else "outside the run"
                self.bad(f"n{i} is {why} but ran: {self.node_events(i)[:3]}")
            if s.is_join or s.is_sub:
                if any(self.ev[i].values()):
                    self.bad(f"{s.kind} n{i} has events of its own")
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
                if s.uncertain:
                    continue  # the previous attempt may have been given up while it ran
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
            own = self.node_events(k)
            firsts = [e.seq for e in own if e.what in ("pre_start", "start")]
            if not firsts:
                continue
            first = min(firsts)
            for j in sorted(self.real_deps(k)):
                state = self.state(j)
                if state == "override":
                    continue
                if state not in ("ok", "fallback"):
                    self.bad(f"n{k} started (#{first}) although its dependency n{j} is {state}")
                    continue
                dep = self.shapes[j]
                if dep.uncertain or (dep.breaker is not None and not self.events(j, "start")):
                    continue  # given up (or refused) while its thread ran: no order to check
                late = [e for e in self.node_events(j) if e.seq > first]
                if dep.is_sub and late:
                    self.bad(
                        f"n{k} started (#{first}) before sub-graph n{j}'s run ended ({late[0]})"
                    )
                elif not dep.is_sub:
                    last = self.end_of(j, self.last_attempt(j))
                    if last is not None and last.seq > first:
                        self.bad(
                            f"n{k} started (#{first}) before dependency n{j} finished ({last})"
                        )
            if s.is_sub:
                continue
            expected = tuple(self.expected_value(j) for j in s.inputs)
            for e in self.events(k, "start"):
                if len(e.args) != len(expected) or not all(
                    same_value(a, x) for a, x in zip(e.args, expected, strict=True)
                ):
                    self.bad(f"n{k} attempt {e.attempt} received {e.args}, expected {expected}")

    def check_cleanup_pairing(self) -> None:
        for i, s in enumerate(self.shapes):
            if s.is_join or s.is_sub:
                continue
            starts = self.events(i, "start")
            post_s, post_e = self.events(i, "post_start"), self.events(i, "post_end")
            if s.post is None:
                want_post = {0}
            elif s.pre is not None:
                want_post = {1 if self.events(i, "pre_start") else 0}
            elif starts:
                want_post = {1}
            else:  # an executor body may be given up before its thread or process started
                want_post = {0, 1} if s.runs_elsewhere else {0}
            if len(post_s) not in want_post or len(post_e) != len(post_s):
                self.bad(
                    f"n{i}: post started {len(post_s)} times and ended {len(post_e)} times, "
                    f"expected {sorted(want_post)} (pre={s.pre}, pre started="
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

    def cleanup_spans(self) -> tuple[dict[int, Event], dict[int, Event]]:
        """First cleanup/post start and last cleanup/post end of each node."""
        first: dict[int, Event] = {}
        last_end: dict[int, Event] = {}
        for e in self.all_events:
            if e.node < 0:
                continue
            if e.what in CLEANUP_STARTS:
                first.setdefault(e.node, e)
            elif e.what in CLEANUP_ENDS:
                last_end[e.node] = e
        return first, last_end

    def holders(self, r: int) -> list[int]:
        """Direct users of r that hold cleanups of their own (keep r until released)."""
        return [
            d
            for d in self.dependents[r]
            if self.in_run[d] and (self.shapes[d].is_resource or self.shapes[d].post is not None)
        ]

    def early(self, i: int) -> bool:
        return self.shapes[i].release == "early"

    def check_cleanup_order(self) -> None:
        last_body = self.last_body_seq()
        first, last_end = self.cleanup_spans()
        for i, start in first.items():
            if self.early(i):
                self.check_early_release(i, start, last_end)
                continue
            if start.seq < last_body:
                self.bad(f"cleanup {start} started before every body ended (last at #{last_body})")
            for d in self.downstream[i]:
                if d in last_end and last_end[d].seq > start.seq:
                    self.bad(
                        f"n{i} cleanup started (#{start.seq}) before dependent n{d}'s cleanup "
                        f"ended (#{last_end[d].seq})"
                    )

    def check_early_release(self, r: int, start: Event, last_end: dict[int, Event]) -> None:
        """A release="early" resource goes after each direct user ended, and after each user
        that holds cleanups of its own was released."""
        for d in self.dependents[r]:
            late = [e for e in self.body_like(d) if e.seq > start.seq]
            if late and not (self.shapes[d].runs_elsewhere and late[0].off_loop):
                self.bad(f"early release of n{r} ({start}) before its user n{d} ended ({late[0]})")
        for d in self.holders(r):
            if d in last_end and last_end[d].seq > start.seq:
                self.bad(
                    f"early release of n{r} ({start}) before its user n{d} was released "
                    f"({last_end[d]})"
                )

    def check_overlap(self) -> None:
        """Independent cleanups overlap: a cleanup starts within DUE_SLACK loop iterations of
        being due. The cleanup phase is due when the last body ended; a node in it when the
        cleanups of the nodes that depend on it ended; an early release when its last user
        ended or was released. Runs with a thread or process body (a sub-graph's included) are
        not checked: a thread starts, and its end reaches the loop, at the pace of the OS and
        the GIL (a submitted body may not have begun after dozens of quick loop iterations)."""
        scenario = self.scenario
        elsewhere = any(
            self.in_run[i]
            and (
                s.runs_elsewhere
                or (s.sub is not None and any(t.runs_elsewhere for t in scenario.graph(s.sub + 1)))
            )
            for i, s in enumerate(self.shapes)
        )
        if elsewhere or any(e.off_loop for e in self.trial.events):
            return
        # Nor runs whose nodes share a Limiter with other runs: a node waiting for a slot that
        # another run holds shows no event meanwhile (its wait is invisible here).
        shared_limiter = any(
            s.limiter is not None for g in scenario.graphs for s in scenario.graph(g)
        )
        if shared_limiter and len(scenario.runs) > 1:
            return
        if self.refused_after_a_delay():
            return
        first, last_end = self.cleanup_spans()
        if not first:
            return
        bodies = [e for i in range(self.n) for e in self.body_like(i)]
        last_body = max(bodies, key=lambda e: e.seq, default=None)
        stopped = self.stopped_at()
        for i, start in first.items():
            if self.early(i) and (stopped is None or start.seq < stopped):
                due = self.early_due(i, last_end)
                label = f"early release of n{i}"
            else:
                holders = [last_end[d] for d in self.static_down[i] if d in last_end]
                due = max(holders, key=lambda e: e.seq, default=None)
                label = f"cleanup of n{i}"
                if due is None or (last_body is not None and due.seq < last_body.seq):
                    due = last_body
                    label = f"cleanup of n{i} (the cleanup phase)"
            if due is None or start.seq < due.seq:
                continue
            if start.it > due.it + DUE_SLACK:
                self.bad(
                    f"{label} started {start.it - due.it} loop iterations after it was due "
                    f"({due}): it waited for something unrelated ({start})"
                )

    def refused_after_a_delay(self) -> bool:
        """Whether a breaker node may have waited its retry delay and then been refused: time
        the run spent that no event shows."""
        for i, s in enumerate(self.shapes):
            last = self.last_attempt(i)
            e = self.end_of(i, last) if last else None
            waited = e is not None and (e.outcome == "retryable" or self.timed_out(i, e))
            if s.breaker is not None and waited and last < s.max_attempts:
                return True
        return False

    def early_due(self, r: int, last_end: dict[int, Event]) -> Event | None:
        """When early resource r was due for release, or None if that cannot be told (a user
        that never ran, a join, a thread)."""
        marks = list(self.node_events(r))
        for d in self.dependents[r]:
            if not self.in_run[d]:
                continue
            s = self.shapes[d]
            evs = self.node_events(d)
            if s.is_join or s.runs_elsewhere or s.breaker is not None or not evs:
                return None
            if evs[-1].what not in ("end", "pre_end", "cleanup_end", "post_end"):
                return None
            marks.extend(self.body_like(d))
            if d in self.holders(r):
                if d not in last_end:
                    return None
                marks.append(last_end[d])
        return max(marks, key=lambda e: e.seq, default=None)

    def stopped_at(self) -> int | None:
        """The sequence number from which the run was stopped (an aborting failure, a
        caller's cancellation, an invoke timeout), if it was; a run with an invoke timeout
        counts as stopped from its start (the library's timer is not observed exactly)."""
        marks = [f.fired.seq for f in self.failures if f.fired is not None and self.aborts(f)]
        marks += [e.seq for e in self.cancel_events]
        if self.invoke_timeout is not None:
            marks.append(0)
        if self.g and self.cancelled:
            marks.append(0)
        return min(marks, default=None)

    def check_outcome(self) -> None:
        kind = self.kind
        if kind == "unknown":
            return
        base_here = [f for f in self.base_fired if f.graph == self.g or self.g == 0]
        must_surface = [
            f
            for f in base_here
            if not f.off_loop
            or (kind == "result" and not self.scenario.graph(f.graph)[f.node].uncertain)
        ]
        if kind == "base" and base_here:
            if not any(
                f.exc is self.outcome
                or (f.exc is None and f.tag == getattr(self.outcome, "tag", None))
                for f in base_here
            ):
                self.bad(f"invoke raised {self.outcome!r}, not the fired BaseException")
            else:
                assert isinstance(self.outcome, BaseException)
                self.check_everything_reachable(self.outcome)
            return
        if must_surface:
            self.bad(f"a BaseException fired ({must_surface}) but invoke gave {kind}")
            return
        if self.cancelled:
            if kind != "cancelled":
                self.bad(f"invoke was cancelled but gave {kind}: {self.outcome!r}")
            elif self.g == 0:
                assert isinstance(self.outcome, BaseException)
                self.check_everything_reachable(self.outcome)
            return
        allowed = {"result"}
        if self.raise_mode:
            allowed.add("dagerror")
        if self.invoke_timeout is not None:
            allowed.add("timeout")
        if kind not in allowed:
            self.bad(f"invoke gave {kind} ({self.outcome!r}); allowed here: {sorted(allowed)}")
            return
        if kind == "result":
            result = as_result(self.outcome)
            assert result is not None
            self.check_result(result)
        elif kind == "dagerror":
            assert isinstance(self.outcome, DagError)
            self.check_dag_error(self.outcome, raised=True)
        else:
            assert isinstance(self.outcome, TimeoutError)
            cause = self.outcome.__cause__
            if cause is None:
                self.check_reported([], all_timeouts=False)
            elif isinstance(cause, DagError):
                self.check_dag_error(cause, raised=False)
            else:
                self.bad(f"the invoke TimeoutError's cause is {cause!r}, not a DagError")

    def check_everything_reachable(self, raised: BaseException) -> None:
        """A run that ended cancelled or by a BaseException still reports every other
        failure: reachable from what was raised, or logged on the `dagwire` logger."""
        targets: list[tuple[str, BaseException]] = []
        for f in self.failures:
            if f.fired is None or f.fired.exc is None or f.fired.exc is raised:
                continue
            if f.status == "required" or (f.kind == "base" and not f.fired.off_loop):
                targets.append((repr(f), f.fired.exc))
        for label, exc in targets:
            if not reachable(exc, raised, self.logs, label=self.label_of(exc)):
                self.bad(
                    f"{label} is not reported: the run ended by {raised!r}, and the failure "
                    "is neither reachable from it nor logged"
                )

    def label_of(self, exc: BaseException) -> str | None:
        """How dagwire names a self-raised CancelledError it reports wrapped (the wrapper's
        text does not show the original): "n3 (body)"."""
        if not isinstance(exc, asyncio.CancelledError):
            return None
        f = next((f for f in self.failures if f.fired is not None and f.fired.exc is exc), None)
        return None if f is None else f"n{f.node} ({f.phase})"

    def check_dag_error(self, err: DagError, *, raised: bool) -> None:
        """`raised`: invoke raised it (fail-fast, not cancelled, not timed out), so some
        unrecovered failure must have happened."""
        found = leaves(err)
        identified = self.check_reported(found, all_timeouts=False)
        if raised and not identified and not self.problems:
            self.bad("invoke raised a DagError, but no failure in it is a real one")
        for name, exc in err.failures.items():
            if not any(exc is x for x in found):
                self.bad(f"DagError.failures[{name!r}] is not one of its exceptions")
            notes = dagwire_notes(exc)
            if notes and notes[0][0] != name:
                self.bad(f"DagError.failures[{name!r}] is a failure of {notes[0][0]}")
        named = {n for exc in found for n, _ in dagwire_notes(exc)[:1]}
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
                    and f.fired.exc is not None
                    and (f.fired.exc is nf.error or f.fired.exc is nf.error.__cause__)
                ),
                None,
            )
            i = int(nf.node[1:]) if nf.node[1:].isdigit() else 0
            if f is not None:
                covered = f.covered
            elif isinstance(nf.error, InjectedError):  # a process-pool body's (a copy)
                covered = self.shapes[i].fallback and not isinstance(nf.error, InjectedBase)
            elif isinstance(nf.error, CircuitOpenError | TimeoutError):
                covered = nf.phase in ("body", "setup") and self.shapes[i].fallback
            else:  # a sub-graph's DagError
                covered = False
            if nf.recovered != covered:
                self.bad(f"{nf}: recovered={nf.recovered}, fallback covers it: {covered}")
        if self.raise_mode and not result.ok:
            self.bad(f"fail-fast invoke returned a result that is not ok: {errors}")
        failed = [j for j in range(self.n) if self.state(j) == "failed"]
        for i in range(self.n):
            handle = self.handles[i]
            status = result.status(handle)
            state = self.state(i)
            upstream_failed = any(i in self.downstream[j] for j in failed)
            if state == "out":
                want = NodeStatus.PENDING
            elif state in ("ok", "fallback", "override") or (
                state == "join" and not upstream_failed
            ):
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
                value = result[handle]
                if not same_value(value, self.expected_value(i)):
                    self.bad(f"result[n{i}] is {value!r}, expected {self.expected_value(i)!r}")
            else:
                try:
                    result[handle]
                except NodeNotCompletedError:
                    pass
                else:
                    self.bad(f"result[n{i}] did not raise although its status is {status.name}")
            if status is NodeStatus.FAILED and not any(
                nf.node == f"n{i}" and not nf.recovered for nf in errors
            ):
                self.bad(f"n{i} is FAILED but no unrecovered failure of it is in result.errors")
        if self.g == 0 and self.trial.plan.timeline:
            for timing in result.timeline():
                if timing.end < timing.start:
                    self.bad(f"timeline entry ends before it starts: {timing}")

    def check_fail_fast_stops(self) -> None:
        """After the failure that aborts the run, nothing starts and running nodes stop promptly.

        Nothing starts: no node, no body after its pre, no retry. "Promptly": the library
        sends the cancellation one loop iteration after the abort, so nodes already woken in
        that iteration may still finish; everything must be over a few iterations later (a
        sub-graph's nodes a few more: the cancellation goes through its invoke). A failure in
        a thread or a process reaches the loop at its own pace: only loop-side failures
        count, and bodies running elsewhere cannot be stopped (they are given up).
        """
        aborting = [
            f
            for f in self.failures
            if f.fired is not None and not f.fired.off_loop and self.aborts(f)
        ]
        if not aborting:
            return
        first = min(aborting, key=lambda f: f.fired.seq if f.fired else 0)
        assert first.fired is not None
        at, at_it = first.fired.seq, first.fired.it
        for i, s in enumerate(self.shapes):
            if s.runs_elsewhere:
                continue
            for e in self.events(i, "pre_start") + self.events(i, "start"):
                if e.seq > at:  # neither a new node, nor a body after its pre, nor a retry
                    self.bad(f"{e} began after the abort by {first} (#{at})")
            slack = INNER_ABORT_SLACK if s.is_sub else ABORT_SLACK
            for e in self.node_events(i):
                if e.what in BODY_EVENTS and not e.off_loop and e.seq > at and e.it > at_it + slack:
                    self.bad(
                        f"{e} happened {e.it - at_it} loop iterations after the abort by "
                        f"{first} (#{at} @{at_it}): running nodes must be cancelled"
                    )

    def check_received(self) -> None:
        """Failures reach resources: what each resource's cleanup received (SPEC 4 and 10),
        decided from the run's outcome as recorded when the cleanup started.

        - After the run stopped (fail-fast: its failure; a caller's cancellation; an invoke
          timeout), a cleanup that starts must hear why: the run's failure, CancelledError
          or TimeoutError.
        - Otherwise (continue mode, a fail-fast run before any failure, or one where only
          cleanups failed) a resource hears the failure of a node that depends on it,
          transitively, if one happened before its cleanup started; else it closes normally.
        A BaseException run is not checked here (other checks cover it).
        """
        if self.base_fired:
            return
        phase_start = self.phase_start
        unrecovered = self.unrecovered_failures()
        run_pairs = [
            (f, x) for f, x in unrecovered if f.phase not in ("cleanup", "post") or self.aborts(f)
        ]
        run_failures = [x for _, x in run_pairs]
        # a failing early release may or may not count as the run's failure once every node
        # ended: accepted either way
        either = run_failures + [
            x for f, x in unrecovered if f.phase in ("cleanup", "post") and self.early(f.node)
        ]

        def before(f: Failure, at: int, in_phase: bool) -> bool:
            """Whether failure f was recorded before the cleanup at `at` started: a failure
            while running is, for a cleanup of the cleanup phase; a failure of a cleanup (an
            early release) only if it happened before."""
            return f.when < at or (in_phase and f.phase not in ("cleanup", "post"))

        loop_aborts = [
            f.fired.seq
            for f in self.failures
            if f.fired is not None and not f.fired.off_loop and self.aborts(f)
        ]
        abort_seq = min(loop_aborts, default=NEVER)
        cancel_it = self.cancel_events[0].it if self.cancel_events else None
        for i in range(self.n):
            for e in self.events(i, "cleanup_start"):
                got, at = e.exc, e.seq
                in_phase = at >= phase_start
                timed_out = self.timeout_seen()
                if self.kind == "timeout" and got is None and at > timed_out:
                    self.bad(f"n{i} cleanup received nothing although the run had timed out")
                if self.kind in ("cancelled", "unknown", "timeout"):
                    # why it stopped: a cancellation, the timeout, or a failure of the run
                    fired = any(f.exc is got for f in self.trial.fired)
                    why = isinstance(got, asyncio.CancelledError | TimeoutError)
                    if got is not None and not (fired or why or is_dagwire_noted(got)):
                        self.bad(f"n{i} cleanup received {got!r} in a stopped run")
                    if (
                        got is None
                        and cancel_it is not None
                        and e.it > cancel_it + CANCEL_SLACK
                        and (
                            phase_start == NEVER
                            or self.first_it(phase_start) > cancel_it + CANCEL_SLACK
                        )
                    ):
                        self.bad(
                            f"n{i} cleanup received nothing {e.it - cancel_it} loop iterations "
                            "after the run was cancelled"
                        )
                    continue
                if self.raise_mode and (
                    at > abort_seq or any(before(f, at, in_phase) for f, _ in run_pairs)
                ):
                    if not any(got is x for x in either):
                        self.bad(f"n{i} cleanup received {got!r}, not the run's failure")
                    continue
                below = [(f, x) for f, x in unrecovered if f.node in self.downstream[i]]
                heard = [x for f, x in below if before(f, at, in_phase)]
                # (through an overridden node too: an implementation may follow the graph)
                below += [(f, x) for f, x in unrecovered if f.node in self.static_down[i]]
                if got is None and heard:
                    self.bad(
                        f"n{i} cleanup received nothing although a dependent had failed: "
                        f"{heard[0]!r}"
                    )
                allowed_got = [x for _, x in below] + (either if self.raise_mode else [])
                if got is not None and not any(got is x for x in allowed_got):
                    self.bad(f"n{i} cleanup received {got!r}, not a dependent's failure")

    def timeout_seen(self) -> int:
        """When the run showed it had acted on its invoke timeout: a cleanup received the
        run's TimeoutError (not a node's: those carry a note), or, in continue mode (where no
        failure aborts), a body without a timeout of its own was cancelled."""
        seen = [
            e.seq
            for e in self.all_events
            if e.what == "cleanup_start"
            and isinstance(e.exc, TimeoutError)
            and not is_dagwire_noted(e.exc)
        ]
        if not self.raise_mode and not self.cancel_events and not self.base_fired:
            seen += [
                e.seq
                for e in self.all_events
                if e.node >= 0
                and e.what == "end"
                and e.outcome == "cancelled"
                and self.shapes[e.node].timeout is None
            ]
        return min(seen, default=NEVER)

    def first_it(self, seq: int) -> int:
        return next((e.it for e in self.all_events if e.seq == seq), 0)

    def unrecovered_failures(self) -> list[tuple[Failure, BaseException]]:
        """The run's unrecovered failures, with the exception objects reported for them."""
        if self.reported is None:
            return []
        result = as_result(self.outcome)
        recovered: set[int] = set()
        if result is not None:
            recovered = {id(nf.error) for nf in result.errors if nf.recovered}
        saved = list(self.problems)
        out: list[tuple[Failure, BaseException]] = []
        for exc in self.reported:
            if id(exc) in recovered:
                continue
            f = self.identify(exc)
            if f is not None:
                out.append((f, exc))
        self.problems[:] = saved  # identification problems are reported by check_outcome
        return out


def reachable(
    target: BaseException,
    raised: BaseException,
    logs: Sequence[logging.LogRecord],
    *,
    label: str | None = None,
) -> bool:
    """Whether `target` can be found from what the caller got: inside `raised` (its cause or
    context chain, an exception group, a note that shows it) or in a `dagwire` log record
    (as exc_info or an argument, or its repr in the message; a CancelledError that dagwire
    reports wrapped, by `label` and "CancelledError" in the message)."""
    shown = repr(target)

    def inside(exc: BaseException | None, seen: set[int]) -> bool:
        if exc is None or id(exc) in seen:
            return False
        seen.add(id(exc))
        if exc is target or any(shown in n for n in getattr(exc, "__notes__", ())):
            return True
        members: tuple[BaseException, ...] = ()
        if isinstance(exc, BaseExceptionGroup):
            members = cast("BaseExceptionGroup[BaseException]", exc).exceptions
        return any(inside(e, seen) for e in (exc.__cause__, exc.__context__, *members))

    if inside(raised, set()):
        return True
    for record in logs:
        if record.exc_info and inside(record.exc_info[1], set()):
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        if any(isinstance(a, BaseException) and inside(a, set()) for a in args):
            return True
        message = record.getMessage()
        if shown in message or (
            label is not None and label in message and "CancelledError" in message
        ):
            return True
    return False


# -- example-level checks --------------------------------------------------------------------


def check_limits(scenario: Scenario, trials: Sequence[Trial]) -> list[str]:
    """No Limiter ever had more bodies running than its limit, and no run more than its
    max_concurrency: counted from the bodies' own start/end events (a body in a thread counts
    until its thread really stopped), which lie inside the time a slot is held."""
    problems: list[str] = []
    by_limiter: dict[int, list[tuple[int, int, str]]] = {}
    for t in trials:
        per_run: list[tuple[int, int, str]] = []
        for e in t.events:
            if e.node < 0 or e.what not in ("start", "end"):
                continue
            s = t.scenario.graph(e.graph)[e.node]
            step = 1 if e.what == "start" else -1
            label = f"t{t.token}:g{e.graph}:n{e.node} a{e.attempt}"
            if s.limiter is not None:
                by_limiter.setdefault(s.limiter, []).append((e.seq, step, label))
            if e.graph == 0:
                per_run.append((e.seq, step, label))
        cap = t.plan.max_concurrency
        if cap is not None:
            peak, who = _peak(per_run)
            if peak > cap:
                problems.append(
                    f"run {t.token}: {peak} bodies ran at once ({who}), max_concurrency={cap}"
                )
    for b, marks in by_limiter.items():
        peak, who = _peak(marks)
        if peak > scenario.limiters[b]:
            problems.append(
                f"Limiter #{b}({scenario.limiters[b]}) had {peak} bodies running at once: {who}"
            )
    return problems


def _peak(marks: list[tuple[int, int, str]]) -> tuple[int, list[str]]:
    running: list[str] = []
    peak, who = 0, list[str]()
    for _, step, label in sorted(marks):
        if step > 0:
            running.append(label)
        elif label in running:
            running.remove(label)
        if len(running) > peak:
            peak, who = len(running), list(running)
    return peak, who


FAILING_ENDS = frozenset({"error", "retryable", "cancelled"})  # cancelled: a timeout, maybe


def check_breakers(
    scenario: Scenario, trials: Sequence[Trial], log: Sequence[BreakerChange]
) -> list[str]:
    """Each CircuitBreaker changes state only as its rules say (SPEC 2 and 10):
    CLOSED -> OPEN after at least fail_max failures of its calls since it last closed;
    OPEN -> HALF_OPEN only once reset_timeout has passed; HALF_OPEN -> OPEN on the failure
    of a call that started half-open (the trial); HALF_OPEN -> CLOSED on the success of a call
    that started half-open; nothing else (never OPEN -> CLOSED: a success of a call admitted
    before the breaker opened does not close it). A refusal (CircuitOpenError) only while
    the breaker was not closed."""
    problems: list[str] = []
    calls: dict[int, list[tuple[int, Event]]] = {}
    for t in trials:
        for e in t.events:
            if e.node >= 0 and e.what in ("start", "end"):
                b = t.scenario.graph(e.graph)[e.node].breaker
                if b is not None:
                    calls.setdefault(b, []).append((t.token, e))
    allowed = {
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    }
    for b, shape in enumerate(scenario.breakers):
        changes = [c for c in log if c.breaker == b]
        evs = sorted(calls.get(b, []), key=lambda te: te[1].seq)
        closed_since = 0
        opened: BreakerChange | None = None
        half_open: BreakerChange | None = None
        for c in changes:
            name = f"breaker #{b}: {c.old.name} -> {c.new.name} (#{c.seq})"
            if (c.old, c.new) not in allowed:
                problems.append(f"{name} is not a transition a breaker makes")
            if c.new is BreakerState.OPEN and c.old is BreakerState.CLOSED:
                failures = [
                    e
                    for _, e in evs
                    if e.what == "end"
                    and closed_since < e.seq < c.seq
                    and e.outcome in FAILING_ENDS
                ]
                if len(failures) < shape.fail_max:
                    problems.append(
                        f"{name} after {len(failures)} failures since it closed "
                        f"(fail_max={shape.fail_max})"
                    )
            if c.new is BreakerState.HALF_OPEN and opened is not None:
                waited = c.t - opened.t
                if waited < shape.reset_timeout - 1e-4:  # (listener clock reads lag a bit)
                    problems.append(
                        f"{name} {waited:.4f}s after it opened, before "
                        f"reset_timeout={shape.reset_timeout}"
                    )
            if c.old is BreakerState.HALF_OPEN and half_open is not None:
                trial_calls = [
                    e
                    for token, e in evs
                    if e.what == "end"
                    and half_open.seq < e.seq < c.seq
                    and _started_after(token, e, half_open.seq, evs)
                ]
                if c.new is BreakerState.CLOSED and not any(e.outcome == "ok" for e in trial_calls):
                    problems.append(f"{name}: no call admitted half-open succeeded before it")
                if c.new is BreakerState.OPEN and not any(
                    e.outcome in FAILING_ENDS for e in trial_calls
                ):
                    problems.append(f"{name}: no call admitted half-open failed before it")
            if c.new is BreakerState.OPEN:
                opened = c
            if c.new is BreakerState.HALF_OPEN:
                half_open = c
            if c.new is BreakerState.CLOSED:
                closed_since = c.seq
    for t in trials:
        refused = _refusals(t)
        for g, i in refused:
            b = t.scenario.graph(g)[i].breaker
            if b is None or not any(
                c.breaker == b and c.new is BreakerState.OPEN and c.seq < t.invoke_end for c in log
            ):
                problems.append(
                    f"run {t.token}: g{g}:n{i} was refused (CircuitOpenError) although its "
                    "breaker never opened"
                )
    return problems


def _started_after(token: int, end: Event, seq: int, evs: Sequence[tuple[int, Event]]) -> bool:
    """Whether the call of run `token` that ended with `end` started after `seq`."""
    start = next(
        (
            e
            for t, e in evs
            if t == token
            and e.what == "start"
            and e.graph == end.graph
            and e.node == end.node
            and e.attempt == end.attempt
            and e.seq < end.seq
        ),
        None,
    )
    return start is not None and start.seq > seq


def _refusals(t: Trial) -> list[tuple[int, int]]:
    found: list[BaseException] = []
    result = as_result(t.outcome)
    if result is not None:
        found = [f.error for f in result.errors]
    elif isinstance(t.outcome, DagError):
        found = leaves(t.outcome)
    elif isinstance(t.outcome, TimeoutError) and isinstance(t.outcome.__cause__, DagError):
        found = leaves(t.outcome.__cause__)
    out: list[tuple[int, int]] = []
    for exc in found:
        if isinstance(exc, CircuitOpenError):
            for name, _ in dagwire_notes(exc)[:1]:
                if name[1:].isdigit():
                    out.append((0, int(name[1:])))
    return out


def check_scenario(
    scenario: Scenario,
    trials: Sequence[Trial],
    built: Built,
    report: LoopReport,
    logs: Sequence[logging.LogRecord],
    breaker_log: Sequence[BreakerChange],
) -> None:
    problems = report.problems()
    problems += check_limits(scenario, trials)
    problems += check_breakers(scenario, trials, breaker_log)
    dumps: list[str] = []
    for t in trials:
        found = RunCheck(scenario, t, built, logs).run()
        found += t.context_problems
        if found:
            problems.extend(f"run {t.token}: {p}" for p in found)
    if ONLY is not None and not any(re.search(ONLY, p) for p in problems):
        return  # a survey for one kind of violation (see _settings.py)
    if problems:
        for t in trials:
            dumps.append(
                f"--- run {t.token}: outcome {t.outcome!r} cancel_requested={t.cancel_requested}"
                + "".join(f"\n  {e!r}" for e in t.events)
                + "".join(
                    f"\n  fired {f.kind} g{f.graph}:n{f.node} {f.phase} a{f.attempt} #{f.seq}"
                    for f in t.fired
                )
            )
        dumps.extend(
            f"  breaker #{c.breaker}: {c.old.name} -> {c.new.name} #{c.seq}" for c in breaker_log
        )
        raise AssertionError("\n".join([*problems, f"scenario: {scenario!r}", *dumps]))


__all__ = ["InjectedBase", "RunCheck", "check_scenario", "reachable"]
