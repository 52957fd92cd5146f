"""`dagwire.batch.invoke_many`: input order, a bounded window of runs, lazy consumption,
fail-fast and continue, progress reporting, and cancellation that leaves nothing behind."""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import logging
import os
import random
import select
import struct
import sys
import termios
from collections.abc import AsyncIterator, Iterator

import pytest

from dagwire import Dag, DagDefinitionError, DagError, Limiter, build_dag
from dagwire.batch import invoke_many
from dagwire.events import Event, RunStarted


class InFlight:
    """Counts bodies running at once and remembers the highest count."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    async def hold(self, seconds: float) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.now -= 1


class Boom(Exception):
    pass


def squares() -> Dag[int]:
    async def square(x: int) -> int:
        await asyncio.sleep(0)
        return x * x

    with build_dag(int) as dag:
        dag.add_node(square, dag.params)
    return dag


async def test_results_come_back_in_input_order() -> None:
    random.seed(11)

    async def square(x: int) -> int:
        await asyncio.sleep(random.random() / 500)  # runs finish out of order
        return x * x

    with build_dag(int) as dag:
        node = dag.add_node(square, dag.params)
    results = await invoke_many(dag, range(60), concurrency=7)
    assert [r[node] for r in results] == [x * x for x in range(60)]
    assert [r.params for r in results] == list(range(60))


async def test_an_empty_iterable_gives_an_empty_list() -> None:
    dag = squares()
    assert await invoke_many(dag, []) == []
    assert await invoke_many(dag, iter(())) == []


async def test_never_more_runs_in_flight_than_concurrency_and_the_limiter_holds() -> None:
    """50 concurrent runs over 300 params; a shared Limiter(3) on one node of each run."""
    runs, limited = InFlight(), InFlight()

    async def body(x: int) -> int:
        await runs.hold(0.002)
        return x

    async def scarce(x: int) -> int:
        await limited.hold(0.001)
        return x + 1

    with build_dag(int) as dag:
        first = dag.add_node(body, dag.params)
        last = dag.add_node(scarce, first, limiter=Limiter(3))
    results = await invoke_many(dag, range(300), concurrency=50)
    assert [r[last] for r in results] == [x + 1 for x in range(300)]
    assert runs.peak == 50  # the window fills ...
    assert limited.peak == 3  # ... and the shared limiter caps the node across runs


async def test_the_window_is_also_bounded_with_a_length_less_iterable() -> None:
    runs = InFlight()

    async def body(x: int) -> int:
        await runs.hold(0.001)
        return x

    with build_dag(int) as dag:
        dag.add_node(body, dag.params)
    results = await invoke_many(dag, (x for x in range(40)), concurrency=4)
    assert len(results) == 40
    assert runs.peak == 4


async def test_an_endless_generator_is_consumed_lazily_up_to_a_failure() -> None:
    taken: list[int] = []

    def endless() -> Iterator[int]:
        for x in itertools.count():
            taken.append(x)
            yield x

    async def body(x: int) -> int:
        await asyncio.sleep(0)
        if x == 25:
            raise Boom("25 is bad")
        return x

    with build_dag(int) as dag:
        dag.add_node(body, dag.params, name="body")
    with pytest.raises(DagError) as caught:
        await invoke_many(dag, endless(), concurrency=5)
    assert isinstance(caught.value.failures["body"], Boom)
    assert any("run #25" in note for note in caught.value.__notes__)
    assert 26 <= len(taken) <= 26 + 5  # taken one at a time, never far ahead of the runs


async def test_fail_fast_cancels_the_runs_in_flight_and_each_cleans_up() -> None:
    opened: list[int] = []
    closed: list[int] = []
    finished: list[int] = []

    async def resource(x: int) -> AsyncIterator[int]:
        opened.append(x)
        try:
            yield x
        finally:
            closed.append(x)

    async def body(x: int) -> int:
        if x == 3:
            await asyncio.sleep(0.01)
            raise Boom("three")
        await asyncio.sleep(10)  # only a cancellation ends these
        finished.append(x)
        return x

    with build_dag(int) as dag:
        res = dag.add_resource(resource, dag.params)
        dag.add_node(body, res, name="body")
    with pytest.raises(DagError) as caught:
        await invoke_many(dag, range(1000), concurrency=8)
    assert isinstance(caught.value.failures["body"], Boom)
    assert finished == []
    assert sorted(opened) == list(range(8))  # no new run started after the failure
    assert sorted(closed) == sorted(opened)  # every run in flight cleaned up


async def test_continue_returns_every_result_failed_runs_included() -> None:
    def body(x: int) -> int:
        if x % 4 == 0:
            raise Boom(f"{x}")
        return x

    with build_dag(int) as dag:
        node = dag.add_node(body, dag.params, name="body")
    results = await invoke_many(dag, range(20), concurrency=3, on_error="continue")
    assert len(results) == 20
    for x, result in enumerate(results):
        assert result.params == x
        if x % 4 == 0:
            assert not result.ok
            assert isinstance(result.errors[0].error, Boom)
        else:
            assert result.ok
            assert result[node] == x


async def test_invoke_options_reach_every_run() -> None:
    async def slow(x: int) -> int:
        await asyncio.sleep(10 if x == 2 else 0)
        return x

    with build_dag(int) as dag:
        dag.add_node(slow, dag.params)
    with pytest.raises(TimeoutError) as caught:
        await invoke_many(dag, range(5), timeout=0.05)
    assert any("run #2" in note for note in caught.value.__notes__)


async def test_observers_see_every_run() -> None:
    dag = squares()
    seen: list[Event] = []
    await invoke_many(dag, range(4), concurrency=2, observers=[seen.append])
    started = [e for e in seen if isinstance(e, RunStarted)]
    assert len(started) == 4
    assert len({e.run_id for e in started}) == 4


async def test_an_iterable_that_raises_stops_the_batch() -> None:
    def params() -> Iterator[int]:
        yield 1
        yield 2
        raise LookupError("no more params")

    dag = squares()
    with pytest.raises(LookupError, match="no more params") as caught:
        await invoke_many(dag, params(), concurrency=2)
    assert any("iterating the params" in note for note in caught.value.__notes__)


async def test_cancelling_the_caller_cancels_runs_cleans_up_and_leaves_no_task() -> None:
    """The suite's hygiene fixture fails this test if any task outlives it."""
    started = asyncio.Event()
    cleaned: list[int] = []

    async def body(x: int) -> int:
        started.set()
        await asyncio.sleep(10)
        return x

    def post() -> None:
        cleaned.append(1)

    with build_dag(int) as dag:
        dag.add_node(body, dag.params, post=post)
    batch = asyncio.ensure_future(invoke_many(dag, itertools.count(), concurrency=6))
    await started.wait()
    await asyncio.sleep(0.01)
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await batch
    assert len(cleaned) == 6


async def test_progress_callable_gets_done_and_total() -> None:
    dag = squares()
    seen: list[tuple[int, int | None]] = []
    await invoke_many(dag, range(5), concurrency=2, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(0, 5), (1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    seen.clear()
    await invoke_many(dag, iter(range(3)), progress=lambda d, t: seen.append((d, t)))
    assert seen == [(0, None), (1, None), (2, None), (3, None)]


async def test_a_raising_progress_callable_is_logged_once_and_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dag = squares()
    calls: list[int] = []

    def broken(done: int, total: int | None) -> None:
        calls.append(done)
        raise RuntimeError("progress display broke")

    with caplog.at_level(logging.ERROR, logger="dagwire"):
        results = await invoke_many(dag, range(4), progress=broken)
    assert len(results) == 4
    assert calls == [0]
    (record,) = caplog.records
    assert "progress callable raised" in record.getMessage()


async def test_progress_bar_is_silent_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    dag = squares()
    assert not sys.stderr.isatty()
    results = await invoke_many(dag, range(10), progress=True)
    assert len(results) == 10
    assert capsys.readouterr().err == ""


async def test_progress_bar_draws_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """stderr on a real pseudo-terminal (100 columns): the tqdm bar is drawn and completes."""
    dag = squares()
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    chunks: list[bytes] = []
    try:
        with os.fdopen(follower, "w", encoding="utf-8", closefd=False) as tty:
            monkeypatch.setattr(sys, "stderr", tty)
            results = await invoke_many(dag, range(10), progress=True)
        # Everything tqdm wrote is in the terminal's buffer: read it all (a read may return
        # less than is there).
        while select.select([leader], [], [], 0)[0]:
            chunk = os.read(leader, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(follower)
        os.close(leader)
    drawn = b"".join(chunks).decode("utf-8", "replace")
    assert len(results) == 10
    assert "10/10" in drawn
    assert dag.name in drawn


async def test_progress_bar_without_tqdm_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # what an environment without tqdm does
    dag = squares()
    with pytest.raises(ImportError, match=r"pip install dagwire\[progress\]"):
        await invoke_many(dag, range(3), progress=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 0}, "concurrency=0"),
        ({"concurrency": True}, "concurrency=True"),
        ({"concurrency": 2.5}, "concurrency=2.5"),
        ({"on_error": "ignore"}, "on_error='ignore'"),
        ({"progress": "yes"}, "progress='yes'"),
    ],
)
async def test_wrong_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    dag = squares()
    with pytest.raises(DagDefinitionError, match=message):
        await invoke_many(dag, range(3), **kwargs)  # type: ignore[arg-type]  # deliberate misuse
