"""Hypothesis strategies for random graphs, fault plans and run plans.

Shrinking is toward small, plain, fault-free examples: every "interesting" choice is made by an
integer that shrinks to 0 and maps 0 to the boring option.

What the graphs cover (each a choice per node, so that features meet at random):
- node kinds: async and sync bodies, async/sync generator and async context manager
  resources, joins, `after=` edges, and sub-graphs (a built Dag as a node, with the invoke
  parameter or an upstream value as its parameter; its own random nodes inside);
- options: pre/post hooks (sync, async), timeout=, retry= (seeded jitter), fallback=,
  cleanup_timeout=, release="early" on resources, executor="thread" (and, in the process
  property, a ProcessPoolExecutor) on sync nodes, shared CircuitBreakers and Limiters (shared by
  every node, graph and concurrent run of the example);
- per run: faults in every phase (errors, retryable errors, self-raised CancelledError,
  BaseExceptions, hangs that only a timeout ends, thread bodies that outlive their timeout),
  pauses, caller cancellation (once or twice), invoke(timeout=), max_concurrency=, timeline=,
  targets= and overrides=.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from ._model import (
    ASYNC_BODY_KINDS,
    KINDS,
    RESOURCE_KINDS,
    BreakerShape,
    Cancel,
    ExecutorKind,
    Fault,
    HookKind,
    Kind,
    NodePlan,
    NodeShape,
    OnError,
    Release,
    RetryShape,
    RunPlan,
    Scenario,
)

HOOKS: tuple[HookKind, ...] = ("sync", "async")
ON_ERROR: tuple[OnError, ...] = ("raise", "continue")
NODE_TIMEOUTS = (0.001, 0.003)  # small: only a "hang" is expected to reach them
EXECUTOR_TIMEOUTS = (0.005, 0.015)  # a "slow" thread body outlives them
INVOKE_TIMEOUTS = (0.001, 0.003, 0.01)
RETRY_DELAYS = (0.0, 0.0002, 0.001)
RESET_TIMEOUTS = (0.0005, 0.003, 30.0)
FAULT_RATES = (0, 2, 5, 15, 40)  # percent chance that a phase of a node has a fault


@dataclass(frozen=True)
class Features:
    """What a property's graphs may contain (each property draws from its own mix)."""

    max_nodes: int = 40
    kinds: tuple[Kind, ...] = KINDS  # drawn uniformly (shrinks toward the first)
    executors: tuple[ExecutorKind, ...] = ("thread",)
    executor_percent: int = 30  # chance that a sync node runs in an executor
    sub_percent: int = 4  # chance that a node is a sub-graph
    inner_nodes: int = 6  # nodes of a sub-graph, at most
    policies: bool = True  # shared breakers and limiters


def chance(draw: st.DrawFn, percent: int) -> bool:
    """True with about `percent`% probability; shrinks to False."""
    return percent > 0 and draw(st.integers(0, 99)) >= 100 - percent


@dataclass
class _Drawing:
    """What the node strategies share while one scenario's graphs are drawn."""

    features: Features
    breakers: int
    limiters: int
    subgraphs: list[tuple[NodeShape, ...]]


@st.composite
def node_shape(
    draw: st.DrawFn, i: int, earlier: tuple[NodeShape, ...], ctx: _Drawing, outer: bool
) -> NodeShape:
    f = ctx.features
    kind: Kind = draw(st.sampled_from(f.kinds))  # shrinks to "async"
    if outer and f.sub_percent and chance(draw, f.sub_percent):
        kind = "sub"
    earlier_ix = st.integers(0, i - 1) if i else st.nothing()
    if kind == "sub":
        inner = draw(graph_shapes(ctx, f.inner_nodes, outer=False))
        ctx.subgraphs.append(inner)
        # the inner parameter: the invoke parameter, or the value of one upstream node that
        # carries its run's token (not a join, a sub-graph or a node with a fallback value)
        usable = [
            j for j, s in enumerate(earlier) if s.kind not in ("join", "sub") and not s.fallback
        ]
        inputs: tuple[int, ...] = ()
        if usable and chance(draw, 50):
            inputs = (draw(st.sampled_from(usable)),)
        waits = (draw(earlier_ix),) if i and chance(draw, 20) else ()
        return NodeShape("sub", inputs, waits, sub=len(ctx.subgraphs) - 1)
    inputs = tuple(sorted(set(draw(st.lists(earlier_ix, max_size=3))))) if i else ()
    if kind == "join":
        return NodeShape("join", inputs)
    after: tuple[int, ...] = ()
    if i and chance(draw, 15):
        after = (draw(earlier_ix),)
    pre = draw(st.sampled_from(HOOKS)) if chance(draw, 20) else None
    post = draw(st.sampled_from(HOOKS)) if chance(draw, 25) else None
    executor: ExecutorKind | None = None
    if kind == "sync" and chance(draw, f.executor_percent):
        choices: tuple[ExecutorKind, ...] = f.executors
        if not outer:  # a sub-graph's parameter may not pickle: threads only
            choices = tuple(e for e in f.executors if e == "thread")
        if choices:
            executor = draw(st.sampled_from(choices))
    # Options refused at build time on a kind are not drawn for it: timeout= needs an async
    # body or setup (or a thread), cleanup_timeout= an async cleanup and no sync post=.
    timeout = None
    if executor == "thread":
        timeout = draw(st.sampled_from(EXECUTOR_TIMEOUTS)) if chance(draw, 30) else None
    elif executor is None and kind in ASYNC_BODY_KINDS and chance(draw, 20):
        timeout = draw(st.sampled_from(NODE_TIMEOUTS))
    retry = None
    if chance(draw, 25):
        retry = RetryShape(
            attempts=draw(st.integers(1, 3)),
            initial_delay=draw(st.sampled_from(RETRY_DELAYS)),
            seed=draw(st.integers(0, 2**16)),
        )
    fallback = chance(draw, 15)
    release: Release = "early" if kind in RESOURCE_KINDS and chance(draw, 35) else "end"
    cleanup_timeout = None
    async_cleanup = kind in ("agen", "acm") or (kind not in RESOURCE_KINDS and post == "async")
    if async_cleanup and post != "sync" and chance(draw, 15):
        cleanup_timeout = draw(st.sampled_from(NODE_TIMEOUTS))
    breaker = None
    if ctx.breakers and executor is None and chance(draw, 30):
        breaker = draw(st.integers(0, ctx.breakers - 1))
    limiter = None
    if ctx.limiters and chance(draw, 25):
        limiter = draw(st.integers(0, ctx.limiters - 1))
    return NodeShape(
        kind,
        inputs,
        after,
        pre,
        post,
        timeout,
        retry,
        fallback,
        cleanup_timeout,
        release,
        executor,
        breaker,
        limiter,
    )


@st.composite
def graph_shapes(
    draw: st.DrawFn, ctx: _Drawing, max_nodes: int, *, outer: bool = True
) -> tuple[NodeShape, ...]:
    n = draw(st.integers(1, max_nodes))
    shapes: list[NodeShape] = []
    for i in range(n):
        shapes.append(draw(node_shape(i, tuple(shapes), ctx, outer)))
    return tuple(shapes)


@st.composite
def fault(draw: st.DrawFn, rate: int, choices: tuple[Fault, ...]) -> Fault:
    if not chance(draw, rate):
        return "ok"
    return draw(st.sampled_from(choices))


def _pause(draw: st.DrawFn, is_async: bool) -> int:
    if not is_async:
        return 0
    # mostly no await or sleep(0); sometimes a tiny real sleep (examples must stay fast)
    return (0, 0, 0, 1, 1, 1, 1, 2, 2, 3)[draw(st.integers(0, 9))]


@st.composite
def node_plan(draw: st.DrawFn, shape: NodeShape, rate: int, base: bool) -> NodePlan:
    if shape.is_join or shape.is_sub:
        return NodePlan()
    fatal: tuple[Fault, ...] = ("base",) if base else ()
    hang: tuple[Fault, ...] = ("hang", "hang") if shape.timeout and shape.async_body else ()
    slow: tuple[Fault, ...] = ("slow", "slow") if shape.uncertain else ()
    cancel: tuple[Fault, ...] = () if shape.executor == "process" else ("selfcancel",)
    hook_faults: tuple[Fault, ...] = ("error", "selfcancel", *fatal)
    body_faults: tuple[Fault, ...] = (
        "error",
        "retryable",
        "retryable",
        *cancel,
        *fatal,
        *hang,
        *slow,
    )
    pre: Fault = draw(fault(rate, hook_faults)) if shape.pre is not None else "ok"
    attempts: tuple[Fault, ...] = tuple(
        draw(fault(rate, body_faults)) for _ in range(shape.max_attempts)
    )
    bounded = shape.cleanup_timeout is not None
    hang_cleanup: tuple[Fault, ...] = ("hang",) if bounded and shape.kind in ("agen", "acm") else ()
    hang_post: tuple[Fault, ...] = ("hang",) if bounded and shape.post == "async" else ()
    cleanup: Fault = draw(fault(rate, hook_faults + hang_cleanup)) if shape.is_resource else "ok"
    post: Fault = draw(fault(rate, hook_faults + hang_post)) if shape.post is not None else "ok"
    pauses = (
        _pause(draw, shape.pre == "async"),
        _pause(draw, shape.async_body),
        _pause(draw, shape.kind in ("agen", "acm")),
        _pause(draw, shape.post == "async"),
    )
    return NodePlan(pre, attempts, cleanup, post, pauses)


@st.composite
def cancel_plan(draw: st.DrawFn) -> Cancel:
    iterations = draw(st.integers(0, 40))
    delay = draw(st.sampled_from((0.0002, 0.001, 0.003))) if chance(draw, 30) else None
    again = draw(st.integers(0, 10)) if chance(draw, 30) else None
    return Cancel(iterations, delay, again)


@st.composite
def run_plan(
    draw: st.DrawFn,
    shapes: tuple[NodeShape, ...],
    subgraphs: tuple[tuple[NodeShape, ...], ...],
    *,
    cancel_percent: int = 25,
    timeout_percent: int = 15,
    partial_percent: int = 15,
) -> RunPlan:
    rate = draw(st.sampled_from(FAULT_RATES))
    base = chance(draw, 10)
    nodes = tuple(draw(node_plan(s, rate, base)) for s in shapes)
    inner = tuple(tuple(draw(node_plan(s, rate, base)) for s in sub) for sub in subgraphs)
    cancel = draw(cancel_plan()) if chance(draw, cancel_percent) else None
    timeout = draw(st.sampled_from(INVOKE_TIMEOUTS)) if chance(draw, timeout_percent) else None
    max_concurrency = draw(st.sampled_from((1, 2, 5))) if chance(draw, 20) else None
    timeline = chance(draw, 20)
    index = st.integers(0, len(shapes) - 1)
    targets = None
    if chance(draw, partial_percent):
        targets = tuple(sorted(set(draw(st.lists(index, max_size=3)))))
    overrides: tuple[int, ...] = ()
    if chance(draw, partial_percent):
        overrides = tuple(sorted(set(draw(st.lists(index, min_size=1, max_size=2)))))
    return RunPlan(nodes, cancel, timeout, max_concurrency, timeline, targets, overrides, inner)


@st.composite
def breaker_shape(draw: st.DrawFn) -> BreakerShape:
    return BreakerShape(draw(st.integers(1, 3)), draw(st.sampled_from(RESET_TIMEOUTS)))


@st.composite
def scenarios(
    draw: st.DrawFn,
    *,
    runs: int = 1,
    max_runs: int | None = None,
    features: Features = Features(),
) -> Scenario:
    breakers: tuple[BreakerShape, ...] = ()
    limiters: tuple[int, ...] = ()
    if features.policies:
        breakers = tuple(draw(st.lists(breaker_shape(), max_size=2)))
        limiters = tuple(draw(st.lists(st.integers(1, 2), max_size=2)))
    ctx = _Drawing(features, len(breakers), len(limiters), [])
    shapes = draw(graph_shapes(ctx, features.max_nodes))
    subgraphs = tuple(ctx.subgraphs)
    on_error = draw(st.sampled_from(ON_ERROR))
    count = runs if max_runs is None else draw(st.integers(runs, max_runs))
    plans = tuple(draw(run_plan(shapes, subgraphs)) for _ in range(count))
    return Scenario(shapes, plans, on_error, breakers, limiters, subgraphs)
