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
from .definition import Const, NodeKind, NodeOptions, NodeSpec
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
    indegree: tuple[int, ...]  # member inputs still to finish (0 for non-members: never used)
    roots: tuple[int, ...]  # members with no member input, in definition order
    size: int  # how many nodes the run executes
    # release="early": how many member direct dependents must finish before each early resource
    # goes (-1 for every other node), and for each node the early resources among its inputs.
    early_waits: tuple[int, ...]
    release_after: tuple[tuple[int, ...], ...]
    # (a plain `list` factory: calling a subscripted alias costs a microsecond per scope)
    _slow: list[tuple[Step, ...]] = field(default_factory=list, repr=False)  # pyright: ignore[reportUnknownVariableType]

    @property
    def slow_steps(self) -> tuple[Step, ...]:
        """The steps with every node SLOW, for runs that report each node (made when first
        needed: most scopes never are)."""
        if not self._slow:
            self._slow.append(tuple((fn, get, SLOW, out) for fn, get, _, out in self.steps))
        return self._slow[0]


@dataclass(frozen=True, slots=True, eq=False)
class Plan:
    specs: tuple[NodeSpec, ...]
    deps: tuple[tuple[int, ...], ...]  # distinct upstream nodes, inputs and after=
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
    # (a plain `dict` factory: calling a subscripted alias costs a microsecond per graph)
    _scopes: dict[tuple[frozenset[int], frozenset[int]], Scope] = field(default_factory=dict)  # pyright: ignore[reportUnknownVariableType]

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
    """Compile `specs` (in definition order, inputs before users) into a `Plan`.

    One pass over the nodes for the per-node tables, one for the full scope: a service that
    builds its graph per request pays this for every graph, so it is kept to a few list
    operations per node.
    """
    n = len(specs)
    values: list[object] = [MISSING] * n
    statuses = [NodeStatus.PENDING] * n
    runnable = [True] * n
    dependents_count = [0] * n
    early = [False] * n
    getters: list[Getter] = []
    caches: list[Cache | None] = [None] * n
    posts: list[Cleanup | None] = [None] * n
    has_cleanups = False
    for spec in specs:
        i, kind, options = spec.index, spec.kind, spec.options
        if kind is not NodeKind.CALL:
            if kind is NodeKind.RESOURCE:
                has_cleanups = True
                early[i] = options is not None and options.release == "early"
            elif kind is NodeKind.IMMEDIATE or kind is NodeKind.PARAMS:
                if kind is NodeKind.IMMEDIATE:
                    const = spec.args[0]
                    assert isinstance(const, Const)
                    values[i] = const.value
                statuses[i] = NodeStatus.SUCCEEDED
                runnable[i] = False
        if options is not None:
            caches[i] = options.cache
            if options.post is not None:
                has_cleanups = True
                posts[i] = _post_cleanup(options)
        for d in spec.deps:
            dependents_count[d] += 1
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
    deps = tuple(spec.deps for spec in specs)
    # Only params and immediates are not runnable: most nodes keep their deps tuple as it is.
    runnable_deps = tuple(
        ds if all(runnable[d] for d in ds) else tuple(d for d in ds if runnable[d]) for ds in deps
    )
    plan = Plan(
        specs=specs,
        deps=deps,
        getters=tuple(getters),
        values=tuple(values),
        statuses=tuple(statuses),
        sinks=tuple(i for i in range(n) if not dependents_count[i]),
        dependents_count=tuple(dependents_count),
        has_cleanups=has_cleanups,
        early=tuple(early),
        has_early=any(early),
        caches=tuple(caches),
        posts=tuple(posts),
        full=_EMPTY_SCOPE,
    )
    # The full scope's members are the runnable nodes: their member deps are runnable_deps.
    object.__setattr__(plan, "full", _scope(plan, tuple(runnable), runnable_deps))
    return plan


def _post_cleanup(options: NodeOptions) -> Cleanup:
    assert options.post is not None
    never_waits = not options.post_async and options.cleanup_timeout is None
    return post_hook(options.post, options.post_takes_param, never_waits)


_ALWAYS_SLOW = (NodeKind.RESOURCE, NodeKind.MAP, NodeKind.GRAPH)


def _scope(
    plan: Plan,
    members: tuple[bool, ...],
    member_deps: tuple[tuple[int, ...], ...] | None = None,
) -> Scope:
    """Compile the step tables of the nodes in `members` (`member_deps`: each node's deps
    among the members, when the caller has them)."""
    specs, early, has_early, getters = plan.specs, plan.early, plan.has_early, plan.getters
    n = len(specs)
    if member_deps is None:
        member_deps = tuple(tuple(d for d in ds if members[d]) for ds in plan.deps)
    dependents: list[list[int]] = [[] for _ in range(n)]
    indegree: list[int] = []
    roots: list[int] = []
    for i, ds in enumerate(member_deps):
        if members[i]:
            for d in ds:
                dependents[d].append(i)
            indegree.append(len(ds))
            if not ds:
                roots.append(i)
        else:
            indegree.append(0)
    if has_early:
        release_after = tuple(tuple(d for d in ds if early[d]) for ds in member_deps)
        early_waits = tuple(len(dependents[i]) if early[i] and members[i] else -1 for i in range(n))
    else:  # no early resource: nothing to release early, the same empty tables for all
        release_after = ((),) * n
        early_waits = (-1,) * n
    steps: list[Step] = []
    for spec in specs:
        i = spec.index
        get = getters[i]
        # Users of an early-release resource report their end through the slow path, too.
        if spec.options is not None or spec.kind in _ALWAYS_SLOW or release_after[i]:
            mode = SLOW
        elif spec.is_async:
            mode = A0 if get is None else A1 if isinstance(get, int) else AN
        else:
            mode = SYNC
        steps.append((spec.fn or _no_body, get, mode, tuple(dependents[i])))
    return Scope(
        members=members,
        steps=tuple(steps),
        indegree=tuple(indegree),
        roots=tuple(roots),
        size=sum(members),
        early_waits=early_waits,
        release_after=release_after,
    )


_EMPTY_SCOPE = Scope((), (), (), (), 0, (), ())


def _no_body() -> None:
    raise AssertionError("params and immediate nodes are never run")
