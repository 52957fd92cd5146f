"""`Dag.stream()`: a run's nodes as they end, phase by phase, as an async generator."""

# pyright: reportPrivateUsage=false
# (package-internal: the stream runs the graph through `Dag._invoke` with a feed)

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, TypeVar

from .results import NodeCompletion

if TYPE_CHECKING:
    from .graph import Dag

__all__ = ["stream_run"]

P = TypeVar("P")


async def stream_run(
    dag: Dag[P], params: P, invoke_options: dict[str, Any]
) -> AsyncGenerator[NodeCompletion, None]:
    """Run `dag` in a task of its own and yield each node's `NodeCompletion` as it ends.

    The run never waits for the consumer: completions queue up. Consuming every completion
    also waits for the run's cleanup, then raises what `invoke` would raise (the `DagError`
    of a failed fail-fast run). Closing it early (`aclose()`, `contextlib.aclosing`) or
    cancelling the consumer while it waits here cancels the run and waits for its cleanup: no
    task is left behind. (A bare `break` does not close an async generator.)
    """
    loop = asyncio.get_running_loop()
    ready: deque[NodeCompletion] = deque()
    wake: asyncio.Future[None] | None = None

    def nudge(*_: object) -> None:
        if wake is not None and not wake.done():
            wake.set_result(None)

    def feed(completion: NodeCompletion) -> None:
        ready.append(completion)
        nudge()

    # The run gets a task, made directly (not by the loop's factory), so that this generator
    # never yields from inside a task the run owns, and leaving it can cancel the run.
    run: asyncio.Task[Any] = asyncio.Task(
        dag._invoke(params, feed=feed, **invoke_options), loop=loop
    )
    run.add_done_callback(nudge)
    try:
        while True:
            while ready:
                yield ready.popleft()
            if run.done():
                break
            wake = loop.create_future()
            await wake
        run.result()  # the run's own outcome: a DagError, TimeoutError, CancelledError...
    finally:
        if not run.done():
            run.cancel()
        await _finished(run)


async def _finished(run: asyncio.Task[Any]) -> None:
    """Wait until `run` (cancelled) has cleaned up, whatever cancels us meanwhile; then
    retrieve its outcome so that nothing is reported as never retrieved."""
    cancelled: asyncio.CancelledError | None = None
    while not run.done():
        try:
            await asyncio.wait([run])
        except asyncio.CancelledError as exc:
            cancelled = exc
    if not run.cancelled():
        run.exception()  # retrieved: the consumer left, so the run's failure is not theirs
    if cancelled is not None:
        raise cancelled
