"""Test support for OpenTelemetry: a tracer provider exporting to memory and span-tree helpers.

Used by the OTel tests and the FastAPI example's tests (real SDK, no mocks).
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@dataclass
class Traces:
    """A tracer provider exporting to memory, and a tracer of it for the test's own spans."""

    provider: TracerProvider
    exporter: InMemorySpanExporter
    tracer: trace.Tracer

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        (span,) = self.named(name)
        return span


@contextmanager
def in_memory_traces() -> Generator[Traces, None, None]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield Traces(provider, exporter, provider.get_tracer("test"))
    finally:
        provider.shutdown()


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    ident: int = span.context.span_id
    return ident


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    ident: int = span.context.trace_id
    return ident


def parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def int_attr(span: ReadableSpan, key: str) -> int:
    value = attrs(span)[key]
    assert isinstance(value, int)
    return value


def tree(spans: list[ReadableSpan], root: ReadableSpan) -> list[str]:
    """The names of `root` and its descendants, indented two spaces per level, so a span tree
    reads like an outline in an assertion. Siblings are sorted by name, then start time: spans
    that start concurrently come out in the same order on every run."""
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        children.setdefault(parent_id(span), []).append(span)
    lines: list[str] = []

    def walk(span: ReadableSpan, depth: int) -> None:
        lines.append("  " * depth + span.name)
        below = children.get(span_id(span), [])
        for child in sorted(below, key=lambda c: (c.name, c.start_time or 0)):
            walk(child, depth + 1)

    walk(root, 0)
    return lines
