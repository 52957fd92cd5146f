"""`python -m dagwire demo`: a small endpoint graph that prints when each node starts and ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .graph import build_dag

T = TypeVar("T")


def _step(name: str, seconds: float, make: Callable[..., T], t0: list[float]) -> Callable[..., Awaitable[T]]:
    async def step(*inputs: object) -> T:
        print(f"  {time.perf_counter() - t0[0]:5.3f}s  start  {name}")
        await asyncio.sleep(seconds)
        print(f"  {time.perf_counter() - t0[0]:5.3f}s  done   {name}")
        return make(*inputs)

    step.__qualname__ = name
    return step


async def demo() -> None:
    t0 = [0.0]
    with build_dag(int, name="endpoint") as dag:
        auth = dag.add_node(_step("auth", 0.05, lambda uid: uid, t0), dag.params)
        flags = dag.add_node(_step("feature_flags", 0.12, lambda: {"recs": True}, t0))
        user = dag.add_node(_step("load_user", 0.06, lambda uid: f"user{uid}", t0), auth)
        orders = dag.add_node(_step("load_orders", 0.20, lambda u: [f"{u}-o1"], t0), user)
        recs = dag.add_node(_step("recommend", 0.05, lambda u, f: ["book"], t0), user, flags)
        page = dag.add_node(
            _step("render", 0.01, lambda u, o, r: f"{u}: {len(o)} orders, recs {r}", t0),
            user,
            orders,
            recs,
        )
    print("auth -> load_user -> load_orders -> render;  feature_flags + load_user -> recommend")
    print("each node starts as soon as its own inputs are done:\n")
    t0[0] = time.perf_counter()
    result = await dag.invoke(42, timeline=True)
    print(f"\nresult: {result[page]!r}")
    print("\nnode           start   end    (waited for)")
    ends = {t.node: t.end for t in result.timeline()}
    for t in result.timeline():
        inputs = [n.name for n in dag.node(t.node).inputs if hasattr(n, "name")]
        last = max(inputs, key=lambda n: ends.get(n, 0.0), default="-")
        print(f"{t.node:14} {t.start:5.3f}  {t.end:5.3f}  ({last})")


def main() -> None:
    asyncio.run(demo())
