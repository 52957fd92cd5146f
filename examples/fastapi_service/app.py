"""A FastAPI service whose endpoint runs the dashboard graph once per request, traced.

``GET /users/{user_id}/dashboard`` with ``Authorization: Bearer <token>`` invokes the module-level
graph of `graph.py`. OpenTelemetry's FastAPI instrumentation starts a SERVER span per request;
`OTelObserver` hangs the run's span under it and a span per node attempt under that:

    GET /users/{user_id}/dashboard        (SERVER, FastAPI instrumentation)
      invoke dashboard                    (dagwire)
        node auth, node flags, node db, node profile, node orders, node merge

Failures become clean HTTP errors (a JSON body, never a traceback) with ``except*`` on the
run's `DagError`: an unknown token is 401, another user's token 403, a failing downstream
service 502, a timeout 504.

Run (with uvicorn installed): ``uvicorn examples.fastapi_service.app:create_app --factory``;
without a server: ``python -m examples.fastapi_service``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Header, HTTPException
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from dagwire.otel import OTelObserver

from .graph import Dashboard, DashboardRequest, dashboard, page
from .services import DownstreamError, Forbidden, Services, Unauthorized, demo_services

REQUEST_TIMEOUT = 5.0  # seconds for the whole graph, cleanup excluded


async def render_dashboard(request: DashboardRequest, observer: OTelObserver) -> Dashboard:
    """Run the graph for one request; map its failures to `HTTPException`s.

    `invoke` raises a `DagError` (an `ExceptionGroup`) whose leaves are the nodes' own
    exceptions, so each ``except*`` picks the failures it knows. ``from None``: the HTTP error
    replaces the failure, it does not wrap it (the failure is already in the trace).
    """
    try:
        result = await dashboard.invoke(request, timeout=REQUEST_TIMEOUT, observers=[observer])
        return result[page]
    except* Unauthorized:
        raise HTTPException(
            401, detail="invalid or missing bearer token", headers={"WWW-Authenticate": "Bearer"}
        ) from None
    except* Forbidden:
        raise HTTPException(403, detail="this token may not read that user") from None
    except* DownstreamError as failures:
        services = sorted({e.service for e in _leaves(failures)})
        raise HTTPException(
            502, detail={"error": "a downstream service failed", "services": services}
        ) from None
    except* TimeoutError:
        raise HTTPException(504, detail="the dashboard took too long") from None


def _leaves(group: BaseExceptionGroup[DownstreamError]) -> list[DownstreamError]:
    leaves: list[DownstreamError] = []
    for exc in group.exceptions:
        leaves += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return leaves


def create_app(
    services: Services | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> FastAPI:
    """The service, calling `services` (default: `demo_services()`), traced through
    `tracer_provider` (default: the global one) and metered through `meter_provider` (default:
    the global one for FastAPI's HTTP metrics, none for dagwire's)."""
    services = demo_services() if services is None else services
    observer = OTelObserver(tracer_provider=tracer_provider, meter_provider=meter_provider)
    app = FastAPI(
        title="dashboard",
        telemetry={"tracer_provider": tracer_provider, "meter_provider": meter_provider},
    )

    @app.get("/users/{user_id}/dashboard")
    async def get_dashboard(
        user_id: int, authorization: Annotated[str | None, Header()] = None
    ) -> Dashboard:
        token = (authorization or "").removeprefix("Bearer ")
        return await render_dashboard(DashboardRequest(user_id, token, services), observer)

    return app
