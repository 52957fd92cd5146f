"""Every program in examples/ runs (asyncio debug on, warnings as errors), and so does
`python -m dagwire demo`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if p.name != "__init__.py")

# What some examples must print; every example must at least print something.
EXPECTED: dict[str, list[str]] = {
    "ready_order.py": ["fast_a = 1", "total ="],
    "event_pipeline.py": ["moon: stored=True", "published:"],
    "orchestrated_pipeline.py": [
        "(at most 2 at once)",
        "flaky succeeded on call 3",
        "node_retrying flaky_task",
        "breaker_changed check_inventory CLOSED -> OPEN",
        "CircuitOpenError",
    ],
    "dask_heavy_nodes.py": ["heavy nodes ran in worker processes", "the event loop stayed free"],
    "batch_progress.py": ["2000 runs, in input order: 1..2000", "20 runs failed"],
}

# Signs of a leaked task or an un-awaited coroutine that did not fail the program outright.
BAD_SIGNS = ("Traceback", "was never awaited", "never retrieved", "Task was destroyed")


def run_python(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if args and args[0].endswith("dask_heavy_nodes.py"):
        # Dask's own LocalCluster cannot start on an eager loop ("Nanny failed to start",
        # distributed 2026.8), so this program keeps default loops in the eager pass
        # (DAGWIRE_EAGER_TASKS=1); tests/test_dask.py covers dagwire on an eager loop with Dask.
        env.pop("DAGWIRE_EAGER_TASKS", None)
    env["PYTHONASYNCIODEBUG"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    return subprocess.run(
        [sys.executable, "-W", "error", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_examples_are_found() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"ready_order.py", "event_pipeline.py"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path: Path) -> None:
    proc = run_python(str(path))
    assert proc.returncode == 0, f"{path.name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip(), f"{path.name} printed nothing"
    for sign in BAD_SIGNS:
        assert sign not in proc.stderr, f"{path.name}: {sign!r} in stderr:\n{proc.stderr}"
    for text in EXPECTED.get(path.name, []):
        assert text in proc.stdout, f"{path.name}: {text!r} not printed:\n{proc.stdout}"


def test_ready_order_example_starts_slow_b_before_slow_a_ends() -> None:
    proc = run_python(str(ROOT / "examples" / "ready_order.py"))
    assert proc.returncode == 0, proc.stderr
    stamped = re.compile(r"^\s*\d+\.\d+s\s+(.*\S)\s*$")
    events = [m[1] for line in proc.stdout.splitlines() if (m := stamped.match(line))]
    assert events.index("slow_b started") < events.index("slow_a done")
    assert events.index("fast_a done") < events.index("slow_b started")
    assert events.index("fast_c started") > max(
        events.index("slow_a done"), events.index("fast_b done")
    )
    assert events[-2:] == ["total started", "total done"]


EVENT = re.compile(r"^\s*(\d+\.\d+)s\s+(start|done|run)\s+(\S+)")
ROW = re.compile(r"^(\S+)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+(\S+)\s*$")


def test_dagwire_demo() -> None:
    proc = run_python("-m", "dagwire", "demo")
    assert proc.returncode == 0, proc.stderr
    for sign in BAD_SIGNS:
        assert sign not in proc.stderr
    lines = proc.stdout.splitlines()

    # Start/done lines per node, in the order they happened.
    events = [(m[2], m[3], k) for k, line in enumerate(lines) if (m := EVENT.match(line))]
    started = {name: k for what, name, k in events if what in ("start", "run")}
    done = {name: k for what, name, k in events if what in ("done", "run")}
    assert len(started) >= 3
    assert started.keys() == done.keys(), "every node that starts must be reported done"
    for name in started:
        assert started[name] <= done[name]

    # The table: each node with its start, end and the input it waited for last.
    rows = {m[1]: (float(m[2]), float(m[3]), m[4]) for line in lines if (m := ROW.match(line))}
    assert set(rows) == set(started), rows
    waited = 0
    for name, (start, end, after) in rows.items():
        assert start <= end
        if after == "-":
            continue
        waited += 1
        assert start >= rows[after][1], f"{name} started before its input {after} ended"
        assert start - rows[after][1] < 0.05
        assert done[after] < started[name], f"{name} printed its start before {after} was done"
    assert waited >= 2
