"""Issue 10: what observers cost. ``run.py`` runs these as the sections ``observers`` and
``otel``, and checks them in ``--check``.

* **observers**: one no-op observer (``lambda e: None``) given to ``invoke(observers=)`` on the
  10-node endpoint graph. ``floor`` / ``floor_eager`` here emit the same events to the same
  observer by hand (``RunStarted``, per node ``NodeStarted`` and ``NodeSucceeded`` with the
  node's time and duration, ``RunFinished``; each call guarded so that a raising observer
  cannot change the run), on the per-run-state floor of ``floor_state.py``. ``floor, no
  events`` is the plain floor of ``runners.py``, ``dagwire, no observer`` a plain invoke.
  Reported: the cost per event ((with - without) / events per run) and the ratios.
* **otel**: ``dagwire.otel.OTelObserver`` with the real SDK (``TracerProvider`` +
  ``SimpleSpanProcessor`` with an exporter that only counts spans) against hand-written code
  that starts the same spans around the same hand-written graph: a span ``invoke {dag}`` per
  run (child of the caller's current span, not made current), a span ``node {name}`` per node
  (child of the run span, attached as the current context around the body), the same
  attributes and statuses. Every sample checks the sink value and the number of spans each run
  exported; ``--check`` compares the span trees of both, attribute by attribute.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from typing import Any

import floor_state
import runners as rmod
import shapes
from bench_common import EAGER, Case, Out, Target, by_name, measure, runner, table, target, us
from builders import build
from harness import Row
from runners import EAGER_FLOOR, FLOOR, Invoke, Runner, Skip
from shapes import Graph, NodeFn

DAG = "endpoint"
NO_EVENTS = "floor, no events"
NO_OBSERVER = "dagwire, no observer"
LIMIT_OBSERVER = 1.5
LIMIT_OTEL = 1.25


def names(g: Graph) -> list[str]:
    """Node names, the same in dagwire (given with name=) and in the hand-written code."""
    return [f"n{i}" for i in range(g.n)]


def named(g: Graph) -> Callable[[Any, int, NodeFn, list[Any]], Any]:
    ns = names(g)
    return lambda dag, i, fn, args: dag.add_node(fn, *args, name=ns[i])


def dagwire(g: Graph, name: str, observers: Sequence[Any] = (), per_invoke: bool = True) -> Runner:
    """dagwire on `g` (nodes named as `names`); `observers` given to every invoke (or, with
    ``per_invoke=False``, to ``build_dag``)."""

    def make() -> Invoke:
        reason = rmod.dagwire_status()
        if reason:
            raise Skip(reason)
        given = list(observers)
        dag, nodes = build(g, named(g), name=DAG, observers=() if per_invoke else given)
        sink = nodes[-1]
        if not per_invoke or not given:

            async def plain() -> Any:
                return (await dag.invoke(None))[sink]

            return plain

        async def invoke() -> Any:
            return (await dag.invoke(None, observers=given))[sink]

        return invoke

    return runner(name, make)


def floors(g: Graph, node: Callable[[int, NodeFn], NodeFn], begin: Any, end: Any) -> list[Runner]:
    """The per-run-state floors (lazy and, on 3.12+, eager) with every node replaced."""
    sg = Graph(g.name, g.inputs, tuple(node(i, fn) for i, fn in enumerate(g.funcs)))
    every = set(range(g.n))
    out = [runner(FLOOR, lambda: floor_state.prepare(sg, every, begin, end))]
    if EAGER:
        out.append(runner(EAGER_FLOOR, lambda: floor_state.prepare_eager(sg, every, begin, end)))
    return out


# -- one no-op observer ---------------------------------------------------------------------------


def events_floor(g: Graph, observer: Callable[[Any], object]) -> list[Runner]:
    """Hand-written code emitting dagwire's events for a run of `g` to `observer`."""
    from dagwire.events import NodeStarted, NodeSucceeded, RunFinished, RunStarted

    ids = itertools.count(1)
    clock = time.perf_counter
    ns = names(g)

    def emit(event: Any) -> None:
        # A raising observer never changes the run (dagwire logs it once). Not
        # contextlib.suppress: a with block costs more than a try on every event.
        try:  # noqa: SIM105
            observer(event)
        except Exception:
            pass

    def begin() -> tuple[int, float]:
        run_id = next(ids)
        emit(RunStarted(dag=DAG, run_id=run_id, time=0.0))
        return run_id, clock()

    async def end(st: tuple[int, float], error: BaseException | None) -> None:
        now = clock() - st[1]
        emit(
            RunFinished(
                dag=DAG, run_id=st[0], time=now, duration=now, error=error, ok=error is None
            )
        )

    def node(i: int, fn: NodeFn) -> NodeFn:
        name = ns[i]

        async def body(st: tuple[int, float], *xs: Any) -> Any:
            run_id, t0 = st
            started = clock() - t0
            emit(NodeStarted(dag=DAG, run_id=run_id, node=name, time=started, attempt=1))
            value = await fn(*xs)  # (a failure would emit NodeFailed: not taken here)
            now = clock() - t0
            emit(
                NodeSucceeded(
                    dag=DAG,
                    run_id=run_id,
                    node=name,
                    time=now,
                    attempt=1,
                    duration=now - started,
                )
            )
            return value

        return body

    return floors(g, node, begin, end)


def observer_runners(g: Graph, observer: Callable[[Any], object]) -> list[Runner]:
    return [
        *events_floor(g, observer),
        runner(NO_EVENTS, lambda: rmod._prepare_floor(g)),
        dagwire(g, NO_OBSERVER),
        dagwire(g, "dagwire", [observer]),
    ]


def events_per_run(g: Graph) -> int:
    return 2 + 2 * g.n  # run started/finished, and per node started/succeeded


async def run_observers(out: Out, *, repeat: int, count: int) -> list[Target]:
    g = shapes.endpoint()
    rows = await measure(
        observer_runners(g, lambda e: None), Case(DAG, 1, g.reference), count=count, repeat=repeat
    )
    k = events_per_run(g)
    table(
        out,
        "observers: one no-op observer, endpoint",
        [("lambda e: None", rows)],
        unit="µs/invoke",
        note=(
            f"`dag.invoke(None, observers=[lambda e: None])`; {k} events per run (run started and "
            "finished, node started and succeeded per node). floor / floor_eager: the same "
            "events built and delivered by hand (per-run state floor). `floor, no events`: the "
            "plain floor; `dagwire, no observer`: a plain invoke (as the endpoint_seq rows). "
            f"sample = {count} sequential invokes; {repeat} interleaved rounds."
        ),
    )
    lines = [
        per_event_line(rows, "dagwire", NO_OBSERVER, k),
        per_event_line(rows, FLOOR, NO_EVENTS, k),
    ]
    for line in lines:
        out(line)
    out()
    return [
        target(
            "one no-op observer, endpoint: dagwire / floor without events",
            rows,
            "dagwire",
            LIMIT_OBSERVER,
            base=NO_EVENTS,
        ),
        target(
            "one no-op observer, endpoint: dagwire / floor emitting the same events",
            rows,
            "dagwire",
            LIMIT_OBSERVER,
        ),
    ]


def per_event_line(rows: Sequence[Row], with_: str, without: str, k: int) -> str:
    a, b = by_name(rows, with_), by_name(rows, without)
    if a is None or b is None or not a.ok or not b.ok:
        return f"- cost per event, {with_}: n/a"
    per = [(x - y) / k for x, y in zip(a.samples, b.samples, strict=False)]
    return (
        f"- cost per event, {with_} - {without}: {us((a.median - b.median) / k)} µs "
        f"(per round {us(min(per))}-{us(max(per))})"
    )


# -- OpenTelemetry --------------------------------------------------------------------------------


def otel_available() -> str | None:
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError as e:
        return f"opentelemetry-sdk not installed ({e})"
    try:
        import dagwire.otel  # noqa: F401
    except ImportError as e:
        return f"dagwire.otel not importable ({e})"
    return None


class Sdk:
    """A real SDK TracerProvider whose exporter only counts spans (or, for the check, keeps
    them in memory)."""

    def __init__(self, keep: bool = False) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            SimpleSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        class Counting(SpanExporter):
            def __init__(self) -> None:
                self.count = 0

            def export(self, spans: Sequence[Any]) -> SpanExportResult:
                self.count += len(spans)
                return SpanExportResult.SUCCESS

        self.counter = Counting()
        self.memory = InMemorySpanExporter() if keep else None
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.counter))
        if self.memory is not None:
            self.provider.add_span_processor(SimpleSpanProcessor(self.memory))


def spans_floor(g: Graph, sdk: Sdk) -> list[Runner]:
    """Hand-written spans around the floor: what OTelObserver records for a successful run."""
    from opentelemetry import context, trace

    tracer = trace.get_tracer("dagwire", "bench", tracer_provider=sdk.provider)
    start_span = tracer.start_span
    in_context = trace.set_span_in_context
    attach, detach = context.attach, context.detach
    ids = itertools.count(1)
    ns = names(g)

    def begin() -> tuple[Any, Any, int]:
        run_id = next(ids)
        span = start_span(
            f"invoke {DAG}", attributes={"dagwire.dag.name": DAG, "dagwire.run.id": run_id}
        )
        return span, in_context(span), run_id

    async def end(st: tuple[Any, Any, int], error: BaseException | None) -> None:
        span = st[0]
        if error is None:
            span.set_attribute("dagwire.run.status", "succeeded")
        else:
            span.set_attribute("dagwire.run.status", "failed")
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)))
            span.record_exception(error)
        span.end()

    def node(i: int, fn: NodeFn) -> NodeFn:
        name, span_name = ns[i], f"node {ns[i]}"

        async def body(st: tuple[Any, Any, int], *xs: Any) -> Any:
            span = start_span(
                span_name,
                context=st[1],
                attributes={
                    "dagwire.dag.name": DAG,
                    "dagwire.run.id": st[2],
                    "dagwire.node.name": name,
                    "dagwire.node.attempt": 1,
                },
            )
            token = attach(in_context(span))
            try:
                value = await fn(*xs)
            except BaseException as exc:
                detach(token)
                span.set_attribute("dagwire.node.status", "failed")
                span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
                span.record_exception(exc)
                span.end()
                raise
            detach(token)
            span.set_attribute("dagwire.node.status", "succeeded")
            span.end()
            return value

        return body

    return floors(g, node, begin, end)


def counted(r: Runner, sdk: Sdk, per_run: int) -> Runner:
    """`r` whose invoke returns a wrong value unless its run exported `per_run` spans."""

    def prepare(case: Any) -> Invoke:
        inner = r.prepare(case)
        counter = sdk.counter

        async def invoke() -> Any:
            before = counter.count
            value = await inner()
            got = counter.count - before
            return value if got == per_run else ("spans exported", got, "expected", per_run)

        return invoke

    return Runner(r.name, prepare, r.task_factory)


def otel_runners(g: Graph, sdk: Sdk) -> list[Runner]:
    from dagwire.otel import OTelObserver

    per_run = 1 + g.n
    observer = OTelObserver(tracer_provider=sdk.provider)
    return [
        *(counted(r, sdk, per_run) for r in spans_floor(g, sdk)),
        runner(NO_EVENTS, lambda: rmod._prepare_floor(g)),
        dagwire(g, NO_OBSERVER),
        counted(dagwire(g, "dagwire", [observer]), sdk, per_run),
    ]


async def run_otel(out: Out, *, repeat: int, count: int) -> list[Target]:
    reason = otel_available()
    title = "OpenTelemetry: OTelObserver with the SDK, endpoint"
    if reason:
        out(f"### {title}\n\nskipped: {reason}\n")
        return [
            Target(
                "OTelObserver, endpoint: dagwire / floor with the same spans",
                None,
                reason,
                LIMIT_OTEL,
            )
        ]
    g = shapes.endpoint()
    rows = await measure(
        otel_runners(g, Sdk()), Case(DAG, 1, g.reference), count=count, repeat=repeat
    )
    table(
        out,
        title,
        [("OTelObserver", rows)],
        unit="µs/invoke",
        note=(
            "`dag.invoke(None, observers=[OTelObserver(tracer_provider=provider)])`, provider = "
            "the SDK's TracerProvider with a SimpleSpanProcessor and an exporter that counts "
            f"spans ({1 + g.n} per run, checked on every invoke). floor / floor_eager: the same "
            "spans started by hand around the same graph (run span with the dag name and run "
            "id; per node a child span with dag, run id, node name and attempt, made current "
            "around the body, status attribute at the end). `floor, no events` and `dagwire, no "
            f"observer`: without spans. sample = {count} sequential invokes; {repeat} rounds."
        ),
    )
    return [
        target(
            "OTelObserver, endpoint: dagwire / floor with the same spans",
            rows,
            "dagwire",
            LIMIT_OTEL,
        )
    ]


# -- check --------------------------------------------------------------------------------------


def span_tree(spans: Sequence[Any]) -> list[tuple[str, str, tuple[tuple[str, Any], ...]]]:
    """(name, parent name, attributes without the run id) of every span, sorted."""
    by_id = {s.context.span_id: s for s in spans}
    out = []
    for s in spans:
        parent = by_id.get(s.parent.span_id) if s.parent is not None else None
        attrs = tuple(sorted((k, v) for k, v in s.attributes.items() if k != "dagwire.run.id"))
        out.append((s.name, parent.name if parent is not None else "", attrs))
    return sorted(out)


async def check(out: Out) -> int:
    """Small runs of every row, the same events from both observers' sources, the same span
    tree from both span sources."""
    bad: list[str] = []
    g = shapes.endpoint()
    case = Case(DAG, 1, g.reference)
    seen: dict[str, list[Any]] = {}

    def recorder(name: str) -> Callable[[Any], None]:
        return seen.setdefault(name, []).append

    for name in (FLOOR, "dagwire"):
        rs = [r for r in observer_runners(g, recorder(name)) if r.name == name]
        rows = await measure(rs, case, count=1, repeat=1)
        bad += [f"observer/{r.runner}: {r.error}" for r in rows if r.error]
    kinds = {k: [(e.kind, e.node) for e in v] for k, v in seen.items()}
    if len(set(map(len, kinds.values()))) != 1 or sorted(kinds[FLOOR]) != sorted(kinds["dagwire"]):
        bad.append("the floor's events differ from dagwire's")
    reason = otel_available()
    if reason is None:
        sdk = Sdk(keep=True)
        rows = await measure(otel_runners(g, sdk), case, count=1, repeat=1)
        bad += [f"otel/{r.runner}: {r.error}" for r in rows if r.error]
        trees: dict[str, Any] = {}
        for r in otel_runners(g, sdk):
            if r.name in (FLOOR, "dagwire"):
                assert sdk.memory is not None
                sdk.memory.clear()
                await r.prepare(case)()
                trees[r.name] = span_tree(sdk.memory.get_finished_spans())
        if trees.get(FLOOR) != trees.get("dagwire"):
            bad.append("the floor's spans differ from OTelObserver's")
    rows = await measure(observer_runners(g, lambda e: None), case, count=3, repeat=1)
    bad += [f"observer/{r.runner}: {r.error}" for r in rows if r.error]
    note = "" if reason is None else f" (otel skipped: {reason})"
    out("  observers, otel: " + ("ok" if not bad else "FAILED " + "; ".join(bad)) + note)
    return len(bad)
