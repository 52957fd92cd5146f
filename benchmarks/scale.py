"""Benchmarks of issue 11's batch and scale-out: `invoke_many` and heavy nodes off the loop.

Called by run.py (sections ``invoke_many`` and ``heavy``):

- ``invoke_many``: the 10-node endpoint graph over N params (10,000; 2,000 with --quick) with
  ``concurrency=100``, against the hand-written code it replaces: a loop that acquires an
  ``asyncio.Semaphore(100)`` before starting each ``dag.invoke`` in a task and gathers them in
  order. Samples interleaved (A B, B A, ...), GC off inside a sample, ``harness.clock`` (so
  ``--clock cpu`` applies). Then peak memory (tracemalloc) of one batch at 1,000 and 10,000
  params, split into what the returned results hold and the rest (the in-flight working set).
- ``heavy``: a graph of 8 independent CPU-bound sync nodes of ~200 ms each, wall time: inline
  on the loop, on a ``ProcessPoolExecutor(2)``, and on a Dask ``LocalCluster`` of 2 worker
  processes through an asynchronous client. Pools and cluster are started (and warmed up)
  before timing; only invokes are timed.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import multiprocessing
import os
import statistics
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import harness
import shapes
from runners import build_dagwire

CONCURRENCY = 100
HEAVY_NODES = 8
HEAVY_SECONDS = 0.2


@dataclass
class Ratio:
    """A ratio of medians with its per-round spread, for the summary."""

    median: float
    low: float
    high: float


def _ms(samples: Sequence[float]) -> str:
    return (
        f"{statistics.median(samples) * 1e3:,.0f} | {min(samples) * 1e3:,.0f} "
        f"| {max(samples) * 1e3:,.0f}"
    )


# -- invoke_many ------------------------------------------------------------------------------


async def semaphore_loop(dag: Any, params: Any, concurrency: int) -> list[Any]:
    """The hand-written baseline: at most `concurrency` invokes in flight, results in order."""
    sem = asyncio.Semaphore(concurrency)

    async def one(p: Any) -> Any:
        try:
            return await dag.invoke(p)
        finally:
            sem.release()

    tasks: list[asyncio.Task[Any]] = []
    for p in params:
        await sem.acquire()
        tasks.append(asyncio.create_task(one(p)))
    return await asyncio.gather(*tasks)


async def with_invoke_many(dag: Any, params: Any, concurrency: int) -> list[Any]:
    from dagwire.batch import invoke_many

    return await invoke_many(dag, params, concurrency=concurrency)


Batch = Callable[[Any, Any, int], Awaitable[list[Any]]]


async def _sample(batch: Batch, dag: Any, sink: Any, n: int, ref: int) -> float:
    gc.collect()
    with harness.gc_disabled():
        t0 = harness.clock()
        results = await batch(dag, itertools.repeat(None, n), CONCURRENCY)
        t1 = harness.clock()
    if len(results) != n or any(r[sink] != ref for r in results):
        raise harness.ValueMismatch("wrong results")
    return t1 - t0


async def _peak(batch: Batch, dag: Any, n: int) -> tuple[int, int]:
    """(peak bytes during one batch, bytes its returned results hold: freed by dropping them)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        results = await batch(dag, itertools.repeat(None, n), CONCURRENCY)
        peak = tracemalloc.get_traced_memory()[1]
        assert len(results) == n
        for _ in range(3):  # callbacks still queued on the loop may hold the batch's tasks
            await asyncio.sleep(0)
        gc.collect()
        with_results = tracemalloc.get_traced_memory()[0]
        del results
        gc.collect()
        held = with_results - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return peak - base, held


async def run_invoke_many(out: Any, *, quick: bool) -> Ratio | None:
    graph = shapes.endpoint()
    dag, sink = build_dagwire(graph)
    n = 2_000 if quick else 10_000
    rounds = 3 if quick else 9
    batches: list[tuple[str, Batch]] = [
        ("semaphore loop (hand-written)", semaphore_loop),
        ("invoke_many", with_invoke_many),
    ]
    samples: dict[str, list[float]] = {name: [] for name, _ in batches}
    for _, batch in batches:  # warm-up, checked
        await _sample(batch, dag, sink, 200, graph.reference)
    for r in range(rounds):
        order = batches if r % 2 == 0 else batches[::-1]
        for name, batch in order:
            samples[name].append(await _sample(batch, dag, sink, n, graph.reference))
    base, mine = (samples[name] for name, _ in batches)
    per_round = [m / b for m, b in zip(mine, base, strict=True)]
    clock = "CPU" if harness.clock is time.process_time else "wall"
    out(f"### invoke_many: endpoint graph over {n:,} params, concurrency={CONCURRENCY}")
    out()
    out("| how | median ms | min ms | max ms | µs per run | × semaphore loop |")
    out("|---|---:|---:|---:|---:|---:|")
    for name, _ in batches:
        med = statistics.median(samples[name])
        ratio = med / statistics.median(base)
        out(f"| {name} | {_ms(samples[name])} | {med / n * 1e6:.1f} | {ratio:.2f} |")
    out()
    out(
        f"{rounds} interleaved samples each ({clock} clock, GC off inside a sample); each sample "
        f"runs all {n:,} params and checks every result. Per-round ratio invoke_many / "
        f"semaphore loop: median {statistics.median(per_round):.2f}, "
        f"min-max {min(per_round):.2f}-{max(per_round):.2f}. The semaphore loop acquires "
        "before it starts each invoke's task (so at most 100 in flight) and gathers them."
    )
    out()
    out("| how | params | peak KiB | held by the results KiB | peak - results KiB | B/param |")
    out("|---|---:|---:|---:|---:|---:|")
    for name, batch in batches:
        for count in (1_000, 10_000):
            peak, held = await _peak(batch, dag, count)
            out(
                f"| {name} | {count:,} | {peak / 1024:,.0f} | {held / 1024:,.0f} "
                f"| {(peak - held) / 1024:,.0f} | {peak / count:,.0f} |"
            )
    out()
    out(
        "tracemalloc, one batch each. Held by the results: the memory freed by dropping the "
        "returned list (one ExecutionResult per param, necessarily linear). Peak - results: "
        "the working set of the batch itself, flat when the window is bounded."
    )
    out()
    return Ratio(statistics.median(per_round), min(per_round), max(per_round))


# -- heavy nodes --------------------------------------------------------------------------------


def burn(loops: int) -> int:
    """Pure-Python CPU work; module level so that worker processes can import it."""
    x = 0
    for i in range(loops):
        x = (x * 31 + i) % 1_000_003
    return x


def calibrate(seconds: float) -> int:
    """Loops of `burn` taking about `seconds` of CPU in this process."""
    loops = 100_000
    while True:
        t0 = time.process_time()
        burn(loops)
        took = time.process_time() - t0
        if took > 0.05:
            return int(loops * seconds / took)
        loops *= 4


def build_heavy(loops: int, executor: Any) -> tuple[Any, Any]:
    from dagwire import build_dag

    def total(*xs: int) -> int:
        return sum(xs)

    with build_dag() as dag:
        parts = [
            dag.add_node(burn, loops, executor=executor, name=f"burn_{k}")
            for k in range(HEAVY_NODES)
        ]
        sink = dag.add_node(total, *parts)
    return dag, sink


async def run_heavy(out: Any, *, quick: bool) -> dict[str, float] | None:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        out("### heavy nodes: skipped (distributed is not installed: pip install dagwire[dask])")
        out()
        return None
    loops = calibrate(HEAVY_SECONDS)
    expected = burn(loops) * HEAVY_NODES
    rounds = 2 if quick else 5
    samples: dict[str, list[float]] = {}
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        async with (
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                asynchronous=True,
                dashboard_address=":0",
                host="127.0.0.1",
                silence_logs=40,  # ERROR: keep the workers' INFO lines out of the tables
            ) as cluster,
            Client(cluster, asynchronous=True) as client,
        ):
            graphs = {
                "inline (on the loop)": build_heavy(loops, None),
                "ProcessPoolExecutor(2)": build_heavy(loops, pool),
                "Dask LocalCluster, 2 worker processes": build_heavy(loops, client),
                "Dask, client.get_executor(pure=False)": build_heavy(
                    loops, client.get_executor(pure=False)
                ),
            }
            for name, (dag, _) in graphs.items():  # warm-up: start workers, ship functions
                await dag.invoke(None)
                samples[name] = []
            for r in range(rounds):
                names = list(graphs)
                names = names[r % len(names) :] + names[: r % len(names)]
                for name in names:
                    dag, sink = graphs[name]
                    t0 = time.perf_counter()
                    result = await dag.invoke(None)
                    samples[name].append(time.perf_counter() - t0)
                    if result[sink] != expected:
                        raise harness.ValueMismatch(f"{name}: wrong sum")
    inline = statistics.median(samples["inline (on the loop)"])
    out(
        f"### heavy nodes: {HEAVY_NODES} independent CPU-bound sync nodes of "
        f"~{HEAVY_SECONDS * 1e3:.0f} ms each"
    )
    out()
    out("| where | median ms | min ms | max ms | × inline (time) | speed-up |")
    out("|---|---:|---:|---:|---:|---:|")
    ratios: dict[str, float] = {}
    for name, times in samples.items():
        med = statistics.median(times)
        ratios[name] = med / inline
        out(f"| {name} | {_ms(times)} | {med / inline:.2f} | {inline / med:.2f}x |")
    out()
    out(
        f"Wall time of one invoke; {rounds} samples each, rotating order; {os.cpu_count()} CPUs, "
        f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} at the end. "
        f"{loops:,} loops of `burn` per node (calibrated to ~{HEAVY_SECONDS:g} s of CPU here). "
        "Pools and cluster started and warmed up before timing. With 2 cores an ideal "
        "speed-up is 2x, less whatever else the machine is doing."
    )
    out()
    return ratios
