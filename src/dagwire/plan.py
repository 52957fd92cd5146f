"""The compiled, immutable form of a graph: flat per-node tuples indexed by node number.

Everything the scheduler needs per node is precomputed here once, at `freeze()`, so that a plain
node costs the run loop one tuple unpack, one argument fetch and one counter decrement.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from .cache import Cache
from .definition import Const, NodeKind, NodeSpec
from .lifecycle import Cleanup, post_hook
from .status import NodeStatus

__all__ = ["A0", "A1", "AN", "MISSING", "SLOW", "Plan", "Scope", "Step", "compile_plan"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<no value>"


MISSING: Any = _Missing()

# How the run loop calls a node. A node is SLOW when it has options (hooks, retry, timeout, ...)
# or is a resource: those go through `scheduler._Run.slow_call`, plain nodes never do.
ASYNC, SYNC, SLOW = 0, 1, 2
# mode of a plain async node by argument kind: A1 one slot, AN an itemgetter, A0 no argument
A1, AN, A0 = 3, 4, 5

# Argument getter: None (no argument), an int (one slot of the values list) or an itemgetter.
Getter = None | int | Callable[[list[object]], tuple[object, ...]]
# (fn, getter, mode, dependents): the hot path unpacks one of these per node.
Step = tuple[Callable[..., Any], Getter, int, tuple[int, ...]]


@dataclass(frozen=True, slots=True, eq=False)
class Scope:
    """Which nodes one run executes, and the step tables restricted to them.

    A full run's scope is every runnable node. `targets=`, `overrides=` and `resume_from=` give
    a smaller one: its `members` are the nodes the run executes, and every dependents list of its
    steps holds members only, so the run loop, skipping and early release never touch a node
    outside the run. Scopes are cached per plan by what defines them (not by override values).
    """

    members: tuple[bool, ...]  # membership flag per node
    steps: tuple[Step, ...]
    slow_steps: tuple[Step, ...]  # the same, every node SLOW: for instrumented runs
    indegree: tuple[int, ...]  # member inputs still to finish (0 for non-members: never used)
    roots: tuple[int, ...]  # members with no member input, in definition order
    size: int  # how many nodes the run executes
    # release="early": how many member direct dependents must finish before each early resource
    # goes (-1 for every other node), and for each node the early resources among its inputs.
    early_waits: tuple[int, ...]
    release_after: tuple[tuple[int, ...], ...]


@dataclass(frozen=True, slots=True, eq=False)
class Plan:
    specs: tuple[NodeSpec, ...]
    deps: tuple[tuple[int, ...], ...]  # distinct upstream nodes, inputs and after=
    runnable_deps: tuple[tuple[int, ...], ...]  # the same without params/immediates
    getters: tuple[Getter, ...]  # per node: where its arguments are in the values list
    values: tuple[object, ...]  # initial per-run values: params slot, immediates, constants
    statuses: tuple[NodeStatus, ...]
    sinks: tuple[int, ...]  # nodes nothing depends on
    dependents_count: tuple[int, ...]  # per node, how many nodes depend on it (cleanup walk)
    has_cleanups: bool  # some node has post= or is a resource
    early: tuple[bool, ...]  # the node is a release="early" resource
    has_early: bool
    caches: tuple[Cache | None, ...]  # the node's cache= (looked up before its slow path)
    posts: tuple[Cleanup | None, ...]  # the node's post= hook as a registered cleanup
    full: Scope  # every runnable node
    _scopes: dict[tuple[frozenset[int], frozenset[int]], Scope] = field(
        default_factory=dict[tuple[frozenset[int], frozenset[int]], Scope]
    )

    @property
    def size(self) -> int:
        return len(self.specs)

    # Convenience views of the full scope (what a run without targets/overrides executes).
    @property
    def steps(self) -> tuple[Step, ...]:
        return self.full.steps

    @property
    def roots(self) -> tuple[int, ...]:
        return self.full.roots

    def scope(self, targets: Iterable[int] | None, given: Collection[int]) -> Scope:
        """The scope of a run that needs `targets` (default: the sinks) with the nodes in
        `given` already done (overrides, resumed nodes). Cached: a partial run costs what the
        nodes it executes cost, not the size of the graph."""
        key = (frozenset(self.sinks if targets is None else targets), frozenset(given))
        scope = self._scopes.get(key)
        if scope is None:
            if len(self._scopes) >= _MAX_SCOPES:  # many distinct target sets: start over
                self._scopes.clear()
            scope = self._scopes[key] = self._restrict(*key)
        return scope

    def _restrict(self, wanted: frozenset[int], given: frozenset[int]) -> Scope:
        pending = [s is NodeStatus.PENDING and i not in given for i, s in enumerate(self.statuses)]
        members = [False] * self.size
        stack = [i for i in wanted if pending[i]]
        while stack:  # iterative: a 10,000-node chain must not recurse
            i = stack.pop()
            if not members[i]:
                members[i] = True
                stack.extend(d for d in self.deps[i] if pending[d])
        return _scope(self, tuple(members))


def _getter(slots: list[int]) -> Getter:
    if not slots:
        return None
    if len(slots) == 1:
        return slots[0]
    return itemgetter(*slots)


_MAX_SCOPES = 64


def compile_plan(specs: tuple[NodeSpec, ...]) -> Plan:
    n = len(specs)
    values: list[object] = [MISSING] * n
    statuses = [NodeStatus.PENDING] * n
    for spec in specs:
        if spec.kind is NodeKind.IMMEDIATE:
            const = spec.args[0]
            assert isinstance(const, Const)
            values[spec.index] = const.value
        if spec.kind in (NodeKind.IMMEDIATE, NodeKind.PARAMS):
            statuses[spec.index] = NodeStatus.SUCCEEDED

    deps = tuple(spec.deps for spec in specs)
    runnable = [s is NodeStatus.PENDING for s in statuses]
    getters: list[Getter] = []
    for spec in specs:
        slots: list[int] = []
        for a in spec.args:
            if isinstance(a, Const):  # constants live after the node slots
                slots.append(len(values))
                values.append(a.value)
            else:
                slots.append(a)
        if spec.inject:
            slots.append(0)
        getters.append(_getter(slots))

    has_users = {d for ds in deps for d in ds}
    early = tuple(
        s.kind is NodeKind.RESOURCE and s.options is not None and s.options.release == "early"
        for s in specs
    )
    plan = Plan(
        specs=specs,
        deps=deps,
        runnable_deps=tuple(tuple(d for d in ds if runnable[d]) for ds in deps),
        getters=tuple(getters),
        values=tuple(values),
        statuses=tuple(statuses),
        sinks=tuple(i for i in range(n) if i not in has_users),
        dependents_count=_dependents_count(deps, n),
        has_cleanups=any(
            s.kind is NodeKind.RESOURCE or (s.options is not None and s.options.post is not None)
            for s in specs
        ),
        early=early,
        has_early=any(early),
        caches=tuple(s.options.cache if s.options is not None else None for s in specs),
        posts=tuple(_post_cleanup(s) for s in specs),
        full=_EMPTY_SCOPE,
    )
    object.__setattr__(plan, "full", _scope(plan, tuple(runnable)))
    return plan


def _post_cleanup(spec: NodeSpec) -> Cleanup | None:
    options = spec.options
    if options is None or options.post is None:
        return None
    never_waits = not options.post_async and options.cleanup_timeout is None
    return post_hook(options.post, options.post_takes_param, never_waits)


def _dependents_count(deps: tuple[tuple[int, ...], ...], n: int) -> tuple[int, ...]:
    counts = [0] * n
    for ds in deps:
        for d in ds:
            counts[d] += 1
    return tuple(counts)


def _scope(plan: Plan, members: tuple[bool, ...]) -> Scope:
    """Compile the step tables of the nodes in `members`."""
    specs, early = plan.specs, plan.early
    member_deps = [tuple(d for d in ds if members[d]) for ds in plan.deps]
    dependents: list[list[int]] = [[] for _ in specs]
    for i, ds in enumerate(member_deps):
        if members[i]:
            for d in ds:
                dependents[d].append(i)
    release_after = tuple(tuple(d for d in ds if early[d]) for ds in member_deps)
    steps: list[Step] = []
    slow_steps: list[Step] = []
    for spec in specs:
        i = spec.index
        fn = spec.fn or _no_body
        # Users of an early-release resource report their end through the slow path, too.
        slow = (
            spec.options is not None
            or spec.kind in (NodeKind.RESOURCE, NodeKind.MAP, NodeKind.GRAPH)
            or bool(release_after[i])
        )
        mode = SLOW if slow else ASYNC if spec.is_async else SYNC
        get = plan.getters[i]
        if mode == ASYNC:
            mode = A0 if get is None else A1 if isinstance(get, int) else AN
        out = tuple(dependents[i])
        steps.append((fn, get, mode, out))
        slow_steps.append((fn, get, SLOW, out))
    n = len(specs)
    return Scope(
        members=members,
        steps=tuple(steps),
        slow_steps=tuple(slow_steps),
        indegree=tuple(len(ds) if members[i] else 0 for i, ds in enumerate(member_deps)),
        roots=tuple(i for i in range(n) if members[i] and not member_deps[i]),
        size=sum(members),
        early_waits=tuple(len(dependents[i]) if early[i] and members[i] else -1 for i in range(n)),
        release_after=release_after,
    )


_EMPTY_SCOPE = Scope((), (), (), (), (), 0, (), ())


def _no_body() -> None:
    raise AssertionError("params and immediate nodes are never run")
