"""What one example is: a graph shape (fixed when the graph is built) and per-run plans.

Everything that varies from run to run (which fault fires where, pauses, cancellation, invoke
options) lives in a `RunPlan`, which travels inside the invoke parameter. So one built graph can
be invoked concurrently with different plans, which is how the isolation property works.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# A node is a plain node (async or sync body), a resource (async generator, sync generator,
# async context manager factory) or a join barrier.
Kind = Literal["async", "sync", "agen", "gen", "acm", "join"]
KINDS: tuple[Kind, ...] = ("async", "sync", "agen", "gen", "acm", "join")
RESOURCE_KINDS: frozenset[Kind] = frozenset({"agen", "gen", "acm"})
ASYNC_BODY_KINDS: frozenset[Kind] = frozenset({"async", "agen", "acm"})

HookKind = Literal["sync", "async"]
OnError = Literal["raise", "continue"]

# What an injected fault does when its moment comes:
#   error       raise InjectedError (never retried)
#   retryable   raise RetryableInjected (retried by the node's Retry, if any)
#   selfcancel  raise CancelledError although nobody cancelled anything
#   base        raise InjectedBase, a BaseException that is not an Exception
#   hang        sleep "forever": only in async bodies of nodes with timeout=, and in async
#               cleanups/posts of nodes with cleanup_timeout= (the timeout ends it)
Fault = Literal["ok", "error", "retryable", "selfcancel", "base", "hang"]

# Pauses before a phase does its work: 0 no await, 1 `sleep(0)`, 2 and 3 tiny real sleeps.
PAUSE_SECONDS: tuple[float | None, ...] = (None, 0.0, 0.0005, 0.0015)

# Where `release="early"` will go: when it lands, add a `release` field to NodeShape, draw it
# in `_strategies.node_shapes` for resource kinds, pass it in `_harness.build_graph`, and
# extend `_oracle` (a resource released early is cleaned up once every dependent finished,
# possibly before other bodies ended, so the "cleanups after all bodies" check must exempt it).


@dataclass(frozen=True, slots=True)
class RetryShape:
    attempts: int
    initial_delay: float
    seed: int  # for the Retry's own jitter rng


@dataclass(frozen=True, slots=True)
class NodeShape:
    kind: Kind
    inputs: tuple[int, ...] = ()  # earlier nodes whose values are passed (for a join: its nodes)
    after: tuple[int, ...] = ()  # earlier nodes waited for without their values
    pre: HookKind | None = None
    post: HookKind | None = None
    timeout: float | None = None  # small: only a "hang" is expected to hit it
    retry: RetryShape | None = None
    fallback: bool = False
    cleanup_timeout: float | None = None  # bounds each cleanup/post: only a "hang" hits it

    @property
    def is_join(self) -> bool:
        return self.kind == "join"

    @property
    def is_resource(self) -> bool:
        return self.kind in RESOURCE_KINDS

    @property
    def async_body(self) -> bool:
        return self.kind in ASYNC_BODY_KINDS

    @property
    def deps(self) -> tuple[int, ...]:
        return tuple(dict.fromkeys(self.inputs + self.after))

    @property
    def max_attempts(self) -> int:
        return 1 if self.retry is None else self.retry.attempts


@dataclass(frozen=True, slots=True)
class NodePlan:
    pre: Fault = "ok"
    attempts: tuple[Fault, ...] = ()  # fault of attempt k is attempts[k - 1]; "ok" beyond
    cleanup: Fault = "ok"  # resource: the code after `yield` / `__aexit__`
    post: Fault = "ok"
    pauses: tuple[int, int, int, int] = (0, 0, 0, 0)  # pre, body/setup, cleanup, post

    def attempt(self, k: int) -> Fault:
        return self.attempts[k - 1] if k <= len(self.attempts) else "ok"


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel the task awaiting invoke after some loop iterations, or after a tiny delay."""

    iterations: int
    delay: float | None = None  # when set, sleep this long instead of counting iterations
    again_after: int | None = None  # cancel a second time, this many iterations later


@dataclass(frozen=True, slots=True)
class RunPlan:
    nodes: tuple[NodePlan, ...]
    cancel: Cancel | None = None
    timeout: float | None = None  # invoke(timeout=)
    max_concurrency: int | None = None
    timeline: bool = False


@dataclass(frozen=True, slots=True)
class Scenario:
    shapes: tuple[NodeShape, ...]
    runs: tuple[RunPlan, ...]  # invoked concurrently on one built graph
    on_error: OnError = "raise"
