"""`invoke_many`: one graph over many parameters, a bounded number of runs at a time.

How it works: `concurrency` worker tasks share one iterator over the parameters; each takes the
next parameter, runs it, stores its result at the parameter's index and takes the next. So at
most `concurrency` runs are in flight, the iterable is consumed lazily (an endless generator is
fine), only `concurrency` tasks exist, and no task is made per run.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import CancelledError
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypedDict, TypeVar, Unpack, cast

from .errors import DagDefinitionError

if TYPE_CHECKING:
    from .graph import Dag
    from .node import Node
    from .report import Observer
    from .results import ExecutionResult

__all__ = ["InvokeOptions", "Progress", "invoke_many"]

P = TypeVar("P")

logger = logging.getLogger("dagwire")

#: `progress=`: False (none), True (a tqdm bar) or a callable `(done, total) -> None`, where
#: `total` is `len(params)` when the iterable has a length, else None.
Progress: TypeAlias = bool | Callable[[int, int | None], object]


class InvokeOptions(TypedDict, total=False):
    """The options of `Dag.invoke` that `invoke_many` passes to every run (besides `on_error`)."""

    timeout: float | None
    max_concurrency: int | None
    targets: Iterable[Node[Any]] | None
    overrides: Mapping[Node[Any], object] | None
    observers: Iterable[Observer]
    timeline: bool
    resume_from: ExecutionResult[Any] | None


async def invoke_many(
    dag: Dag[P],
    params: Iterable[P],
    *,
    concurrency: int = 8,
    on_error: Literal["raise", "continue"] = "raise",
    progress: Progress = False,
    **invoke_options: Unpack[InvokeOptions],
) -> list[ExecutionResult[P]]:
    """Run `dag` once per element of `params`, at most `concurrency` runs at a time.

    Returns the `ExecutionResult`s in the order of `params`. The iterable is consumed lazily,
    one element when a run slot is free, so memory stays bounded for an iterable of any length
    (beyond the returned list itself). Each run is `dag.invoke(p, on_error=on_error,
    **invoke_options)`.

    - ``on_error="raise"`` (fail-fast): the first run that raises (its `DagError`, or a
      `TimeoutError` from ``timeout=``) stops the batch: no further element is taken, the runs
      in flight are cancelled (each still runs its cleanup) and that exception is raised, with a
      note giving the element's 0-based index. Failures of other runs that end while the batch
      stops are logged (ERROR, logger ``dagwire``), not raised.
    - ``on_error="continue"``: every element gets its result, failed runs included (see
      `ExecutionResult.ok` / `errors`). A run that raises even so (``timeout=`` of the whole run
      expired, a `BaseException` such as `KeyboardInterrupt`) has no result to return: it stops
      the batch as in fail-fast mode.
    - An exception raised by iterating `params` stops the batch likewise.
    - `progress`: False; True for a tqdm progress bar on stderr (``pip install
      dagwire[progress]``; silent when stderr is not a terminal); or a callable
      ``(done, total)`` called on the loop with 0 first and after each finished run, `total`
      being ``len(params)`` if it has a length, else None. A callable that raises is reported
      once on the ``dagwire`` logger and not called again; it never changes the outcome.
    - Cancelling the caller cancels the runs in flight, waits for their cleanup, and leaves no
      task behind.

    Raises `DagDefinitionError` for a `concurrency` that is not an int >= 1, an unknown
    `on_error` or a `progress` that is neither a bool nor callable; `ImportError` naming the
    extra when ``progress=True`` and tqdm is not installed.
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise DagDefinitionError(f"invoke_many(concurrency={concurrency!r}): must be an int >= 1")
    if on_error not in ("raise", "continue"):
        raise DagDefinitionError(
            f"invoke_many(on_error={on_error!r}): must be 'raise' or 'continue'"
        )
    if not isinstance(progress, bool) and not callable(progress):
        raise DagDefinitionError(
            f"invoke_many(progress={progress!r}): must be a bool or a callable (done, total)"
        )
    total = len(params) if isinstance(params, Sized) else None
    report = _reporter(progress, total, dag.name)
    batch = _Batch(dag, iter(params), on_error, invoke_options, report)
    try:
        report.update(0)
        await batch.run(concurrency if total is None else max(1, min(concurrency, total)))
    finally:
        report.close()
    return cast("list[ExecutionResult[P]]", batch.results)


class _Batch:
    """The shared state of one `invoke_many`: the iterator, the results, the first failure."""

    __slots__ = ("dag", "done", "failure", "items", "options", "report", "results", "workers")

    def __init__(
        self,
        dag: Dag[Any],
        items: Iterator[Any],
        on_error: str,
        options: Mapping[str, Any],
        report: _Reporter,
    ) -> None:
        self.dag = dag
        self.items = items
        self.options: dict[str, Any] = {**options, "on_error": on_error}
        self.report = report
        self.results: list[ExecutionResult[Any] | None] = []
        self.done = 0
        self.failure: BaseException | None = None
        self.workers: list[asyncio.Task[None]] = []

    async def run(self, workers: int) -> None:
        loop = asyncio.get_running_loop()
        self.workers = [loop.create_task(self.work()) for _ in range(workers)]
        try:
            await asyncio.wait(self.workers)
        finally:
            # Cancelled (or failed) while runs are in flight: stop them, and wait until each has
            # cleaned up and ended, whatever cancels us meanwhile.
            self.stop()
            while pending := [t for t in self.workers if not t.done()]:
                try:
                    await asyncio.wait(pending)
                except CancelledError:
                    continue
        if self.failure is not None:
            raise self.failure

    def stop(self) -> None:
        me = asyncio.current_task()
        for task in self.workers:
            if task is not me:
                task.cancel()  # a finished task ignores it

    async def work(self) -> None:
        dag, options, results = self.dag, self.options, self.results
        while self.failure is None:
            try:
                params = next(self.items)
            except StopIteration:
                return
            except BaseException as exc:  # the caller's iterable failed
                self.fail(exc, None)
                return
            k = len(results)  # no await since next(): this element's index
            results.append(None)
            try:
                results[k] = await dag.invoke(params, **options)
            except CancelledError:
                raise
            except BaseException as exc:
                self.fail(exc, k)
                return
            self.done += 1
            self.report.update(self.done)

    def fail(self, exc: BaseException, k: int | None) -> None:
        if self.failure is not None:  # the batch is already stopping
            logger.error(
                "dagwire: invoke_many of %r: run #%s also failed while the batch was stopping",
                self.dag.name,
                k,
                exc_info=exc,
            )
            return
        if k is None:
            exc.add_note("dagwire: invoke_many: iterating the params raised this")
        else:
            exc.add_note(f"dagwire: invoke_many: run #{k} (0-based index in the params)")
        self.failure = exc
        self.stop()


class _Reporter:
    """Progress reporting: nothing, a callable, or a tqdm bar."""

    __slots__ = ("bar", "callback", "total")

    def __init__(
        self, total: int | None, callback: Callable[[int, int | None], object] | None, bar: Any
    ) -> None:
        self.total = total
        self.callback = callback
        self.bar = bar  # a tqdm.tqdm, or None

    def update(self, done: int) -> None:
        if self.bar is not None:
            if done:
                self.bar.update(1)
            return
        callback = self.callback
        if callback is None:
            return
        try:
            callback(done, self.total)
        except Exception:
            self.callback = None
            logger.exception("dagwire: invoke_many: the progress callable raised; not called again")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _reporter(progress: Progress, total: int | None, name: str) -> _Reporter:
    if progress is False:
        return _Reporter(total, None, None)
    if progress is True:
        try:
            from tqdm import tqdm
        except ImportError as exc:
            raise ImportError(
                "invoke_many(progress=True) shows a tqdm progress bar: "
                "pip install dagwire[progress] (or pass a callable (done, total))"
            ) from exc
        # disable=None: silent when stderr is not a terminal.
        return _Reporter(total, None, tqdm(total=total, disable=None, desc=name, unit="run"))
    return _Reporter(total, progress, None)
