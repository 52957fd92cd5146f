"""The floor of ``runners.py`` with per-run state: for hand-written code whose nodes need
something of their run (a list of ``post`` hooks, an ``AsyncExitStack``, the run's span).

The scheduling is exactly that of ``runners._prepare_floor`` / ``_prepare_floor_eager`` (a
finishing node's coroutine continues with one newly ready dependent, tasks only for the
others, the first root inline, the end detected by counting sinks, fail-fast). Two additions:

* ``begin()`` makes the run's state before the first node starts, and nodes listed in
  ``stateful`` are called with it as their first argument: ``fn(state, *inputs)``. The other
  nodes are called exactly as on the floor (``fn(*inputs)``), with the same branch order, so
  a graph where only two nodes are stateful pays nothing for the others.
* ``end(state, error)`` runs once every node has finished (``error``: the run's failure, or
  None), before ``invoke`` returns or raises: the cleanup phase (posts in reverse, unwinding an
  exit stack, ending the run's span). What it raises is raised.

The state travels as an argument, not through a context variable, so the floor pays no lookup
per node for it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from runners import MAX_EAGER_NESTING, Invoke, Skip, _arg_spec, _dependents, _settle
from shapes import Graph

Begin = Callable[[], Any]
End = Callable[[Any, BaseException | None], Awaitable[None]]

# kinds: 0/1/2 as runners._arg_spec (no input, one slot, itemgetter); +3: called with the state
_STATEFUL = 3


def _compile(
    g: Graph, stateful: Collection[int]
) -> tuple[Any, list[int], int, tuple[int, ...], int]:
    deps = _dependents(g)
    specs = []
    for i, (fn, ins) in enumerate(zip(g.funcs, g.inputs, strict=True)):
        kind, arg = _arg_spec(ins)
        if i in stateful:
            kind += _STATEFUL
        specs.append((fn, kind, arg, tuple(deps[i])))
    indeg = [len(ins) for ins in g.inputs]
    roots = [i for i, ins in enumerate(g.inputs) if not ins]
    sinks = sum(1 for d in deps if not d)
    return tuple(specs), indeg, roots[0], tuple(roots[1:]), sinks


def prepare(g: Graph, stateful: Collection[int], begin: Begin, end: End) -> Invoke:
    """The (lazy-task) floor with per-run state."""
    specs, indeg, root0, other_roots, nsinks = _compile(g, stateful)
    n, sink = g.n, g.sink
    Task = asyncio.Task

    async def invoke() -> Any:
        loop = asyncio.get_running_loop()
        st = begin()
        vals: list[Any] = [None] * n
        pending = indeg.copy()
        tasks: list[asyncio.Task[None]] = []
        sinks_left = nsinks
        waiter: asyncio.Future[None] | None = None
        error: BaseException | None = None
        me = asyncio.current_task()
        assert me is not None
        inline = 0

        async def drive(i: int) -> None:
            nonlocal sinks_left, error, inline
            try:
                while True:
                    fn, kind, arg, dependents = specs[i]
                    if kind == 1:
                        v = await fn(vals[arg])
                    elif kind == 0:
                        v = await fn()
                    elif kind == 2:
                        v = await fn(*arg(vals))
                    elif kind == 4:
                        v = await fn(st, vals[arg])
                    elif kind == 3:
                        v = await fn(st)
                    else:
                        v = await fn(st, *arg(vals))
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
            except BaseException as exc:
                if error is None:
                    error = exc
                    current = asyncio.current_task()
                    for t in tasks:
                        if t is not current:
                            t.cancel()
                    if inline == 1 and current is not me:
                        inline = 2
                        me.cancel()
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)

        for r in other_roots:
            tasks.append(Task(drive(r), loop=loop))
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
            await end(st, error)
            raise error
        await end(st, None)
        return vals[sink]

    return invoke


def prepare_eager(g: Graph, stateful: Collection[int], begin: Begin, end: End) -> Invoke:
    """The eager-task floor (3.12+) with per-run state."""
    if sys.version_info < (3, 12):
        raise Skip("needs Python 3.12+ (eager tasks)")
    specs, indeg, root0, other_roots, nsinks = _compile(g, stateful)
    n, sink = g.n, g.sink
    Task: Any = asyncio.Task

    async def invoke() -> Any:
        loop = asyncio.get_running_loop()
        st = begin()
        vals: list[Any] = [None] * n
        pending = indeg.copy()
        tasks: list[asyncio.Task[None]] = []
        sinks_left = nsinks
        waiter: asyncio.Future[None] | None = None
        error: BaseException | None = None
        nesting = 0
        me = asyncio.current_task()
        assert me is not None
        inline = 0

        def cancel_running() -> None:
            nonlocal inline
            for t in tasks:
                t.cancel()
            if inline == 1:
                inline = 2
                me.cancel()

        def spawn(i: int) -> None:
            nonlocal nesting
            if error is not None:
                return
            if nesting >= MAX_EAGER_NESTING:
                tasks.append(Task(drive(i), loop=loop))
                return
            nesting += 1
            t = Task(drive(i), loop=loop, eager_start=True)
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
                    elif kind == 2:
                        v = await fn(*arg(vals))
                    elif kind == 4:
                        v = await fn(st, vals[arg])
                    elif kind == 3:
                        v = await fn(st)
                    else:
                        v = await fn(st, *arg(vals))
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
                if error is None:
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
            await end(st, error)
            raise error
        await end(st, None)
        return vals[sink]

    return invoke
