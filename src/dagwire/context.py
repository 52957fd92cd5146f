"""`dagwire.current()`: which run, node and attempt the calling code belongs to.

Plain nodes pay nothing for it: instead of storing "the current node" at every node, `current()`
looks up the stack for the frame of the code that runs nodes (the run loop's chain, a cleanup),
whose locals say which run and node it is working on. Code in an executor thread has no such
frame on its stack; the run sets a context variable in the context it copies into the thread.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any

__all__ = ["RunContext", "current", "in_thread", "register_marker"]


@dataclass(frozen=True, slots=True)
class RunContext:
    """Where the calling code runs.

    - `dag`: the graph's name; `run_id`: the run's id, unique per `invoke` in this process.
    - `node`: the name of the node whose body, hook, resource setup or cleanup is running.
    - `attempt`: the 1-based attempt of the node's body (or setup) that is running, or that ran
      last (in `post=` hooks); 1 in `pre=` hooks; 0 in cleanups.
    """

    dag: str
    run_id: int
    node: str
    attempt: int


# Code objects of the functions that run user code, and how to read the context off their
# frame's locals. Registered by the modules that own those functions.
_markers: dict[CodeType, Callable[[Mapping[str, Any]], RunContext | None]] = {}

# Set only in the contexts copied into executor threads (see `in_thread`).
_thread_context: ContextVar[RunContext | None] = ContextVar("dagwire_run_context", default=None)


def register_marker(
    fn: Callable[..., object], read: Callable[[Mapping[str, Any]], RunContext | None]
) -> None:
    """Make frames of `fn` mark "inside a run": `read(frame_locals)` gives the context."""
    _markers[fn.__code__] = read


def in_thread(where: RunContext) -> None:
    """Called inside the context copied for an executor thread: `current()` reads it there."""
    _thread_context.set(where)


def current() -> RunContext | None:
    """The `RunContext` of the calling code inside a node body, `pre=`/`post=` hook, resource
    setup or cleanup of a running graph, also in an `executor="thread"` body; None elsewhere.

    The innermost run wins: in a sub-graph's node it describes the sub-graph's node.
    """
    markers = _markers
    frame: FrameType | None = sys._getframe(1)  # pyright: ignore[reportPrivateUsage]  # the documented way to read the stack
    while frame is not None:
        read = markers.get(frame.f_code)
        if read is not None:
            where = read(frame.f_locals)
            if where is not None:
                return where
        frame = frame.f_back
    return _thread_context.get()
