"""A lock held for a run, released whatever fails (sdax's "safe resource management", for dagwire).

    hold_ledger ───────┐  (resource: holds books.ledger_lock, yields the ledger it guards)
                       ├──> post_entries ──> publish_report
    read_entries ──────┘                      pre=/post=: take/release books.report_lock
                                              (fails in the second run)

Two ways to hold a lock, both released after the success run and after the failing run:

- As a resource (recommended): `async with lock: yield guarded_value`. dagwire registers the
  cleanup only once the generator has yielded, i.e. once the lock is really held, so there is no
  "did I acquire it?" flag to keep. On failure the error is thrown in at the `yield` and
  `async with` releases the lock on its way out.
- As `pre=`/`post=` hooks (the sdax shape, for a lock no node needs as a value): `post` runs for
  every node whose `pre` started, even if `pre` was cancelled while waiting for the lock, so
  `post` must release only what this run really took. The flag lives on the invoke parameter,
  which is per run, never on the shared object.

Run: python examples/lock_resource.py
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from dagwire import DagError, Node, build_dag

Entry = tuple[str, int]


class ReportChannelDown(Exception):
    """The report could not be delivered."""


@dataclass
class Books:
    """Shared by every run: a ledger behind a lock, a report channel behind another."""

    ledger: list[Entry] = field(default_factory=list[Entry])
    ledger_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    report_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    events: list[str] = field(default_factory=list[str])


@dataclass
class Batch:
    """One invoke parameter: the entries to post, and this run's own lock bookkeeping."""

    books: Books
    entries: list[Entry]
    report_channel_down: bool = False
    holds_report_lock: bool = False


async def hold_ledger(batch: Batch) -> AsyncGenerator[list[Entry], None]:
    books = batch.books
    async with books.ledger_lock:
        books.events.append("ledger locked")
        try:
            yield books.ledger  # only a run holding the lock gets to see the ledger
        finally:
            books.events.append("ledger released")


def read_entries(batch: Batch) -> list[Entry]:
    return [(item, amount) for item, amount in batch.entries if amount]


async def post_entries(ledger: list[Entry], entries: list[Entry], batch: Batch) -> int:
    await asyncio.sleep(0.01)  # a write round trip
    ledger.extend(entries)
    batch.books.events.append(f"entries posted: {len(entries)}")
    return sum(amount for _, amount in entries)


async def take_report_lock(batch: Batch) -> None:
    await batch.books.report_lock.acquire()
    batch.holds_report_lock = True  # no await between acquiring and recording it
    batch.books.events.append("report lock taken")


def release_report_lock(batch: Batch) -> None:
    if batch.holds_report_lock:  # pre may have been cancelled before it got the lock
        batch.holds_report_lock = False
        batch.books.report_lock.release()
        batch.books.events.append("report lock released")


async def publish_report(total: int, batch: Batch) -> str:
    await asyncio.sleep(0.01)  # a network round trip
    if batch.report_channel_down:
        raise ReportChannelDown("the report channel is down")
    batch.books.events.append("report published")
    return f"total {total}"


with build_dag(Batch, name="post_batch") as dag:
    ledger: Node[list[Entry]] = dag.add_resource(hold_ledger)
    entries: Node[list[Entry]] = dag.add_node(read_entries)
    total: Node[int] = dag.add_node(post_entries, ledger, entries)
    report: Node[str] = dag.add_node(
        publish_report, total, pre=take_report_lock, post=release_report_lock
    )


async def post_batch(batch: Batch) -> str:
    """Post one batch and publish its report; raises DagError if any step fails."""
    result = await dag.invoke(batch)
    return result[report]


async def main() -> list[str]:
    """A run that succeeds, then one whose last node fails; return the lines printed."""
    books = Books()
    batches = [
        Batch(books, [("rent", 1200), ("power", 80)]),
        Batch(books, [("coffee", 12)], report_channel_down=True),
    ]
    lines: list[str] = []
    for n, batch in enumerate(batches, 1):
        books.events.clear()
        try:
            outcome = f"published {await post_batch(batch)}"
        except DagError as err:
            outcome = "failed: " + "; ".join(f"{k}: {e}" for k, e in err.failures.items())
        lines += [
            f"run {n}: {outcome}",
            "  " + " -> ".join(books.events),
            f"  ledger lock held: {books.ledger_lock.locked()}, "
            f"report lock held: {books.report_lock.locked()}",
        ]
    lines.append(f"ledger: {books.ledger}")
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    asyncio.run(main())
