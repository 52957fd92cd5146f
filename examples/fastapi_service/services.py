"""The downstream services of the dashboard endpoint, in process so the example runs anywhere.

Each call waits a few milliseconds like a network round trip. The database hands out
connections from a bounded pool and counts every connection it opens and closes, so the tests
can check that each request's connection was released, whatever happened to the request.
Switches (`FlagService.down`, `Database.broken`) make a service fail on purpose.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

LATENCY = 0.002  # seconds per simulated round trip


class Unauthorized(Exception):
    """The request's bearer token is missing or unknown."""


class Forbidden(Exception):
    """The token is valid but belongs to another user than the one asked for."""


class DownstreamError(Exception):
    """A service the endpoint depends on failed; `service` names it."""

    def __init__(self, service: str, message: str) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service


@dataclass(frozen=True)
class User:
    id: int
    name: str
    plan: str  # "free" or "pro"


@dataclass(frozen=True)
class Profile:
    user_id: int
    email: str
    city: str


@dataclass(frozen=True)
class Order:
    id: int
    user_id: int
    item: str
    cents: int


class AuthService:
    """Bearer tokens to users."""

    def __init__(self, tokens: Mapping[str, User]) -> None:
        self._tokens = dict(tokens)

    async def verify(self, token: str) -> User:
        """The token's user; raises `Unauthorized` for an unknown token."""
        await asyncio.sleep(LATENCY)
        user = self._tokens.get(token)
        if user is None:
            raise Unauthorized("unknown bearer token")
        return user


class FlagService:
    """Feature flags per plan; while `down`, every call raises `DownstreamError`."""

    def __init__(self, by_plan: Mapping[str, Mapping[str, bool]], *, down: bool = False) -> None:
        self._by_plan = {plan: dict(flags) for plan, flags in by_plan.items()}
        self.down = down

    async def for_user(self, user: User) -> dict[str, bool]:
        await asyncio.sleep(LATENCY)
        if self.down:
            raise DownstreamError("flags", "connection refused")
        return dict(self._by_plan.get(user.plan, {}))


@dataclass
class Connection:
    """One pooled connection to the database."""

    id: int
    db: Database
    closed: bool = False

    async def fetch_profile(self, user_id: int) -> Profile:
        return await self.db.query("profiles", lambda: self.db.profiles[user_id])

    async def fetch_orders(self, user_id: int, limit: int) -> tuple[Order, ...]:
        orders = self.db.orders.get(user_id, ())
        return await self.db.query("orders", lambda: tuple(orders[:limit]))


@dataclass
class Database:
    """Tables in memory behind a pool of at most `pool_size` connections.

    `broken` names tables whose queries raise `DownstreamError`, `stalled` tables whose queries
    never answer (until cancelled). `opened`/`released` count the connections handed out and
    given back; `open_connections` is the difference.
    """

    profiles: dict[int, Profile]
    orders: dict[int, tuple[Order, ...]]
    pool_size: int = 20
    broken: set[str] = field(default_factory=set[str])
    stalled: set[str] = field(default_factory=set[str])
    opened: int = 0
    released: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _pool: asyncio.Semaphore | None = None

    @property
    def open_connections(self) -> int:
        return self.opened - self.released

    async def connect(self) -> Connection:
        if self._pool is None:  # created on first use, inside the running event loop
            self._pool = asyncio.Semaphore(self.pool_size)
        await self._pool.acquire()
        await asyncio.sleep(LATENCY)
        self.opened += 1
        return Connection(next(self._ids), self)

    async def release(self, conn: Connection) -> None:
        if conn.closed:
            raise RuntimeError(f"connection {conn.id} released twice")
        conn.closed = True
        self.released += 1
        assert self._pool is not None
        self._pool.release()

    async def query(self, table: str, read: Callable[[], T]) -> T:
        await asyncio.sleep(LATENCY)
        if table in self.stalled:
            await asyncio.Event().wait()  # nobody sets it: only a cancellation ends the wait
        if table in self.broken:
            raise DownstreamError("database", f"table {table!r} is unavailable")
        return read()


@dataclass(frozen=True)
class Services:
    """Everything the graph calls, passed to it with each request."""

    auth: AuthService
    flags: FlagService
    db: Database


def demo_services(users: int = 500) -> Services:
    """Services holding `users` users: user ``k`` has the token ``"token-k"``, the name
    ``"user k"``, the "pro" plan when ``k`` is even, and ``k % 4`` orders."""
    people = {k: User(k, f"user {k}", "pro" if k % 2 == 0 else "free") for k in range(1, users + 1)}
    return Services(
        auth=AuthService({f"token-{k}": user for k, user in people.items()}),
        flags=FlagService({"pro": {"order_history": True}, "free": {"order_history": False}}),
        db=Database(
            profiles={k: Profile(k, f"user{k}@example.com", "Lisbon") for k in people},
            orders={
                k: tuple(Order(k * 100 + j, k, f"item {j}", 100 * (j + 1)) for j in range(k % 4))
                for k in people
            },
        ),
    )
