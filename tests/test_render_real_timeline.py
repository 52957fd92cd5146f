"""Pictures of real runs invoked with `timeline=True`: per-attempt and cleanup intervals.

The run loop records `NodeTiming.intervals` (one `Interval` per attempt and per cleanup); these
tests check what it records for a retried node, a fallback, a `post=` hook and a resource whose
cleanup fails, and the pictures drawn from it. The other picture tests use hand-built timelines
(`render_cases.hand_result`) to reach cases a real run makes hard to time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from matplotlib.image import imread

from dagwire import ExecutionResult, NodeStatus, NodeTiming, Retry, build_dag
from diagram_check import parse_gantt
from trace_check import Event, as_object, check_trace

RETRY = Retry(attempts=3, initial_delay=0.002, jitter=False)


async def _real_run() -> ExecutionResult[int]:
    calls = {"flaky": 0}

    async def conn() -> AsyncIterator[str]:
        yield "connection"
        raise OSError("close failed")

    async def flaky(c: str, p: int) -> int:
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise ConnectionError(f"attempt {calls['flaky']}")
        return p + len(c)

    def broken(p: int) -> int:
        raise ValueError("broken")

    def merge(a: int, b: int) -> int:
        return a + b

    def post() -> None:
        return None

    with build_dag(int, name="real") as dag:
        c = dag.add_resource(conn, name="conn")
        f = dag.add_node(flaky, c, name="flaky", retry=RETRY)
        b = dag.add_node(broken, dag.params, name="broken", fallback=1, post=post)
        dag.add_node(merge, f, b, name="merge")
    return await dag.invoke(1, timeline=True, on_error="continue")


def _by_node(result: ExecutionResult[int]) -> dict[str, NodeTiming]:
    timings = {t.node: t for t in result.timeline()}
    assert all(t.intervals for t in timings.values()), (
        "the run loop does not record NodeTiming.intervals yet (invoke(timeline=True))"
    )
    return timings


async def test_intervals_of_a_retried_node_a_fallback_and_a_failed_cleanup() -> None:
    result = await _real_run()
    timings = _by_node(result)
    flaky = timings["flaky"]
    assert [(iv.what, iv.attempt, iv.outcome) for iv in flaky.intervals] == [
        ("attempt", 1, "retrying"),
        ("attempt", 2, "retrying"),
        ("attempt", 3, "succeeded"),
    ]
    assert flaky.attempts == 3
    for earlier, later in zip(flaky.intervals, flaky.intervals[1:], strict=False):
        assert earlier.end <= later.start  # the retry delay lies between attempts
    conn = timings["conn"]
    assert [(iv.what, iv.outcome) for iv in conn.intervals] == [
        ("attempt", "succeeded"),
        ("cleanup", "failed"),
    ]
    assert conn.intervals[1].start >= timings["merge"].end  # cleanup after every user ended
    broken = timings["broken"]
    assert [(iv.what, iv.outcome) for iv in broken.intervals] == [
        ("attempt", "recovered"),
        ("cleanup", "ok"),
    ]
    assert timings["merge"].status is NodeStatus.SUCCEEDED
    for t in timings.values():
        for iv in t.intervals:
            assert 0 <= iv.start <= iv.end


async def test_trace_of_a_real_run() -> None:
    result = await _real_run()
    _by_node(result)
    trace = result.to_chrome_trace()
    flows = check_trace(trace)
    slices = [e for e in trace["traceEvents"] if e["ph"] == "X"]

    def args(e: Event) -> Event:
        a = as_object(e["args"])
        assert a is not None
        return a

    got = sorted((str(args(e)["node"]), str(e["cat"]), str(args(e)["outcome"])) for e in slices)
    assert got == sorted(
        [
            ("conn", "attempt", "succeeded"),
            ("conn", "cleanup", "failed"),
            ("flaky", "attempt", "retrying"),
            ("flaky", "attempt", "retrying"),
            ("flaky", "attempt", "succeeded"),
            ("broken", "attempt", "recovered"),
            ("broken", "cleanup", "ok"),
            ("merge", "attempt", "succeeded"),
        ]
    )
    cleanup = next(e for e in slices if e["name"] == "conn cleanup")
    assert args(cleanup)["error"] == "OSError: close failed"
    arrows = sorted(
        (args(f.source)["node"], args(f.source)["attempt"], args(f.target)["node"]) for f in flows
    )
    assert arrows == [("broken", 1, "merge"), ("conn", 1, "flaky"), ("flaky", 3, "merge")]


async def test_gantt_pictures_of_a_real_run(tmp_path: Path) -> None:
    result = await _real_run()
    _by_node(result)
    _, tasks = parse_gantt(result.to_mermaid_gantt())
    assert [t.name for t in tasks if t.section == "run" and t.name.startswith("flaky")] == [
        "flaky attempt 1",
        "flaky attempt 2",
        "flaky attempt 3",
    ]
    assert sorted(t.name for t in tasks if t.section == "cleanup") == ["broken", "conn"]
    result.plot_gantt(tmp_path / "real.png")
    assert imread(tmp_path / "real.png").shape[1] == 1200
