"""`dagwire.current()`: which run, node and attempt the calling code belongs to.

Plain nodes pay nothing for it: instead of storing "the current node" at every node, `current()`
looks up the stack for the frame of the code that runs nodes (the run loop's chain, a cleanup),
whose locals say which run and node it is working on. Where user code runs without such a
frame on its stack (an executor thread, an `add_map` item's task, a `Cache`'s shared call), the
run sets a context variable in the context that code runs in.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any

__all__ = ["RunContext", "current", "register_marker", "set_where"]


@dataclass(frozen=True, slots=True)
class RunContext:
    """Where the calling code runs.

    - `dag`: the graph's name; `run_id`: the run's id, unique per `invoke` in this process.
    - `node`: the name of the node whose body, hook, resource setup or cleanup is running;
      ``"name[index]"`` in an item of an `add_map` node.
    - `attempt`: the 1-based attempt of the body (or setup) that is running; 1 in a `pre=`
      hook; 0 in a resource's cleanup and in a `post=` hook (cleanups run once, after the
      attempts).
    """

    dag: str
    run_id: int
    node: str
    attempt: int


# Code objects of the functions that run user code, and how to read the context off their
# frame's locals. Registered by the modules that own those functions.
_markers: dict[CodeType, Callable[[Mapping[str, Any]], RunContext | None]] = {}

# Set only in contexts the run makes for such code (see `set_where`), never in the caller's:
# the context itself, or what makes it when asked (most code never asks).
_where: ContextVar[RunContext | Callable[[], RunContext] | None] = ContextVar(
    "dagwire_run_context", default=None
)


def register_marker(
    fn: Callable[..., object], read: Callable[[Mapping[str, Any]], RunContext | None]
) -> None:
    """Make frames of `fn` mark "inside a run": `read(frame_locals)` gives the context."""
    _markers[fn.__code__] = read


def set_where(where: RunContext | Callable[[], RunContext]) -> None:
    """Called inside a context the run made for user code without a marker frame on its stack
    (a thread's, an item task's, a shared call's): `current()` reads it there. `where` may be a
    callable making the context when asked."""
    _where.set(where)


def current() -> RunContext | None:
    """The `RunContext` of the calling code inside a node body, `pre=`/`post=` hook, resource
    setup or cleanup of a running graph, also in an `executor="thread"` body; None elsewhere.

    The innermost run wins: in a sub-graph's node it describes the sub-graph's node. In a task
    or thread that user code starts itself (`asyncio.create_task`, `asyncio.to_thread`), it is
    None, whatever the loop's task factory: pass what such code needs to it.
    """
    markers = _markers
    top = _task_frame()
    frame: FrameType | None = sys._getframe(1)  # pyright: ignore[reportPrivateUsage]  # the documented way to read the stack
    while frame is not None:
        read = markers.get(frame.f_code)
        if read is not None:
            found = read(frame.f_locals)
            if found is not None:
                return found
        if frame is top:  # the current task's own coroutine: frames below belong to others
            break  # (an eager task's first step runs on the stack of the code that made it)
        frame = frame.f_back
    where = _where.get()
    return where() if callable(where) else where


def _task_frame() -> FrameType | None:
    """The frame of the current task's coroutine, if code runs in a task."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop in this thread
        return None
    if task is None:
        return None
    frame: FrameType | None = getattr(task.get_coro(), "cr_frame", None)
    return frame
