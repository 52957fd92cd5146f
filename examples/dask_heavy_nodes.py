"""CPU-heavy nodes on a Dask cluster while the graph itself runs in this process.

Four nodes each count the primes in a slice of a range: pure CPU work that would block the
event loop (and a single core) if run inline. With ``executor=client`` each runs on a worker
process of a `distributed.LocalCluster`; the light node (the sum) stays on the loop. The same
graph is then run inline to compare.

Worker processes import this module: everything that starts a cluster sits under the
``__main__`` guard at the bottom.

Needs ``pip install dagwire[dask]``. Run: python examples/dask_heavy_nodes.py
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from distributed import Client, LocalCluster

from dagwire import Dag, ExecutionResult, Node, build_dag
from dagwire.executors import ExecutorLike

PARTS = 4
Graph = tuple[Dag[int], list[Node[tuple[int, int]]], Node[int]]


def count_primes(limit: int, part: int) -> tuple[int, int]:
    """Primes in slice `part` of [0, limit), by trial division (deliberately CPU-bound).

    Returns (count, pid of the process that counted)."""
    lo, hi = part * limit // PARTS, (part + 1) * limit // PARTS
    count = 0
    for n in range(max(lo, 2), hi):
        if all(n % d for d in range(2, int(n**0.5) + 1)):
            count += 1
    return count, os.getpid()


def total(*parts: tuple[int, int]) -> int:
    return sum(count for count, _ in parts)


def build(executor: ExecutorLike | None) -> Graph:
    """The graph: PARTS heavy nodes, one per slice of [0, limit), then their sum."""
    with build_dag(int, name="primes") as dag:
        heavy = [
            dag.add_node(count_primes, dag.params, part, executor=executor, name=f"count_{part}")
            for part in range(PARTS)
        ]
        summed = dag.add_node(total, *heavy, name="total")
    return dag, heavy, summed


async def timed(dag: Dag[int], limit: int) -> tuple[ExecutionResult[int], float, int]:
    """Invoke `dag`, returning its result, the seconds it took and how often a 10 ms ticker
    got the event loop meanwhile (a blocked loop does not tick)."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    started = time.perf_counter()
    try:
        result = await dag.invoke(limit)
    finally:
        tick_task.cancel()
    return result, time.perf_counter() - started, ticks


async def main(limit: int = 200_000) -> None:
    async with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            asynchronous=True,
            dashboard_address=":0",  # None would still bind port 8787 (and fail if taken)
            host="127.0.0.1",
            # Workers log at WARNING and up by default; while the cluster shuts down, a worker
            # may log a failed heartbeat (with a traceback) to a scheduler already gone.
            silence_logs=logging.CRITICAL,
        ) as cluster,
        Client(cluster, asynchronous=True) as client,
    ):
        dag, heavy, summed = build(client)
        await dag.invoke(1000)  # warm-up: the workers load the function once
        result, seconds, ticks = await timed(dag, limit)
        pids = sorted({result[node][1] for node in heavy})
        print(f"on the cluster: {result[summed]} primes below {limit:,} in {seconds:.2f}s")
        print(f"  heavy nodes ran in worker processes {pids}; this process is {os.getpid()}")
        print(f"  the event loop stayed free: it ticked {ticks} times meanwhile")

    dag, heavy, summed = build(None)
    result, seconds, ticks = await timed(dag, limit)
    print(f"inline: {result[summed]} primes below {limit:,} in {seconds:.2f}s")
    print(f"  the event loop was blocked: it ticked {ticks} times meanwhile")


if __name__ == "__main__":
    asyncio.run(main())
