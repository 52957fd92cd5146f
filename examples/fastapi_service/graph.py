"""The dashboard graph: one module-level frozen graph, run once per HTTP request.

    auth ─┬─> flags ────┐                      flags: timeout=, fallback=
          │             ├─> orders ──┐
          └─> db ───────┤            ├─> merge   (merge also takes auth and flags)
                        └─> profile ─┘         db: a pooled connection, given back
                                               once orders and profile have ended

The graph is built and frozen once, at import; every request invokes it with its own
`DashboardRequest`, and concurrent invokes share nothing but the services they are handed.
`db` depends on `auth`, so a request with a bad token never takes a connection from the pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from dagwire import build_dag

from .services import Connection, Forbidden, Order, Profile, Services, User

# What the page uses while the flag service fails (read-only: one object serves every request).
DEFAULT_FLAGS: Mapping[str, bool] = MappingProxyType({"order_history": False})


@dataclass(frozen=True)
class DashboardRequest:
    """The invoke parameter: who asks, with which token, and the services to ask."""

    user_id: int
    token: str
    services: Services


@dataclass(frozen=True)
class Dashboard:
    """The endpoint's response."""

    user: User
    profile: Profile
    flags: dict[str, bool]
    orders: tuple[Order, ...]
    total_cents: int


async def authenticate(request: DashboardRequest) -> User:
    """The token's user; `Unauthorized` for an unknown token, `Forbidden` for another's."""
    user = await request.services.auth.verify(request.token)
    if user.id != request.user_id:
        raise Forbidden(f"token of user {user.id} used for user {request.user_id}")
    return user


async def feature_flags(user: User, request: DashboardRequest) -> Mapping[str, bool]:
    return await request.services.flags.for_user(user)


async def connection(user: User, request: DashboardRequest) -> AsyncIterator[Connection]:
    """A connection from the pool, given back in the run's cleanup phase."""
    db = request.services.db
    conn = await db.connect()
    try:
        yield conn
    finally:
        await db.release(conn)


async def fetch_profile(conn: Connection, user: User) -> Profile:
    return await conn.fetch_profile(user.id)


async def fetch_orders(
    conn: Connection, user: User, flags: Mapping[str, bool]
) -> tuple[Order, ...]:
    return await conn.fetch_orders(user.id, limit=10 if flags.get("order_history") else 1)


def merge(
    user: User, flags: Mapping[str, bool], profile: Profile, orders: tuple[Order, ...]
) -> Dashboard:
    return Dashboard(user, profile, dict(flags), orders, sum(o.cents for o in orders))


with build_dag(DashboardRequest, name="dashboard") as dashboard:
    user = dashboard.add_node(authenticate, dashboard.params, name="auth")
    flags = dashboard.add_node(
        feature_flags, user, name="flags", timeout=0.5, fallback=DEFAULT_FLAGS
    )
    conn = dashboard.add_resource(connection, user, name="db")
    profile = dashboard.add_node(fetch_profile, conn, user, name="profile", timeout=2.0)
    orders = dashboard.add_node(fetch_orders, conn, user, flags, name="orders", timeout=2.0)
    page = dashboard.add_node(merge, user, flags, profile, orders, name="merge")
