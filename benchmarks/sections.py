"""The sections of issues 10, 11 and 13 as ``run.py`` selects them (``--only``), runs them and
checks them (``--check``); each returns its summary lines (``bench_common.Target``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import bench_cleanup
import bench_compose
import bench_memory
import bench_observers
import bench_options
import bench_partial
from bench_common import Out, Target

#: name -> what it measures (the order in which they run)
SECTIONS = {
    "node_options": "endpoint, every node with one option, against the same-behaviour floor",
    "cleanup": "chain of 1,000 resources; 10,000 resources failing at the end",
    "partial": "invoke(targets=[x]) in 1,000 nodes against the 4 nodes it needs",
    "observers": "one no-op observer: cost per event, ratio to the floors",
    "otel": "OTelObserver with the SDK against hand-written spans",
    "map": "add_map over 1,000 items (no limit, limit=10) against Semaphore + gather",
    "stream": "stream() against invoke() on chain1000 and endpoint",
    "memory_rows": "bytes per node (item) during one run, every row above",
    "retention": "what a kept ExecutionResult holds",
}


def _runs(cfg: Any) -> dict[str, Callable[[Out], Awaitable[list[Target]]]]:
    """How each section runs under run.py's Config (`repeat`, `graph_invokes`, `endpoint_seq`)."""
    # Samples of 5-20 ms of CPU time each (15 rounds): the whole of these sections costs about
    # 10-15 s of CPU per Python (run_all.sh runs three).
    r = cfg.repeat
    seq = max(cfg.endpoint_seq // 10, 20)  # invokes per sample, endpoint rows (20-140 µs each)
    slow = max(cfg.endpoint_seq // 40, 10)  # the same, rows of ~0.25-0.5 ms per invoke (spans)
    gi = max(cfg.graph_invokes // 2, 1)  # invokes per sample, 1,000-node (item) rows

    async def stream(out: Out) -> list[Target]:
        await bench_compose.run_stream(out, repeat=r, graph_invokes=gi, endpoint_invokes=seq)
        return []  # reported, no target

    async def cleanup(out: Out) -> list[Target]:
        found = await bench_cleanup.run_cleanup_chain(out, n=1000, repeat=r, count=gi)
        _, bad = await bench_cleanup.run_deep(out, n=10_000, repeat=3 if r > 3 else 1)
        mine = [b for b in bad if b.startswith("dagwire")]
        return [
            *found,
            Target.verdict(
                "10,000 resources failing at the end: raises, cleans all up, no RecursionError "
                "or hang (default and eager task factory)",
                not mine,
                "; ".join(mine) or "ok",
            ),
        ]

    return {
        "node_options": lambda out: bench_options.run_node_options(out, repeat=r, count=seq),
        "cleanup": cleanup,
        "partial": lambda out: bench_partial.run_partial(out, repeat=r, count=seq),
        "observers": lambda out: bench_observers.run_observers(out, repeat=r, count=seq),
        "otel": lambda out: bench_observers.run_otel(out, repeat=r, count=slow),
        "map": lambda out: bench_compose.run_map(out, repeat=r, count=gi),
        "stream": stream,
        "memory_rows": bench_memory.run_memory_rows,
        "retention": bench_memory.run_retention,
    }


async def run(only: set[str], out: Out, cfg: Any) -> list[Target]:
    """Run the selected sections; their summary lines, in order."""
    targets: list[Target] = []
    for name, section in _runs(cfg).items():
        if name in only:
            t0 = time.perf_counter()
            targets += await section(out)
            print(f"({name}: {time.perf_counter() - t0:.1f} s)", flush=True)
    return targets


async def check(out: Out) -> int:
    """Every new section once, small; returns the number of failures."""
    failures = 0
    for module in (
        bench_options,
        bench_cleanup,
        bench_partial,
        bench_observers,
        bench_compose,
        bench_memory,
    ):
        failures += await module.check(out)
    return failures


def summary_line(t: Target, line: Callable[..., None], out: Out, eager: bool) -> None:
    """Print `t` in run.py's summary table (`line` prints a ratio against its limit)."""
    if not t.is_verdict:
        line(t.what, t.ratio, t.spread, t.limit, t.extra)
        return
    met = "n/a" if t.ok is None else "yes" if t.ok else "**NO**"
    out(f"| {t.what} | {t.spread} | | | {met} |" + (" |" if eager else ""))
