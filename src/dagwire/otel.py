"""OpenTelemetry for dagwire runs: `OTelObserver` turns a run's events into spans and metrics.

Install with ``pip install dagwire[otel]`` (``opentelemetry-api``; you bring the SDK and its
exporters). Nothing here runs unless you pass an `OTelObserver` as an observer, and OpenTelemetry
is imported only when one is constructed: ``import dagwire`` (or ``dagwire.otel``) never imports it.

The spans, all of kind INTERNAL:

- ``invoke {dag}``, one per run, a child of the span that was current where `invoke` was called.
  It is never made current itself, so nothing leaks into the caller's context.
- ``node {name}``, one per attempt of a node's body (or of a resource's setup), a child of its
  run's span. While the attempt runs, its span is the current span of the attempt's context, so
  a span that user code (or an instrumented client) starts inside the body is its child, also in
  a thread executor, which gets a copy of that context.

Attributes: ``dagwire.dag.name`` and ``dagwire.run.id`` on both; on node spans
``dagwire.node.name``, ``dagwire.node.attempt`` (1-based), ``dagwire.node.tags`` (the node's
``tags=``, only when it has some) and ``dagwire.node.status``, one of

- ``"succeeded"``: the node produced its value (status UNSET);
- ``"failed"``: the node failed for good (status ERROR);
- ``"recovered"``: the node failed and its ``fallback=`` value was used (status ERROR: the
  attempt did fail; the run goes on);
- ``"retrying"``: this attempt failed with a retryable error and another follows after
  ``dagwire.node.retry_delay`` seconds (status ERROR);
- ``"cancelled"``: the attempt was cancelled (status UNSET: a cancellation is not a failure);
- ``"skipped"``: the body raised `dagwire.Skip` (status UNSET; ``dagwire.node.skip_cause``);
- ``"unfinished"``: the run ended while the attempt had no end event, which dagwire's run loop
  never does; the span is ended rather than lost.

On an ERROR status the description is the exception's message (its type's name when the
message is empty), the attribute ``error.type`` is its fully qualified type (``ValueError``,
``mypkg.errors.Busy``) and the span has an ``exception`` event (`Span.record_exception`). The run
span has ``dagwire.run.status``: ``"succeeded"``, ``"failed"`` (status ERROR, with the error
of `invoke` when it raised) or ``"cancelled"`` (status UNSET).

A value taken from a `Cache` or from ``invoke(resume_from=)`` without an attempt gets a
zero-length ``node {name}`` span with status ``"succeeded"`` and ``dagwire.node.cached`` or
``dagwire.node.resumed`` set to true, so every node that has a value in a run appears in its
trace. A node skipped because a node it depends on failed or skipped never ran and gets no span.
A failed cleanup is an ``exception`` event on the run span carrying ``dagwire.node.name``; a
circuit breaker's change is a ``dagwire.breaker_changed`` event on the attempt's span.

Metrics, only with a ``meter_provider``: histograms ``dagwire.run.duration`` (attributes
``dagwire.dag.name``, ``dagwire.run.status``) and ``dagwire.node.duration`` (one value per
attempt that started; ``dagwire.dag.name``, ``dagwire.node.name``, ``dagwire.node.status``), both
in seconds (unit ``s``), with ``error.type`` when the run or attempt failed with an exception
(a cancellation is not a failure). Run ids are not metric attributes (one series per run would
be unbounded).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final

from . import __version__
from .events import (
    BreakerChanged,
    CleanupFinished,
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

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.metrics import Histogram, MeterProvider
    from opentelemetry.trace import Span, Status, StatusCode, Tracer, TracerProvider
    from opentelemetry.util.types import AttributeValue

__all__ = ["OTelObserver"]

_DAG: Final = "dagwire.dag.name"
_RUN_ID: Final = "dagwire.run.id"
_RUN_STATUS: Final = "dagwire.run.status"
_NODE: Final = "dagwire.node.name"
_ATTEMPT: Final = "dagwire.node.attempt"
_STATUS: Final = "dagwire.node.status"
_TAGS: Final = "dagwire.node.tags"
_ERROR_TYPE: Final = "error.type"

# Seconds, from fast in-process nodes (100 µs) to slow remote calls (a minute). The SDK's own
# defaults (0, 5, 10, 25, ... 10000) suit milliseconds and would put nearly every node in one
# bucket; a View the user configures still takes precedence over this advice.
_DURATION_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


class _Attempt:
    """A node attempt whose span is open: the span, the token that made it current in the
    attempt's context, and when the attempt started (seconds since the run started)."""

    __slots__ = ("span", "start", "token")

    def __init__(self, span: Span, token: Token[Context], start: float) -> None:
        self.span = span
        self.token = token
        self.start = start


class _Run:
    """What the observer keeps for one run, from `RunStarted` until `RunFinished`."""

    __slots__ = ("attempts", "context", "failed", "span")

    def __init__(self, span: Span, context: Context) -> None:
        self.span = span
        self.context = context  # the caller's context with the run span in it: nodes' parent
        self.attempts: dict[str, _Attempt] = {}
        self.failed: list[str] = []  # nodes that failed for good, for the run span's status


def _error_type(error: BaseException) -> str:
    """The exception's fully qualified type, as OpenTelemetry's ``exception.type``: the
    qualified name alone for builtins (``ValueError``), else ``module.QualName``."""
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _node_attributes(event: Event, node: str) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        _DAG: event.dag,
        _RUN_ID: event.run_id,
        _NODE: node,
        _ATTEMPT: event.attempt,
    }
    if event.tags:
        attributes[_TAGS] = event.tags
    return attributes


def _taken_from(event: NodeSucceeded) -> dict[str, AttributeValue]:
    taken: dict[str, AttributeValue] = {}
    if event.cached:
        taken["dagwire.node.cached"] = True
    if event.resumed:
        taken["dagwire.node.resumed"] = True
    return taken


class OTelObserver:
    """An observer that records each run as OpenTelemetry spans (and, optionally, metrics).

    Pass it like any observer: ``build_dag(observers=[OTelObserver()])`` for every run of a
    graph, or ``dag.invoke(params, observers=[...])`` for one run. One observer can serve many
    graphs and many concurrent runs: it keeps per-run state keyed by the run's id and drops it
    when the run finishes. See the module's documentation for the spans, attributes and metrics.

    - `tracer_provider`: the `TracerProvider` to take the ``dagwire`` tracer from; default None
      uses the global one (`opentelemetry.trace.get_tracer`), whatever it is when a span starts.
      The observer never sets a global provider.
    - `meter_provider`: the `MeterProvider` for the duration histograms; default None records
      no metrics (pass ``opentelemetry.metrics.get_meter_provider()`` for the global one).

    Raises `ImportError` naming ``pip install dagwire[otel]`` when ``opentelemetry-api`` is not
    installed.
    """

    __slots__ = (
        "_attach",
        "_detach",
        "_error_code",
        "_in_context",
        "_node_duration",
        "_run_duration",
        "_runs",
        "_status",
        "_tracer",
    )

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        try:
            from opentelemetry import context, trace
        except ImportError as e:
            raise ImportError(
                "dagwire.otel.OTelObserver needs OpenTelemetry: pip install dagwire[otel]",
                name=e.name,
            ) from e
        self._tracer: Tracer = trace.get_tracer(
            "dagwire", __version__, tracer_provider=tracer_provider
        )
        # Bound once here so that handling an event looks nothing up in modules.
        self._attach: Callable[[Context], Token[Context]] = context.attach
        self._detach: Callable[[Token[Context]], None] = context.detach
        self._in_context: Callable[[Span], Context] = trace.set_span_in_context
        self._status: type[Status] = trace.Status
        self._error_code: StatusCode = trace.StatusCode.ERROR
        self._runs: dict[int, _Run] = {}
        self._run_duration: Histogram | None = None
        self._node_duration: Histogram | None = None
        if meter_provider is not None:
            meter = meter_provider.get_meter("dagwire", __version__)
            self._run_duration = meter.create_histogram(
                "dagwire.run.duration",
                unit="s",
                description="Duration of dagwire runs, from invoke to the end of cleanup.",
                explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
            )
            self._node_duration = meter.create_histogram(
                "dagwire.node.duration",
                unit="s",
                description="Duration of each attempt of a dagwire node's body or setup.",
                explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
            )

    def __repr__(self) -> str:
        return f"OTelObserver(active_runs={len(self._runs)})"

    def __call__(self, event: Event) -> None:
        """Record one event. Events of a run whose `RunStarted` this observer did not see
        (it was added after the run began) are ignored."""
        match event:
            case NodeStarted():
                self._node_started(event)
            case NodeSucceeded(cached=False, resumed=False):
                self._node_ended(event, "succeeded", None, None)
            case NodeSucceeded():
                self._node_ended(event, "succeeded", None, _taken_from(event))
            case NodeFailed():
                status = "recovered" if event.recovered else "failed"
                self._node_ended(event, status, event.error, None)
            case NodeRetrying():
                delay = {"dagwire.node.retry_delay": event.delay}
                self._node_ended(event, "retrying", event.error, delay)
            case NodeCancelled():
                self._node_ended(event, "cancelled", None, None)
            case NodeSkipped():
                self._node_skipped(event)
            case RunStarted():
                self._run_started(event)
            case RunFinished():
                self._run_finished(event)
            case CleanupFinished() if event.error is not None:
                self._cleanup_failed(event, event.error)
            case BreakerChanged():
                self._breaker_changed(event)
            case _:  # cleanup starts and successful cleanups: nothing to record
                pass

    # -- runs -------------------------------------------------------------------------------

    def _run_started(self, event: RunStarted) -> None:
        # Delivered in the caller's task and context: the current span there is the parent.
        span = self._tracer.start_span(
            f"invoke {event.dag}",
            attributes={_DAG: event.dag, _RUN_ID: event.run_id},
        )
        self._runs[event.run_id] = _Run(span, self._in_context(span))

    def _run_finished(self, event: RunFinished) -> None:
        run = self._runs.pop(event.run_id, None)
        if run is None:
            return
        for attempt in run.attempts.values():
            # The run loop ends every attempt it starts; should one be left open, end its span
            # rather than lose it. Its context token belongs to another task: not detached.
            self._end_span(attempt.span, "unfinished", None, None)
        span = run.span
        error = event.error
        if event.ok:
            status = "succeeded"
        elif isinstance(error, asyncio.CancelledError):
            status = "cancelled"
        else:
            status = "failed"
            if error is not None:
                self._record_error(span, error)
            else:  # on_error="continue": `invoke` returned a result that is not ok
                failed = ", ".join(run.failed) or "none reported"
                span.set_status(self._status(self._error_code, f"nodes failed: {failed}"))
        span.set_attribute(_RUN_STATUS, status)
        span.end()
        if self._run_duration is not None:
            attributes: dict[str, AttributeValue] = {_DAG: event.dag, _RUN_STATUS: status}
            if error is not None and status == "failed":  # a cancellation is not an error
                attributes[_ERROR_TYPE] = _error_type(error)
            # `time` is seconds since the run started: the duration when none was given.
            duration = event.duration if event.duration is not None else event.time
            self._run_duration.record(duration, attributes)

    # -- node attempts ----------------------------------------------------------------------

    def _node_started(self, event: NodeStarted) -> None:
        run = self._runs.get(event.run_id)
        if run is None or event.node is None:
            return
        span = self._tracer.start_span(
            f"node {event.node}",
            context=run.context,
            attributes=_node_attributes(event, event.node),
        )
        # Delivered in the attempt's own task and context (the body runs there, or in a copy of
        # it in a thread executor): making the span current there parents the body's spans.
        token = self._attach(self._in_context(span))
        previous = run.attempts.get(event.node)
        if previous is not None:  # no end event came for it: end it rather than lose it
            self._end_span(previous.span, "unfinished", None, None)
        run.attempts[event.node] = _Attempt(span, token, event.time)

    def _node_ended(
        self,
        event: Event,
        status: str,
        error: BaseException | None,
        extra: Mapping[str, AttributeValue] | None,
    ) -> None:
        run = self._runs.get(event.run_id)
        node = event.node
        if run is None or node is None:
            return
        if status == "failed":
            run.failed.append(node)
        attempt = run.attempts.pop(node, None)
        if attempt is None:
            # No attempt ran: a cached or resumed value, or a failure before the body (a `pre`
            # hook, an open circuit breaker). A zero-length span keeps the node in the trace.
            now = time.time_ns()
            span = self._tracer.start_span(
                f"node {node}",
                context=run.context,
                attributes=_node_attributes(event, node),
                start_time=now,
            )
            self._end_span(span, status, error, extra, now)
            return
        self._detach(attempt.token)
        self._end_span(attempt.span, status, error, extra)
        if self._node_duration is not None:
            attributes: dict[str, AttributeValue] = {
                _DAG: event.dag,
                _NODE: node,
                _STATUS: status,
            }
            if error is not None:
                attributes[_ERROR_TYPE] = _error_type(error)
            duration = event.duration
            if duration is None:
                duration = event.time - attempt.start
            self._node_duration.record(duration, attributes)

    def _node_skipped(self, event: NodeSkipped) -> None:
        run = self._runs.get(event.run_id)
        # Only an attempt that raised `Skip` has a span to end; a node skipped because of a
        # node it depends on never ran and gets none.
        if run is not None and event.node is not None and event.node in run.attempts:
            extra = None if event.cause is None else {"dagwire.node.skip_cause": event.cause}
            self._node_ended(event, "skipped", None, extra)

    def _end_span(
        self,
        span: Span,
        status: str,
        error: BaseException | None,
        extra: Mapping[str, AttributeValue] | None,
        end_time: int | None = None,
    ) -> None:
        span.set_attribute(_STATUS, status)
        if extra:
            span.set_attributes(extra)
        if error is not None:
            self._record_error(span, error)
        span.end(end_time)

    def _record_error(self, span: Span, error: BaseException) -> None:
        message = str(error) or type(error).__name__
        span.set_status(self._status(self._error_code, message))
        span.set_attribute(_ERROR_TYPE, _error_type(error))
        span.record_exception(error)

    # -- the rest ---------------------------------------------------------------------------

    def _cleanup_failed(self, event: CleanupFinished, error: BaseException) -> None:
        run = self._runs.get(event.run_id)
        if run is not None:
            attributes: dict[str, AttributeValue] = {}
            if event.node is not None:
                attributes[_NODE] = event.node
            run.span.record_exception(error, attributes)

    def _breaker_changed(self, event: BreakerChanged) -> None:
        run = self._runs.get(event.run_id)
        if run is None:
            return
        attempt = None if event.node is None else run.attempts.get(event.node)
        span = run.span if attempt is None else attempt.span
        attributes: dict[str, AttributeValue] = {
            "dagwire.breaker.old": event.old.value,
            "dagwire.breaker.new": event.new.value,
        }
        if event.node is not None:
            attributes[_NODE] = event.node
        span.add_event("dagwire.breaker_changed", attributes)
