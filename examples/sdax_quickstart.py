"""The sdax quick start, for dagwire: a database connection, auth, feature flags and user data.

    open_database ──┬──> check_auth ──┐
                    └─────────────────┼──> fetch_user_data (named "profile")
    load_feature_flags ───────────────┘
      (timeout= per attempt, retry= after a stalled call)

What changes from the sdax version:
- Values flow through node handles instead of being written into a shared context: each
  function takes what it needs and returns what it produced.
- Opening and closing the database is one resource (an async generator: connect, yield, close)
  instead of a pre/post pair. The close runs after every node that uses the connection has
  finished, whether the run succeeded or failed.
- No levels: the feature flags do not need the database, so they load while it connects, and
  `fetch_user_data` starts as soon as its own three inputs are ready.

Run: python examples/sdax_quickstart.py
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from dagwire import DagError, Node, Retry, build_dag


@dataclass
class Database:
    """A stand-in for a database server: sessions, users, and a log of its connections."""

    sessions: dict[str, int]
    users: dict[int, str]
    log: list[str] = field(default_factory=list[str])
    open_connections: int = 0

    async def connect(self) -> Connection:
        await asyncio.sleep(0.01)
        self.open_connections += 1
        self.log.append("connected")
        return Connection(self)


@dataclass
class Connection:
    db: Database
    closed: bool = False

    async def user_for_token(self, token: str) -> int | None:
        await asyncio.sleep(0.01)
        return self.db.sessions.get(token)

    async def user_name(self, user_id: int) -> str:
        await asyncio.sleep(0.01)
        return self.db.users[user_id]

    async def close(self) -> None:
        await asyncio.sleep(0.005)
        self.closed = True
        self.db.open_connections -= 1
        self.db.log.append("closed")


@dataclass
class FlagService:
    """A remote feature-flag service whose first call stalls until it is given up on."""

    flags: dict[str, bool]
    calls: int = 0

    async def fetch(self) -> dict[str, bool]:
        self.calls += 1
        await asyncio.sleep(10 if self.calls == 1 else 0.01)
        return dict(self.flags)


@dataclass
class Request:
    token: str
    db: Database
    flag_service: FlagService


@dataclass(frozen=True)
class Profile:
    user_id: int
    name: str
    new_api: bool


async def open_database(request: Request) -> AsyncGenerator[Connection, None]:
    conn = await request.db.connect()
    try:
        yield conn
    finally:
        await conn.close()


async def check_auth(conn: Connection, request: Request) -> int:
    user_id = await conn.user_for_token(request.token)
    if user_id is None:
        raise PermissionError(f"unknown session token {request.token!r}")
    return user_id


async def load_feature_flags(request: Request) -> dict[str, bool]:
    return await request.flag_service.fetch()


async def fetch_user_data(conn: Connection, user_id: int, flags: dict[str, bool]) -> Profile:
    name = await conn.user_name(user_id)
    return Profile(user_id, name, new_api=flags.get("new_api", False))


with build_dag(Request, name="quickstart") as dag:
    conn: Node[Connection] = dag.add_resource(open_database)
    user_id: Node[int] = dag.add_node(check_auth, conn)
    flags: Node[dict[str, bool]] = dag.add_node(
        load_feature_flags,
        timeout=0.1,  # each attempt; a stalled call is abandoned and retried
        retry=Retry(attempts=3, initial_delay=0.01, on=(TimeoutError, ConnectionError)),
    )
    profile: Node[Profile] = dag.add_node(fetch_user_data, conn, user_id, flags, name="profile")


async def handle(request: Request) -> Profile:
    """Serve one request; raises DagError if authentication (or anything else) fails."""
    result = await dag.invoke(request)
    return result[profile]


async def main() -> list[str]:
    """Serve a valid request, then one with a forged token; return the lines printed."""
    db = Database(sessions={"token-ada": 123}, users={123: "Ada"})
    flag_service = FlagService({"new_api": True})
    lines: list[str] = []
    for token in ("token-ada", "forged"):
        db.log.clear()
        try:
            outcome = f"workflow completed: {await handle(Request(token, db, flag_service))}"
        except DagError as err:
            outcome = "workflow failed: " + "; ".join(
                f"{node}: {exc}" for node, exc in err.failures.items()
            )
        lines += [
            f"{token}: {outcome}",
            f"  database: {' -> '.join(db.log)}; open connections: {db.open_connections}",
        ]
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    asyncio.run(main())
