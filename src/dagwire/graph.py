"""Building a graph: `build_dag`, `Dag` and the build-time checks.

Data flows one way: `Dag` collects frozen `NodeSpec`s; `freeze()` compiles them into an immutable
`Plan`; each `invoke` runs the plan with per-run state only (see `scheduler`).
"""

# pyright: reportPrivateUsage=false
# (package-internal access between the graph, its handles, results and the run)

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Generic, Literal, TypeVar, Unpack, overload

from ._callables import callable_name, injects_param, is_async_callable
from ._overloads import TypedAdders
from .batch import InvokeOptions, Progress, invoke_many
from .definition import Const, NodeKind, NodeOptions, NodeSpec
from .errors import DagDefinitionError
from .node import Node
from .options import parse_options
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


def _join_body() -> None:
    return None


def _is_node(value: object) -> bool:
    # Deliberately not a TypeGuard: a narrowed `Node[Unknown]` would leak into strict checking.
    return isinstance(value, Node)


class Dag(TypedAdders[P], Generic[P]):
    """A graph of nodes. Build it, `freeze()` it (or let `build_dag` do it), then invoke it."""

    def __init__(self, *, name: str | None = None, observers: Iterable[Observer] = ()) -> None:
        self._name = name or "dag"
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
        self._suffix: dict[str, int] = {}  # default name -> last suffix tried (linear build)
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
        return self._name

    @property
    def params(self) -> Node[P]:
        """The invoke parameter as a node: `result[dag.params]` is the parameter."""
        return self._params

    @property
    def nodes(self) -> tuple[Node[Any], ...]:
        return tuple(self._handles)

    def node(self, name: str) -> Node[Any]:
        """The node called `name`; `KeyError` if there is none."""
        return self._handles[self._by_name[name]]

    @property
    def frozen(self) -> bool:
        return self._plan is not None

    def __repr__(self) -> str:
        return f"<Dag {self._name!r}: {len(self._specs)} nodes{', frozen' if self.frozen else ''}>"

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
        name, k = default, self._suffix.get(default, 0)
        if k:
            name = f"{default}_{k}"
        while name in self._by_name:
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
        spec = NodeSpec(index, name, kind, fn, args, inject, after, options, is_async, tags)
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
        nodes = (after,) if isinstance(after, Node) else tuple(after)
        return tuple(self._spec(n, f"{what}, after=").index for n in nodes)

    def _add(
        self,
        kind: NodeKind,
        fn: Callable[..., object],
        inputs: Sequence[object],
        options: Mapping[str, Any],
        limit: int | None = None,
    ) -> Node[Any]:
        verb = _VERBS[kind]
        self._check_open(verb)
        if not callable(fn):
            raise DagDefinitionError(
                f"{verb}() needs a callable as its first argument, got {fn!r}; "
                "constants go in add_immediate_node() or as inputs"
            )
        if kind is not NodeKind.RESOURCE and inspect.isasyncgenfunction(fn):
            raise DagDefinitionError(
                f"{callable_name(fn)} is an async generator function: a generator that yields a "
                "value and then cleans up is a resource. Use dag.add_resource() instead."
            )
        what = f"{verb}({callable_name(fn)})"
        try:
            parsed = parse_options(what, **options)
        except TypeError as exc:
            raise DagDefinitionError(f"{what}: {exc}") from None
        name, after, tags, node_options = parsed
        if kind is NodeKind.RESOURCE and options.get("cache") is not None:
            raise DagDefinitionError(
                f"{what}: cache= applies to add_node only: a resource is set up and cleaned up "
                "by each run; cache the node that computes from it instead"
            )
        if kind is not NodeKind.RESOURCE and options.get("release", "end") != "end":
            raise DagDefinitionError(
                f"{what}: release= applies to resources only; use dag.add_resource() for a "
                "value that must be released"
            )
        if kind is NodeKind.MAP:
            if options.get("cache") is not None:
                raise DagDefinitionError(
                    f"{what}: cache= is not supported on add_map; map over a function whose "
                    "own node is cached, or cache the items' source"
                )
            node_options = replace(node_options or NodeOptions(), limit=limit)
        if _is_dag(fn):
            _check_sub_graph(fn, what, options)
            if kind is NodeKind.CALL:
                kind = NodeKind.GRAPH  # its run gets the observers of the run it is part of
        refs = self._input_refs(inputs, what)
        inject = injects_param(fn, len(inputs), what=what)
        return self._append(
            self._unique_name(name, _default_name(fn)),
            kind,
            fn,
            refs,
            inject=inject,
            after=self._after_refs(after, what),
            options=node_options,
            is_async=kind is not NodeKind.RESOURCE and is_async_callable(fn),
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
        """A constant node: its value is `value` in every run."""
        self._check_open("add_immediate_node")
        return self._append(
            self._unique_name(name, "immediate"),
            NodeKind.IMMEDIATE,
            None,
            (Const(value),),
            inject=False,
            after=(),
            options=None,
        )

    def join(self, *nodes: Node[Any], name: str | None = None) -> Node[None]:
        """A barrier: succeeds (with value None) once every node in `nodes` has succeeded."""
        self._check_open("join")
        return self._append(
            self._unique_name(name, "join"),
            NodeKind.JOIN,
            _join_body,
            (),
            inject=False,
            after=self._after_refs(nodes, "join()"),
            options=None,
        )

    def freeze(self) -> None:
        """Validate and compile the graph. After this it is immutable and can be invoked."""
        if self._plan is None:
            self._plan = compile_plan(tuple(self._specs))

    # -- running ----------------------------------------------------------------------------

    @property
    def plan(self) -> Plan:
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

        Every node starts as soon as its inputs and `after=` nodes have succeeded. Options:

        - `timeout` (seconds, default None): bounds the node bodies of the whole run; on expiry
          running nodes are cancelled, cleanup still runs, then `TimeoutError` is raised (its
          `__cause__` is the run's `DagError` if nodes had failed).
        - `on_error` (default "raise"): "raise" fails fast (the first failure cancels the
          running nodes, no node starts, cleanup runs, `DagError` is raised); "continue" runs
          every node that does not depend on a failure, marks the dependents of failed nodes
          SKIPPED and returns a result whose `ok` is False.
        - `max_concurrency` (int >= 1, default None): at most this many node bodies of this run
          at once.
        - `targets` (nodes of this graph, default None: every node): run only what these need.
          Nodes outside the run stay PENDING.
        - `overrides` ({node: value}, default None): take those nodes as done with that value;
          nothing upstream of them runs unless something else needs it.
        - `observers` (callables taking one `dagwire.events.Event`, default none): called for
          this run's events, after the graph's own observers.
        - `timeline` (default False): record per-node start/end times and intervals, read by
          `result.timeline()` and the run pictures (two clock reads per node).
        - `resume_from` (an `ExecutionResult` of this graph, default None): take every node that
          SUCCEEDED there as done with its value, except resources and nodes with cleanups
          (`post=`), which run again when something that runs needs them.

        Raises `DagDefinitionError` for a graph that is not frozen, bad option values and nodes
        of another graph; `DagError` (fail-fast), `TimeoutError`, or `CancelledError` (after
        cleanup) as described above; a `KeyboardInterrupt`, `SystemExit` or other
        `BaseException` raised by a node, unchanged, after cleanup. The parameter's type is not
        checked at run time.
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
        recovered = {f.node for f in previous.errors if f.recovered}  # their value: a fallback
        taken: dict[int, object] = {}
        for spec, handle in zip(self._specs, self._handles, strict=True):
            if spec.kind in (NodeKind.PARAMS, NodeKind.IMMEDIATE, NodeKind.RESOURCE):
                continue  # params and immediates are given anyway; resources run again
            if spec.options is not None and spec.options.post is not None:
                continue  # a node with a cleanup runs again with it
            if previous.status(handle) is NodeStatus.SUCCEEDED and spec.name not in recovered:
                taken[spec.index] = previous[handle]
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
        raises what `invoke` would raise (a failed fail-fast run's `DagError`). Leaving early
        (`break`, `aclose()`, cancellation) cancels the rest of the run, waits for its cleanup
        and leaves no task behind.
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


class _Building(Generic[P]):
    """The context manager `build_dag` returns: yields the graph, freezes it on a clean exit."""

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

    `ParamType` only types the graph as `Dag[ParamType]`; it is not checked at run time.
    `observers` are called for the events of every run of the graph (see `dagwire.events`).
    """
    return _Building(Dag(name=name, observers=observers))
