"""`dagwire.otel.OTelObserver` through the real OpenTelemetry SDK (in-memory span exporter and
metric reader), driven by hand-made event sequences that follow the order rules of
`dagwire.events`: one run's events in the order the run loop delivers them, each node attempt's
events in the task (and context) where its body runs. `test_otel_runs.py` drives the same
observer through real runs.
"""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.trace import SpanKind, StatusCode

from dagwire.errors import DagError
from dagwire.events import (
    BreakerChanged,
    CleanupFinished,
    CleanupStarted,
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
from dagwire.otel import OTelObserver
from dagwire.policies import BreakerState
from otel_support import Traces, attrs, in_memory_traces, int_attr, parent_id, span_id, trace_id


class Busy(Exception):
    """A downstream error whose type is not a builtin (for ``error.type``)."""


@pytest.fixture
def traces() -> Iterator[Traces]:
    with in_memory_traces() as t:
        yield t


class Script:
    """Hand-made events of one run, each a millisecond after the one before."""

    def __init__(self, dag: str = "g", run_id: int = 1) -> None:
        self.dag = dag
        self.run_id = run_id
        self.time = 0.0

    def _tick(self) -> float:
        self.time += 0.001
        return self.time

    def run_started(self) -> RunStarted:
        return RunStarted(dag=self.dag, run_id=self.run_id, time=0.0)

    def run_finished(self, *, ok: bool = True, error: BaseException | None = None) -> RunFinished:
        t = self._tick()
        return RunFinished(dag=self.dag, run_id=self.run_id, time=t, duration=t, ok=ok, error=error)

    def started(self, node: str, attempt: int = 1) -> NodeStarted:
        return NodeStarted(
            dag=self.dag, run_id=self.run_id, node=node, attempt=attempt, time=self._tick()
        )

    def succeeded(
        self, node: str, attempt: int = 1, *, cached: bool = False, resumed: bool = False
    ) -> NodeSucceeded:
        return NodeSucceeded(
            dag=self.dag,
            run_id=self.run_id,
            node=node,
            attempt=attempt,
            time=self._tick(),
            duration=0.001,
            cached=cached,
            resumed=resumed,
        )

    def failed(
        self, node: str, error: BaseException, attempt: int = 1, *, recovered: bool = False
    ) -> NodeFailed:
        return NodeFailed(
            dag=self.dag,
            run_id=self.run_id,
            node=node,
            attempt=attempt,
            time=self._tick(),
            duration=0.001,
            error=error,
            recovered=recovered,
        )

    def retrying(self, node: str, error: BaseException, attempt: int, delay: float) -> NodeRetrying:
        return NodeRetrying(
            dag=self.dag,
            run_id=self.run_id,
            node=node,
            attempt=attempt,
            time=self._tick(),
            duration=0.001,
            error=error,
            delay=delay,
        )

    def cancelled(self, node: str, attempt: int = 1) -> NodeCancelled:
        return NodeCancelled(
            dag=self.dag,
            run_id=self.run_id,
            node=node,
            attempt=attempt,
            time=self._tick(),
            duration=0.001,
        )

    def skipped(self, node: str, cause: str | None) -> NodeSkipped:
        return NodeSkipped(
            dag=self.dag, run_id=self.run_id, node=node, time=self._tick(), cause=cause
        )

    def cleanup(self, node: str, error: BaseException | None = None) -> list[Event]:
        return [
            CleanupStarted(dag=self.dag, run_id=self.run_id, node=node, time=self._tick()),
            CleanupFinished(
                dag=self.dag,
                run_id=self.run_id,
                node=node,
                time=self._tick(),
                duration=0.001,
                error=error,
            ),
        ]


def deliver(observer: Callable[[Event], None], events: Iterable[Event]) -> None:
    """Deliver `events` in order in a copy of the current context, as one task would: what the
    observer attaches there cannot leak into the test's own context."""

    def run() -> None:
        for event in events:
            observer(event)

    contextvars.copy_context().run(run)


def simple_run(s: Script, *nodes: str) -> list[Event]:
    events: list[Event] = [s.run_started()]
    for node in nodes:
        events += [s.started(node), s.succeeded(node)]
    return [*events, s.run_finished()]


# -- the span tree --------------------------------------------------------------------------


def test_run_and_node_spans_form_a_tree_under_the_callers_span(traces: Traces) -> None:
    observer = OTelObserver(tracer_provider=traces.provider)
    s = Script("orders", run_id=7)
    with traces.tracer.start_as_current_span("caller"):
        deliver(observer, simple_run(s, "fetch", "merge"))
    caller, run = traces.one("caller"), traces.one("invoke orders")
    fetch, merge = traces.one("node fetch"), traces.one("node merge")
    assert parent_id(run) == span_id(caller)
    assert parent_id(fetch) == parent_id(merge) == span_id(run)
    assert len({trace_id(sp) for sp in (caller, run, fetch, merge)}) == 1
    for span in (run, fetch, merge):
        assert span.kind is SpanKind.INTERNAL
        assert span.status.status_code is StatusCode.UNSET
        assert span.instrumentation_scope is not None
        assert span.instrumentation_scope.name == "dagwire"
    assert attrs(run) == {
        "dagwire.dag.name": "orders",
        "dagwire.run.id": 7,
        "dagwire.run.status": "succeeded",
    }
    assert attrs(fetch) == {
        "dagwire.dag.name": "orders",
        "dagwire.run.id": 7,
        "dagwire.node.name": "fetch",
        "dagwire.node.attempt": 1,
        "dagwire.node.status": "succeeded",
    }
    # The run span covers its nodes.
    assert run.start_time is not None
    assert run.end_time is not None
    for node in (fetch, merge):
        assert node.start_time is not None
        assert node.end_time is not None
        assert run.start_time <= node.start_time <= node.end_time <= run.end_time
    assert repr(observer) == "OTelObserver(active_runs=0)"


def test_a_run_without_a_current_span_is_a_root(traces: Traces) -> None:
    deliver(OTelObserver(tracer_provider=traces.provider), simple_run(Script(), "a"))
    assert traces.one("invoke g").parent is None
    assert parent_id(traces.one("node a")) == span_id(traces.one("invoke g"))


def test_the_run_span_never_becomes_current_in_the_callers_context(traces: Traces) -> None:
    observer = OTelObserver(tracer_provider=traces.provider)
    s = Script()
    with traces.tracer.start_as_current_span("caller") as caller:
        observer(s.run_started())
        assert trace.get_current_span() is caller
        deliver(observer, [s.started("a"), s.succeeded("a")])
        assert trace.get_current_span() is caller
        observer(s.run_finished())
        assert trace.get_current_span() is caller


async def test_the_node_span_is_current_in_its_attempts_task_only(traces: Traces) -> None:
    observer = OTelObserver(tracer_provider=traces.provider)
    s = Script()
    seen: dict[str, trace.Span] = {}

    async def attempt(node: str) -> None:  # the run loop's task for one node attempt
        observer(s.started(node))
        seen[node] = trace.get_current_span()
        with traces.tracer.start_as_current_span(f"user {node}"):
            await asyncio.sleep(0)
        observer(s.succeeded(node))
        assert trace.get_current_span() is trace.INVALID_SPAN  # detached again

    observer(s.run_started())
    await asyncio.gather(attempt("a"), attempt("b"))
    assert trace.get_current_span() is trace.INVALID_SPAN
    observer(s.run_finished())
    for node in ("a", "b"):
        node_span = traces.one(f"node {node}")
        assert seen[node].get_span_context().span_id == span_id(node_span)
        assert parent_id(traces.one(f"user {node}")) == span_id(node_span)


async def test_a_thread_body_given_the_attempts_context_parents_its_spans(
    traces: Traces,
) -> None:
    observer = OTelObserver(tracer_provider=traces.provider)
    s = Script()
    threads: list[str] = []

    def body() -> int:  # runs in an executor thread
        threads.append(threading.current_thread().name)
        with traces.tracer.start_as_current_span("user in thread"):
            return 42

    async def attempt() -> None:
        observer(s.started("sync"))
        # What the run loop does for executor="thread": a copy taken after NodeStarted.
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, context.run, body) == 42
        observer(s.succeeded("sync"))

    observer(s.run_started())
    await asyncio.create_task(attempt())
    observer(s.run_finished())
    assert threads
    assert threads[0] != threading.current_thread().name
    assert parent_id(traces.one("user in thread")) == span_id(traces.one("node sync"))


# -- statuses -------------------------------------------------------------------------------


def test_one_span_per_attempt_of_a_retried_node(traces: Traces) -> None:
    s = Script()
    first, second = Busy("pool exhausted"), TimeoutError()
    events = [
        s.run_started(),
        s.started("fetch", 1),
        s.retrying("fetch", first, 1, delay=0.5),
        s.started("fetch", 2),
        s.retrying("fetch", second, 2, delay=1.0),
        s.started("fetch", 3),
        s.succeeded("fetch", 3),
        s.run_finished(),
    ]
    deliver(OTelObserver(tracer_provider=traces.provider), events)
    spans = sorted(traces.named("node fetch"), key=lambda sp: int_attr(sp, "dagwire.node.attempt"))
    assert [attrs(sp)["dagwire.node.attempt"] for sp in spans] == [1, 2, 3]
    assert [attrs(sp)["dagwire.node.status"] for sp in spans] == [
        "retrying",
        "retrying",
        "succeeded",
    ]
    run = traces.one("invoke g")
    assert all(parent_id(sp) == span_id(run) for sp in spans)
    one, two, three = spans
    assert one.status.status_code is StatusCode.ERROR
    assert one.status.description == "pool exhausted"
    assert attrs(one)["error.type"] == f"{__name__}.Busy"
    assert attrs(one)["dagwire.node.retry_delay"] == 0.5
    assert [e.name for e in one.events] == ["exception"]
    assert dict(one.events[0].attributes or {})["exception.message"] == "pool exhausted"
    # An exception without a message: the status says what it was.
    assert two.status.description == "TimeoutError"
    assert attrs(two)["error.type"] == "TimeoutError"
    assert three.status.status_code is StatusCode.UNSET
    assert "error.type" not in attrs(three)
    assert not three.events
    assert run.status.status_code is StatusCode.UNSET


def test_a_failed_node_and_its_run_are_errors(traces: Traces) -> None:
    s = Script()
    error = Busy("downstream said 503")
    dag_error = DagError("1 node failed in g", [error], {"fetch": error})
    events = [
        s.run_started(),
        s.started("fetch"),
        s.failed("fetch", error),
        s.run_finished(ok=False, error=dag_error),
    ]
    deliver(OTelObserver(tracer_provider=traces.provider), events)
    node, run = traces.one("node fetch"), traces.one("invoke g")
    assert node.status.status_code is StatusCode.ERROR
    assert node.status.description == "downstream said 503"
    assert attrs(node)["dagwire.node.status"] == "failed"
    assert attrs(node)["error.type"] == f"{__name__}.Busy"
    (exception,) = node.events
    assert exception.name == "exception"
    exception_attrs = dict(exception.attributes or {})
    assert exception_attrs["exception.type"] == f"{__name__}.Busy"
    assert exception_attrs["exception.message"] == "downstream said 503"
    assert run.status.status_code is StatusCode.ERROR
    assert run.status.description == str(dag_error)
    assert attrs(run)["dagwire.run.status"] == "failed"
    assert attrs(run)["error.type"] == "dagwire.errors.DagError"
    assert [e.name for e in run.events] == ["exception"]


def test_a_recovered_failure_is_an_error_span_in_a_run_that_succeeds(traces: Traces) -> None:
    s = Script()
    events = [
        s.run_started(),
        s.started("flags"),
        s.failed("flags", Busy("flag service down"), recovered=True),
        s.started("render"),
        s.succeeded("render"),
        s.run_finished(),
    ]
    deliver(OTelObserver(tracer_provider=traces.provider), events)
    flags = traces.one("node flags")
    assert attrs(flags)["dagwire.node.status"] == "recovered"
    assert flags.status.status_code is StatusCode.ERROR
    assert traces.one("invoke g").status.status_code is StatusCode.UNSET


def test_a_cancelled_node_and_a_cancelled_run_stay_unset(traces: Traces) -> None:
    s = Script()
    events = [
        s.run_started(),
        s.started("slow"),
        s.cancelled("slow"),
        s.run_finished(ok=False, error=asyncio.CancelledError()),
    ]
    deliver(OTelObserver(tracer_provider=traces.provider), events)
    node, run = traces.one("node slow"), traces.one("invoke g")
    assert node.status.status_code is StatusCode.UNSET
    assert attrs(node)["dagwire.node.status"] == "cancelled"
    assert not node.events
    assert run.status.status_code is StatusCode.UNSET
    assert attrs(run)["dagwire.run.status"] == "cancelled"


def test_a_continue_mode_run_that_is_not_ok_names_its_failed_nodes(traces: Traces) -> None:
    s = Script()
    events = [
        s.run_started(),
        s.started("a"),
        s.failed("a", ValueError("bad")),
        s.skipped("b", cause="a"),
        s.started("c"),
        s.failed("c", KeyError("k")),
        s.run_finished(ok=False),
    ]
    deliver(OTelObserver(tracer_provider=traces.provider), events)
    run = traces.one("invoke g")
    assert run.status.status_code is StatusCode.ERROR
    assert run.status.description == "nodes failed: a, c"
    assert attrs(run)["dagwire.run.status"] == "failed"
    assert "error.type" not in attrs(run)
    # A node skipped because of another never ran: no span.
    assert not traces.named("node b")


def test_a_node_that_raised_skip_ends_its_span_as_skipped(traces: Traces) -> None:
    s = Script()
    events = [s.run_started(), s.started("maybe"), s.skipped("maybe", cause="maybe")]
    deliver(OTelObserver(tracer_provider=traces.provider), [*events, s.run_finished()])
    span = traces.one("node maybe")
    assert span.status.status_code is StatusCode.UNSET
    assert attrs(span)["dagwire.node.status"] == "skipped"
    assert attrs(span)["dagwire.node.skip_cause"] == "maybe"


@pytest.mark.parametrize("how", ["cached", "resumed"])
def test_a_value_taken_without_an_attempt_is_a_zero_length_span(traces: Traces, how: str) -> None:
    s = Script()
    taken = s.succeeded("price", cached=how == "cached", resumed=how == "resumed")
    deliver(
        OTelObserver(tracer_provider=traces.provider), [s.run_started(), taken, s.run_finished()]
    )
    span = traces.one("node price")
    assert span.start_time is not None
    assert span.start_time == span.end_time
    assert parent_id(span) == span_id(traces.one("invoke g"))
    assert attrs(span)[f"dagwire.node.{how}"] is True
    assert attrs(span)["dagwire.node.status"] == "succeeded"
    other = "resumed" if how == "cached" else "cached"
    assert f"dagwire.node.{other}" not in attrs(span)


def test_a_failure_before_any_attempt_still_shows_as_an_error_span(traces: Traces) -> None:
    s = Script()
    events = [s.run_started(), s.failed("guarded", Busy("circuit open")), s.run_finished(ok=False)]
    deliver(OTelObserver(tracer_provider=traces.provider), events)
    span = traces.one("node guarded")
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["dagwire.node.status"] == "failed"


def test_an_attempt_left_open_is_ended_when_its_run_finishes(traces: Traces) -> None:
    s = Script()
    deliver(
        OTelObserver(tracer_provider=traces.provider),
        [s.run_started(), s.started("lost"), s.run_finished()],
    )
    assert attrs(traces.one("node lost"))["dagwire.node.status"] == "unfinished"


def test_cleanup_failures_and_breaker_changes_are_span_events(traces: Traces) -> None:
    s = Script()
    change = BreakerChanged(
        dag="g",
        run_id=1,
        node="call",
        time=0.5,
        attempt=1,
        old=BreakerState.CLOSED,
        new=BreakerState.OPEN,
    )
    events = [
        s.run_started(),
        s.started("conn"),
        s.succeeded("conn"),
        s.started("call"),
        change,
        s.failed("call", Busy("no")),
        *s.cleanup("conn", error=OSError("close failed")),
        s.run_finished(ok=False, error=Busy("no")),
    ]
    deliver(OTelObserver(tracer_provider=traces.provider), events)
    call, run = traces.one("node call"), traces.one("invoke g")
    assert [e.name for e in call.events] == ["dagwire.breaker_changed", "exception"]
    assert dict(call.events[0].attributes or {}) == {
        "dagwire.breaker.old": "closed",
        "dagwire.breaker.new": "open",
        "dagwire.node.name": "call",
    }
    cleanup_failure, run_failure = run.events
    assert dict(cleanup_failure.attributes or {})["dagwire.node.name"] == "conn"
    assert dict(cleanup_failure.attributes or {})["exception.message"] == "close failed"
    assert dict(run_failure.attributes or {})["exception.message"] == "no"
    assert not traces.one("node conn").events  # a successful cleanup records nothing


def test_events_of_a_run_the_observer_did_not_see_start_are_ignored(traces: Traces) -> None:
    s = Script()
    deliver(
        OTelObserver(tracer_provider=traces.provider),
        [s.started("a"), s.succeeded("a"), s.failed("b", ValueError()), s.run_finished()],
    )
    assert traces.spans() == []


# -- concurrency ----------------------------------------------------------------------------


async def test_concurrent_runs_sharing_one_observer_do_not_mix(traces: Traces) -> None:
    observer = OTelObserver(tracer_provider=traces.provider)

    async def one_run(run_id: int) -> None:  # a caller awaiting invoke; nodes in their tasks
        s = Script("shared", run_id)

        async def attempt(node: str) -> None:
            observer(s.started(node))
            await asyncio.sleep(0)
            with traces.tracer.start_as_current_span(f"user {node}", attributes={"run": run_id}):
                await asyncio.sleep(0)
            observer(s.succeeded(node))

        with traces.tracer.start_as_current_span("request", attributes={"run": run_id}):
            observer(s.run_started())
            async with asyncio.TaskGroup() as group:
                for node in ("auth", "fetch", "merge"):
                    group.create_task(attempt(node))
            observer(s.run_finished())

    async with asyncio.TaskGroup() as group:
        for run_id in range(1, 51):
            group.create_task(one_run(run_id))

    spans = traces.spans()
    by_id = {span_id(sp): sp for sp in spans}
    assert len(spans) == 50 * (2 + 3 * 2)
    runs = [sp for sp in spans if sp.name == "invoke shared"]
    assert sorted(int_attr(sp, "dagwire.run.id") for sp in runs) == list(range(1, 51))
    for run in runs:
        run_id = int_attr(run, "dagwire.run.id")
        request = by_id[parent_id(run) or 0]
        assert attrs(request)["run"] == run_id
        nodes = [sp for sp in spans if parent_id(sp) == span_id(run)]
        assert sorted(sp.name for sp in nodes) == ["node auth", "node fetch", "node merge"]
        for node in nodes:
            assert attrs(node)["dagwire.run.id"] == run_id
            (user,) = [sp for sp in spans if parent_id(sp) == span_id(node)]
            assert attrs(user)["run"] == run_id
    assert repr(observer) == "OTelObserver(active_runs=0)"


# -- metrics --------------------------------------------------------------------------------


def histogram_points(reader: InMemoryMetricReader) -> dict[str, list[HistogramDataPoint]]:
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[HistogramDataPoint]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "dagwire"
            for metric in scope.metrics:
                assert metric.unit == "s"
                points[metric.name] = [
                    p for p in metric.data.data_points if isinstance(p, HistogramDataPoint)
                ]
    return points


def test_duration_histograms_with_a_meter_provider(traces: Traces) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    observer = OTelObserver(tracer_provider=traces.provider, meter_provider=meters)
    s = Script("orders")
    events = [
        s.run_started(),
        s.started("fetch", 1),
        s.retrying("fetch", Busy("busy"), 1, delay=0.1),
        s.started("fetch", 2),
        s.succeeded("fetch", 2),
        s.started("merge"),
        s.failed("merge", ValueError("bad")),
        s.succeeded("cached", cached=True),  # no attempt ran: no duration recorded
        s.run_finished(ok=False, error=ValueError("bad")),
    ]
    deliver(observer, events)
    deliver(observer, simple_run(Script("orders", run_id=2), "fetch"))
    s3 = Script("orders", run_id=3)
    cancelled = [s3.run_started(), s3.run_finished(ok=False, error=asyncio.CancelledError())]
    deliver(observer, cancelled)
    points = histogram_points(reader)
    meters.shutdown()

    runs = {tuple(sorted((p.attributes or {}).items())): p for p in points["dagwire.run.duration"]}
    assert set(runs) == {
        (
            ("dagwire.dag.name", "orders"),
            ("dagwire.run.status", "failed"),
            ("error.type", "ValueError"),
        ),
        (("dagwire.dag.name", "orders"), ("dagwire.run.status", "succeeded")),
        # A cancellation is no error: no error.type.
        (("dagwire.dag.name", "orders"), ("dagwire.run.status", "cancelled")),
    }
    assert all(p.count == 1 for p in runs.values())
    failed_run = runs[
        (
            ("dagwire.dag.name", "orders"),
            ("dagwire.run.status", "failed"),
            ("error.type", "ValueError"),
        )
    ]
    assert failed_run.sum == pytest.approx(events[-1].duration)

    nodes = {
        tuple(sorted((p.attributes or {}).items())): p.count
        for p in points["dagwire.node.duration"]
    }
    base = (("dagwire.dag.name", "orders"),)
    assert nodes == {
        (
            *base,
            ("dagwire.node.name", "fetch"),
            ("dagwire.node.status", "retrying"),
            ("error.type", f"{__name__}.Busy"),
        ): 1,
        (*base, ("dagwire.node.name", "fetch"), ("dagwire.node.status", "succeeded")): 2,
        (
            *base,
            ("dagwire.node.name", "merge"),
            ("dagwire.node.status", "failed"),
            ("error.type", "ValueError"),
        ): 1,
    }
    # Bucket boundaries in seconds, fine enough for sub-millisecond nodes.
    point = points["dagwire.node.duration"][0]
    assert point.explicit_bounds[0] == 0.0001
    assert point.explicit_bounds[-1] == 60.0


def test_no_meter_provider_no_metrics(traces: Traces) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])  # exists, but is not given to the observer
    deliver(OTelObserver(tracer_provider=traces.provider), simple_run(Script(), "a"))
    data = reader.get_metrics_data()
    meters.shutdown()
    assert data is None or not data.resource_metrics


# -- switching on, globals, imports ----------------------------------------------------------


def run_python(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_import_dagwire_and_dagwire_otel_never_import_opentelemetry() -> None:
    out = run_python(
        "import sys, dagwire, dagwire.otel, dagwire.events\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    assert out.strip() == "[]"


def test_without_a_provider_the_global_one_is_used_and_never_set() -> None:
    # In a fresh interpreter: the global provider is process-wide and can be set only once.
    out = run_python(
        """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from dagwire.events import RunFinished, RunStarted
from dagwire.otel import OTelObserver

mine = TracerProvider()
mine_exporter = InMemorySpanExporter()
mine.add_span_processor(SimpleSpanProcessor(mine_exporter))
explicit, implicit = OTelObserver(tracer_provider=mine), OTelObserver()
explicit(RunStarted(dag="explicit", run_id=1, time=0.0))
explicit(RunFinished(dag="explicit", run_id=1, time=0.1, ok=True))
assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider", "a global was set"

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)  # set after the observer was made: still used
implicit(RunStarted(dag="implicit", run_id=2, time=0.0))
implicit(RunFinished(dag="implicit", run_id=2, time=0.1, ok=True))
print([s.name for s in mine_exporter.get_finished_spans()])
print([s.name for s in exporter.get_finished_spans()])
"""
    )
    assert out.split("\n")[:2] == ["['invoke explicit']", "['invoke implicit']"]


def test_a_missing_opentelemetry_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # "not installed" for `import`
    with pytest.raises(ImportError, match=r"pip install dagwire\[otel\]") as caught:
        OTelObserver()
    assert caught.value.name == "opentelemetry"
