"""One graph over many parameters: `dag.invoke_many` with a progress bar.

A small request-handler graph (fetch a user and their orders, summarize) runs for 2,000 user
ids, at most 100 runs at a time. The ids come from a generator, consumed only as fast as runs
finish, so memory stays flat however many there are. Results come back in input order.

`progress=True` draws a tqdm bar on stderr (``pip install dagwire[progress]``); the bar stays
silent when stderr is not a terminal (as under the test suite). Some users have no orders
service entry: with ``on_error="continue"`` those runs come back as failed results instead of
stopping the batch.

Run: python examples/batch_progress.py
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

from dagwire import build_dag


@dataclass(frozen=True)
class User:
    id: int
    name: str


@dataclass(frozen=True)
class Summary:
    user: str
    orders: int
    spent: float


class UnknownCustomer(LookupError):
    pass


async def fetch_user(user_id: int) -> User:
    await asyncio.sleep(0.001)  # a database round trip
    return User(user_id, f"user{user_id}")


async def fetch_orders(user: User) -> list[float]:
    await asyncio.sleep(0.002)  # an HTTP call to the orders service
    if user.id % 97 == 0:
        raise UnknownCustomer(f"no orders account for {user.name}")
    return [float(user.id % 7 + k) for k in range(user.id % 4)]


def summarize(user: User, orders: list[float]) -> Summary:
    return Summary(user.name, len(orders), sum(orders))


with build_dag(int, name="summaries") as dag:
    user = dag.add_node(fetch_user, dag.params)
    orders = dag.add_node(fetch_orders, user)
    summary = dag.add_node(summarize, user, orders)


def user_ids(count: int) -> Iterator[int]:
    """Ids as a generator: invoke_many takes one each time a run slot is free."""
    yield from range(1, count + 1)


async def main() -> None:
    results = await dag.invoke_many(
        user_ids(2000), concurrency=100, on_error="continue", progress=True
    )
    failed = [r for r in results if not r.ok]
    print(f"{len(results)} runs, in input order: {results[0].params}..{results[-1].params}")
    print(f"first summary: {results[0][summary]}")
    print(f"{len(failed)} runs failed, e.g. user {failed[0].params}: {failed[0].errors[0].error}")
    spent = sum(r[summary].spent for r in results if r.ok)
    print(f"total spent by the others: {spent:,.0f}")


if __name__ == "__main__":
    asyncio.run(main())
