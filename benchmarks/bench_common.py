"""What the sections of issues 10, 11 and 13 share: workloads that are not plain shapes, rows
of (runner, workload) pairs measured by ``harness``, their tables, and summary targets."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import harness
from harness import Row, Workload
from runners import EAGER_FLOOR, FLOOR, Invoke, Runner

#: dagwire starts tasks eagerly on 3.12+: tables there also compare with the eager floor
EAGER = sys.version_info >= (3, 12)

Out = Callable[..., None]


@dataclass(frozen=True)
class Case:
    """A workload's "graph" for ``harness`` when it is not a plain shape: what one invoke must
    return (``reference``, checked on every sample) and how many units (nodes, items) one invoke
    covers (``n``). Runners close over whatever they really run and ignore it."""

    name: str
    n: int
    reference: Any
    durations: tuple[float, ...] = ()


@dataclass(frozen=True)
class Target:
    """One line of the summary: a measured ratio against its limit, or (``ok`` set by
    :meth:`verdict`) a yes/no check described by ``spread``."""

    what: str
    ratio: float | None
    spread: str
    limit: float
    #: the ratio to the eager floor (3.12+), or why there is no ratio
    extra: str = ""
    #: for a yes/no line: whether it holds (None: could not be checked)
    ok: bool | None = None
    is_verdict: bool = False

    @staticmethod
    def verdict(what: str, ok: bool | None, detail: str) -> Target:
        return Target(what, None, detail, 0.0, ok=ok, is_verdict=True)


def runner(name: str, make: Callable[[], Invoke], factory: Any = None) -> Runner:
    """A runner whose ``prepare`` ignores the workload's Case and calls ``make``."""
    return Runner(name, lambda _case: make(), factory)


def by_name(rows: Sequence[Row], name: str) -> Row | None:
    return next((r for r in rows if r.runner == name), None)


def ratio(rows: Sequence[Row], name: str, base: str) -> tuple[float | None, str]:
    """(ratio of medians name / base, per-round min-max); (None, why) without both rows."""
    a, b = by_name(rows, name), by_name(rows, base)
    for r in (a, b):
        if r is None:
            return None, "not measured"
        if not r.ok:
            return None, f"{r.runner}: {status(r)}"
    assert a is not None
    assert b is not None
    per = [x / y for x, y in zip(a.samples, b.samples, strict=False)]
    return a.median / b.median, f"{min(per):.2f}-{max(per):.2f}"


def status(row: Row) -> str:
    if row.skipped:
        return f"skipped: {row.skipped}"
    if row.error:
        return f"FAILED: {row.error}"
    return "no samples"


def us(seconds: float) -> str:
    v = seconds * 1e6
    return f"{v:,.0f}" if v >= 1000 else f"{v:.2f}" if v >= 1 else f"{v:.3f}"


async def measure(
    runners: Sequence[Runner], case: Case, *, mode: str = "seq", count: int, repeat: int
) -> list[Row]:
    """``harness.measure`` of `runners` on `case`: warm-up, interleaved rounds, GC off, every
    sample's value checked; samples are seconds per unit (``case.n`` units per invoke)."""
    w = Workload(case.name, case, mode, count, "node")  # type: ignore[arg-type]  # a Case
    return await harness.measure(runners, w, repeat=repeat)


def table(
    out: Out,
    title: str,
    groups: Sequence[tuple[str, Sequence[Row]]],
    *,
    unit: str,
    base: str = FLOOR,
    note: str = "",
) -> None:
    """One table for several rows of a section: per row, every runner with its median, min,
    max and ratio to the row's `base` runner (and, on 3.12+, to the row's eager floor)."""
    cols = ["row", "runner", f"median {unit}", "min", "max", f"× {base}"]
    if EAGER:
        cols.append(f"× {EAGER_FLOOR}")
    out(f"### {title}")
    out()
    out("| " + " | ".join(cols) + " |")
    out("|---|---|" + "---:|" * (len(cols) - 2))
    for label, rows in groups:
        for r in rows:
            if not r.ok:
                out(f"| {label} | {r.runner} | {status(r)} |" + " |" * (len(cols) - 3))
                continue
            cells = [label, r.runner, us(r.median), us(min(r.samples)), us(max(r.samples))]
            for b in (base, EAGER_FLOOR) if EAGER else (base,):
                x, _ = ratio(rows, r.runner, b)
                cells.append(f"{x:.2f}" if x is not None else "")
            out("| " + " | ".join(cells) + " |")
    out()
    if note:
        out(note)
        out()


def target(what: str, rows: Sequence[Row], name: str, limit: float, base: str = FLOOR) -> Target:
    """`name` against `base` in `rows`, with the ratio to the eager floor on 3.12+."""
    x, spread = ratio(rows, name, base)
    extra = ""
    if EAGER and base == FLOOR:
        xe, _ = ratio(rows, name, EAGER_FLOOR)
        extra = f"{xe:.2f}" if xe is not None else ""
    return Target(what, x, spread, limit, extra)


def median_or_none(row: Row | None) -> float | None:
    return statistics.median(row.samples) if row is not None and row.ok else None
