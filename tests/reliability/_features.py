"""Random graphs for the properties of `test_features.py`: `Skip`, `cache=` and `resume_from=`.

Self-contained (it shares nothing with `_strategies`/`_harness`/`_oracle`): a plan says, for
each node, its kind, inputs, `after=` nodes and options; a behaviour map says what each node
does in one run (return its value, raise an `Exception`, raise `Skip` in its body or in its
`pre=` hook). `model_run` computes, from the plan alone, what a run must produce; the recording
functions built by `build` count every call so that the properties can compare.

Values are `Val(node, digest)`: a new object per body call (so that "every run sees the same
cached value" can be checked by identity) whose digest is a hash of the node, the invoke
parameter and the input values (so that a value computed from the wrong inputs, or served
from the cache under the wrong key, differs). A node's fallback is one `Val(node, -1)` object.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hypothesis import strategies as st

from dagwire import Cache, Dag, Node, NodeStatus, Skip, build_dag

Kind = Literal["async", "sync", "async_resource", "sync_resource", "join"]
Behaviour = Literal["ok", "fail", "skip_body", "skip_pre"]
Key = tuple[object, ...]  # a cached node's key: (params, *input values)

RESOURCES: tuple[Kind, ...] = ("async_resource", "sync_resource")
TTL = 60.0  # seconds on the fake clock of every Cache; a run never moves that clock


@dataclass(frozen=True)
class Val:
    """A node's value: new object per call, equal when computed from the same things."""

    node: int
    digest: int


def value_of(i: int, params: int, args: tuple[object, ...]) -> Val:
    return Val(i, hash((i, params, *args)))


@dataclass(frozen=True)
class NodePlan:
    kind: Kind
    inputs: tuple[int, ...]  # data inputs (earlier nodes, never a join); a join: what it waits for
    after: tuple[int, ...]  # after= (earlier nodes, joins included), disjoint from inputs
    pre: Literal["sync", "async"] | None = None
    fallback: bool = False
    cached: bool = False
    awaits: int = 0  # asyncio.sleep(0) calls in an async body or hook

    @property
    def deps(self) -> tuple[int, ...]:
        return self.inputs + self.after

    @property
    def is_resource(self) -> bool:
        return self.kind in RESOURCES

    def behaviours(self) -> tuple[Behaviour, ...]:
        """What this node can do in a run (a join does nothing of its own)."""
        if self.kind == "join":
            return ("ok",)
        if self.pre is not None:
            return ("ok", "fail", "skip_body", "skip_pre")
        return ("ok", "fail", "skip_body")


@dataclass(frozen=True)
class Plan:
    nodes: tuple[NodePlan, ...]

    def name(self, i: int) -> str:
        return f"n{i}"


@st.composite
def plans(draw: st.DrawFn, min_nodes: int = 3, max_nodes: int = 12, cache_weight: int = 2) -> Plan:
    """Random graphs of `min_nodes`..`max_nodes` nodes: async and sync nodes, async and sync
    generator resources, joins; `pre=` hooks, `fallback=` and `cache=` (`cache_weight` in 4 +
    `cache_weight` of the nodes that may have one) on some nodes."""
    count = draw(st.integers(min_nodes, max_nodes))
    nodes: list[NodePlan] = []
    for i in range(count):
        kinds: list[Kind] = ["async", "async", "sync", "sync", "async_resource", "sync_resource"]
        if i >= 2:
            kinds.append("join")
        kind = draw(st.sampled_from(kinds))
        data = [j for j in range(i) if nodes[j].kind != "join"]
        if kind == "join":
            waited = draw(st.lists(st.sampled_from(range(i)), min_size=1, max_size=3, unique=True))
            nodes.append(NodePlan("join", tuple(sorted(waited)), ()))
            continue
        inputs: list[int] = []
        if data:
            inputs = draw(st.lists(st.sampled_from(data), max_size=3, unique=True))
        rest = [j for j in range(i) if j not in inputs]
        after: list[int] = []
        if rest and draw(st.integers(0, 3)) == 0:
            after = draw(st.lists(st.sampled_from(rest), min_size=1, max_size=2, unique=True))
        awaits = draw(st.integers(0, 2)) if kind.startswith("async") else 0
        if kind in RESOURCES:  # no hooks, fallback or cache on resources (cache is refused)
            nodes.append(NodePlan(kind, tuple(sorted(inputs)), tuple(sorted(after)), awaits=awaits))
            continue
        option = draw(st.sampled_from(["none", "none", "pre", "pre"] + ["cache"] * cache_weight))
        pre: Literal["sync", "async"] | None = None
        if option == "pre":  # cache= is refused with pre=
            pre = draw(st.sampled_from(["sync", "async"]))
        nodes.append(
            NodePlan(
                kind,
                tuple(sorted(inputs)),
                tuple(sorted(after)),
                pre=pre,
                fallback=draw(st.integers(0, 3)) == 0,
                cached=option == "cache",
                awaits=awaits,
            )
        )
    return Plan(tuple(nodes))


def behaviour_maps(plan: Plan, ok_weight: int = 5) -> st.SearchStrategy[tuple[Behaviour, ...]]:
    """One run's behaviour of every node, "ok" `ok_weight` times as likely as each other one."""

    def one(n: NodePlan) -> st.SearchStrategy[Behaviour]:
        choices = n.behaviours()
        return st.sampled_from(choices[:1] * ok_weight + choices[1:])

    return st.tuples(*(one(n) for n in plan.nodes))


# -- the model ---------------------------------------------------------------------------------


@dataclass
class Expected:
    """What one run must produce, from the plan (continue-mode semantics)."""

    status: list[NodeStatus]
    value: list[object]  # meaningful for SUCCEEDED nodes other than joins
    causes: list[frozenset[int]]  # SKIPPED: the nodes skip_cause may name
    errors: dict[int, bool]  # node -> recovered
    body: list[int]  # body (or resource setup) calls
    pre: list[int]
    keys: dict[int, Key]  # cached nodes whose inputs were ready: their key

    @property
    def unrecovered(self) -> bool:
        return any(not recovered for recovered in self.errors.values())


def resume_scope(plan: Plan, done: set[int]) -> set[int]:
    """What a run resumed from a result runs, as the README's "What a run is" says: the nodes
    the targets (without `targets=`: every node no other depends on) need, once the nodes
    `resume_from=` takes as done (`done`) are taken as done. So a resource, or a node whose
    value was a fallback, runs again only when a node that runs needs it, or when nothing
    depends on it."""
    size = len(plan.nodes)
    used = {d for n in plan.nodes for d in n.deps}
    scope: set[int] = set()
    for i in reversed(range(size)):
        if i in done:
            continue
        if i not in used or any(i in plan.nodes[j].deps for j in scope):
            scope.add(i)
    return scope


def model_run(
    plan: Plan,
    beh: tuple[Behaviour, ...],
    params: int,
    stored: Mapping[tuple[int, Key], Val],
    done: Mapping[int, object] | None = None,
    scope: set[int] | None = None,
) -> Expected:
    """The run of `plan` with behaviours `beh`: `stored` is what each node's Cache holds;
    `done` the nodes `resume_from=` takes as done, with their values; `scope` the nodes that
    run (default: all but `done`; see `resume_scope`)."""
    size = len(plan.nodes)
    done = done or {}
    if scope is None:
        scope = set(range(size)) - set(done)
    exp = Expected(
        [NodeStatus.PENDING] * size,
        [None] * size,
        [frozenset()] * size,
        {},
        [0] * size,
        [0] * size,
        {},
    )
    for i, n in enumerate(plan.nodes):
        if i in done:
            exp.status[i], exp.value[i] = NodeStatus.SUCCEEDED, done[i]
            continue
        if i not in scope:
            continue
        bad = [d for d in n.deps if exp.status[d] is not NodeStatus.SUCCEEDED]
        if bad:
            exp.status[i] = NodeStatus.SKIPPED
            causes: set[int] = set()
            for d in bad:
                failed = exp.status[d] is NodeStatus.FAILED
                causes |= {d} if failed else exp.causes[d]
            exp.causes[i] = frozenset(causes)
            continue
        if n.kind == "join":
            exp.status[i] = NodeStatus.SUCCEEDED
            continue
        args = tuple(exp.value[d] for d in n.inputs)
        if n.cached:
            key = (params, *args)
            exp.keys[i] = key
            if (i, key) in stored:
                exp.status[i], exp.value[i] = NodeStatus.SUCCEEDED, stored[i, key]
                continue
        b = beh[i]
        exp.pre[i] = int(n.pre is not None)
        exp.body[i] = int(b != "skip_pre")
        if b == "ok":
            exp.status[i], exp.value[i] = NodeStatus.SUCCEEDED, value_of(i, params, args)
        elif n.fallback:
            exp.status[i], exp.value[i] = NodeStatus.SUCCEEDED, FALLBACKS[i]
            if b == "fail":
                exp.errors[i] = True
        elif b == "fail":
            exp.status[i] = NodeStatus.FAILED
            exp.errors[i] = False
        else:
            exp.status[i], exp.causes[i] = NodeStatus.SKIPPED, frozenset({i})
    return exp


FALLBACKS = tuple(Val(i, -1) for i in range(64))


class Planned(ValueError):
    """What a node planned to fail raises."""


# -- the graph ---------------------------------------------------------------------------------


@dataclass
class Call:
    """One body call (or resource setup): its key and how it ended."""

    node: int
    key: Key
    start: int  # a step of the Recorder's clock
    end: str = "running"  # ok | fail | skip | cancelled
    stop: int = -1  # the step at which it ended
    value: Val | None = None


@dataclass
class Recorder:
    """What the bodies, hooks and resources of one graph did, and what they are told to do.

    `now[params]` is each node's behaviour in runs with that parameter; `scripts[i]`, when
    set for a cached node, replaces it: the k-th call of a key does `scripts[i][k]` ("ok"
    once the script is exhausted), for concurrent runs, where which run's call it is depends
    on timing."""

    now: dict[int, tuple[Behaviour, ...]] = field(default_factory=dict[int, tuple[Behaviour, ...]])
    scripts: dict[int, tuple[Behaviour, ...]] = field(
        default_factory=dict[int, tuple[Behaviour, ...]]
    )
    calls: list[Call] = field(default_factory=list[Call])
    pres: list[tuple[int, int]] = field(default_factory=list[tuple[int, int]])  # (node, params)
    entered: list[list[int]] = field(default_factory=list[list[int]])  # [node, cleanups]
    steps: Iterator[int] = field(default_factory=itertools.count)

    def behaviour(self, i: int, params: int, key: Key) -> Behaviour:
        script = self.scripts.get(i)
        if script is None:
            return self.now[params][i]
        k = sum(1 for c in self.calls if c.node == i and c.key == key) - 1  # this call is in
        return script[k] if k < len(script) else "ok"

    def body_counts(self, since: int = 0) -> Counter[int]:
        return Counter(c.node for c in self.calls[since:])

    def pre_counts(self, since: int = 0) -> Counter[int]:
        return Counter(i for i, _ in self.pres[since:])


def _outcome(rec: Recorder, call: Call, params: int, args: tuple[object, ...]) -> Val:
    b = rec.behaviour(call.node, params, call.key)
    call.stop = next(rec.steps)
    if b == "fail":
        call.end = "fail"
        raise Planned(f"n{call.node} planned to fail")
    if b == "skip_body":
        call.end = "skip"
        raise Skip(f"n{call.node} planned to skip")
    call.end = "ok"
    call.value = value_of(call.node, params, args)
    return call.value


def _start(rec: Recorder, i: int, params: int, args: tuple[object, ...]) -> Call:
    call = Call(i, (params, *args), next(rec.steps))
    rec.calls.append(call)
    return call


def make_body(rec: Recorder, i: int, n: NodePlan) -> Callable[..., Any]:
    if n.kind == "sync":

        def sync_body(params: int, *args: object) -> Val:
            return _outcome(rec, _start(rec, i, params, args), params, args)

        return sync_body

    async def async_body(params: int, *args: object) -> Val:
        call = _start(rec, i, params, args)
        try:
            for _ in range(n.awaits):
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            call.end, call.stop = "cancelled", next(rec.steps)
            raise
        return _outcome(rec, call, params, args)

    return async_body


def make_resource(rec: Recorder, i: int, n: NodePlan) -> Callable[..., Any]:
    """A generator resource: its setup behaves like a body; what it yields is its value; the
    code after `yield` counts the cleanups of this very setup."""
    if n.kind == "sync_resource":

        def sync_resource(params: int, *args: object) -> Iterator[Val]:
            value = _outcome(rec, _start(rec, i, params, args), params, args)
            record = [i, 0]
            rec.entered.append(record)
            try:
                yield value
            finally:
                record[1] += 1

        return sync_resource

    async def async_resource(params: int, *args: object) -> AsyncIterator[Val]:
        call = _start(rec, i, params, args)
        try:
            for _ in range(n.awaits):
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            call.end, call.stop = "cancelled", next(rec.steps)
            raise
        value = _outcome(rec, call, params, args)
        record = [i, 0]
        rec.entered.append(record)
        try:
            yield value
        finally:
            record[1] += 1

    return async_resource


def make_pre(rec: Recorder, i: int, n: NodePlan) -> Callable[[int], Any]:
    def check(params: int) -> None:
        rec.pres.append((i, params))
        if rec.now[params][i] == "skip_pre":
            raise Skip(f"n{i} planned to skip in pre")

    if n.pre == "sync":
        return check

    async def async_pre(params: int) -> None:
        for _ in range(n.awaits):
            await asyncio.sleep(0)
        check(params)

    return async_pre


@dataclass
class Built:
    dag: Dag[int]
    handles: list[Node[Any]]
    caches: dict[int, Cache]
    clock: list[float]  # the caches' fake clock, seconds


def build(plan: Plan, rec: Recorder) -> Built:
    """The graph of `plan`; every cached node has a Cache of its own on a fake clock."""
    clock = [0.0]
    caches: dict[int, Cache] = {}
    handles: list[Node[Any]] = []
    with build_dag(int, name="features") as dag:
        for i, n in enumerate(plan.nodes):
            name = plan.name(i)
            if n.kind == "join":
                handles.append(dag.join(*(handles[d] for d in n.inputs), name=name))
                continue
            options: dict[str, Any] = {"name": name}
            if n.after:
                options["after"] = [handles[d] for d in n.after]
            if n.pre is not None:
                options["pre"] = make_pre(rec, i, n)
            if n.fallback:
                options["fallback"] = FALLBACKS[i]
            if n.cached:
                caches[i] = options["cache"] = Cache(ttl=TTL, clock=lambda: clock[0])
            inputs = [dag.params, *(handles[d] for d in n.inputs)]
            if n.is_resource:
                handles.append(dag.add_resource(make_resource(rec, i, n), *inputs, **options))
            else:
                handles.append(dag.add_node(make_body(rec, i, n), *inputs, **options))
    return Built(dag, handles, caches, clock)
