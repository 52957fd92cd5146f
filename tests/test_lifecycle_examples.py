"""The lifecycle examples (sdax quick start, lock, SQLite transaction), through their functions.

Running them as scripts is covered separately; here each guarantee they print is asserted:
resources closed after every run, locks released, commit on success and rollback on failure.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Literal

import aiosqlite
import pytest
from examples import lock_resource, sdax_quickstart, sqlite_transaction

from dagwire import DagError, NodeStatus

# -- sdax quick start ------------------------------------------------------------------------


def _request(token: str) -> sdax_quickstart.Request:
    db = sdax_quickstart.Database(sessions={"token-grace": 7}, users={7: "Grace"})
    return sdax_quickstart.Request(token, db, sdax_quickstart.FlagService({"new_api": False}))


async def test_quickstart_values_and_the_connection_is_closed_after_the_run() -> None:
    request = _request("token-grace")
    result = await sdax_quickstart.dag.invoke(request)

    assert result[sdax_quickstart.user_id] == 7
    assert result[sdax_quickstart.flags] == {"new_api": False}
    assert result[sdax_quickstart.profile] == sdax_quickstart.Profile(7, "Grace", new_api=False)
    connection = result[sdax_quickstart.conn]
    assert connection.closed
    assert request.db.log == ["connected", "closed"]
    assert request.db.open_connections == 0
    # The first flag call stalls: its attempt timed out and the retry succeeded.
    assert request.flag_service.calls == 2


async def test_quickstart_failed_auth_raises_and_still_closes_the_connection() -> None:
    request = _request("forged")
    with pytest.raises(DagError) as caught:
        await sdax_quickstart.handle(request)

    assert list(caught.value.failures) == ["check_auth"]
    assert isinstance(caught.value.failures["check_auth"], PermissionError)
    assert request.db.log == ["connected", "closed"]
    assert request.db.open_connections == 0


async def test_quickstart_main_reports_both_runs() -> None:
    lines = await sdax_quickstart.main()
    assert lines[0].startswith("token-ada: workflow completed: Profile(user_id=123")
    assert lines[2] == "forged: workflow failed: check_auth: unknown session token 'forged'"
    assert lines[1] == lines[3] == "  database: connected -> closed; open connections: 0"


# -- lock held as a resource (and through pre/post hooks) ---------------------------------------


async def test_lock_success_run_releases_both_locks() -> None:
    books = lock_resource.Books()
    batch = lock_resource.Batch(books, [("rent", 20), ("power", 10)])

    assert await lock_resource.post_batch(batch) == "total 30"
    assert not books.ledger_lock.locked()
    assert not books.report_lock.locked()
    assert not batch.holds_report_lock
    assert books.ledger == [("rent", 20), ("power", 10)]
    assert books.events == [
        "ledger locked",
        "entries posted: 2",
        "report lock taken",
        "report published",
        "report lock released",
        "ledger released",
    ]


async def test_lock_failing_run_raises_dag_error_and_releases_both_locks() -> None:
    books = lock_resource.Books()
    batch = lock_resource.Batch(books, [("coffee", 12)], report_channel_down=True)

    with pytest.raises(DagError) as caught:
        await lock_resource.post_batch(batch)

    assert list(caught.value.failures) == ["publish_report"]
    assert isinstance(caught.value.failures["publish_report"], lock_resource.ReportChannelDown)
    assert not books.ledger_lock.locked()
    assert not books.report_lock.locked()
    # Cleanup order: the node's post hook before the resource it depends on.
    assert books.events[-2:] == ["report lock released", "ledger released"]


async def test_lock_is_held_for_the_whole_run_so_concurrent_runs_take_turns() -> None:
    books = lock_resource.Books()
    first = lock_resource.Batch(books, [("a", 1)])
    second = lock_resource.Batch(books, [("b", 2)])

    totals = await asyncio.gather(lock_resource.post_batch(first), lock_resource.post_batch(second))
    assert list(totals) == ["total 1", "total 2"]

    locked_at = [k for k, e in enumerate(books.events) if e == "ledger locked"]
    released_at = [k for k, e in enumerate(books.events) if e == "ledger released"]
    assert len(locked_at) == len(released_at) == 2
    assert released_at[0] < locked_at[1]  # the second run waited for the first to release
    assert not books.ledger_lock.locked()


class _SignallingLock(asyncio.Lock):
    """A lock that tells the test when somebody starts waiting for it."""

    def __init__(self) -> None:
        super().__init__()
        self.someone_waits = asyncio.Event()

    async def acquire(self) -> Literal[True]:
        if self.locked():
            self.someone_waits.set()
        return await super().acquire()


async def test_lock_post_hook_does_not_release_a_lock_its_pre_never_got() -> None:
    report_lock = _SignallingLock()
    books = lock_resource.Books(report_lock=report_lock)
    batch = lock_resource.Batch(books, [("tea", 3)])
    await report_lock.acquire()  # someone else holds the report channel
    try:
        run = asyncio.create_task(lock_resource.post_batch(batch))
        async with asyncio.timeout(2):
            await report_lock.someone_waits.wait()
        # publish_report's pre is waiting for the report lock: cancel the run right there.
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        assert not batch.holds_report_lock
        assert report_lock.locked()  # still ours: the post hook did not release it
        assert not books.ledger_lock.locked()  # the resource was released
        assert books.events == ["ledger locked", "entries posted: 1", "ledger released"]
    finally:
        report_lock.release()


async def test_lock_main_prints_released_after_each_run() -> None:
    lines = await lock_resource.main()
    assert lines[0] == "run 1: published total 1280"
    assert lines[3] == "run 2: failed: publish_report: the report channel is down"
    assert lines[2] == lines[5] == "  ledger lock held: False, report lock held: False"


# -- SQLite transaction ----------------------------------------------------------------------


def _count(db_path: Path, table: str) -> int:
    with closing(sqlite3.connect(db_path)) as db:
        (n,) = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(n)


def _assert_not_locked(db_path: Path) -> None:
    """No connection is left holding a write transaction on the file."""
    with closing(sqlite3.connect(db_path, timeout=0, isolation_level=None)) as db:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")


async def test_sqlite_success_commits_and_closes_the_connection(tmp_path: Path) -> None:
    path = tmp_path / "shop.sqlite"
    order = sqlite_transaction.Order(path, "ada", 100, [("keyboard", 45), ("mouse", 25)])

    result = await sqlite_transaction.dag.invoke(order)

    assert result[sqlite_transaction.credit_left] == 30
    assert result[sqlite_transaction.total] == 70
    assert order.log == ["connection opened", "BEGIN", "COMMIT", "connection closed"]
    assert _count(path, "customers") == 1
    assert _count(path, "order_lines") == 2
    assert sqlite_transaction.read_rows(path) == [("ada", "keyboard", 45), ("ada", "mouse", 25)]
    connection: aiosqlite.Connection = result[sqlite_transaction.conn]
    with pytest.raises(ValueError, match=r"(?i)closed|no active connection"):
        await connection.execute("SELECT 1")
    _assert_not_locked(path)


async def test_sqlite_failing_run_rolls_back_every_insert(tmp_path: Path) -> None:
    path = tmp_path / "shop.sqlite"
    ok = sqlite_transaction.Order(path, "ada", 100, [("keyboard", 45)])
    await sqlite_transaction.place_order(ok)
    over = sqlite_transaction.Order(path, "bob", 50, [("monitor", 180), ("cable", 10)])

    with pytest.raises(DagError) as caught:
        await sqlite_transaction.place_order(over)

    assert list(caught.value.failures) == ["check_credit"]
    assert isinstance(caught.value.failures["check_credit"], sqlite_transaction.CreditLimitExceeded)
    # Both inserting nodes had succeeded; their rows are gone with the transaction.
    assert over.log == ["connection opened", "BEGIN", "ROLLBACK", "connection closed"]
    assert _count(path, "customers") == 1
    assert _count(path, "order_lines") == 1
    assert sqlite_transaction.read_rows(path) == [("ada", "keyboard", 45)]
    _assert_not_locked(path)


async def test_sqlite_failing_run_statuses(tmp_path: Path) -> None:
    order = sqlite_transaction.Order(tmp_path / "shop.sqlite", "bob", 5, [("monitor", 180)])
    result = await sqlite_transaction.dag.invoke(order, on_error="continue")

    assert not result.ok
    assert result.status(sqlite_transaction.total) is NodeStatus.SUCCEEDED
    assert result.status(sqlite_transaction.credit_left) is NodeStatus.FAILED
    # Continue mode: the transaction hears of the failure of a node that depends on it.
    assert order.log == ["connection opened", "BEGIN", "ROLLBACK", "connection closed"]
    assert _count(tmp_path / "shop.sqlite", "order_lines") == 0


async def test_sqlite_main_shows_commit_then_rollback(tmp_path: Path) -> None:
    path = tmp_path / "main.sqlite"
    after_first, after_second = await sqlite_transaction.main(path)

    committed = [("ada", "keyboard", 45), ("ada", "mouse", 25)]
    assert after_first == committed
    assert after_second == committed
    assert _count(path, "customers") == 1
