"""What one example is: graph shapes (fixed when the graphs are built) and per-run plans.

Everything that varies from run to run (which fault fires where, pauses, cancellation, invoke
options, targets and overrides) lives in a `RunPlan`, which travels inside the invoke
parameter. So one built graph can be invoked concurrently with different plans, which is how
the isolation property works.

An example has one outer graph (graph 0) and, for its "sub" nodes, inner graphs (graph k + 1
is `Scenario.subgraphs[k]`): a built Dag used as a node of the outer graph. Nodes are named
by (graph, index); the shared policies (`CircuitBreaker`s, `Limiter`s) are the scenario's and
any node of any graph may hold one.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

# A node is a plain node (async or sync body), a resource (async generator, sync generator,
# async context manager factory), a join barrier, or a sub-graph (a built Dag as a node).
Kind = Literal["async", "sync", "agen", "gen", "acm", "join", "sub"]
KINDS: tuple[Kind, ...] = ("async", "sync", "agen", "gen", "acm", "join")
RESOURCE_KINDS: frozenset[Kind] = frozenset({"agen", "gen", "acm"})
ASYNC_BODY_KINDS: frozenset[Kind] = frozenset({"async", "agen", "acm"})

HookKind = Literal["sync", "async"]
OnError = Literal["raise", "continue"]
Release = Literal["end", "early"]
# executor= of a sync plain node: the loop's default thread pool, or the session's process pool
ExecutorKind = Literal["thread", "process"]

# What an injected fault does when its moment comes:
#   error       raise InjectedError (never retried)
#   retryable   raise RetryableInjected (retried by the node's Retry, if any)
#   selfcancel  raise CancelledError although nobody cancelled anything
#   base        raise InjectedBase, a BaseException that is not an Exception
#   hang        sleep "forever": only in async bodies of nodes with timeout=, and in async
#               cleanups/posts of nodes with cleanup_timeout= (the timeout ends it)
#   slow        a thread body that outlives its node's timeout= (it cannot be interrupted):
#               sleeps THREAD_SLOW_SECONDS, then returns normally
Fault = Literal["ok", "error", "retryable", "selfcancel", "base", "hang", "slow"]

# Pauses before a phase does its work: 0 no await, 1 `sleep(0)`, 2 and 3 tiny real sleeps.
PAUSE_SECONDS: tuple[float | None, ...] = (None, 0.0, 0.0005, 0.0015)
THREAD_SLOW_SECONDS = 0.02


def _compact_repr(obj: object, positional: tuple[str, ...] = ()) -> str:
    """The constructor call that rebuilds `obj`, with only the fields that differ from their
    defaults (hypothesis prints failing examples with repr: keep them readable)."""
    parts: list[str] = []
    for f in fields(obj):  # type: ignore[arg-type]  # a dataclass instance
        value = getattr(obj, f.name)
        if f.name in positional:
            parts.append(repr(value))
        elif value != f.default:
            parts.append(f"{f.name}={value!r}")
    return f"{type(obj).__name__}({', '.join(parts)})"


@dataclass(frozen=True, slots=True)
class RetryShape:
    attempts: int
    initial_delay: float
    seed: int  # for the Retry's own jitter rng


@dataclass(frozen=True, slots=True)
class BreakerShape:
    fail_max: int
    reset_timeout: float  # seconds


@dataclass(frozen=True, slots=True, repr=False)
class NodeShape:
    kind: Kind
    inputs: tuple[int, ...] = ()  # earlier nodes whose values are passed (for a join: its nodes)
    after: tuple[int, ...] = ()  # earlier nodes waited for without their values
    pre: HookKind | None = None
    post: HookKind | None = None
    timeout: float | None = None  # small: only a "hang" (or a "slow" thread) is meant to hit it
    retry: RetryShape | None = None
    fallback: bool = False
    cleanup_timeout: float | None = None  # bounds each cleanup/post: only a "hang" hits it
    release: Release = "end"  # resources only
    executor: ExecutorKind | None = None  # "sync" nodes only
    breaker: int | None = None  # index into Scenario.breakers
    limiter: int | None = None  # index into Scenario.limiters
    # kind "sub": index into Scenario.subgraphs; its one input (if any) becomes the inner
    # graph's parameter, else the invoke parameter does
    sub: int | None = None

    @property
    def is_join(self) -> bool:
        return self.kind == "join"

    @property
    def is_sub(self) -> bool:
        return self.kind == "sub"

    @property
    def is_resource(self) -> bool:
        return self.kind in RESOURCE_KINDS

    @property
    def async_body(self) -> bool:
        return self.kind in ASYNC_BODY_KINDS

    @property
    def runs_elsewhere(self) -> bool:
        """Its body runs in a thread or a process: the loop cannot stop it, and its events are
        recorded there (a body may still run after its attempt was abandoned)."""
        return self.executor is not None

    @property
    def uncertain(self) -> bool:
        """Whether the outcome of an attempt can differ from what its body recorded: a body
        in an executor with timeout= may end well after the loop gave up on it (or before its
        thread even started)."""
        return self.executor is not None and self.timeout is not None

    @property
    def deps(self) -> tuple[int, ...]:
        return tuple(dict.fromkeys(self.inputs + self.after))

    @property
    def max_attempts(self) -> int:
        return 1 if self.retry is None else self.retry.attempts

    def __repr__(self) -> str:
        return _compact_repr(self, ("kind",))


@dataclass(frozen=True, slots=True, repr=False)
class NodePlan:
    pre: Fault = "ok"
    attempts: tuple[Fault, ...] = ()  # fault of attempt k is attempts[k - 1]; "ok" beyond
    cleanup: Fault = "ok"  # resource: the code after `yield` / `__aexit__`
    post: Fault = "ok"
    pauses: tuple[int, int, int, int] = (0, 0, 0, 0)  # pre, body/setup, cleanup, post

    def attempt(self, k: int) -> Fault:
        return self.attempts[k - 1] if k <= len(self.attempts) else "ok"

    def __repr__(self) -> str:
        return _compact_repr(self, ())


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel the task awaiting invoke after some loop iterations, or after a tiny delay."""

    iterations: int
    delay: float | None = None  # when set, sleep this long instead of counting iterations
    again_after: int | None = None  # cancel a second time, this many iterations later


@dataclass(frozen=True, slots=True, repr=False)
class RunPlan:
    nodes: tuple[NodePlan, ...]
    cancel: Cancel | None = None
    timeout: float | None = None  # invoke(timeout=)
    max_concurrency: int | None = None
    timeline: bool = False
    targets: tuple[int, ...] | None = None  # invoke(targets=) (outer graph)
    overrides: tuple[int, ...] = ()  # invoke(overrides=): each gets `override_value`
    inner: tuple[tuple[NodePlan, ...], ...] = ()  # per sub-graph: its nodes' plans

    def plans(self, graph: int) -> tuple[NodePlan, ...]:
        return self.nodes if graph == 0 else self.inner[graph - 1]

    def __repr__(self) -> str:
        return _compact_repr(self, ("nodes",))


@dataclass(frozen=True, slots=True, repr=False)
class Scenario:
    shapes: tuple[NodeShape, ...]
    runs: tuple[RunPlan, ...]  # invoked concurrently on one built graph
    on_error: OnError = "raise"
    breakers: tuple[BreakerShape, ...] = ()
    limiters: tuple[int, ...] = ()  # Limiter(limit) each
    subgraphs: tuple[tuple[NodeShape, ...], ...] = ()

    def graph(self, g: int) -> tuple[NodeShape, ...]:
        return self.shapes if g == 0 else self.subgraphs[g - 1]

    @property
    def graphs(self) -> range:
        return range(1 + len(self.subgraphs))

    def __repr__(self) -> str:
        return _compact_repr(self, ("shapes", "runs"))
