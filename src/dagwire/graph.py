"""Building a graph: `build_dag`, `Dag` and the build-time checks.

Data flows one way: `Dag` collects frozen `NodeSpec`s; `freeze()` compiles them into an immutable
`Plan`; each `invoke` runs the plan with per-run state only (see `scheduler`).
"""

# pyright: reportPrivateUsage=false
# (package-internal access between the graph, its handles, results and the run)

from __future__ import annotations

import functools
import itertools
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from inspect import CO_ASYNC_GENERATOR, CO_COROUTINE, CO_GENERATOR
from typing import Any, Generic, Literal, Never, TypeVar, Unpack, cast, overload

from . import _docs
from ._callables import (
    callable_name,
    injects_param,
    is_async_callable,
    node_kind,
    plain_facts,
    refuse_called,
    resource_kind,
)
from ._overloads import TypedAdders
from .batch import InvokeOptions, Progress, invoke_many
from .definition import Const, NodeKind, NodeOptions, NodeSpec, upstream
from .errors import DagDefinitionError
from .node import Node
from .options import (
    MAP_OPTIONS,
    NODE_OPTIONS,
    RESOURCE_OPTIONS,
    parse_options,
    parse_tags,
    refuse_join_options,
    refuse_misfits,
)
from .plan import Plan, compile_plan
from .report import Feed, Observer
from .results import ExecutionResult, NodeCompletion
from .scheduler import run_plan
from .status import NodeStatus
from .stream import stream_run

__all__ = ["Dag", "build_dag"]

P = TypeVar("P")
T = TypeVar("T")

OnError = Literal["raise", "continue"]


_VERBS = {
    NodeKind.CALL: "add_node",
    NodeKind.RESOURCE: "add_resource",
    NodeKind.MAP: "add_map",
    NodeKind.GRAPH: "add_node",
}


# The options each method takes (add_node's for a sub-graph too).
_OPTIONS = {NodeKind.RESOURCE: RESOURCE_OPTIONS, NodeKind.MAP: MAP_OPTIONS}


def _is_dag(fn: object) -> bool:
    return isinstance(fn, Dag)


def _check_sub_graph(fn: object, what: str, options: Mapping[str, Any]) -> None:
    """A graph used as a node must be frozen (so no graph can contain itself, directly or
    not) and runs on the loop (it is async: executor= cannot apply)."""
    assert isinstance(fn, Dag)
    if not fn.frozen:
        raise DagDefinitionError(
            f"{what}: {fn!r} is not frozen; build it completely (leave its build_dag() block or "
            "call freeze()) before using it as a node. A graph cannot contain itself."
        )
    if options.get("executor") is not None:
        raise DagDefinitionError(
            f"{what}: executor= cannot run a graph: a graph's run is async and stays on the "
            "event loop; put executor= on the graph's own sync nodes instead"
        )


def _default_name(fn: Callable[..., object]) -> str:
    """A node's default name: the function's qualified name, a sub-graph's own name."""
    name: object = getattr(fn, "name", None) if _is_dag(fn) else None
    return name if isinstance(name, str) else callable_name(fn)


# NodeSpec(*fields) without the keyword handling of its __new__ (the fast path's one record).
_new_spec = cast(
    Callable[[tuple[object, ...]], NodeSpec],
    functools.partial(tuple.__new__, NodeSpec),  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
)

# Generator functions are resources: add_node refuses them (on the checked path, which explains).
_REFUSED_BY_ADD_NODE = CO_GENERATOR | CO_ASYNC_GENERATOR


def _join_body() -> None:
    return None


def _is_node(value: object) -> bool:
    # Deliberately not a TypeGuard: a narrowed `Node[Unknown]` would leak into strict checking.
    return isinstance(value, Node)


_unnamed = itertools.count(1)  # default graph names: dag-1, dag-2, ... (one process)


class Dag(TypedAdders[P], Generic[P]):
    """A graph of nodes over an invoke parameter of type `P`.

    Build it with `add_node`, `add_resource`, `add_immediate_node` and `join` (or in a
    `with build_dag(P) as dag:` block), `freeze()` it, then run it any number of times, also
    concurrently, with `await dag.invoke(params)` (or `await dag(params)`).

    `name` labels the graph in messages, errors and pictures; without one it is called
    ``dag-N``, N counting the unnamed graphs made in this process, so that two graphs are
    never confused in a message. Raises `DagDefinitionError` for a name that is not a
    non-empty `str`.
    """

    def __init__(self, *, name: str | None = None, observers: Iterable[Observer] = ()) -> None:
        if name is None:
            name = f"dag-{next(_unnamed)}"
        elif not isinstance(name, str) or not name:
            raise DagDefinitionError(f"Dag(name={name!r}): the name must be a non-empty str")
        self._name = name
        self._observers = tuple(observers)
        for observer in self._observers:
            if not callable(observer):
                raise DagDefinitionError(
                    f"observers=: {observer!r} is not callable; an observer is a callable "
                    "taking one event"
                )
        self._specs: list[NodeSpec] = []
        self._handles: list[Node[Any]] = []
        self._by_name: dict[str, int] = {}
        self._suffix: dict[str, int] = {}  # default name -> last suffix given (linear build)
        self._plan: Plan | None = None
        self._params: Node[P] = self._append(
            "params", NodeKind.PARAMS, None, (), inject=False, after=(), options=None
        )

    # -- reading ----------------------------------------------------------------------------

    @property
    def observers(self) -> tuple[Observer, ...]:
        """The observers called for every run of this graph (see `dagwire.events`)."""
        return self._observers

    @property
    def name(self) -> str:
        """The graph's name: the `name=` given, or ``dag-N`` (see the class docstring)."""
        return self._name

    @property
    def params(self) -> Node[P]:
        """The invoke parameter as a node (named ``params``): pass it as an input to receive
        the parameter explicitly; `result[dag.params]` is the parameter of that run. One
        handle: `dag.params is dag.params`."""
        return self._params

    @property
    def nodes(self) -> tuple[Node[Any], ...]:
        """Every node in the order added, `dag.params` first (a new tuple on each access)."""
        return tuple(self._handles)

    def node(self, name: str) -> Node[Any]:
        """The node called `name`. Raises `KeyError` if there is none."""
        return self._handles[self._by_name[name]]

    @property
    def frozen(self) -> bool:
        """True once `freeze()` ran: no node can be added, and the graph can be invoked."""
        return self._plan is not None

    def __repr__(self) -> str:
        n = len(self._specs)
        return (
            f"<Dag {self._name!r}: {n} node{'' if n == 1 else 's'}"
            f"{', frozen' if self.frozen else ''}>"
        )

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart (text, newline-ended); works before `freeze()` too.

        Every node by name (the parameter as a stadium, constants as a flag, resources as a
        cylinder, joins as a rhombus); edges carrying a value solid, `after=` and join edges
        dashed. Any name renders as written: labels use Mermaid's entity codes.
        """
        from .render.mermaid import flowchart

        return flowchart(self._specs)

    def to_dot(self) -> str:
        """The graph in Graphviz DOT (text, newline-ended); works before `freeze()` too.

        Same shapes and edge styles as `to_mermaid()`; render with ``dot -Tsvg``.
        """
        from .render.dot import digraph

        return digraph(self._name, self._specs)

    def _inputs_of(self, index: int) -> tuple[object, ...]:
        return tuple(
            a.value if isinstance(a, Const) else self._handles[a] for a in self._specs[index].args
        )

    def _after_of(self, index: int) -> tuple[Node[object], ...]:
        return tuple(self._handles[a] for a in self._specs[index].after)

    def _spec(self, node: object, what: str) -> NodeSpec:
        if not isinstance(node, Node):
            raise DagDefinitionError(f"{what} must be a Node of this graph, got {node!r}")
        if node.dag is not self:
            raise DagDefinitionError(
                f"{what}: node {node.name!r} belongs to {node.dag!r}, not to {self!r}. "
                "Use handles returned by this graph's add_* methods."
            )
        return self._specs[node._index]

    # -- building ---------------------------------------------------------------------------

    def _check_open(self, action: str) -> None:
        if self._plan is not None:
            raise DagDefinitionError(
                f"cannot {action}: {self!r} is frozen. Add every node inside the build_dag() "
                "block (or before freeze()); build a new graph to change it."
            )

    def _unique_name(self, wanted: str | None, default: str) -> str:
        if wanted is not None:
            if not isinstance(wanted, str) or not wanted:
                raise DagDefinitionError(f"name= must be a non-empty str, got {wanted!r}")
            if wanted in self._by_name:
                raise DagDefinitionError(
                    f"a node named {wanted!r} already exists in {self!r}: choose another name"
                )
            return wanted
        by_name = self._by_name
        if default not in by_name:
            return default
        # Later nodes of one function get _1, _2, ...: start after the last suffix given, so
        # that a graph of n nodes of one function is built in O(n), not O(n^2).
        k = self._suffix.get(default, 0) + 1
        name = f"{default}_{k}"
        while name in by_name:
            k += 1
            name = f"{default}_{k}"
        self._suffix[default] = k
        return name

    def _append(
        self,
        name: str,
        kind: NodeKind,
        fn: Callable[..., object] | None,
        args: tuple[int | Const, ...],
        *,
        inject: bool,
        after: tuple[int, ...],
        options: NodeOptions | None,
        is_async: bool = False,
        tags: tuple[str, ...] = (),
    ) -> Node[Any]:
        index = len(self._specs)
        deps = upstream(args, inject, after)
        spec = NodeSpec(index, name, kind, fn, args, inject, after, options, is_async, tags, deps)
        self._specs.append(spec)
        self._by_name[name] = index
        handle: Node[Any] = Node(self, index, name)
        self._handles.append(handle)
        return handle

    def _input_refs(self, inputs: Sequence[object], what: str) -> tuple[int | Const, ...]:
        refs: list[int | Const] = []
        for k, value in enumerate(inputs):
            if _is_node(value):
                refs.append(self._spec(value, f"{what}, input #{k + 1}").index)
            else:
                refs.append(Const(value))
        return tuple(refs)

    def _after_refs(self, after: Node[Any] | Iterable[Node[Any]], what: str) -> tuple[int, ...]:
        if isinstance(after, Node):
            nodes: tuple[object, ...] = (after,)
        elif isinstance(after, Iterable) and not isinstance(after, (str, bytes)):
            nodes = tuple(cast(Iterable[object], after))
        else:
            raise DagDefinitionError(
                f"{what}: after= takes a node or an iterable of nodes, got {after!r}"
            )
        return tuple(self._spec(n, f"{what}, after=").index for n in nodes)

    def _add(
        self,
        kind: NodeKind,
        fn: Callable[..., object],
        inputs: Sequence[object],
        options: Mapping[str, Any],
        limit: int | None = None,
    ) -> Node[Any]:
        # The common case first: a plain function, handles of this graph, no options. Anything
        # else, and every mistake, takes `_add_checked`, which checks (and explains) it all.
        if options or self._plan is not None or kind is NodeKind.MAP:
            return self._add_checked(kind, fn, inputs, options, limit)
        facts = plain_facts(fn, len(inputs))
        if facts is None:
            return self._add_checked(kind, fn, inputs, options)
        name, flags, inject = facts
        call = kind is NodeKind.CALL
        if flags & (_REFUSED_BY_ADD_NODE if call else CO_COROUTINE):  # explained there
            return self._add_checked(kind, fn, inputs, options)
        nodes = cast("Sequence[Node[Any]]", inputs)  # checked: all of them, or _add_mixed
        refs: tuple[int, ...] = tuple(
            [node._index for node in nodes if type(node) is Node and node._dag is self]
        )
        if len(refs) != len(inputs):  # a constant, or another graph's node, among the inputs
            return self._add_mixed(kind, fn, inputs, name, flags, inject)
        # deps: distinct upstream nodes, the params node last when injected
        deps = (*refs, 0) if inject and 0 not in refs else refs
        if len(deps) > 1 and len(set(deps)) < len(deps):  # one node given twice
            deps = tuple(dict.fromkeys(deps))
        by_name = self._by_name
        if name in by_name:
            name = self._unique_name(None, name)
        specs = self._specs
        index = len(specs)
        is_async = call and flags & CO_COROUTINE != 0
        specs.append(_new_spec((index, name, kind, fn, refs, inject, (), None, is_async, (), deps)))
        by_name[name] = index
        handle: Node[Any] = Node(self, index, name)
        self._handles.append(handle)
        return handle

    def _add_mixed(
        self,
        kind: NodeKind,
        fn: Callable[..., object],
        inputs: Sequence[object],
        name: str,
        flags: int,
        inject: bool,
    ) -> Node[Any]:
        """`_add` for a plain function given constants among its inputs (or another graph's
        node, which `_add_checked` explains)."""
        refs: list[int | Const] = []
        for value in inputs:
            if not _is_node(value):
                refs.append(Const(value))
            elif type(value) is Node and value._dag is self:
                refs.append(value._index)
            else:
                return self._add_checked(kind, fn, inputs, {})
        args = tuple(refs)
        return self._append(
            self._unique_name(None, name),
            kind,
            fn,
            args,
            inject=inject,
            after=(),
            options=None,
            is_async=kind is NodeKind.CALL and flags & CO_COROUTINE != 0,
        )

    def _add_checked(
        self,
        kind: NodeKind,
        fn: Callable[..., object],
        inputs: Sequence[object],
        options: Mapping[str, Any],
        limit: int | None = None,
    ) -> Node[Any]:
        verb = _VERBS[kind]
        resource = kind is NodeKind.RESOURCE
        self._check_open(verb)
        if not callable(fn):
            refuse_called(f"{verb}()", fn, f"dag.{verb}({{call}})")
            raise DagDefinitionError(
                f"{verb}() needs a callable as its first argument, got {fn!r}; "
                "constants go in add_immediate_node() or as inputs"
            )
        fname = _default_name(fn)
        what = f"{verb}({fname})"
        shape = resource_kind(fn) if resource else node_kind(fn)
        name: str | None = None
        after: Node[Any] | Iterable[Node[Any]] = ()
        tags: tuple[str, ...] = ()
        node_options: NodeOptions | None = None
        if options:  # most nodes have none: skip parsing them
            valid = _OPTIONS.get(kind, NODE_OPTIONS)
            name, after, tags, node_options = parse_options(what, options, valid)
            if node_options is not None:
                refuse_misfits(what, fn, shape, node_options)
        if kind is NodeKind.MAP:
            node_options = replace(node_options or NodeOptions(), limit=limit)
        if _is_dag(fn):
            _check_sub_graph(fn, what, options)
            if kind is NodeKind.CALL:
                kind = NodeKind.GRAPH  # its run gets the observers of the run it is part of
        refs = self._input_refs(inputs, what)
        inject = injects_param(fn, len(inputs), what=what)
        return self._append(
            self._unique_name(name, fname),
            kind,
            fn,
            refs,
            inject=inject,
            after=self._after_refs(after, what) if after else (),
            options=node_options,
            is_async=not resource and is_async_callable(fn),
            tags=tags,
        )

    def _add_map(
        self,
        fn: Callable[..., object],
        items: object,
        others: Sequence[object],
        limit: int | None,
        options: Mapping[str, Any],
    ) -> Node[Any]:
        """`add_map` (typed in `_overloads`, which documents it)."""
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise DagDefinitionError(f"add_map(limit={limit!r}): must be an int >= 1, or None")
        if _is_dag(fn) and others:
            raise DagDefinitionError(
                f"add_map({fn!r}, ...): a graph takes one parameter, the item; pass no further "
                "inputs, or map over a function that calls the graph"
            )
        inputs: tuple[object, ...] = (items, *others)
        return self._add(NodeKind.MAP, fn, inputs, options, limit=limit)

    def add_immediate_node(self, value: T, *, name: str | None = None) -> Node[T]:
        """A constant node: `value` is its result in every run (the same object, not a copy).

        `name` defaults to ``immediate`` (then ``immediate_1``, ...). Raises
        `DagDefinitionError` if the graph is frozen, `name` is taken, or `value` is a node
        handle (a node's value is its dependents' input, not a constant). A plain value passed
        as an input to `add_node` is a constant as well, without a node of its own.
        """
        self._check_open("add_immediate_node")
        if isinstance(value, Node):
            raise DagDefinitionError(
                f"add_immediate_node({value!r}): a node handle is not a constant value. Pass "
                "the node itself as an input of the nodes that need its value."
            )
        return self._append(
            self._unique_name(name, "immediate"),
            NodeKind.IMMEDIATE,
            None,
            (Const(value),),
            inject=False,
            after=(),
            options=None,
        )

    def join(
        self,
        *nodes: Node[Any],
        name: str | None = None,
        tags: Iterable[str] = (),
        **refused: Never,
    ) -> Node[None]:
        """A barrier: succeeds, with value None, once every node in `nodes` has succeeded.

        Use it as an input or in `after=` to wait for a group of nodes. In continue mode a
        join over a failed node is SKIPPED. `name` defaults to ``join`` (then ``join_1``, ...);
        `tags` are labels (strings) carried into events and pictures, readable as
        `node.tags`. A join runs no code, so it takes no other option: `timeout=`, `retry=`,
        `pre=` and the rest are refused with `DagDefinitionError` (put them on the nodes it
        waits for), as are a node of another graph and a frozen graph.
        """
        self._check_open("join")
        what = "join()" if name is None else f"join(name={name!r})"
        if refused:
            refuse_join_options(what, refused)
        return self._append(
            self._unique_name(name, "join"),
            NodeKind.JOIN,
            _join_body,
            (),
            inject=False,
            after=self._after_refs(nodes, what),
            options=None,
            tags=parse_tags(what, tags) if tags else (),
        )

    def freeze(self) -> None:
        """Validate and compile the graph; afterwards it is immutable and can be invoked.

        Idempotent. `build_dag` calls it when its `with` block exits without an exception.
        Time and memory are linear in nodes plus edges.
        """
        if self._plan is None:
            self._plan = compile_plan(tuple(self._specs))

    # -- running ----------------------------------------------------------------------------

    @property
    def plan(self) -> Plan:
        """The compiled plan (internal to the run; its shape is not part of the API).

        Raises `DagDefinitionError` if the graph is not frozen."""
        if self._plan is None:
            raise DagDefinitionError(
                f"{self!r} is not frozen: call dag.freeze() (or build it in a "
                "`with build_dag(...) as dag:` block, which freezes it on exit) before invoking"
            )
        return self._plan

    def _indices(self, nodes: Iterable[Node[Any]], what: str) -> list[int]:
        return [self._spec(n, what).index for n in nodes]

    async def invoke(
        self,
        params: P,
        *,
        timeout: float | None = None,
        on_error: OnError = "raise",
        max_concurrency: int | None = None,
        targets: Iterable[Node[Any]] | None = None,
        overrides: Mapping[Node[Any], object] | None = None,
        observers: Iterable[Observer] = (),
        timeline: bool = False,
        resume_from: ExecutionResult[P] | None = None,
    ) -> ExecutionResult[P]:
        """Run the graph once with `params` and return its `ExecutionResult`.

        Every node starts as soon as its inputs and `after=` nodes have succeeded. Any number
        of invokes of one frozen graph may run at once; they share nothing per run. `params`
        is not type-checked at run time (only by the type checkers, against `P`).

        Arguments:
            params: the invoke parameter, passed to nodes that take it and to hooks.
            timeout: float | None = None
                How long, in seconds, the node bodies of the whole run may take. When it
                fires, running nodes are cancelled, cleanup still runs (each cleanup bounded by
                its own `cleanup_timeout=`), then `TimeoutError` is raised (its `__cause__` is
                the run's `DagError` if nodes had failed). Must be > 0.
            on_error: "raise" | "continue" = "raise"
                "raise" (fail-fast): the first failure cancels the running nodes, no new node
                starts, cleanup runs, and `DagError` is raised. "continue": nodes that do not
                depend on a failure keep running, the dependents of failed nodes are SKIPPED,
                and the result is returned (`result.ok` is False; `raise_for_errors()` raises).
            max_concurrency: int | None = None
                At most this many node bodies of this run at once (joins not counted). >= 1.
            targets: Iterable[Node] | None = None
                Run only these nodes and what they need; the others stay PENDING.
            overrides: Mapping[Node, object] | None = None
                Take these nodes as SUCCEEDED with these values, without running them; nothing
                upstream of them runs unless something else needs it (to test one node alone).
            observers: Iterable[Callable[[Event], object]] = ()
                Called with each `dagwire.events.Event` of this run, after the graph's own
                observers.
            timeline: bool = False
                Record per-node start/end times and intervals for `result.timeline()` and the
                run pictures (two clock reads per node, which plain runs do not pay).
            resume_from: ExecutionResult[P] | None = None
                A result of this graph: every node that SUCCEEDED there is taken as done with
                its value, except resources and nodes with cleanups (`post=`), which run again
                when something that runs needs them.

        Returns:
            `ExecutionResult[P]`: values, statuses and failures (those covered by
            `fallback=` included) of the run.

        Raises:
            DagError: fail-fast mode, at least one failure not covered by `fallback=`: every
                node and cleanup failure, each with a note naming its node and phase.
            TimeoutError: `timeout=` fired (after cleanup).
            asyncio.CancelledError: the caller was cancelled (after cleanup).
            DagDefinitionError: the graph is not frozen, an option value is out of range, or a
                node in `targets=`/`overrides=`/`resume_from=` belongs to another graph.
            A `BaseException` that is not an `Exception` (`KeyboardInterrupt`, `SystemExit`,
            ...) raised by a node stops the run and is re-raised unchanged after cleanup.
        """
        plan = self._plan
        if (  # every option at its default: nothing to check, the cheapest path
            plan is not None
            and timeout is None
            and on_error == "raise"
            and max_concurrency is None
            and targets is None
            and not overrides
            and not observers
            and not timeline
            and resume_from is None
        ):
            return await run_plan(self, plan, params)
        return await self._invoke(
            params,
            timeout=timeout,
            on_error=on_error,
            max_concurrency=max_concurrency,
            targets=targets,
            overrides=overrides,
            observers=observers,
            timeline=timeline,
            resume_from=resume_from,
        )

    async def _invoke(
        self,
        params: P,
        *,
        timeout: float | None = None,
        on_error: OnError = "raise",
        max_concurrency: int | None = None,
        targets: Iterable[Node[Any]] | None = None,
        overrides: Mapping[Node[Any], object] | None = None,
        observers: Iterable[Observer] = (),
        timeline: bool = False,
        resume_from: ExecutionResult[P] | None = None,
        feed: Feed | None = None,
    ) -> ExecutionResult[P]:
        """`invoke` with its options checked; `feed` receives each node's end (`stream()`)."""
        plan = self.plan
        if on_error not in ("raise", "continue"):
            raise DagDefinitionError(f"on_error must be 'raise' or 'continue', got {on_error!r}")
        if timeout is not None and not timeout > 0:
            raise DagDefinitionError(f"invoke(timeout={timeout!r}): must be a positive number")
        if max_concurrency is not None and (
            not isinstance(max_concurrency, int) or max_concurrency < 1
        ):
            raise DagDefinitionError(
                f"invoke(max_concurrency={max_concurrency!r}): must be an int >= 1"
            )
        observers = tuple(observers)
        for observer in observers:
            if not callable(observer):
                raise DagDefinitionError(
                    f"invoke(observers=): {observer!r} is not callable; an observer is a "
                    "callable taking one event"
                )
        target_ix = None if targets is None else self._indices(targets, "invoke(targets=)")
        given: dict[int, object] = {}
        if resume_from is not None:
            given = self._resumable(resume_from)
        resumed = set(given)
        if overrides:
            for n, v in overrides.items():
                i = self._spec(n, "invoke(overrides=)").index
                given[i] = v
                resumed.discard(i)  # an override wins over the previous result
        scope = None if target_ix is None and not given else plan.scope(target_ix, given)
        return await run_plan(
            self,
            plan,
            params,
            scope=scope,
            given=given,
            resumed=sorted(resumed),
            timeout=timeout,
            fail_fast=on_error == "raise",
            max_concurrency=max_concurrency,
            observers=observers,
            timeline=timeline,
            feed=feed,
        )

    def _resumable(self, previous: ExecutionResult[Any]) -> dict[int, object]:
        """The nodes `previous` lets a run take as done, with their values."""
        if not isinstance(previous, ExecutionResult) or previous.dag is not self:
            raise DagDefinitionError(
                f"invoke(resume_from=): {previous!r} is not a result of {self!r}; resume "
                "from a result this graph returned"
            )
        taken: dict[int, object] = {}
        for spec, handle in zip(self._specs, self._handles, strict=True):
            if spec.kind in (NodeKind.PARAMS, NodeKind.IMMEDIATE, NodeKind.RESOURCE):
                continue  # params and immediates are given anyway; resources run again
            options = spec.options
            if options is not None and options.post is not None:
                continue  # a node with a cleanup runs again with it
            if previous.status(handle) is not NodeStatus.SUCCEEDED:
                continue
            value = previous[handle]
            if options is not None and value is options.fallback:
                # A failure or a Skip its fallback covered: the real value is still missing.
                # (A body that returned that very object runs again too: harmless.)
                continue
            taken[spec.index] = value
        return taken

    def stream(
        self,
        params: P,
        *,
        timeout: float | None = None,
        on_error: OnError = "raise",
        max_concurrency: int | None = None,
        targets: Iterable[Node[Any]] | None = None,
        overrides: Mapping[Node[Any], object] | None = None,
        observers: Iterable[Observer] = (),
        timeline: bool = False,
        resume_from: ExecutionResult[P] | None = None,
    ) -> AsyncGenerator[NodeCompletion, None]:
        """Run the graph once and yield a `NodeCompletion` for each node as it ends, in the
        order nodes end (sdax's phase-by-phase runner, without phases).

        Takes the options of `invoke`. The run goes on in a task of its own while you handle
        a completion. Consuming the stream to its end also waits for the run's cleanup, then
        raises what `invoke` would raise (a failed fail-fast run's `DagError`). Closing it
        early (`aclose()`, the end of an ``async with contextlib.aclosing(dag.stream(...))``
        block, or cancelling the consumer while it waits for a completion) cancels the rest of
        the run, waits for its cleanup and leaves no task behind. A bare `break` out of
        `async for` does not close an async generator: the run goes on until the generator is
        closed or garbage-collected, so use `aclosing` when you may leave early.
        """
        return stream_run(
            self,
            params,
            {
                "timeout": timeout,
                "on_error": on_error,
                "max_concurrency": max_concurrency,
                "targets": targets,
                "overrides": overrides,
                "observers": observers,
                "timeline": timeline,
                "resume_from": resume_from,
            },
        )

    async def invoke_many(
        self,
        params: Iterable[P],
        *,
        concurrency: int = 8,
        on_error: OnError = "raise",
        progress: Progress = False,
        **invoke_options: Unpack[InvokeOptions],
    ) -> list[ExecutionResult[P]]:
        """Run the graph once per element of `params`, at most `concurrency` runs at a time,
        and return their results in the order of `params`.

        The iterable is consumed lazily, so memory stays bounded for an iterable of any length
        (beyond the returned list). `on_error="raise"`: the first run that raises stops the
        batch (runs in flight are cancelled and clean up) and its exception is raised, with a
        note giving the element's index; `"continue"`: every element gets its result, failed
        runs included. `progress`: False, True for a tqdm bar (``pip install
        dagwire[progress]``; silent when stderr is not a terminal), or a callable
        ``(done, total)``. Other keyword options are those of `invoke`, for every run.
        """
        return await invoke_many(
            self,
            params,
            concurrency=concurrency,
            on_error=on_error,
            progress=progress,
            **invoke_options,
        )

    async def __call__(self, params: P) -> ExecutionResult[P]:
        """`await dag(params)` is `await dag.invoke(params)`: a Dag can be a node of another."""
        return await self.invoke(params)


# The typed overloads of add_node/add_resource are generated (tools/gen_overloads.py); their
# shared implementations get the texts a user reads with help(). See _docs.py.
for _method, _doc in (
    ("add_node", _docs.ADD_NODE),
    ("add_resource", _docs.ADD_RESOURCE),
    ("add_map", _docs.ADD_MAP),
):
    vars(TypedAdders)[_method].__doc__ = _doc


class _Building(Generic[P]):
    """The context manager `build_dag` returns: yields the graph, freezes it on a clean exit.

    An exception raised inside the block propagates unchanged and leaves the graph unfrozen.
    """

    __slots__ = ("_dag",)

    def __init__(self, dag: Dag[P]) -> None:
        self._dag = dag

    def __enter__(self) -> Dag[P]:
        return self._dag

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:  # an error inside the block wins; do not mask it with ours
            self._dag.freeze()


@overload
def build_dag(
    ParamType: None = None, *, name: str | None = None, observers: Iterable[Observer] = ()
) -> _Building[None]: ...
@overload
def build_dag(
    ParamType: type[P], *, name: str | None = None, observers: Iterable[Observer] = ()
) -> _Building[P]: ...
def build_dag(
    ParamType: type[Any] | None = None,
    *,
    name: str | None = None,
    observers: Iterable[Observer] = (),
) -> _Building[Any]:
    """Build a graph in a `with` block; leaving the block freezes (validates, compiles) it.

        with build_dag(Params, name="checkout") as dag:
            user = dag.add_node(fetch_user, dag.params)
        result = await dag.invoke(Params(...))

    `ParamType` (default None: the parameter is None) only types the graph as
    `Dag[ParamType]`; the parameter is not checked at run time. `name` labels the graph in
    messages (default ``dag-N``, see `Dag`). `observers` are called for the events of every
    run of the graph (see `dagwire.events`). An exception inside the block propagates
    unchanged and the graph stays unfrozen.
    """
    return _Building(Dag(name=name, observers=observers))
