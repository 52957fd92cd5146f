"""Functions that run in `ProcessPoolExecutor` workers: module-level, so they pickle by name.

Kept free of pytest and of the rest of the suite, so that a worker imports little.
"""

from __future__ import annotations

import asyncio
import os

from dagwire import build_dag


def run_failing_graph() -> None:
    """Run, inside the worker, a graph whose node `boom` fails: raises its DagError."""

    async def boom() -> None:
        raise ValueError("boom in a worker")

    async def fine() -> int:
        return 1

    with build_dag(name="in_worker") as dag:
        dag.add_node(boom, name="boom")
        dag.add_node(fine, name="fine")
    asyncio.run(dag.invoke(None))


def read_failed_node() -> None:
    """Raise the NodeNotCompletedError of a failed node, read from a continue-mode result."""

    async def boom() -> int:
        raise ValueError("boom in a worker")

    with build_dag(name="in_worker") as dag:
        node = dag.add_node(boom, name="boom")
    result = asyncio.run(dag.invoke(None, on_error="continue"))
    result[node]


def pid() -> int:
    return os.getpid()
