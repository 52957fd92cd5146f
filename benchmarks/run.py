"""dagwire benchmark harness.

    python benchmarks/run.py                 # full run (about 2 minutes)
    python benchmarks/run.py --quick         # smoke run
    python benchmarks/run.py --check         # every runner once on every shape, small; < 20 s
    python benchmarks/run.py --only chain1000,endpoint_seq --repeat 30
    python benchmarks/run.py --markdown benchmarks/RESULTS.md

Everything runs in one process and one event loop; see benchmarks/README.md for the method.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import statistics
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
import runners as rmod  # noqa: E402
import shapes  # noqa: E402
from harness import Row, Workload  # noqa: E402
from runners import FLOOR, Runner, Skip  # noqa: E402

TIMED_SHAPES = ("chain1000", "fan1000", "random1000", "endpoint_seq", "endpoint_conc")
EXTRA = ("sleep", "options", "memory", "build")
ALL_SHAPES = TIMED_SHAPES + EXTRA


@dataclass(frozen=True)
class Config:
    repeat: int = 15
    graph_invokes: int = 5  # invokes per sample of the 1,000-node shapes
    endpoint_seq: int = 2000
    endpoint_conc: int = 1000
    sleep_graphs: int = 20
    options_repeat: int = 15
    build_nodes: int = 10_000


QUICK = Config(
    repeat=3,
    graph_invokes=2,
    endpoint_seq=500,
    endpoint_conc=250,
    sleep_graphs=4,
    options_repeat=3,
    build_nodes=10_000,
)


class Out:
    """Prints lines as they come and keeps them for ``--markdown``."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)


def _us(seconds: float) -> str:
    us = seconds * 1e6
    return f"{us:,.0f}" if us >= 1000 else f"{us:.2f}" if us >= 1 else f"{us:.3f}"


def _status(row: Row) -> str | None:
    if row.skipped:
        return f"skipped: {row.skipped}"
    if row.error:
        return f"FAILED: {row.error}"
    if not row.samples:
        return "no samples"
    return None


def timing_table(out: Out, title: str, rows: Sequence[Row], w: Workload) -> None:
    unit = "µs/node" if w.per == "node" else "µs/invoke"
    fm = harness.floor_median(rows)
    out(f"### {title}")
    out()
    extra = " invokes/s |" if w.per == "invoke" else ""
    out(f"| runner | median {unit} | min | max | ratio to floor |{extra}")
    out("|---|---:|---:|---:|---:|" + ("---:|" if extra else ""))
    for r in rows:
        st = _status(r)
        if st:
            out(f"| {r.runner} | {st} | | | |" + (" |" if extra else ""))
            continue
        ratio = f"{r.median / fm:.2f}" if fm else "n/a"
        line = (
            f"| {r.runner} | {_us(r.median)} | {_us(min(r.samples))} | {_us(max(r.samples))} "
            f"| {ratio} |"
        )
        if extra:
            line += f" {1 / r.median:,.0f} |"
        out(line)
    n = len(rows[0].samples) if rows and rows[0].samples else 0
    how = f"{w.count} sequential invokes" if w.mode == "seq" else f"one gather of {w.count} invokes"
    out()
    out(
        f"{w.graph.n} nodes; sample = {how}; {n} interleaved samples per runner; "
        "ratio to floor = ratio of medians."
    )
    out()


def sleep_table(out: Out, rows: Sequence[Row], graphs: Sequence[shapes.Graph]) -> None:
    fm = harness.floor_median(rows)
    cps = [g.critical_path() * 1000 for g in graphs]
    out("### sleep graphs: makespan / critical path")
    out()
    out("| runner | median | min | max | ratio to floor |")
    out("|---|---:|---:|---:|---:|")
    for r in rows:
        st = _status(r)
        if st:
            out(f"| {r.runner} | {st} | | | |")
            continue
        ratio = f"{r.median / fm:.3f}" if fm else "n/a"
        out(f"| {r.runner} | {r.median:.3f} | {min(r.samples):.3f} | {max(r.samples):.3f} | {ratio} |")
    out()
    out(
        f"{len(graphs)} random {graphs[0].n}-node graphs of asyncio.sleep nodes; critical paths "
        f"{min(cps):.0f}-{max(cps):.0f} ms (exact, from the sleep durations); one invoke per graph "
        "per runner; median/min/max over the graphs; ratio to floor = ratio of medians."
    )
    out()


async def run_options(out: Out, cfg: Config, runners: Sequence[Runner]) -> None:
    plain, mixed, only = shapes.options_graphs()
    chosen = [r for r in runners if r.name in (FLOOR, "dagwire")]
    res: dict[str, dict[str, Row]] = {}
    for g in (plain, mixed, only):
        w = Workload(g.name, g, count=cfg.graph_invokes)
        rows = await harness.measure(chosen, w, repeat=cfg.options_repeat)
        res[g.name] = {r.runner: r for r in rows}
    out("### options: do plain nodes pay for options elsewhere in the graph?")
    out()
    out(
        "| runner | plain graph µs/node | mixed graph µs/node | option-only graph µs/node "
        "| plain-node µs in mixed | plain-node cost mixed / plain |"
    )
    out("|---|---:|---:|---:|---:|---:|")
    for r in chosen:
        rows3 = [res[g.name][r.name] for g in (plain, mixed, only)]
        bad = next((s for s in map(_status, rows3) if s), None)
        if bad:
            out(f"| {r.name} | {bad} | | | | |")
            continue
        t_plain, t_mixed, t_only = (
            row.median * g.n for row, g in zip(rows3, (plain, mixed, only))
        )
        per_plain = t_plain / plain.n
        per_plain_mixed = (t_mixed - t_only) / plain.n
        out(
            f"| {r.name} | {_us(per_plain)} | {_us(t_mixed / mixed.n)} | {_us(t_only / only.n)} "
            f"| {_us(per_plain_mixed)} | {per_plain_mixed / per_plain:.2f} |"
        )
    out()
    out(
        f"plain: random {plain.n}-node DAG. mixed: the same {plain.n} plain nodes plus "
        f"{len(mixed.option_nodes)} option nodes (timeout={rmod.OPTION_TIMEOUT}, "
        f"retry={rmod.OPTION_RETRY}) hanging off every 10th plain node and feeding a final sink. "
        f"option-only: just those {len(only.option_nodes)} option nodes and the final sink. "
        "Plain-node µs in mixed = (T(mixed) - T(option-only)) / plain nodes, from median run times. "
        "The floor ignores options; its row calibrates the subtraction (should be ~1.00)."
    )
    out()


async def run_memory(out: Out, runners: Sequence[Runner]) -> None:
    graphs = [shapes.chain(1000), shapes.random_dag(1000)]
    cols = [dict(await harness.measure_memory(runners, g)) for g in graphs]
    out("### memory: peak bytes allocated per node during one run (tracemalloc)")
    out()
    out("| runner | " + " | ".join(f"{g.name} B/node" for g in graphs) + " |")
    out("|---|" + "---:|" * len(graphs))
    for r in runners:
        out(f"| {r.name} | " + " | ".join(c[r.name] for c in cols) + " |")
    out()
    out(
        "Separate untimed pass after a warm-up run: (tracemalloc peak during the run - traced "
        "memory before it) / nodes. Includes the per-run state and the result."
    )
    out()


def run_build(out: Out, cfg: Config, runners: Sequence[Runner]) -> None:
    g = shapes.chain(cfg.build_nodes)
    builders: list[tuple[str, Callable[[], Any]]] = []
    for r in runners:
        if r.name == "dagwire":

            def build_dw() -> Any:
                reason = rmod.dagwire_status()
                if reason:
                    raise Skip(reason)
                return rmod.build_dagwire(g)

            builders.append(("dagwire (build + freeze)", build_dw))
        elif r.name in (FLOOR, "sdax", "async_dag"):
            builders.append((r.name, lambda r=r: r.prepare(g)))
    out(f"### build: {g.n:,}-node chain")
    out()
    out("| builder | median ms | min ms | max ms | µs/node |")
    out("|---|---:|---:|---:|---:|")
    for name, samples, err in harness.time_build(builders):
        if err or not samples:
            out(f"| {name} | {err} | | | |")
            continue
        med = statistics.median(samples)
        out(
            f"| {name} | {med * 1e3:.1f} | {min(samples) * 1e3:.1f} | {max(samples) * 1e3:.1f} "
            f"| {med * 1e6 / g.n:.2f} |"
        )
    out()
    out("Untimed by the invoke benchmarks; GC disabled while timing; 3 samples.")
    out()


def header(out: Out, title: str) -> None:
    try:
        import dagwire

        dw = getattr(dagwire, "__version__", "?")
    except ImportError:
        dw = "not installed"
    impl = platform.python_implementation()
    out(f"## {title}: Python {platform.python_version()} ({impl})")
    out()
    out(
        f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, dagwire {dw}"
    )
    out()


def workloads(cfg: Config) -> dict[str, Workload]:
    ep = shapes.endpoint()
    return {
        "chain1000": Workload("chain1000", shapes.chain(1000), count=cfg.graph_invokes),
        "fan1000": Workload("fan1000", shapes.fan(1000), count=cfg.graph_invokes),
        "random1000": Workload("random1000", shapes.random_dag(1000), count=cfg.graph_invokes),
        "endpoint_seq": Workload("endpoint_seq", ep, "seq", cfg.endpoint_seq, "invoke"),
        "endpoint_conc": Workload("endpoint_conc", ep, "conc", cfg.endpoint_conc, "invoke"),
    }


def skipped_notes(out: Out, runners: Sequence[Runner]) -> None:
    probe = shapes.endpoint()
    for r in runners:
        try:
            r.prepare(probe)
        except Skip as e:
            out(f"- note: runner `{r.name}` skipped: {e}")
        except Exception as e:
            out(f"- note: runner `{r.name}` cannot build: {harness.describe_error(e)}")
    out()


async def main_bench(args: argparse.Namespace, out: Out) -> None:
    cfg = QUICK if args.quick else Config()
    if args.repeat:
        cfg = Config(**{**cfg.__dict__, "repeat": args.repeat, "options_repeat": args.repeat})
    runners = select_runners(args)
    header(out, "dagwire benchmarks" + (" (quick)" if args.quick else ""))
    skipped_notes(out, runners)
    only = set(args.only.split(",")) if args.only else set(ALL_SHAPES)
    unknown = only - set(ALL_SHAPES)
    if unknown:
        raise SystemExit(f"unknown shape(s) {sorted(unknown)}; choose from {', '.join(ALL_SHAPES)}")
    for name, w in workloads(cfg).items():
        if name in only:
            rows = await harness.measure(runners, w, repeat=cfg.repeat)
            timing_table(out, name, rows, w)
    if "sleep" in only:
        graphs = shapes.sleep_graphs(cfg.sleep_graphs)
        sleep_table(out, await harness.measure_sleep(runners, graphs), graphs)
    if "options" in only:
        await run_options(out, cfg, runners)
    if "memory" in only:
        await run_memory(out, runners)
    if "build" in only:
        run_build(out, cfg, runners)


async def main_check(args: argparse.Namespace, out: Out) -> int:
    """Every runner once on every shape, at small size; sink values and leaked tasks checked."""
    runners = select_runners(args)
    graphs = [
        shapes.chain(50),
        shapes.fan(20),
        shapes.random_dag(60, seed=7),
        shapes.endpoint(),
        *shapes.sleep_graphs(2, n=8, lo_ms=0.5, hi_ms=2.0),
        *shapes.options_graphs(n=40, every=10),
    ]
    failures = 0
    out(f"check: Python {platform.python_version()}")
    for r in runners:
        results: list[str] = []
        skipped = ""
        for g in graphs:
            if g.option_nodes and r.name != "dagwire":
                continue
            try:
                invoke = r.prepare(g)
                await harness.checked_run(r, invoke, g)
                if g.name == "endpoint":
                    await harness.timed_sample(r, invoke, Workload(g.name, g, "seq", 5, "invoke"))
                    await harness.timed_sample(r, invoke, Workload(g.name, g, "conc", 5, "invoke"))
            except Skip as e:
                skipped = skipped or str(e)
                continue
            except Exception as e:
                failures += 1
                results.append(f"{g.name}: FAILED {harness.describe_error(e)}")
                continue
            results.append(f"{g.name}: ok")
        if not (skipped and not results):
            bad = shapes.failing()
            try:
                await harness.expect_failure(r, r.prepare(bad), bad, shapes.Boom)
                results.append(f"{bad.name}: raises, no task left")
            except Exception as e:
                failures += 1
                results.append(f"{bad.name}: FAILED {harness.describe_error(e)}")
        line = f"  {r.name:20} " + ", ".join(results)
        if skipped:
            line += f" (skipped: {skipped})" if results else f"skipped: {skipped}"
        out(line)
    out("check: " + ("OK" if not failures else f"{failures} failure(s)"))
    return 1 if failures else 0


def select_runners(args: argparse.Namespace) -> list[Runner]:
    runners = rmod.all_runners()
    if args.runners:
        wanted = args.runners.split(",")
        names = {r.name for r in runners}
        unknown = set(wanted) - names
        if unknown:
            raise SystemExit(f"unknown runner(s) {sorted(unknown)}; choose from {sorted(names)}")
        if FLOOR not in wanted:
            wanted.insert(0, FLOOR)
        runners = [r for r in runners if r.name in wanted]
    return runners


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fast smoke run (few samples)")
    p.add_argument("--check", action="store_true", help="self-check: every runner once, small")
    p.add_argument("--repeat", type=int, default=0, help="interleaved samples per runner")
    p.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(ALL_SHAPES)}")
    p.add_argument("--runners", default="", help="comma-separated runner names (floor is kept)")
    p.add_argument("--markdown", default="", help="append the tables to this file")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # async-dag under eager tasks dies of RecursionError (reported in the tables) and leaves
    # never-awaited coroutines behind; do not let their warnings clutter the output.
    warnings.filterwarnings(
        "ignore", message="coroutine 'ExecutionResult._invoke_task' was never awaited"
    )
    out = Out()
    rc = asyncio.run(main_check(args, out)) if args.check else 0
    if not args.check:
        asyncio.run(main_bench(args, out))
    if args.markdown:
        with open(args.markdown, "a", encoding="utf-8") as fh:
            fh.write("\n".join(out.lines) + "\n\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
