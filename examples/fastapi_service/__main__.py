"""Serve three requests without a server (httpx's ASGI transport) and print each response and
the span tree OpenTelemetry recorded for the first one.

Run: python -m examples.fastapi_service
"""

from __future__ import annotations

import asyncio

import httpx
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from .app import create_app
from .services import demo_services


def outline(spans: list[ReadableSpan]) -> list[str]:
    """Span names indented by depth, children in start order."""
    by_parent: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        by_parent.setdefault(span.parent.span_id if span.parent else None, []).append(span)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for span in sorted(by_parent.get(parent, []), key=lambda s: s.start_time or 0):
            ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
            status = (span.attributes or {}).get("dagwire.node.status", "")
            lines.append(f"{'  ' * depth}{span.name}  {ms:.1f} ms  {status}".rstrip())
            assert span.context is not None
            walk(span.context.span_id, depth + 1)

    walk(None, 0)
    return lines


async def main() -> list[str]:
    """Serve a request (with the flag service down: the page uses default flags), print its
    span tree, then two requests that fail; return the lines printed."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    services = demo_services()
    services.flags.down = True
    app = create_app(services, tracer_provider=provider)
    lines: list[str] = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dashboard") as client:
        for path, token in [
            ("/users/2/dashboard", "token-2"),
            ("/users/3/dashboard", "token-2"),
            ("/users/3/dashboard", "forged"),
        ]:
            response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
            lines.append(f"GET {path} ({token}): {response.status_code} {response.text}")
            if len(lines) == 1:
                lines += ["", *outline(list(exporter.get_finished_spans())), ""]
    provider.shutdown()
    lines.append(f"database connections still open: {services.db.open_connections}")
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    asyncio.run(main())
