"""Functions that run in `ProcessPoolExecutor` workers: module-level, so they pickle by name.

Kept free of pytest and of the rest of the suite, so that a worker imports little.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass

from dagwire import RetryableError, build_dag


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


def noop() -> None:
    """A barrier: once a pool has run one of these per worker, earlier calls have started."""


# -- what the reliability graphs' process-pool nodes run -------------------------------------


class InjectedError(Exception):
    """An injected failure; `tag` names the run, graph, node, phase and attempt."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.tag = tag


class RetryableInjected(InjectedError, RetryableError):
    """An injected failure that the nodes' Retry policies retry."""


class InjectedBase(BaseException):
    """An injected BaseException that is not an Exception (like KeyboardInterrupt, but safe)."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.tag = tag


@dataclass(frozen=True)
class ChildTrial:
    """What a `Trial` (the invoke parameter) becomes when pickled for a worker process: the
    run's token, the file the worker appends its events to, and the faults of its nodes."""

    token: int
    path: str
    faults: dict[tuple[int, int], tuple[str, ...]]  # (graph, node) -> fault per attempt


def _write(trial: ChildTrial, line: dict[str, object]) -> None:
    with open(trial.path, "a", encoding="utf-8") as f:  # one short append: atomic
        f.write(json.dumps(line) + "\n")


def _attempt(trial: ChildTrial, graph: int, node: int) -> int:
    """1 + the starts this node recorded so far in this run (its attempts never overlap: a
    process-pool node has no timeout=)."""
    count = 0
    with open(trial.path, encoding="utf-8") as f:
        for raw in f:
            e = json.loads(raw)
            if (e["token"], e["graph"], e["node"], e["what"]) == (
                trial.token,
                graph,
                node,
                "start",
            ):
                count += 1
    return count + 1


def process_body(graph: int, node: int, trial: ChildTrial, *args: object) -> object:
    """The body of a node with executor=<ProcessPoolExecutor>, run in a worker process."""
    attempt = _attempt(trial, graph, node)
    base = {"token": trial.token, "graph": graph, "node": node, "attempt": attempt}
    _write(trial, {**base, "what": "start", "t": time.perf_counter(), "args": repr(args)})
    faults = trial.faults.get((graph, node), ())
    fault = faults[attempt - 1] if attempt <= len(faults) else "ok"
    tag = f"t{trial.token}:g{graph}:n{node}:body:{attempt}"
    exc: BaseException | None = None
    if fault == "error":
        exc = InjectedError(tag)
    elif fault == "retryable":
        exc = RetryableInjected(tag)
    elif fault == "base":
        exc = InjectedBase(tag)
    elif fault != "ok":
        exc = AssertionError(f"fault {fault!r} cannot happen in a process")
    outcome = "ok" if exc is None else fault
    _write(trial, {**base, "what": "end", "t": time.perf_counter(), "outcome": outcome, "tag": tag})
    if exc is not None:
        raise exc
    return ("v", trial.token, graph, node)
