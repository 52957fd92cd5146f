"""Runners: each turns a :class:`~shapes.Graph` into an ``invoke() -> sink value`` coroutine
function. Building (``prepare``) is never timed; ``invoke`` is.

* ``dagwire``              -- the library under test.
* ``floor``                -- the fastest correct hand-written asyncio for a general DAG we could
  write: continuation scheduling (a finishing node's coroutine goes on with one newly ready
  dependent, tasks only for the others, the invoking coroutine runs one root inline).
* ``floor_eager``          -- the same, but extra tasks are eager tasks (3.12+), nesting bounded.
* ``floor_task_per_node``  -- the plain version: one task per node in a ``TaskGroup``, each
  awaiting its input tasks.
* ``gather_levels``        -- the naive code: ``await asyncio.gather(...)`` per topological level.
* ``sdax``                 -- peer library: one task per node, the work in ``pre_execute``,
  ordered by ``depends_on``; values travel through the shared per-run context (a list).
* ``async_dag``            -- peer library (3.12+ only): ``add_node(f, *inputs)``.
* ``async_dag_eager``      -- async-dag with the loop's task factory set to
  ``asyncio.eager_task_factory`` during its samples (3.12+ only).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from shapes import Graph, NodeFn

Invoke = Callable[[], Awaitable[Any]]

#: max nesting of eager task starts in ``floor_eager`` (each level costs a few Python frames)
MAX_EAGER_NESTING = 32

#: options put on the option nodes of the options comparison
OPTION_TIMEOUT = 10.0
OPTION_RETRY = 2


class Skip(Exception):
    """Raised by ``prepare`` when a runner cannot run a graph; the message says why."""


@dataclass(frozen=True)
class Runner:
    name: str
    prepare: Callable[[Graph], Invoke]
    #: loop task factory to install around this runner's runs (restored afterwards)
    task_factory: Any = None


# --------------------------------------------------------------------------------------------
# helpers shared by the hand-written runners


def _arg_spec(ins: tuple[int, ...]) -> tuple[int, Any]:
    """(kind, arg): kind 0 = no input; 1 = one input, arg is its index; 2 = several inputs,
    arg is an ``itemgetter`` returning the tuple of input values."""
    if not ins:
        return 0, None
    if len(ins) == 1:
        return 1, ins[0]
    return 2, itemgetter(*ins)


def _dependents(g: Graph) -> list[list[int]]:
    deps: list[list[int]] = [[] for _ in range(g.n)]
    for i, ins in enumerate(g.inputs):
        for j in ins:
            deps[j].append(i)
    return deps


async def _settle(tasks: list[asyncio.Task[Any]]) -> None:
    """Wait until every task in ``tasks`` (which may grow meanwhile) has finished, even if we are
    cancelled again while waiting: nothing a run started may outlive it."""
    while pending := [t for t in tasks if not t.done()]:
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError:
            continue


# --------------------------------------------------------------------------------------------
# the floor: continuation scheduling
#
# Semantics are those dagwire promises for the default on_error="raise": a node starts when its
# last input finishes; the first failure (or a cancellation of the caller) cancels every running
# node, nothing new starts, every task has finished before invoke returns or raises; the first
# failure is raised. Of the correct variants we measured, these were the fastest:
#
# * a finishing node's coroutine continues with one newly ready dependent (a chain is one loop);
# * the other roots get tasks, the first root runs inline in the caller's task;
# * the end of the run is detected by counting *sinks* (a node without dependents is the last
#   of its branch; when every sink is done every node is), not every node, and signalled with one
#   future; waiting for the tasks one by one was no faster and cannot fail fast;
# * tasks are made with ``asyncio.Task(coro, loop=loop)``: ``loop.create_task`` adds a Python
#   frame (about 0.3 µs per task) and would make the eager floor's fallback eager too, under an
#   eager loop task factory.


def _compile(g: Graph) -> tuple[Any, list[int], int, tuple[int, ...], int]:
    """(per-node (fn, kind, arg, dependents), in-degrees, first root, other roots, sinks)."""
    deps = _dependents(g)
    specs: tuple[tuple[NodeFn, int, Any, tuple[int, ...]], ...] = tuple(
        (fn, *_arg_spec(ins), tuple(deps[i]))
        for i, (fn, ins) in enumerate(zip(g.funcs, g.inputs, strict=True))
    )
    indeg = [len(ins) for ins in g.inputs]
    roots = [i for i, ins in enumerate(g.inputs) if not ins]
    sinks = sum(1 for d in deps if not d)
    return specs, indeg, roots[0], tuple(roots[1:]), sinks


def _prepare_floor(g: Graph) -> Invoke:
    specs, indeg, root0, other_roots, nsinks = _compile(g)
    n, sink = g.n, g.sink
    Task = asyncio.Task

    async def invoke() -> Any:
        loop = asyncio.get_running_loop()
        vals: list[Any] = [None] * n
        pending = indeg.copy()
        tasks: list[asyncio.Task[None]] = []
        sinks_left = nsinks
        waiter: asyncio.Future[None] | None = None
        error: BaseException | None = None
        me = asyncio.current_task()
        assert me is not None
        inline = 0  # 1: our task runs the inline root's chain; 2: and abort cancelled it

        async def drive(i: int) -> None:
            # run node i, then go on with one dependent it made ready; tasks for the others
            nonlocal sinks_left, error, inline
            try:
                while True:
                    fn, kind, arg, dependents = specs[i]
                    if kind == 1:
                        v = await fn(vals[arg])
                    elif kind == 0:
                        v = await fn()
                    else:
                        v = await fn(*arg(vals))
                    vals[i] = v
                    nxt = -1
                    for d in dependents:
                        left = pending[d] - 1
                        pending[d] = left
                        if not left:
                            if nxt < 0:
                                nxt = d
                            else:
                                tasks.append(Task(drive(d), loop=loop))
                    if nxt < 0:
                        if not dependents:
                            sinks_left -= 1
                            if not sinks_left and waiter is not None:
                                waiter.set_result(None)
                        return
                    i = nxt
            except BaseException as exc:  # a failure, or cancelled by abort / by our caller
                if error is None:  # abort: cancel every running node, start none
                    error = exc
                    current = asyncio.current_task()
                    for t in tasks:
                        if t is not current:
                            t.cancel()
                    if inline == 1 and current is not me:  # stop the inline root's node too
                        inline = 2
                        me.cancel()
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)

        for r in other_roots:
            tasks.append(Task(drive(r), loop=loop))
        base = me.cancelling()
        inline = 1
        await drive(root0)  # never raises: failures land in ``error``
        if inline == 2:
            me.uncancel()  # take back the cancel abort sent to stop the inline node
        inline = 0
        if me.cancelling() > base and not isinstance(error, asyncio.CancelledError):
            error = asyncio.CancelledError()  # our caller cancelled us too: that wins
        if sinks_left and error is None:
            waiter = loop.create_future()
            try:
                await waiter
            except asyncio.CancelledError as exc:  # our caller cancelled us
                if error is None:
                    error = exc
                    for t in tasks:
                        t.cancel()
        if error is not None:
            await _settle(tasks)
            raise error
        return vals[sink]

    return invoke


def _prepare_floor_eager(g: Graph) -> Invoke:
    """Like the floor, but extra tasks are eager tasks: they run synchronously until their first
    real suspension. Eager starts nest (a node started eagerly may start others eagerly), so the
    nesting is bounded by MAX_EAGER_NESTING; beyond it, ordinary (lazy) tasks are created."""
    if sys.version_info < (3, 12):
        raise Skip("needs Python 3.12+ (eager tasks)")
    specs, indeg, root0, other_roots, nsinks = _compile(g)
    n, sink = g.n, g.sink
    Task: Any = asyncio.Task

    async def invoke() -> Any:
        loop = asyncio.get_running_loop()
        vals: list[Any] = [None] * n
        pending = indeg.copy()
        tasks: list[asyncio.Task[None]] = []
        sinks_left = nsinks
        waiter: asyncio.Future[None] | None = None
        error: BaseException | None = None
        nesting = 0
        me = asyncio.current_task()
        assert me is not None
        inline = 0  # 1: our task runs the inline root's chain; 2: and abort cancelled it

        def cancel_running() -> None:
            # Called soon after abort, when no eager start is on the stack: cancelling a task
            # that is running (ours included) would only deliver the cancel at its next await.
            nonlocal inline
            for t in tasks:
                t.cancel()
            if inline == 1:
                inline = 2
                me.cancel()

        def spawn(i: int) -> None:
            nonlocal nesting
            if error is not None:  # a node started eagerly below us failed: start nothing
                return
            if nesting >= MAX_EAGER_NESTING:
                tasks.append(Task(drive(i), loop=loop))
                return
            nesting += 1
            t = Task(drive(i), loop=loop, eager_start=True)  # drive() never raises
            nesting -= 1
            if not t.done():
                tasks.append(t)

        async def drive(i: int) -> None:
            nonlocal sinks_left, error
            try:
                while True:
                    fn, kind, arg, dependents = specs[i]
                    if kind == 1:
                        v = await fn(vals[arg])
                    elif kind == 0:
                        v = await fn()
                    else:
                        v = await fn(*arg(vals))
                    vals[i] = v
                    nxt = -1
                    for d in dependents:
                        left = pending[d] - 1
                        pending[d] = left
                        if not left:
                            if nxt < 0:
                                nxt = d
                            else:
                                spawn(d)
                    if nxt < 0:
                        if not dependents:
                            sinks_left -= 1
                            if not sinks_left and waiter is not None:
                                waiter.set_result(None)
                        return
                    if error is not None:
                        return
                    i = nxt
            except BaseException as exc:
                if error is None:  # abort: start nothing more, cancel every running node
                    error = exc
                    loop.call_soon(cancel_running)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)

        for r in other_roots:
            spawn(r)
        base = me.cancelling()
        inline = 1
        await drive(root0)
        if inline == 2:
            me.uncancel()
        inline = 0
        if me.cancelling() > base and not isinstance(error, asyncio.CancelledError):
            error = asyncio.CancelledError()
        if sinks_left and error is None:
            waiter = loop.create_future()
            try:
                await waiter
            except asyncio.CancelledError as exc:
                if error is None:
                    error = exc
                    for t in tasks:
                        t.cancel()
        if error is not None:
            await _settle(tasks)
            raise error
        return vals[sink]

    return invoke


def _prepare_floor_task_per_node(g: Graph) -> Invoke:
    specs = tuple((fn, ins) for fn, ins in zip(g.funcs, g.inputs, strict=True))
    sink = g.sink

    async def node(fn: NodeFn, ins: tuple[int, ...], tasks: list[asyncio.Task[Any]]) -> Any:
        if not ins:
            return await fn()
        if len(ins) == 1:
            return await fn(await tasks[ins[0]])
        return await fn(*[await tasks[j] for j in ins])

    async def invoke() -> Any:
        tasks: list[asyncio.Task[Any]] = []
        async with asyncio.TaskGroup() as tg:
            for fn, ins in specs:
                tasks.append(tg.create_task(node(fn, ins, tasks)))
        return tasks[sink].result()

    return invoke


def _prepare_gather_levels(g: Graph) -> Invoke:
    levels = [[(i, g.funcs[i], g.inputs[i]) for i in level] for level in g.levels()]
    n, sink = g.n, g.sink

    async def invoke() -> Any:
        vals: list[Any] = [None] * n
        for level in levels:
            results = await asyncio.gather(*[fn(*[vals[j] for j in ins]) for _, fn, ins in level])
            for (i, _, _), v in zip(level, results, strict=True):
                vals[i] = v
        return vals[sink]

    return invoke


# --------------------------------------------------------------------------------------------
# peers


def _prepare_sdax(g: Graph) -> Invoke:
    from sdax import AsyncDagTaskProcessor, AsyncTask, task_func

    def make_pre(i: int, fn: NodeFn, ins: tuple[int, ...]) -> Callable[[list[Any]], Any]:
        kind, arg = _arg_spec(ins)
        if kind == 0:

            async def pre0(ctx: list[Any]) -> None:
                ctx[i] = await fn()

            return pre0
        if kind == 1:

            async def pre1(ctx: list[Any]) -> None:
                ctx[i] = await fn(ctx[arg])

            return pre1

        async def pre2(ctx: list[Any]) -> None:
            ctx[i] = await fn(*arg(ctx))

        return pre2

    builder: Any = AsyncDagTaskProcessor.builder()
    for i, (fn, ins) in enumerate(zip(g.funcs, g.inputs, strict=True)):
        builder.add_task(
            AsyncTask(name=i, pre_execute=task_func(make_pre(i, fn, ins))), depends_on=ins
        )
    processor = builder.build()
    n, sink = g.n, g.sink

    async def invoke() -> Any:
        ctx: list[Any] = [None] * n
        await processor.process_tasks(ctx)
        return ctx[sink]

    return invoke


def _async_dag_available() -> str | None:
    if sys.version_info < (3, 12):
        return "async-dag requires Python 3.12+"
    try:
        import async_dag  # noqa: F401
    except ImportError as e:
        return f"async-dag not installed ({e})"
    return None


def _prepare_async_dag(g: Graph) -> Invoke:
    reason = _async_dag_available()
    if reason:
        raise Skip(reason)
    import async_dag

    nodes: list[Any] = []
    with async_dag.build_dag() as tm:
        for fn, ins in zip(g.funcs, g.inputs, strict=True):
            nodes.append(tm.add_node(fn, *[nodes[j] for j in ins]))
    sink = nodes[g.sink]

    async def invoke() -> Any:
        return sink.extract_result(await tm.invoke(None))

    return invoke


# --------------------------------------------------------------------------------------------
# dagwire


def dagwire_status() -> str | None:
    """None if dagwire is importable and has ``build_dag``, else the reason it is not."""
    try:
        import dagwire
    except ImportError as e:
        return f"dagwire not importable ({e})"
    if not hasattr(dagwire, "build_dag"):
        return "dagwire has no build_dag yet"
    return None


def build_dagwire(g: Graph) -> tuple[Any, Any]:
    """Build and freeze ``g`` as a dagwire graph; return (dag, sink handle)."""
    from dagwire import build_dag

    opts = g.option_nodes
    nodes: list[Any] = []
    with build_dag() as dag:
        for i, (fn, ins) in enumerate(zip(g.funcs, g.inputs, strict=True)):
            args = [nodes[j] for j in ins]
            if i in opts:
                try:
                    node = dag.add_node(fn, *args, timeout=OPTION_TIMEOUT, retry=OPTION_RETRY)
                except (TypeError, NotImplementedError) as e:
                    raise Skip(
                        f"dagwire options not supported yet ({type(e).__name__}: {e})"
                    ) from e
            else:
                node = dag.add_node(fn, *args)
            nodes.append(node)
    return dag, nodes[-1]


def _prepare_dagwire(g: Graph) -> Invoke:
    reason = dagwire_status()
    if reason:
        raise Skip(reason)
    dag, sink = build_dagwire(g)

    async def invoke() -> Any:
        return (await dag.invoke(None))[sink]

    return invoke


# --------------------------------------------------------------------------------------------


def all_runners() -> list[Runner]:
    """Every runner, the reference floor first. Unavailable ones skip themselves in ``prepare``."""

    def async_dag_eager(g: Graph) -> Invoke:
        return _prepare_async_dag(g)

    return [
        Runner("floor", _prepare_floor),
        Runner("floor_eager", _prepare_floor_eager),
        Runner("floor_task_per_node", _prepare_floor_task_per_node),
        Runner("dagwire", _prepare_dagwire),
        Runner("sdax", _prepare_sdax),
        Runner("async_dag", _prepare_async_dag),
        Runner(
            "async_dag_eager",
            async_dag_eager,
            task_factory=getattr(asyncio, "eager_task_factory", None),
        ),
        Runner("gather_levels", _prepare_gather_levels),
    ]


FLOOR = "floor"
EAGER_FLOOR = "floor_eager"
