"""Running a coroutine in a fresh debug event loop that can be abandoned if it hangs.

`asyncio.run()` waits forever for a task that ignores its cancellation, which is one of the
bugs these tests look for; `run_in_fresh_loop` reports such a hang and drops the loop instead,
so that a broken library fails a test rather than freezing the session. It also collects what
the loop itself saw: tasks left behind, errors passed to the loop's exception handler,
unraisable exceptions ("coroutine was never awaited") and warnings.

Loop kinds: "default" (the loop's own task factory) and "eager"
(`asyncio.eager_task_factory`, Python 3.12+). `LOOP_KINDS` is what a test should be
parametrized over: both on 3.12+, only "default" on 3.11, only "eager" when the whole suite
runs with `DAGWIRE_EAGER_TASKS=1` (see tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")

LoopKind = Literal["default", "eager"]

# Same switch as tests/conftest.py (read there too: conftest modules are not importable).
EAGER_SWITCH = os.environ.get("DAGWIRE_EAGER_TASKS", "") == "1"
HAS_EAGER = sys.version_info >= (3, 12)
LOOP_KINDS: tuple[LoopKind, ...] = (
    ("eager",) if EAGER_SWITCH else ("default", "eager") if HAS_EAGER else ("default",)
)
WATCHDOG_SECONDS = 10.0  # what takes milliseconds and is not over after this has hung


def set_loop_kind(loop: asyncio.AbstractEventLoop, kind: LoopKind) -> None:
    if kind == "eager":
        if not HAS_EAGER:
            raise RuntimeError("asyncio.eager_task_factory needs Python 3.12")
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]  # 3.12+
    else:
        loop.set_task_factory(None)


@dataclass
class LoopReport:
    """What the event loop itself saw while running one coroutine."""

    leaked_tasks: list[str] = field(default_factory=list[str])
    loop_errors: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    unraisable: list[str] = field(default_factory=list[str])
    hung: list[str] = field(default_factory=list[str])
    warnings: list[str] = field(default_factory=list[str])

    def problems(self) -> list[str]:
        out: list[str] = []
        if self.hung:
            out.append(f"did not finish within {WATCHDOG_SECONDS}s (a hang): {self.hung}")
        if self.leaked_tasks:
            out.append(f"tasks outlived the run: {self.leaked_tasks}")
        if self.loop_errors:
            out.append(f"the event loop reported errors: {self.loop_errors}")
        if self.unraisable:
            out.append(f"unraisable exceptions: {self.unraisable}")
        if self.warnings:
            out.append(f"warnings: {self.warnings}")
        return out


@dataclass
class Outcome(Generic[T]):
    """What the coroutine returned or raised, and what the loop saw."""

    report: LoopReport
    value: T | None = None
    error: BaseException | None = None
    done: bool = False

    def get(self) -> T:
        """The value; fails the test on a hang, a leak, a loop error, a warning, or if the
        coroutine raised (that exception is re-raised)."""
        problems = self.report.problems()
        if problems:
            raise AssertionError("\n".join(problems)) from self.error
        if self.error is not None:
            raise self.error
        assert self.done
        return self.value  # type: ignore[return-value]  # done and no error: a T


HEARTBEAT_SECONDS = 0.05


class _Heartbeat:
    """Counts HEARTBEAT_SECONDS ticks of a running loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.beats = 0
        self.handle = loop.call_later(HEARTBEAT_SECONDS, self.beat)

    def beat(self) -> None:
        self.beats += 1
        self.handle = self.loop.call_later(HEARTBEAT_SECONDS, self.beat)


async def _wait_while_running(task: asyncio.Future[Any], watchdog: float) -> bool:
    """Wait for `task` for `watchdog` seconds of a *running* loop: if the process itself was
    stalled (a busy machine), the loop's heartbeats show it and the wait goes on (three more
    times at most). Return whether the task is done."""
    heart = _Heartbeat(asyncio.get_running_loop())
    try:
        for _ in range(4):
            heart.beats = 0
            done, _ = await asyncio.wait({task}, timeout=watchdog)
            if done:
                return True
            if heart.beats >= 0.5 * watchdog / HEARTBEAT_SECONDS:
                return False  # the loop ran: the library hangs
        return False
    finally:
        heart.handle.cancel()


async def _guarded(main: Coroutine[Any, Any, T], outcome: Outcome[T], watchdog: float) -> None:
    loop = asyncio.get_running_loop()
    report = outcome.report
    loop.set_exception_handler(lambda _loop, context: report.loop_errors.append(context))
    before = asyncio.all_tasks()
    task = asyncio.ensure_future(main)
    done = await _wait_while_running(task, watchdog)
    if not done:  # a hang: report it, try to stop it, and leave the loop to be dropped
        report.hung = [repr(task)]
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
        return
    outcome.done = True
    if task.cancelled():
        outcome.error = asyncio.CancelledError("the coroutine was cancelled")
    elif task.exception() is not None:
        outcome.error = task.exception()
    else:
        outcome.value = task.result()
    await asyncio.sleep(0)  # a task finishing right now is not a leak
    report.leaked_tasks = [repr(t) for t in asyncio.all_tasks() - before if not t.done()]


def run_in_fresh_loop(
    main: Callable[[], Coroutine[Any, Any, T]],
    kind: LoopKind = "default",
    *,
    watchdog: float = WATCHDOG_SECONDS,
) -> Outcome[T]:
    """`asyncio.run(main(), debug=True)` in a loop of `kind`; after a hang the loop is dropped
    (asyncio.run would wait forever for tasks that ignore their cancellation)."""
    outcome: Outcome[T] = Outcome(LoopReport())
    report = outcome.report
    old_hook = sys.unraisablehook

    def unraisable(u: Any) -> None:
        report.unraisable.append(f"{u.exc_value!r} in {u.object!r}")

    sys.unraisablehook = unraisable
    loop = asyncio.new_event_loop()
    loop.set_debug(True)
    set_loop_kind(loop, kind)
    asyncio.set_event_loop(loop)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                loop.run_until_complete(_guarded(main(), outcome, watchdog))
                if not report.hung:
                    leftovers = asyncio.all_tasks(loop)
                    for t in leftovers:
                        t.cancel()
                    if leftovers:
                        loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
                    loop.run_until_complete(loop.shutdown_asyncgens())
                    loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()
                if report.hung:  # let the abandoned tasks die now, inside our hooks
                    del loop
                    gc.collect()
        report.warnings = [str(w.message) for w in caught]
    finally:
        sys.unraisablehook = old_hook
    return outcome
