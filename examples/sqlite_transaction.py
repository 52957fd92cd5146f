"""A real SQLite transaction as two resources: commit when the run succeeds, roll back when not.

    open_connection ──> transaction ──> add_customer ──> add_order_lines ──> check_credit
     (connect/close)   (BEGIN, then                                          (fails in the
                        COMMIT or ROLLBACK)                                    second run)

Both resources are async generators that yield once. When the run succeeds, dagwire resumes
them after their `yield` (transaction first, then connection: reverse dependency order), so the
transaction commits. When any node fails, dagwire throws that failure into them at their
`yield`, so the transaction rolls back, the connection still closes, and `invoke` raises a
`DagError` naming the failed node.

The connection is opened with `isolation_level=None`, so Python's sqlite3 module never begins
or commits a transaction behind our back; the transaction resource issues BEGIN, COMMIT and
ROLLBACK itself.

Run: python examples/sqlite_transaction.py [path/to/database.sqlite]
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
from collections.abc import AsyncGenerator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import aiosqlite

from dagwire import DagError, Node, build_dag

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS customers ("
    " id INTEGER PRIMARY KEY, name TEXT NOT NULL, credit_limit INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS order_lines ("
    " id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),"
    " item TEXT NOT NULL, amount INTEGER NOT NULL)",
)


class CreditLimitExceeded(Exception):
    """The order costs more than the customer may spend: nothing of it may be stored."""


@dataclass
class Order:
    """One invoke parameter: where the database is, what to store, and a log of what happened."""

    db_path: Path
    customer: str
    credit_limit: int
    lines: list[tuple[str, int]]
    log: list[str] = field(default_factory=list[str])


async def _run_sql(conn: aiosqlite.Connection, sql: str, args: tuple[object, ...] = ()) -> int:
    """Execute one statement, close its cursor, and return the id of the row it inserted."""
    async with conn.execute(sql, args) as cursor:
        return cursor.lastrowid or 0


async def open_connection(order: Order) -> AsyncGenerator[aiosqlite.Connection, None]:
    # isolation_level=None: no implicit BEGIN/COMMIT from the sqlite3 module (see `transaction`).
    conn = await aiosqlite.connect(order.db_path, isolation_level=None)
    order.log.append("connection opened")
    try:
        for statement in SCHEMA:
            await _run_sql(conn, statement)
        yield conn
    finally:  # runs on success and when the run's failure is thrown in at the yield
        await conn.close()
        order.log.append("connection closed")


async def transaction(
    conn: aiosqlite.Connection, order: Order
) -> AsyncGenerator[aiosqlite.Connection, None]:
    await _run_sql(conn, "BEGIN IMMEDIATE")  # take the write lock now, not at the first INSERT
    order.log.append("BEGIN")
    try:
        yield conn
    except BaseException:  # the run failed (or was cancelled): undo every write, then re-raise
        await _run_sql(conn, "ROLLBACK")
        order.log.append("ROLLBACK")
        raise
    try:
        await _run_sql(conn, "COMMIT")
    except BaseException:
        if conn.in_transaction:  # e.g. SQLITE_BUSY leaves it open: do not keep it
            await _run_sql(conn, "ROLLBACK")
            order.log.append("ROLLBACK")
        raise
    order.log.append("COMMIT")


async def add_customer(tx: aiosqlite.Connection, order: Order) -> int:
    return await _run_sql(
        tx,
        "INSERT INTO customers (name, credit_limit) VALUES (?, ?)",
        (order.customer, order.credit_limit),
    )


async def add_order_lines(tx: aiosqlite.Connection, customer_id: int, order: Order) -> int:
    """Insert every line of the order; return the order's total."""
    for item, amount in order.lines:
        await _run_sql(
            tx,
            "INSERT INTO order_lines (customer_id, item, amount) VALUES (?, ?, ?)",
            (customer_id, item, amount),
        )
    return sum(amount for _, amount in order.lines)


def check_credit(total: int, order: Order) -> int:
    if total > order.credit_limit:
        raise CreditLimitExceeded(
            f"{order.customer}: order total {total} exceeds the credit limit {order.credit_limit}"
        )
    return order.credit_limit - total


with build_dag(Order, name="place_order") as dag:
    conn: Node[aiosqlite.Connection] = dag.add_resource(open_connection)
    tx: Node[aiosqlite.Connection] = dag.add_resource(transaction, conn)
    customer_id: Node[int] = dag.add_node(add_customer, tx)
    total: Node[int] = dag.add_node(add_order_lines, tx, customer_id)
    credit_left: Node[int] = dag.add_node(check_credit, total)


async def place_order(order: Order) -> int:
    """Store `order` in one transaction; return the credit left. Raises DagError on failure."""
    result = await dag.invoke(order)
    return result[credit_left]


def read_rows(db_path: Path) -> list[tuple[str, str, int]]:
    """Every stored order line, read through a fresh connection (committed data only)."""
    with closing(sqlite3.connect(db_path)) as db:
        rows = db.execute(
            "SELECT c.name, o.item, o.amount FROM order_lines o"
            " JOIN customers c ON c.id = o.customer_id ORDER BY o.id"
        ).fetchall()
    return [(str(name), str(item), int(amount)) for name, item, amount in rows]


async def main(db_path: Path | None = None) -> list[list[tuple[str, str, int]]]:
    """Place a good order, then one over its credit limit; return the rows after each."""
    with tempfile.TemporaryDirectory() as tmp:
        path = db_path if db_path is not None else Path(tmp) / "shop.sqlite"
        orders = [
            Order(path, "ada", 100, [("keyboard", 45), ("mouse", 25)]),
            Order(path, "bob", 50, [("monitor", 180), ("cable", 10)]),  # over its limit
        ]
        snapshots: list[list[tuple[str, str, int]]] = []
        for order in orders:
            try:
                left = await place_order(order)
                print(f"{order.customer}: stored, credit left {left}")
            except DagError as err:
                failed = ", ".join(f"{node}: {exc}" for node, exc in err.failures.items())
                print(f"{order.customer}: failed ({failed})")
            print("  " + " -> ".join(order.log))
            snapshots.append(read_rows(path))
            print("  rows in the database:", snapshots[-1])
    return snapshots


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
