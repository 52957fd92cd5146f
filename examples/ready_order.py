"""Nodes start the moment their own inputs are ready (the async-dag README graph, for dagwire).

    fast_a ──> slow_b ──────────┐
    slow_a ──┐                  ├──> total
    fast_b ──┴──> fast_c ───────┘

`slow_b` starts as soon as `fast_a` is done, without waiting for `slow_a`: a "gather each level"
program would start it only after the whole first level finished.

Run: python examples/ready_order.py
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from dagwire import build_dag

Log = list[tuple[float, str]]


def timed_step(name: str, seconds: float, log: Log) -> Callable[..., Awaitable[int]]:
    """An async step that sleeps, records when it started/finished, and adds its inputs + 1."""

    async def step(*inputs: int) -> int:
        log.append((time.perf_counter(), f"{name} started"))
        await asyncio.sleep(seconds)
        log.append((time.perf_counter(), f"{name} done"))
        return sum(inputs) + 1

    step.__qualname__ = name
    return step


async def main(scale: float = 1.0) -> tuple[int, Log]:
    log: Log = []
    with build_dag(int) as dag:
        fast_a = dag.add_node(timed_step("fast_a", 0.05 * scale, log), dag.params)
        slow_b = dag.add_node(timed_step("slow_b", 0.5 * scale, log), fast_a)
        slow_a = dag.add_node(timed_step("slow_a", 0.25 * scale, log))
        fast_b = dag.add_node(timed_step("fast_b", 0.05 * scale, log))
        fast_c = dag.add_node(timed_step("fast_c", 0.05 * scale, log), slow_a, fast_b)
        total = dag.add_node(timed_step("total", 0, log), fast_c, slow_b)

    started = time.perf_counter()
    result = await dag.invoke(0)
    for at, what in log:
        print(f"{at - started:6.3f}s  {what}")
    print("fast_a =", result[fast_a], " total =", total.extract_result(result))
    return result[total], log


if __name__ == "__main__":
    asyncio.run(main())
