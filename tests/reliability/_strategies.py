"""Hypothesis strategies for random graphs, fault plans and run plans.

Shrinking is toward small, plain, fault-free examples: every "interesting" choice is made by an
integer that shrinks to 0 and maps 0 to the boring option.
"""

from __future__ import annotations

from hypothesis import strategies as st

from ._model import (
    ASYNC_BODY_KINDS,
    KINDS,
    RESOURCE_KINDS,
    Cancel,
    Fault,
    HookKind,
    NodePlan,
    NodeShape,
    OnError,
    RetryShape,
    RunPlan,
    Scenario,
)

HOOKS: tuple[HookKind, ...] = ("sync", "async")
ON_ERROR: tuple[OnError, ...] = ("raise", "continue")
NODE_TIMEOUTS = (0.001, 0.003)  # small: only a "hang" is expected to reach them
INVOKE_TIMEOUTS = (0.001, 0.003, 0.01)
RETRY_DELAYS = (0.0, 0.0002, 0.001)
FAULT_RATES = (0, 2, 5, 15, 40)  # percent chance that a phase of a node has a fault


def chance(draw: st.DrawFn, percent: int) -> bool:
    """True with about `percent`% probability; shrinks to False."""
    return percent > 0 and draw(st.integers(0, 99)) >= 100 - percent


@st.composite
def node_shape(draw: st.DrawFn, i: int) -> NodeShape:
    kind = draw(st.sampled_from(KINDS))  # shrinks to "async"
    earlier = st.integers(0, i - 1) if i else st.nothing()
    inputs = tuple(sorted(set(draw(st.lists(earlier, max_size=3))))) if i else ()
    if kind == "join":
        return NodeShape("join", inputs)
    after: tuple[int, ...] = ()
    if i and chance(draw, 15):
        after = (draw(earlier),)
    pre = draw(st.sampled_from(HOOKS)) if chance(draw, 20) else None
    post = draw(st.sampled_from(HOOKS)) if chance(draw, 25) else None
    # Options refused at build time on a kind are not drawn for it: timeout= needs an async
    # body or setup, cleanup_timeout= an async cleanup and no sync post= (see options.py).
    timeout = None
    if kind in ASYNC_BODY_KINDS and chance(draw, 20):
        timeout = draw(st.sampled_from(NODE_TIMEOUTS))
    retry = None
    if chance(draw, 25):
        retry = RetryShape(
            attempts=draw(st.integers(1, 3)),
            initial_delay=draw(st.sampled_from(RETRY_DELAYS)),
            seed=draw(st.integers(0, 2**16)),
        )
    fallback = chance(draw, 15)
    # release="early" for resources goes here (see the note in _model.py).
    cleanup_timeout = None
    async_cleanup = kind in ("agen", "acm") or (kind not in RESOURCE_KINDS and post == "async")
    if async_cleanup and post != "sync" and chance(draw, 15):
        cleanup_timeout = draw(st.sampled_from(NODE_TIMEOUTS))
    return NodeShape(kind, inputs, after, pre, post, timeout, retry, fallback, cleanup_timeout)


@st.composite
def graph_shapes(draw: st.DrawFn, max_nodes: int = 40) -> tuple[NodeShape, ...]:
    n = draw(st.integers(1, max_nodes))
    return tuple(draw(node_shape(i)) for i in range(n))


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
    if shape.is_join:
        return NodePlan()
    fatal: tuple[Fault, ...] = ("base",) if base else ()
    hang: tuple[Fault, ...] = ("hang", "hang") if shape.timeout and shape.async_body else ()
    hook_faults: tuple[Fault, ...] = ("error", "selfcancel", *fatal)
    body_faults: tuple[Fault, ...] = ("error", "retryable", "retryable", "selfcancel", *fatal)
    body_faults += hang
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
    *,
    cancel_percent: int = 25,
    timeout_percent: int = 15,
) -> RunPlan:
    rate = draw(st.sampled_from(FAULT_RATES))
    base = chance(draw, 10)
    nodes = tuple(draw(node_plan(s, rate, base)) for s in shapes)
    cancel = draw(cancel_plan()) if chance(draw, cancel_percent) else None
    timeout = draw(st.sampled_from(INVOKE_TIMEOUTS)) if chance(draw, timeout_percent) else None
    max_concurrency = draw(st.sampled_from((1, 2, 5))) if chance(draw, 20) else None
    timeline = chance(draw, 20)
    return RunPlan(nodes, cancel, timeout, max_concurrency, timeline)


@st.composite
def scenarios(
    draw: st.DrawFn, *, runs: int = 1, max_runs: int | None = None, max_nodes: int = 40
) -> Scenario:
    shapes = draw(graph_shapes(max_nodes))
    on_error = draw(st.sampled_from(ON_ERROR))
    count = runs if max_runs is None else draw(st.integers(runs, max_runs))
    plans = tuple(draw(run_plan(shapes)) for _ in range(count))
    return Scenario(shapes, plans, on_error)
