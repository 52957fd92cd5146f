"""`OTelObserver` on real runs: the run loop delivers the events, the real SDK records the spans.

These tests need the run loop to emit events to `observers=` (build_dag and invoke) and
`dagwire.current()`; `test_otel.py` covers the observer itself with hand-made event sequences.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.trace import SpanKind, StatusCode

import dagwire
from dagwire import DagError, Retry, build_dag
from dagwire.otel import OTelObserver
from otel_support import Traces, attrs, in_memory_traces, int_attr, parent_id, span_id, tree


@pytest.fixture
def traces() -> Iterator[Traces]:
    with in_memory_traces() as t:
        yield t


class Down(Exception):
    """A downstream service failed."""


async def test_spans_of_a_run_nest_under_the_caller_and_hold_user_spans(traces: Traces) -> None:
    observer = OTelObserver(tracer_provider=traces.provider)
    tracer = traces.tracer
    contexts: dict[str, dagwire.RunContext | None] = {}
    threads: list[threading.Thread] = []

    async def fetch(user_id: int) -> str:
        contexts["fetch"] = dagwire.current()
        with tracer.start_as_current_span("http GET /users"):
            await asyncio.sleep(0.001)
        return f"user{user_id}"

    def parse(raw: str) -> str:  # runs in a thread
        threads.append(threading.current_thread())
        contexts["parse"] = dagwire.current()
        with tracer.start_as_current_span("parse json"):
            return raw.upper()

    def render(user: str) -> str:  # runs inline on the loop
        with tracer.start_as_current_span("template"):
            return f"<{user}>"

    with build_dag(int, name="profile", observers=[observer]) as dag:
        raw = dag.add_node(fetch, dag.params, name="fetch", tags=("http", "users"))
        parsed = dag.add_node(parse, raw, name="parse", executor="thread")
        page = dag.add_node(render, parsed, name="render")

    with tracer.start_as_current_span("request") as request:
        result = await dag.invoke(7)
        # Neither the run span nor a node span is left current in the caller's context.
        assert trace.get_current_span() is request
    assert result[page] == "<USER7>"
    assert threads
    assert threads[0] is not threading.main_thread()

    spans = traces.spans()
    assert tree(spans, traces.one("request")) == [
        "request",
        "  invoke profile",
        "    node fetch",
        "      http GET /users",
        "    node parse",
        "      parse json",
        "    node render",
        "      template",
    ]
    run = traces.one("invoke profile")
    assert run.kind is SpanKind.INTERNAL
    assert run.status.status_code is StatusCode.UNSET
    run_id = int_attr(run, "dagwire.run.id")
    for name in ("fetch", "parse", "render"):
        node = traces.one(f"node {name}")
        assert node.kind is SpanKind.INTERNAL
        assert node.status.status_code is StatusCode.UNSET
        assert attrs(node)["dagwire.dag.name"] == "profile"
        assert attrs(node)["dagwire.node.name"] == name
        assert attrs(node)["dagwire.node.status"] == "succeeded"
        assert attrs(node)["dagwire.node.attempt"] == 1
        assert attrs(node)["dagwire.run.id"] == run_id
    # The span's run id and attempt are those the body sees through dagwire.current().
    assert contexts["fetch"] == dagwire.RunContext("profile", run_id, "fetch", 1)
    assert contexts["parse"] == dagwire.RunContext("profile", run_id, "parse", 1)
    assert attrs(traces.one("node fetch"))["dagwire.node.tags"] == ("http", "users")
    assert "dagwire.node.tags" not in attrs(traces.one("node parse"))


async def test_observers_given_to_invoke_trace_that_run_only(traces: Traces) -> None:
    async def one() -> int:
        return 1

    with build_dag(name="plain") as dag:
        dag.add_node(one, name="one")
    await dag.invoke(None)
    assert traces.spans() == []
    await dag.invoke(None, observers=[OTelObserver(tracer_provider=traces.provider)])
    await dag.invoke(None)
    run = traces.one("invoke plain")
    assert tree(traces.spans(), run) == ["invoke plain", "  node one"]


async def test_a_retried_node_has_one_span_per_attempt(traces: Traces) -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        with traces.tracer.start_as_current_span(f"call {calls}"):
            if calls < 3:
                raise ConnectionError(f"reset {calls}")
        return "ok"

    with build_dag(name="retry") as dag:
        dag.add_node(flaky, name="flaky", retry=Retry(attempts=3, initial_delay=0.001))
    await dag.invoke(None, observers=[OTelObserver(tracer_provider=traces.provider)])

    attempts = sorted(traces.named("node flaky"), key=lambda s: int_attr(s, "dagwire.node.attempt"))
    assert [int_attr(s, "dagwire.node.attempt") for s in attempts] == [1, 2, 3]
    assert [attrs(s)["dagwire.node.status"] for s in attempts] == [
        "retrying",
        "retrying",
        "succeeded",
    ]
    run = traces.one("invoke retry")
    for k, attempt in enumerate(attempts, start=1):
        assert parent_id(attempt) == span_id(run)
        assert parent_id(traces.one(f"call {k}")) == span_id(attempt)
    first = attempts[0]
    assert first.status.status_code is StatusCode.ERROR
    assert first.status.description == "reset 1"
    assert attrs(first)["error.type"] == "ConnectionError"
    assert [e.name for e in first.events] == ["exception"]
    assert attempts[2].status.status_code is StatusCode.UNSET
    assert run.status.status_code is StatusCode.UNSET
    # Attempts follow one another: each span ends before the next starts.
    for before, after in itertools.pairwise(attempts):
        assert before.end_time is not None
        assert after.start_time is not None
        assert before.end_time <= after.start_time


async def test_a_failing_node_is_an_error_and_its_cancelled_sibling_is_not(
    traces: Traces,
) -> None:
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(5)

    async def failing() -> None:
        await started.wait()
        raise Down("payments returned 503")

    with build_dag(name="checkout") as dag:
        dag.add_node(slow, name="slow")
        dag.add_node(failing, name="pay")
    with pytest.raises(DagError):
        await dag.invoke(None, observers=[OTelObserver(tracer_provider=traces.provider)])

    pay, slow_span, run = (
        traces.one("node pay"),
        traces.one("node slow"),
        traces.one("invoke checkout"),
    )
    assert pay.status.status_code is StatusCode.ERROR
    assert pay.status.description == "payments returned 503"
    assert attrs(pay)["dagwire.node.status"] == "failed"
    assert attrs(pay)["error.type"] == f"{__name__}.Down"
    (exception,) = pay.events
    assert dict(exception.attributes or {})["exception.message"] == "payments returned 503"
    assert slow_span.status.status_code is StatusCode.UNSET
    assert attrs(slow_span)["dagwire.node.status"] == "cancelled"
    assert run.status.status_code is StatusCode.ERROR
    assert attrs(run)["dagwire.run.status"] == "failed"
    assert attrs(run)["error.type"] == "dagwire.errors.DagError"


async def test_a_caller_cancel_leaves_the_node_and_run_spans_unset(traces: Traces) -> None:
    started = asyncio.Event()

    async def wait() -> None:
        started.set()
        await asyncio.sleep(5)

    with build_dag(name="cancel") as dag:
        dag.add_node(wait, name="wait")
    task = asyncio.create_task(
        dag.invoke(None, observers=[OTelObserver(tracer_provider=traces.provider)])
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    node, run = traces.one("node wait"), traces.one("invoke cancel")
    assert node.status.status_code is StatusCode.UNSET
    assert attrs(node)["dagwire.node.status"] == "cancelled"
    assert run.status.status_code is StatusCode.UNSET
    assert attrs(run)["dagwire.run.status"] == "cancelled"
    assert parent_id(node) == span_id(run)


async def test_a_resource_setup_is_a_node_span_and_a_sub_graph_nests(traces: Traces) -> None:
    closed: list[str] = []

    async def connection() -> AsyncIterator[str]:
        yield "conn"
        closed.append("conn")

    async def query(conn: str) -> str:
        return f"{conn}:rows"

    with build_dag(name="inner") as inner:
        conn = inner.add_resource(connection, name="connection")
        inner.add_node(query, conn, name="query")

    with build_dag(
        name="outer", observers=[OTelObserver(tracer_provider=traces.provider)]
    ) as outer:
        outer.add_node(inner, name="sub")

    await outer.invoke(None)
    assert closed == ["conn"]
    # A sub-graph's run reports to the observers of the run it is part of: it nests.
    assert tree(traces.spans(), traces.one("invoke outer")) == [
        "invoke outer",
        "  node sub",
        "    invoke inner",
        "      node connection",
        "      node query",
    ]
    # The same observer given to both graphs reports each run once.

    observer = OTelObserver(tracer_provider=traces.provider)
    with build_dag(name="inner2", observers=[observer]) as inner2:
        conn2 = inner2.add_resource(connection, name="connection")
        inner2.add_node(query, conn2, name="query")
    with build_dag(name="outer2", observers=[observer]) as outer2:
        outer2.add_node(inner2, name="sub")
    await outer2.invoke(None)
    assert tree(traces.spans(), traces.one("invoke outer2")) == [
        "invoke outer2",
        "  node sub",
        "    invoke inner2",
        "      node connection",
        "      node query",
    ]


async def test_concurrent_runs_of_one_graph_each_get_their_own_tree(traces: Traces) -> None:
    observer = OTelObserver(tracer_provider=traces.provider)

    async def auth(n: int) -> int:
        await asyncio.sleep(0.001 * (n % 3))
        with traces.tracer.start_as_current_span("auth call", attributes={"n": n}):
            await asyncio.sleep(0)
        return n

    def merge(n: int) -> int:
        with traces.tracer.start_as_current_span("merge work", attributes={"n": n}):
            return n * 2

    with build_dag(int, name="many", observers=[observer]) as dag:
        a = dag.add_node(auth, dag.params, name="auth")
        dag.add_node(merge, a, name="merge", executor="thread")

    async def request(n: int) -> None:
        with traces.tracer.start_as_current_span("request", attributes={"n": n}):
            await dag.invoke(n)

    async with asyncio.TaskGroup() as group:
        for n in range(30):
            group.create_task(request(n))

    spans = traces.spans()
    requests = [s for s in spans if s.name == "request"]
    assert len(requests) == 30
    for req in requests:
        caller_n = attrs(req)["n"]
        assert tree(spans, req) == [
            "request",
            "  invoke many",
            "    node auth",
            "      auth call",
            "    node merge",
            "      merge work",
        ]
        run = next(s for s in spans if parent_id(s) == span_id(req))
        for node in (s for s in spans if parent_id(s) == span_id(run)):
            (user,) = [s for s in spans if parent_id(s) == span_id(node)]
            assert attrs(user)["n"] == caller_n
    assert repr(observer) == "OTelObserver(active_runs=0)"


async def test_duration_histograms_of_a_real_run(traces: Traces) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])

    async def ok() -> int:
        await asyncio.sleep(0.002)
        return 1

    async def bad(x: int) -> int:
        raise Down("no")

    with build_dag(name="metered") as dag:
        x = dag.add_node(ok, name="ok")
        dag.add_node(bad, x, name="bad")
    observer = OTelObserver(tracer_provider=traces.provider, meter_provider=meters)
    result = await dag.invoke(None, on_error="continue", observers=[observer])
    assert not result.ok
    data = reader.get_metrics_data()
    meters.shutdown()
    assert data is not None
    points: dict[str, list[HistogramDataPoint]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points[metric.name] = [
                    p for p in metric.data.data_points if isinstance(p, HistogramDataPoint)
                ]
    (run_point,) = points["dagwire.run.duration"]
    assert dict(run_point.attributes or {}) == {
        "dagwire.dag.name": "metered",
        "dagwire.run.status": "failed",
    }
    assert run_point.sum >= 0.002
    by_node = {
        dict(p.attributes or {})["dagwire.node.name"]: p for p in points["dagwire.node.duration"]
    }
    assert by_node["ok"].sum >= 0.002
    assert dict(by_node["bad"].attributes or {})["error.type"] == f"{__name__}.Down"
    assert traces.one("invoke metered").status.description == "nodes failed: bad"
