"""The compiled, immutable form of a graph: flat per-node tuples indexed by node number.

Everything the scheduler needs per node is precomputed here once, at `freeze()`, so that a plain
node costs the run loop one tuple unpack, one argument fetch and one counter decrement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from .definition import Const, NodeKind, NodeSpec
from .status import NodeStatus

__all__ = ["A0", "A1", "AN", "MISSING", "SLOW", "Plan", "Step", "compile_plan"]


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
class Plan:
    specs: tuple[NodeSpec, ...]
    steps: tuple[Step, ...]
    slow_steps: tuple[Step, ...]  # the same, every node SLOW: for instrumented runs
    deps: tuple[tuple[int, ...], ...]  # distinct upstream nodes, inputs and after=
    runnable_deps: tuple[tuple[int, ...], ...]  # the same without params/immediates
    indegree: tuple[int, ...]
    values: tuple[object, ...]  # initial per-run values: params slot, immediates, constants
    statuses: tuple[NodeStatus, ...]
    roots: tuple[int, ...]  # runnable nodes with no runnable dependency
    sinks: tuple[int, ...]  # nodes nothing depends on
    runnable: int  # how many nodes a full run executes
    has_cleanups: bool  # some node has post= or is a resource
    # release="early": for each node, the early-release resources among its direct inputs, and
    # for each such resource how many runnable direct dependents must finish before it goes
    # (-1 for every other node).
    release_after: tuple[tuple[int, ...], ...]
    early_waits: tuple[int, ...]
    has_early: bool

    @property
    def size(self) -> int:
        return len(self.specs)


def _getter(slots: list[int]) -> Getter:
    if not slots:
        return None
    if len(slots) == 1:
        return slots[0]
    return itemgetter(*slots)


def compile_plan(specs: tuple[NodeSpec, ...]) -> Plan:
    n = len(specs)
    values: list[object] = [MISSING] * n
    statuses = [NodeStatus.PENDING] * n
    done_at_start = [False] * n
    for spec in specs:
        if spec.kind is NodeKind.IMMEDIATE:
            const = spec.args[0]
            assert isinstance(const, Const)
            values[spec.index] = const.value
        if spec.kind in (NodeKind.IMMEDIATE, NodeKind.PARAMS):
            statuses[spec.index] = NodeStatus.SUCCEEDED
            done_at_start[spec.index] = True

    deps = tuple(spec.deps for spec in specs)
    runnable_deps = tuple(tuple(d for d in ds if not done_at_start[d]) for ds in deps)
    dependents: list[list[int]] = [[] for _ in range(n)]
    for i, ds in enumerate(runnable_deps):
        for d in ds:
            dependents[d].append(i)

    early = [
        s.kind is NodeKind.RESOURCE and s.options is not None and s.options.release == "early"
        for s in specs
    ]
    release_after = tuple(tuple(d for d in ds if early[d]) for ds in runnable_deps)

    steps: list[Step] = []
    slow_steps: list[Step] = []
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
        fn = spec.fn or _no_body
        # Users of an early-release resource report their end through slow_call, too.
        slow = (
            spec.options is not None
            or spec.kind is NodeKind.RESOURCE
            or bool(release_after[spec.index])
        )
        mode = SLOW if slow else ASYNC if spec.is_async else SYNC
        out = tuple(dependents[spec.index])
        get = _getter(slots)
        if mode == ASYNC:
            mode = A0 if get is None else A1 if isinstance(get, int) else AN
        steps.append((fn, get, mode, out))
        slow_steps.append((fn, _getter(slots), SLOW, out))

    runnable = [not done for done in done_at_start]
    has_users = {d for ds in deps for d in ds}
    return Plan(
        specs=specs,
        steps=tuple(steps),
        slow_steps=tuple(slow_steps),
        deps=deps,
        runnable_deps=runnable_deps,
        indegree=tuple(len(ds) for ds in runnable_deps),
        values=tuple(values),
        statuses=tuple(statuses),
        roots=tuple(i for i in range(n) if runnable[i] and not runnable_deps[i]),
        sinks=tuple(i for i in range(n) if i not in has_users),
        runnable=sum(runnable),
        has_cleanups=any(
            s.kind is NodeKind.RESOURCE or (s.options is not None and s.options.post is not None)
            for s in specs
        ),
        release_after=release_after,
        early_waits=tuple(len(dependents[i]) if early[i] else -1 for i in range(n)),
        has_early=any(early),
    )


def _no_body() -> None:
    raise AssertionError("params and immediate nodes are never run")
