"""The FastAPI example (examples/fastapi_service) through httpx's ASGI transport: responses, HTTP
errors, connections given back, 200 concurrent requests, and the span tree of a request as the
real OpenTelemetry SDK recorded it (FastAPI's request spans, dagwire's run and node spans).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from examples.fastapi_service import __main__ as example_main
from examples.fastapi_service import app as app_module
from examples.fastapi_service.services import Services, demo_services
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from otel_support import (
    Traces,
    attrs,
    in_memory_traces,
    int_attr,
    parent_id,
    span_id,
    trace_id,
    tree,
)

ROUTE = "GET /users/{user_id}/dashboard"


@pytest.fixture
def traces() -> Iterator[Traces]:
    with in_memory_traces() as t:
        yield t


@pytest.fixture
def services() -> Services:
    return demo_services(users=300)


@pytest.fixture
async def client(services: Services, traces: Traces) -> AsyncIterator[httpx.AsyncClient]:
    app = app_module.create_app(services, tracer_provider=traces.provider)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dashboard") as c:
        yield c


async def get(client: httpx.AsyncClient, user_id: int, token: str | None) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return await client.get(f"/users/{user_id}/dashboard", headers=headers)


def expected(user_id: int, *, default_flags: bool = False) -> dict[str, object]:
    """The body for user `user_id` of `demo_services`, written out independently.

    `default_flags`: the body when the flags node fell back to its defaults (its 0.5 s timeout
    can expire on a loaded machine when 200 requests run at once).
    """
    pro = user_id % 2 == 0
    history = pro and not default_flags
    orders = [
        {"id": user_id * 100 + j, "user_id": user_id, "item": f"item {j}", "cents": 100 * (j + 1)}
        for j in range(user_id % 4)
    ][: 10 if history else 1]
    return {
        "user": {"id": user_id, "name": f"user {user_id}", "plan": "pro" if pro else "free"},
        "profile": {"user_id": user_id, "email": f"user{user_id}@example.com", "city": "Lisbon"},
        "flags": {"order_history": history},
        "orders": orders,
        "total_cents": sum(int(str(o["cents"])) for o in orders),
    }


def assert_no_leak(response: httpx.Response) -> None:
    """An error response is JSON and says nothing of the server's insides."""
    assert response.headers["content-type"] == "application/json"
    response.json()
    for word in ("Traceback", "File ", "DagError", "sub-exception", "table"):
        assert word not in response.text


# -- responses ------------------------------------------------------------------------------


@pytest.mark.parametrize("user_id", [2, 3, 4, 7])
async def test_a_valid_request_gets_its_dashboard(
    client: httpx.AsyncClient, services: Services, user_id: int
) -> None:
    response = await get(client, user_id, f"token-{user_id}")
    assert response.status_code == 200
    assert response.json() == expected(user_id)
    assert services.db.opened == services.db.released == 1


async def test_the_flag_service_down_means_default_flags_not_an_error(
    client: httpx.AsyncClient, services: Services, traces: Traces
) -> None:
    services.flags.down = True
    response = await get(client, 2, "token-2")
    assert response.status_code == 200
    body = response.json()
    assert body["flags"] == {"order_history": False}
    assert len(body["orders"]) == 1  # the default flags limit the history
    flags = traces.one("node flags")
    assert attrs(flags)["dagwire.node.status"] == "recovered"
    assert flags.status.status_code is StatusCode.ERROR
    assert traces.one("invoke dashboard").status.status_code is StatusCode.UNSET


@pytest.mark.parametrize("token", [None, "forged"])
async def test_an_unknown_or_missing_token_is_401_and_takes_no_connection(
    client: httpx.AsyncClient, services: Services, token: str | None
) -> None:
    response = await get(client, 5, token)
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid or missing bearer token"}
    assert response.headers["www-authenticate"] == "Bearer"
    assert_no_leak(response)
    assert services.db.opened == 0


async def test_another_users_token_is_403(client: httpx.AsyncClient) -> None:
    response = await get(client, 5, "token-6")
    assert response.status_code == 403
    assert response.json() == {"detail": "this token may not read that user"}
    assert_no_leak(response)


async def test_a_failing_downstream_call_is_a_clean_502(
    client: httpx.AsyncClient, services: Services, traces: Traces
) -> None:
    services.db.broken.add("orders")
    response = await get(client, 6, "token-6")
    assert response.status_code == 502
    assert response.json() == {
        "detail": {"error": "a downstream service failed", "services": ["database"]}
    }
    assert_no_leak(response)
    assert services.db.opened == services.db.released == 1  # the connection went back

    orders = traces.one("node orders")
    assert orders.status.status_code is StatusCode.ERROR
    assert attrs(orders)["error.type"] == "examples.fastapi_service.services.DownstreamError"
    assert traces.one("invoke dashboard").status.status_code is StatusCode.ERROR
    server = traces.one(ROUTE)
    assert attrs(server)["http.response.status_code"] == 502


async def test_a_run_over_its_time_is_504_and_gives_its_connection_back(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "REQUEST_TIMEOUT", 0.05)
    services.db.stalled.add("profiles")
    response = await get(client, 2, "token-2")
    assert response.status_code == 504
    assert response.json() == {"detail": "the dashboard took too long"}
    assert services.db.opened == services.db.released == 1


async def test_a_request_cancelled_mid_run_gives_its_connection_back(
    client: httpx.AsyncClient, services: Services, traces: Traces
) -> None:
    services.db.stalled.add("profiles")
    request = asyncio.create_task(get(client, 2, "token-2"))
    for _ in range(10_000):  # until the run holds its connection
        if services.db.opened:
            break
        await asyncio.sleep(0.001)
    assert services.db.opened == 1
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert services.db.released == 1
    assert attrs(traces.one("node profile"))["dagwire.node.status"] == "cancelled"
    assert attrs(traces.one("invoke dashboard"))["dagwire.run.status"] == "cancelled"


# -- concurrency ----------------------------------------------------------------------------


async def test_200_concurrent_requests_get_their_own_answers_and_spans(
    client: httpx.AsyncClient, services: Services, traces: Traces
) -> None:
    # Users 1..200; every tenth uses a forged token. The pool holds 20 connections.
    def token(user_id: int) -> str:
        return "forged" if user_id % 10 == 0 else f"token-{user_id}"

    users = list(range(1, 201))
    responses = await asyncio.gather(*(get(client, u, token(u)) for u in users))

    for user_id, response in zip(users, responses, strict=True):
        if user_id % 10 == 0:
            assert response.status_code == 401
        else:
            assert response.status_code == 200, response.text
            # Either this user's own answer, or the same with the flags' fallback: never
            # another request's values.
            assert response.json() in (expected(user_id), expected(user_id, default_flags=True))
    valid = sum(1 for u in users if u % 10)
    assert services.db.opened == services.db.released == valid

    spans = traces.spans()
    servers = [s for s in spans if s.name == ROUTE]
    assert len(servers) == 200
    run_ids: set[int] = set()
    for server in servers:
        user_id = int(str(attrs(server)["url.path"]).split("/")[2])
        runs = [s for s in spans if s.name == "invoke dashboard" and is_below(s, server, spans)]
        (run,) = runs
        run_ids.add(int_attr(run, "dagwire.run.id"))
        nodes = [s for s in spans if parent_id(s) == span_id(run)]
        assert {trace_id(s) for s in (server, run, *nodes)} == {trace_id(server)}
        assert all(attrs(n)["dagwire.run.id"] == attrs(run)["dagwire.run.id"] for n in nodes)
        names = sorted(n.name for n in nodes)
        if user_id % 10 == 0:
            assert names == ["node auth"]
        else:
            assert names == [
                "node auth",
                "node db",
                "node flags",
                "node merge",
                "node orders",
                "node profile",
            ]
    assert len(run_ids) == 200


def is_below(span: ReadableSpan, ancestor: ReadableSpan, spans: list[ReadableSpan]) -> bool:
    by_id = {span_id(s): s for s in spans}
    parent = parent_id(span)
    while parent is not None:
        if parent == span_id(ancestor):
            return True
        above = by_id.get(parent)
        parent = None if above is None else parent_id(above)
    return False


# -- the span tree --------------------------------------------------------------------------


async def test_the_span_tree_of_one_request(client: httpx.AsyncClient, traces: Traces) -> None:
    response = await get(client, 4, "token-4")
    assert response.status_code == 200

    server = traces.one(ROUTE)
    assert tree(traces.spans(), server) == [
        ROUTE,
        "  fastapi.dependencies",
        "  fastapi.endpoint",
        "    invoke dashboard",
        "      node auth",
        "      node db",
        "      node flags",
        "      node merge",
        "      node orders",
        "      node profile",
        "  fastapi.serialization",
    ]
    assert server.kind is SpanKind.SERVER
    assert attrs(server)["http.route"] == "/users/{user_id}/dashboard"
    assert attrs(server)["http.response.status_code"] == 200
    run = traces.one("invoke dashboard")
    assert parent_id(run) == span_id(traces.one("fastapi.endpoint"))
    assert run.kind is SpanKind.INTERNAL
    assert attrs(run)["dagwire.run.status"] == "succeeded"
    for name in ("auth", "db", "flags", "merge", "orders", "profile"):
        node = traces.one(f"node {name}")
        assert node.kind is SpanKind.INTERNAL
        assert node.status.status_code is StatusCode.UNSET
        assert attrs(node)["dagwire.node.status"] == "succeeded"
        assert attrs(node)["dagwire.run.id"] == attrs(run)["dagwire.run.id"]
    # Data flow shows in time: auth ends before db and flags start; merge starts last.
    auth, merge = traces.one("node auth"), traces.one("node merge")
    assert auth.end_time is not None
    for later in ("db", "flags", "profile", "orders"):
        start = traces.one(f"node {later}").start_time
        assert start is not None
        assert auth.end_time <= start
        end = traces.one(f"node {later}").end_time
        assert end is not None
        assert merge.start_time is not None
        assert end <= merge.start_time


async def test_the_example_runs_as_a_module(capsys: pytest.CaptureFixture[str]) -> None:
    lines = await example_main.main()
    assert capsys.readouterr().out.splitlines() == lines
    assert lines[0].startswith("GET /users/2/dashboard (token-2): 200 ")
    assert "  fastapi.endpoint" in " ".join(lines)
    (flags,) = [line for line in lines if line.lstrip().startswith("node flags")]
    assert flags.endswith("recovered")
    assert any(line.startswith("GET /users/3/dashboard (token-2): 403 ") for line in lines)
    assert any(line.startswith("GET /users/3/dashboard (forged): 401 ") for line in lines)
    assert lines[-1] == "database connections still open: 0"
