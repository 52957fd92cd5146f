"""`python -m dagwire demo`: a small endpoint graph that prints when each node starts and ends.

    auth ──> load_user ──> load_orders ──┐
                      └──> recommend ────┴──> render
    feature_flags ───────> recommend

`recommend` starts as soon as `load_user` and `feature_flags` are done, while `load_orders` is
still running: nothing waits for a "level" to finish.
"""

from __future__ import annotations

import asyncio
import time

from .graph import Dag, build_dag
from .node import Node
from .results import ExecutionResult

_PICTURE = """\
    auth ──> load_user ──> load_orders ──┐
                      └──> recommend ────┴──> render
    feature_flags ───────> recommend"""

_t0 = 0.0


def _say(what: str, name: str) -> None:
    print(f"  {time.perf_counter() - _t0:5.3f}s  {what:5}  {name}")


async def _io(name: str, seconds: float) -> None:
    """Pretend to call a service: log the start, wait, log the end."""
    _say("start", name)
    await asyncio.sleep(seconds)
    _say("done", name)


async def auth(user_id: int) -> int:
    await _io("auth", 0.05)
    return user_id


async def feature_flags() -> dict[str, bool]:
    await _io("feature_flags", 0.12)
    return {"recommendations": True}


async def load_user(user_id: int) -> str:
    await _io("load_user", 0.06)
    return f"user{user_id}"


async def load_orders(user: str) -> list[str]:
    await _io("load_orders", 0.20)
    return [f"{user}-order1", f"{user}-order2"]


async def recommend(user: str, flags: dict[str, bool]) -> list[str]:
    await _io("recommend", 0.05)
    return ["a book"] if flags["recommendations"] else []


def render(user: str, orders: list[str], recs: list[str]) -> str:
    _say("run", "render (sync, inline)")
    return f"{user}: {len(orders)} orders, recommended {recs}"


def build() -> tuple[Dag[int], Node[str]]:
    """The endpoint graph and its final node."""
    with build_dag(int, name="endpoint") as dag:
        uid = dag.add_node(auth, dag.params)
        flags = dag.add_node(feature_flags)
        user = dag.add_node(load_user, uid)
        orders = dag.add_node(load_orders, user)
        recs = dag.add_node(recommend, user, flags)
        page = dag.add_node(render, user, orders, recs)
    return dag, page


# Module level so that `python -m dagwire graph dagwire._demo:dag` draws it.
dag, page = build()


async def demo() -> ExecutionResult[int]:
    global _t0
    print(_PICTURE)
    print("\neach node starts the moment its own inputs are done:\n")
    _t0 = time.perf_counter()
    result = await dag.invoke(42, timeline=True)
    print(f"\nresult: {result[page]!r}\n")
    print("node           start  end    started after")
    ends = {t.node: t.end for t in result.timeline()}
    for t in result.timeline():
        inputs = [n.name for n in dag.node(t.node).inputs if isinstance(n, Node)]
        last = max((n for n in inputs if n in ends), key=ends.__getitem__, default="-")
        print(f"{t.node:14} {t.start:5.3f}  {t.end:5.3f}  {last}")
    return result


def main() -> ExecutionResult[int]:
    """Run the demo once; return its result (recorded with `timeline=True`)."""
    return asyncio.run(demo())
