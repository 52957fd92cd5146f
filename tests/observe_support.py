"""Helpers for the observability tests (`test_events.py`, `test_current.py`, `test_logging.py`).

- `Recorder`: an observer that keeps every event it is given, with views by node and by run.
- `check_run`: the rules every run's events obey (run events first and last, one run id, times
  non-decreasing per node, each attempt's start followed by exactly one end, retries before the
  next start or a cancellation in the delay), asserted on one run's events.
- `task_factory`: a fixture parametrizing a test over the loop's default task factory and
  `asyncio.eager_task_factory` (3.12+); assign it to a module-level name to use it there.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Sequence

import pytest

from dagwire.events import (
    Event,
    NodeCancelled,
    NodeFailed,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    RunFinished,
    RunStarted,
)

__all__ = ["Recorder", "check_run", "task_factory"]

_ENDS = (NodeSucceeded, NodeFailed, NodeRetrying, NodeCancelled, NodeSkipped)


class Recorder:
    """An observer keeping every event, in the order it was delivered."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self, node: str | None = None, run_id: int | None = None) -> list[str]:
        """Kinds of the events of `node` (None: the run events and every node's), in order."""
        return [e.kind for e in self.of(node, run_id)]

    def of(self, node: str | None = None, run_id: int | None = None) -> list[Event]:
        """The events of `node` (every event when None), of run `run_id` (any when None)."""
        return [
            e
            for e in self.events
            if (node is None or e.node == node) and (run_id is None or e.run_id == run_id)
        ]

    def run_ids(self) -> list[int]:
        """The run ids seen, in the order their first event arrived."""
        return list(dict.fromkeys(e.run_id for e in self.events))

    def one(self, cls: type[Event], node: str | None = None) -> Event:
        """The only event of class `cls` (for `node`, when given)."""
        found = [e for e in self.events if type(e) is cls and (node is None or e.node == node)]
        assert len(found) == 1, f"expected one {cls.__name__} for {node!r}, got {found}"
        return found[0]


def check_run(events: Sequence[Event], dag: str) -> None:
    """Assert the rules every run's events obey on the events of one run of graph `dag`."""
    assert events, "no events"
    assert isinstance(events[0], RunStarted), events[0]
    assert isinstance(events[-1], RunFinished), events[-1]
    assert [e for e in events if isinstance(e, RunStarted | RunFinished)] == [
        events[0],
        events[-1],
    ]
    run_id = events[0].run_id
    assert run_id > 0
    for e in events:
        assert e.dag == dag, e
        assert e.run_id == run_id, e
        assert e.time >= 0.0, e
        if isinstance(e, RunStarted | RunFinished):
            assert e.node is None, e
            assert e.attempt == 0, e
            assert e.tags == (), e
        else:
            assert e.node is not None, e
    assert events[0].time == 0.0
    finished = events[-1]
    assert finished.duration is not None
    assert finished.duration == finished.time
    assert all(e.time <= finished.time for e in events)
    nodes = dict.fromkeys(e.node for e in events if e.node is not None)
    for node in nodes:
        mine = [e for e in events if e.node == node]
        times = [e.time for e in mine]
        assert times == sorted(times), f"{node}: times go back: {mine}"
        open_attempt: int | None = None
        last_retried: int | None = None
        for e in mine:
            if isinstance(e, NodeStarted):
                assert open_attempt is None, f"{node}: a start before the previous end: {mine}"
                if last_retried is not None:
                    assert e.attempt == last_retried + 1, f"{node}: {mine}"
                open_attempt = e.attempt
                last_retried = None
            elif isinstance(e, NodeCancelled) and open_attempt is None and last_retried:
                last_retried = None  # cancelled while waiting for its next attempt
            elif isinstance(e, _ENDS) and open_attempt is not None:
                assert e.attempt == open_attempt, f"{node}: the end of another attempt: {mine}"
                assert e.duration is not None, e
                assert e.duration >= 0.0, e
                open_attempt = None
                if isinstance(e, NodeRetrying):
                    last_retried = e.attempt
        assert open_attempt is None, f"{node}: an attempt never ended: {mine}"
        assert last_retried is None, f"{node}: retried, never started again: {mine}"


@pytest.fixture(params=["default", "eager"])
async def task_factory(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Run the test under the loop's default task factory, then under an eager one (3.12+)."""
    kind: str = request.param
    if kind == "default":
        yield kind
        return
    if sys.version_info < (3, 12):
        pytest.skip("asyncio.eager_task_factory needs Python 3.12")
    loop = asyncio.get_running_loop()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]  # 3.12+
    try:
        yield kind
    finally:
        loop.set_task_factory(None)
