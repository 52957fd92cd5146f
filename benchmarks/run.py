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
import subprocess
import sys
import time
import warnings
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_cache
import bench_common
import build
import harness
import runners as rmod
import scale
import sections
import shapes
from harness import Row, Workload
from runners import EAGER_FLOOR, FLOOR, Runner, Skip

TIMED_SHAPES = ("chain1000", "fan1000", "random1000", "endpoint_seq", "endpoint_conc")
EXTRA = (
    "sleep",
    "options",
    "memory",
    "recursion",
    "build",
    "cache",
    "invoke_many",
    "heavy",
    *sections.SECTIONS,
)

#: seconds before a run of the recursion section counts as hung
RECURSION_TIMEOUT = 5.0
ALL_SHAPES = TIMED_SHAPES + EXTRA


@dataclass(frozen=True)
class Config:
    repeat: int = 15
    graph_invokes: int = 5  # invokes per sample of the 1,000-node shapes
    endpoint_seq: int = 2000
    endpoint_conc: int = 1000
    sleep_graphs: int = 20
    options_repeat: int = 15
    build_repeat: int = 9


QUICK = Config(
    repeat=3,
    graph_invokes=2,
    endpoint_seq=500,
    endpoint_conc=250,
    sleep_graphs=4,
    options_repeat=3,
    build_repeat=3,
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


def _median_of(rows: Sequence[Row], name: str) -> float | None:
    return next((r.median for r in rows if r.runner == name and r.ok), None)


def timing_table(out: Out, title: str, rows: Sequence[Row], w: Workload) -> None:
    unit = "µs/node" if w.per == "node" else "µs/invoke"
    fm = harness.floor_median(rows)
    fe = _median_of(rows, EAGER_FLOOR)
    out(f"### {title}")
    out()
    cols = ["runner", f"median {unit}", "min", "max", "× floor"]
    if fe:
        cols.append("× floor_eager")
    if w.per == "invoke":
        cols.append("invokes/s")
    out("| " + " | ".join(cols) + " |")
    out("|---|" + "---:|" * (len(cols) - 1))
    for r in rows:
        st = _status(r)
        if st:
            out(f"| {r.runner} | {st} |" + " |" * (len(cols) - 2))
            continue
        cells = [r.runner, _us(r.median), _us(min(r.samples)), _us(max(r.samples))]
        cells.append(f"{r.median / fm:.2f}" if fm else "n/a")
        if fe:
            cells.append(f"{r.median / fe:.2f}")
        if w.per == "invoke":
            cells.append(f"{1 / r.median:,.0f}")
        out("| " + " | ".join(cells) + " |")
    n = max((len(r.samples) for r in rows), default=0)
    how = f"{w.count} sequential invokes" if w.mode == "seq" else f"one gather of {w.count} invokes"
    out()
    out(
        f"{w.graph.n} nodes; sample = {how}; {n} interleaved samples per runner; "
        "× = ratio of medians."
    )
    out()


def sleep_vs_floor(rows: Sequence[Row], name: str) -> list[float]:
    """Per graph: the runner's makespan / the floor's makespan on the same graph."""
    return _paired_ratios(rows, name, FLOOR)


def sleep_table(out: Out, rows: Sequence[Row], graphs: Sequence[shapes.Graph]) -> None:
    cps = [g.critical_path() * 1000 for g in graphs]
    out("### sleep graphs: makespan / critical path")
    out()
    out("| runner | median | min | max | × floor: median | min-max |")
    out("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        st = _status(r)
        if st:
            out(f"| {r.runner} | {st} | | | | |")
            continue
        vs = sleep_vs_floor(rows, r.runner)
        ratio = f"{statistics.median(vs):.3f} | {min(vs):.3f}-{max(vs):.3f}" if vs else "n/a |"
        lo, hi = min(r.samples), max(r.samples)
        out(f"| {r.runner} | {r.median:.3f} | {lo:.3f} | {hi:.3f} | {ratio} |")
    out()
    out(
        f"{len(graphs)} random {graphs[0].n}-node graphs of asyncio.sleep nodes; critical paths "
        f"{min(cps):.0f}-{max(cps):.0f} ms (exact, from the sleep durations); one invoke per graph "
        "per runner, runners interleaved; median/min/max of makespan / critical path over the "
        "graphs; × floor: per graph, makespan / the floor's makespan on the same graph."
    )
    out()


async def run_options(out: Out, cfg: Config, runners: Sequence[Runner]) -> float | None:
    graphs = shapes.options_graphs()
    plain, mixed, only = graphs
    chosen = [r for r in runners if r.name in (FLOOR, "dagwire")]
    # every (runner, graph) pair is interleaved in the same rounds, so that the per-round
    # subtraction below compares samples taken moments apart
    entries = [(r, Workload(g.name, g, count=cfg.graph_invokes)) for r in chosen for g in graphs]
    rows = await harness.measure_many(entries, repeat=cfg.options_repeat)
    out("### options: do plain nodes pay for options elsewhere in the graph?")
    out()
    out(
        "| runner | plain graph µs/node | mixed graph µs/node | option-only graph µs/node "
        "| plain-node µs in mixed | plain-node cost mixed / plain: median | min-max |"
    )
    out("|---|---:|---:|---:|---:|---:|---:|")
    dagwire_ratio: float | None = None
    for ri, r in enumerate(chosen):
        rows3 = rows[3 * ri : 3 * ri + 3]
        bad = next((s for s in map(_status, rows3) if s), None)
        if bad:
            out(f"| {r.name} | {bad} | | | | | |")
            continue
        # per round: plain-node time in the mixed graph = T(mixed) - T(option-only)
        per_round = [
            (tm * mixed.n - to * only.n) / (tp * plain.n)
            for tp, tm, to in zip(*(row.samples for row in rows3), strict=False)
        ]
        ratio = statistics.median(per_round)
        if r.name == "dagwire":
            dagwire_ratio = ratio
        t_plain, t_mixed, t_only = (row.median for row in rows3)
        per_plain_mixed = (t_mixed * mixed.n - t_only * only.n) / plain.n
        out(
            f"| {r.name} | {_us(t_plain)} | {_us(t_mixed)} | {_us(t_only)} "
            f"| {_us(per_plain_mixed)} | {ratio:.2f} | {min(per_round):.2f}-{max(per_round):.2f} |"
        )
    out()
    out(
        f"plain: random {plain.n}-node DAG. mixed: the same {plain.n} plain nodes plus "
        f"{len(mixed.option_nodes)} option nodes (timeout={rmod.OPTION_TIMEOUT}, "
        f"retry={rmod.OPTION_RETRY}) hanging off every 10th plain node and feeding a final sink. "
        f"option-only: just those {len(only.option_nodes)} option nodes and the final sink. "
        "All six (runner, graph) pairs are interleaved in the same rounds. Per round, the "
        "plain nodes' time in mixed = T(mixed) - T(option-only), divided by T(plain): 1.00 means "
        "plain nodes do not pay for options elsewhere. The floor ignores options; its row "
        "calibrates the subtraction."
    )
    out()
    return dagwire_ratio


async def run_memory(out: Out, runners: Sequence[Runner]) -> dict[str, dict[str, float]]:
    graphs = [shapes.chain(1000), shapes.fan(1000), shapes.random_dag(1000), shapes.endpoint()]
    cols = [await harness.measure_memory(runners, g) for g in graphs]
    out("### memory: peak bytes allocated per node during one run (tracemalloc)")
    out()
    out("| runner | " + " | ".join(f"{g.name} B/node | × floor" for g in graphs) + " |")
    out("|---|" + "---:|---:|" * len(graphs))
    for r in runners:
        cells: list[str] = []
        for col in cols:
            v, fl = col.get(r.name), col.get(FLOOR)
            if isinstance(v, float):
                cells += [f"{v:,.0f}", f"{v / fl:.2f}" if isinstance(fl, float) and fl else ""]
            elif v is None or str(v).startswith("skipped"):
                cells += ["skipped", ""]
            else:
                cells += [f"**{v}**", ""]
        out(f"| {r.name} | " + " | ".join(cells) + " |")
    out()
    out(
        "Separate untimed pass after a warm-up run: (tracemalloc peak during one run - traced "
        "memory before it) / nodes. Counts everything the run allocates and holds at its peak: "
        "per-run state, coroutines, tasks, the result object."
    )
    out()
    return {
        g.name: {k: v for k, v in col.items() if isinstance(v, float)}
        for g, col in zip(graphs, cols, strict=True)
    }


RECURSION_SHAPES = (
    ("chain10000", lambda: shapes.chain(10_000)),
    ("fan10000", lambda: shapes.fan(10_000)),
    ("comb2000", lambda: shapes.comb(2000)),
)


async def run_recursion(out: Out, runners: Sequence[Runner]) -> dict[str, str]:
    """Every runner once on deep/wide shapes, with the default task factory and (3.12+) with
    ``asyncio.eager_task_factory`` installed on the loop. Returns dagwire's outcomes."""
    graphs = [(name, make()) for name, make in RECURSION_SHAPES]
    eager = getattr(asyncio, "eager_task_factory", None)
    factories: list[tuple[str, Any]] = [("", None)]
    if eager is not None:
        factories.append((" (eager loop)", eager))
    out("### deep and wide shapes: RecursionError, hangs, wrong values")
    out()
    heads = [f"{name}{label}" for name, _ in graphs for label, _ in factories]
    out("| runner | " + " | ".join(heads) + " |")
    out("|---|" + "---|" * len(heads))
    dagwire: dict[str, str] = {}
    for r in runners:
        cells: list[str] = []
        for name, g in graphs:
            try:
                invoke = r.prepare(g)
            except Skip:
                cells += ["skipped"] * len(factories)
                continue
            for label, factory in factories:
                # async_dag_eager *is* async_dag under an eager loop: its plain column says so
                runner = Runner(r.name, r.prepare, factory or r.task_factory)
                try:
                    await harness.checked_run(runner, invoke, g, timeout=RECURSION_TIMEOUT)
                    cell = "ok"
                except Exception as e:
                    cell = f"**{harness.describe_error(e, short=True)}**"
                cells.append(cell)
                if r.name == "dagwire":
                    dagwire[f"{name}{label}"] = cell
        out(f"| {r.name} | " + " | ".join(cells) + " |")
    out()
    out(
        "One checked invoke each (sink value, no task left behind). comb2000: a chain whose every "
        "node also feeds a leaf listed before the next chain node, so that a scheduler starting "
        "the second ready dependent as an eager task nests one start per chain node. The eager "
        "loop columns install `asyncio.eager_task_factory` on the loop, which makes "
        f"`loop.create_task` eager too. A run with no result after {RECURSION_TIMEOUT:g} s is "
        "reported as Hung."
    )
    out()
    return dagwire


def run_build(out: Out, cfg: Config) -> dict[str, tuple[float, float | None, list[float]]]:
    """Build time per node of every builder on every shape, then dagwire's freeze scaling.

    Returns, per shape, dagwire's median µs/node, async-dag's (None if it cannot run) and the
    per-round dagwire / async-dag ratios."""
    graphs = build.build_shapes()
    rows = build.measure(graphs, repeat=cfg.build_repeat)
    out("### build: time to build a graph, per node")
    out()
    out("| shape | builder | median µs/node | min | max | × floor | × async_dag |")
    out("|---|---|---:|---:|---:|---:|---:|")
    found: dict[str, tuple[float, float | None, list[float]]] = {}
    for g in graphs:
        mine = [r for r in rows if r.graph is g]
        by = {r.builder: r for r in mine if r.error is None and r.samples}
        fl, ad = by.get(build.FLOOR), by.get(build.ASYNC_DAG)
        for r in mine:
            if r.error is not None or not r.samples:
                out(f"| {g.name} | {r.builder} | {r.error or 'no samples'} | | | | |")
                continue
            cells = [_us(r.median), _us(min(r.samples)), _us(max(r.samples))]
            cells.append(f"{r.median / fl.median:.2f}" if fl else "")
            cells.append(f"{r.median / ad.median:.2f}" if ad else "")
            out(f"| {g.name} | {r.builder} | " + " | ".join(cells) + " |")
        dw = by.get(build.DAGWIRE)
        if dw is not None:
            paired = [a / b for a, b in zip(dw.samples, ad.samples, strict=False)] if ad else []
            found[g.name] = (dw.median * 1e6, ad.median * 1e6 if ad else None, paired)
    out()
    out(
        "Each builder turns the shape's input indices into its own handles, as user code does; "
        "dagwire's time includes freeze(), async-dag's its sort on leaving build_dag(), sdax's "
        "build(). The floor only appends each node's function and input handles to lists. "
        f"distinct1000: random1000's inputs, every node its own separately compiled function "
        f"with exactly its inputs as parameters. {cfg.build_repeat} interleaved rounds; GC off "
        "inside a sample; endpoint samples build it 200 times."
    )
    out()
    scaling = build.freeze_scaling(repeat=max(3, cfg.build_repeat // 3))
    out("### build: dagwire build + freeze, 1,000 vs 10,000 nodes")
    out()
    out("| shape | µs/node at 1,000 | µs/node at 10,000 | 10,000 / 1,000 |")
    out("|---|---:|---:|---:|")
    by_name = {r.graph.name: r for r in scaling if r.samples}
    for kind in ("chain", "random"):
        a, b = by_name.get(f"{kind}1000"), by_name.get(f"{kind}10000")
        if a is None or b is None:
            out(f"| {kind} | n/a | n/a | |")
            continue
        out(f"| {kind} | {_us(a.median)} | {_us(b.median)} | {b.median / a.median:.2f} |")
    out()
    out("Linear means the per-node cost does not grow with the graph: a ratio near 1.")
    out()
    return found


def header(out: Out, title: str) -> None:
    try:
        import dagwire

        dw = getattr(dagwire, "__version__", "?")
    except ImportError:
        dw = "not installed"
    impl = platform.python_implementation()
    clock = "CPU time (--clock cpu)" if harness.clock is time.process_time else "wall time"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    out(f"## {title}: Python {platform.python_version()} ({impl})")
    out()
    out(
        f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {load} at start, dagwire {dw}{_git_rev()}; "
        f"zero-work timings in {clock}."
    )
    out()


def _git_rev() -> str:
    """` (git abc1234, modified)` for the checkout the benchmarks run from, if it is one."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "src"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f" (git {rev}{', src modified' if dirty else ''})"


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


@dataclass
class Results:
    """What the summary needs from the sections that ran."""

    timed: dict[str, list[Row]]
    sleep: list[Row] | None = None
    memory: dict[str, dict[str, float]] | None = None
    recursion: dict[str, str] | None = None
    options: float | None = None
    cache: bench_cache.CacheResults | None = None
    build: dict[str, tuple[float, float | None, list[float]]] | None = None
    invoke_many: scale.Ratio | None = None
    #: summary lines of the sections in sections.py
    targets: list[bench_common.Target] = field(default_factory=list[bench_common.Target])


TARGETS = {
    "chain1000": 1.5,
    "fan1000": 1.25,
    "random1000": 1.25,
    "endpoint_seq": 1.25,
    "endpoint_conc": 1.25,
}


def _paired_ratios(rows: Sequence[Row], a: str, b: str) -> list[float]:
    """Per-round ratios a/b (samples are taken in interleaved rounds, one per runner)."""
    ra = next((r for r in rows if r.runner == a and r.ok), None)
    rb = next((r for r in rows if r.runner == b and r.ok), None)
    if ra is None or rb is None:
        return []
    return [x / y for x, y in zip(ra.samples, rb.samples, strict=False)]


def summary(out: Out, res: Results) -> None:
    eager = sys.version_info >= (3, 12)
    out("### summary: dagwire against the targets")
    out()
    out(
        "| target | measured ratio | per-round min-max | limit | met |"
        + (" dagwire / floor_eager |" if eager else "")
    )
    out("|---|---:|---:|---:|---|" + ("---:|" if eager else ""))

    def line(
        what: str, ratio: float | None, spread: str, limit: float, extra: str = "", digits: int = 2
    ) -> None:
        if ratio is None:
            out(f"| {what} | n/a | | {limit:g} | no data |" + (" |" if eager else ""))
            return
        met = "yes" if ratio <= limit else "**NO**"
        out(
            f"| {what} | {ratio:.{digits}f} | {spread} | {limit:g} | {met} |"
            + (f" {extra} |" if eager else "")
        )

    for name, limit in TARGETS.items():
        rows = res.timed.get(name)
        if rows is None:
            continue
        dw = _median_of(rows, "dagwire")
        fl = harness.floor_median(rows)
        fe = _median_of(rows, EAGER_FLOOR)
        pr = _paired_ratios(rows, "dagwire", FLOOR)
        spread = f"{min(pr):.2f}-{max(pr):.2f}" if pr else ""
        ratio = dw / fl if dw and fl else None
        extra = f"{dw / fe:.2f}" if dw and fe else ""
        line(f"{name}: dagwire / floor", ratio, spread, limit, extra)
        if name == "endpoint_seq" and eager:
            line("endpoint_seq, 3.12+: <= the non-eager floor", ratio, spread, 1.0, extra)
    if res.sleep is not None:
        vs = sleep_vs_floor(res.sleep, "dagwire")
        line(
            "sleep graphs: makespan, dagwire / floor (median over graphs)",
            statistics.median(vs) if vs else None,
            f"{min(vs):.3f}-{max(vs):.3f}" if vs else "",
            1.01,
            digits=3,
        )
    if res.memory is not None:
        for g, col in res.memory.items():
            dw, fl = col.get("dagwire"), col.get(FLOOR)
            line(f"memory per node, {g}: dagwire / floor", dw / fl if dw and fl else None, "", 1.25)
    if res.options is not None:
        line("options: plain-node cost with options elsewhere / without", res.options, "", 1.1)
    if res.cache is not None:
        for what, ratio, spread, limit in bench_cache.summary_lines(res.cache):
            line(what, ratio, spread, limit)
    if res.build is not None:
        for shape, (dw, ad, paired) in res.build.items():
            if sys.version_info >= (3, 12):
                spread = f"{min(paired):.2f}-{max(paired):.2f}" if paired else ""
                ratio = dw / ad if ad else None
                line(f"build {shape}: dagwire / async-dag, per node", ratio, spread, 1.0)
            else:
                line(f"build {shape}: dagwire µs per node (3.11)", dw, "", 5.0)
    if res.invoke_many is not None:
        r = res.invoke_many
        line(
            "invoke_many: endpoint x 10,000 params, concurrency=100 / semaphore loop",
            r.median,
            f"{r.low:.2f}-{r.high:.2f}",
            1.1,
        )
    for t in res.targets:
        sections.summary_line(t, line, out, eager)
    if res.recursion is not None:
        bad = {k: v for k, v in res.recursion.items() if v != "ok"}
        verdict = "yes" if not bad else "**NO**: " + "; ".join(f"{k}: {v}" for k, v in bad.items())
        out(
            f"| no RecursionError (or hang) on deep/wide shapes, eager or not | "
            f"{len(res.recursion) - len(bad)}/{len(res.recursion)} ok | | | {verdict} |"
            + (" |" if eager else "")
        )
    out()
    out(
        "Timing ratios are of the medians measured above in this same run; per-round min-max "
        "pairs each dagwire sample with the floor sample of the same interleaved round. The "
        "options row (median of per-round ratios) has no target in the issue; 1.1 is our noise "
        "allowance for 'plain nodes do not pay'."
        + (
            " On 3.12+ dagwire starts tasks eagerly, so the last column compares it with the "
            "floor that does the same."
            if eager
            else ""
        )
    )
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
    res = Results(timed={})
    for name, w in workloads(cfg).items():
        if name in only:
            rows = await harness.measure(runners, w, repeat=cfg.repeat)
            timing_table(out, name, rows, w)
            res.timed[name] = rows
    if "sleep" in only:
        graphs = shapes.sleep_graphs(cfg.sleep_graphs)
        res.sleep = await harness.measure_sleep(runners, graphs)
        sleep_table(out, res.sleep, graphs)
    if "options" in only:
        res.options = await run_options(out, cfg, runners)
    if "memory" in only:
        res.memory = await run_memory(out, runners)
    if "recursion" in only:
        res.recursion = await run_recursion(out, runners)
    if "build" in only:
        res.build = run_build(out, cfg)
    if "cache" in only:
        res.cache = await bench_cache.run_cache(
            out, timing_table, repeat=cfg.repeat, seq=cfg.endpoint_seq, conc=cfg.endpoint_conc
        )
    if "invoke_many" in only:
        res.invoke_many = await scale.run_invoke_many(out, quick=args.quick)
    if "heavy" in only:
        await scale.run_heavy(out, quick=args.quick)
    res.targets += await sections.run(only, out, cfg)
    summary(out, res)


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
            # failure semantics: required of the floors and dagwire, reported for the peers
            strict = (r.name.startswith(FLOOR) and r.name != "floor_task_per_node") or (
                r.name == "dagwire"
            )
            bad, now = shapes.failing(), shapes.failing(immediate=True)
            ff, sl = shapes.failing_while_others_sleep(), shapes.sleepers()
            probes: list[tuple[str, Awaitable[None]]] = [
                (bad.name, harness.expect_failure(r, r.prepare(bad), bad, shapes.Boom)),
                (now.name, harness.expect_failure(r, r.prepare(now), now, shapes.Boom)),
                ("fail-fast", harness.expect_fail_fast(r, r.prepare(ff), ff, shapes.Boom)),
                ("cancel", harness.expect_cancel(r, r.prepare(sl))),
            ]
            for label, probe in probes:
                try:
                    await probe
                    results.append(f"{label}: ok")
                except Exception as e:
                    if strict or label in (bad.name, now.name):
                        failures += 1
                        results.append(f"{label}: FAILED {harness.describe_error(e)}")
                    else:
                        results.append(f"{label}: no ({harness.describe_error(e)})")
        line = f"  {r.name:20} " + ", ".join(results)
        if skipped:
            line += f" (skipped: {skipped})" if results else f"skipped: {skipped}"
        out(line)
    failures += await bench_cache.check(out)
    built: list[str] = []
    for name, builder in build.BUILDERS:
        try:
            for g in (shapes.endpoint(), build.distinct(50)):
                builder(g)
            built.append(f"{name}: ok")
        except Skip as e:
            built.append(f"{name}: skipped ({e})")
        except Exception as e:
            failures += 1
            built.append(f"{name}: FAILED {harness.describe_error(e)}")
    out("  build                " + ", ".join(built))
    failures += await sections.check(out)
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
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="clock of the zero-work timings: wall (default, as timeit) or this process's CPU "
        "time (less disturbed by other load on the machine); sleep graphs always use wall time",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Runners that die of RecursionError (reported in the tables) leave coroutines that were
    # created but never started behind; their warnings would only clutter the output.
    warnings.filterwarnings("ignore", message="coroutine .* was never awaited")
    if args.clock == "cpu":
        harness.clock = time.process_time
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
