"""Profile one row of the new sections: where dagwire's time goes.

    python benchmarks/profile_row.py pre_post               # cProfile, dagwire's runner
    python benchmarks/profile_row.py otel --runner floor    # the hand-written floor instead
    python benchmarks/profile_row.py map --invokes 50 --top 40
    python benchmarks/profile_row.py --list

Runs the row's invoke (built exactly as its benchmark builds it) ``--invokes`` times after a
warm-up, under cProfile, in one event loop with GC off, checking each value; prints the
functions by own time (``tottime``), then own time summed per source file, so that the share of
each dagwire module (and of asyncio, the SDK, ...) is visible at a glance.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_compose
import bench_observers
import bench_options
import bench_partial
import builders
import shapes
import wrappers
from bench_common import Case
from runners import Invoke, Runner

ROWS: dict[str, tuple[str, int]] = {  # row -> (what, default invokes)
    "timeout": ("node_options: timeout=10.0 on every endpoint node", 3000),
    "retry": ("node_options: retry=3 (never fires)", 3000),
    "fallback": ("node_options: fallback=0", 3000),
    "pre_post": ("node_options: pre=/post= sync no-ops", 3000),
    "resources": ("node_options: every endpoint node a resource", 3000),
    "two_resources": ("node_options: two resources, 8 plain nodes", 3000),
    "cleanup_chain": ("cleanup: chain of 1,000 resources", 20),
    "partial": ("partial: targets=[x] in 1,000 nodes", 3000),
    "observer": ("observers: one no-op observer, endpoint", 3000),
    "otel": ("otel: OTelObserver with the SDK, endpoint", 1000),
    "map": ("map: add_map over 1,000 items, no limit", 20),
    "map10": ("map: add_map over 1,000 items, limit=10", 20),
    "stream_chain": ("stream: chain1000", 20),
    "stream_endpoint": ("stream: endpoint", 3000),
}


def runners_of(row: str) -> tuple[list[Runner], Any]:
    """The row's runners and the value one invoke must return."""
    g = shapes.endpoint()
    labels = [v.label for v in bench_options.variants()]
    index = ["timeout", "retry", "fallback", "pre_post", "resources", "two_resources"]
    if row in index:
        variant = bench_options.variants()[index.index(row)]
        assert variant.label == labels[index.index(row)]
        return variant.runners(g), g.reference
    if row == "cleanup_chain":
        c = shapes.chain(1000)
        res, enter, unwind = wrappers.res, wrappers.entering, wrappers.unwind
        return [
            *builders.state_floors(c, enter(res), AsyncExitStack, unwind, None),
            builders.dagwire_runner(c, builders.resources(None)),
        ], c.reference
    if row == "partial":
        _, small, _ = bench_partial.partial_graphs()
        rs = bench_partial.partial_runners()
        targeted = next(r for r in rs if r.name == bench_partial.TARGETED)
        return [*rs, Runner("dagwire", targeted.prepare)], small.reference
    if row == "observer":
        return bench_observers.observer_runners(g, lambda e: None), g.reference
    if row == "otel":
        sdk = bench_observers.Sdk()
        return bench_observers.otel_runners(g, sdk), g.reference
    if row in ("map", "map10"):
        return bench_compose.map_runners(None if row == "map" else 10), bench_compose.REFERENCE
    if row in ("stream_chain", "stream_endpoint"):
        s = shapes.chain(1000) if row == "stream_chain" else g
        rs = bench_compose.stream_runners(s)
        out = [r for r in rs if not r.name.startswith("dagwire")]
        out.append(Runner("dagwire", next(r for r in rs if r.name == "dagwire stream()").prepare))
        return out, s.reference
    raise SystemExit(f"unknown row {row!r}; --list shows them")


async def profiled(invoke: Invoke, reference: Any, n: int, timer: Any) -> cProfile.Profile:
    for _ in range(3):  # warm-up
        if await invoke() != reference:
            raise SystemExit("wrong value in warm-up")
    prof = cProfile.Profile(timer)
    gc.collect()
    gc.disable()
    prof.enable()
    try:
        for _ in range(n):
            if await invoke() != reference:
                raise SystemExit("wrong value")
    finally:
        prof.disable()
        gc.enable()
    return prof


def counts(stats: pstats.Stats) -> dict[str, int]:
    """Function calls, event-loop iterations and callbacks scheduled, in total."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]  # pstats' own table
    out = {"function calls": 0, "loop iterations": 0, "call_soon": 0}
    for (filename, _line, func), (_cc, nc, _tt, _ct, _callers) in raw.items():
        out["function calls"] += nc
        if filename.endswith("base_events.py") and func == "_run_once":
            out["loop iterations"] += nc
        elif filename.endswith("base_events.py") and func == "_call_soon":
            out["call_soon"] += nc
    return out


def by_file(stats: pstats.Stats) -> list[tuple[float, str]]:
    """Own time summed per source file (dagwire files by module name)."""
    totals: dict[str, float] = defaultdict(float)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]  # pstats' own table
    for (filename, _line, _func), (_cc, _nc, tt, _ct, _callers) in raw.items():
        path = Path(filename)
        if "dagwire" in path.parts:
            key = "dagwire/" + path.name
        elif filename.startswith("~") or filename.startswith("<"):
            key = "(builtins)"
        else:
            key = f"{path.parent.name}/{path.name}"
        totals[key] += tt
    return sorted(((t, k) for k, t in totals.items()), reverse=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("row", nargs="?", help="the row (see --list)")
    p.add_argument("--runner", default="dagwire", help="runner to profile (default dagwire)")
    p.add_argument("--invokes", type=int, default=0, help="profiled invokes (default per row)")
    p.add_argument("--top", type=int, default=30, help="functions to list")
    p.add_argument("--list", action="store_true", help="list the rows")
    p.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="cProfile's timer: this process's CPU time (default: a busy machine does not "
        "inflate it) or wall time",
    )
    args = p.parse_args(argv)
    if args.list or not args.row:
        for name, (what, n) in ROWS.items():
            print(f"{name:16} {what} ({n} invokes)")
        return 0
    what, default = ROWS.get(args.row, ("", 0))
    chosen, reference = runners_of(args.row)
    pick: Callable[[Runner], bool] = lambda r: r.name == args.runner  # noqa: E731
    runner = next((r for r in chosen if pick(r)), None)
    if runner is None:
        raise SystemExit(f"no runner {args.runner!r}: {[r.name for r in chosen]}")
    n = args.invokes or default
    invoke = runner.prepare(Case(args.row, 1, reference))

    async def go() -> cProfile.Profile:
        timer = time.process_time if args.clock == "cpu" else time.perf_counter
        return await profiled(invoke, reference, n, timer)

    prof = asyncio.run(go())
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    print(
        f"# {what}: {args.runner}, {n} invokes, {total / n * 1e6:.1f} µs per invoke profiled "
        f"({args.clock} time)"
    )
    print("# (cProfile adds a fixed cost per call: compare shares, not absolute times)")
    print("# per invoke: " + ", ".join(f"{v / n:.1f} {k}" for k, v in counts(stats).items()) + "\n")
    print("## own time per file\n")
    for t, key in by_file(stats):
        if t / total >= 0.005:
            print(f"{100 * t / total:5.1f}%  {t / n * 1e6:8.2f} µs/invoke  {key}")
    print("\n## functions by own time\n")
    stats.sort_stats("tottime").print_stats(args.top)
    print("\n".join(line for line in buf.getvalue().splitlines() if line.strip()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
