"""`ExecutionResult.to_mermaid_gantt()` (structure) and `ExecutionResult.plot_gantt()` (real
matplotlib output, read back: PNG pixels, SVG text)."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib
import pytest
from matplotlib import _pylab_helpers  # pyright: ignore[reportPrivateUsage]
from matplotlib.image import imread

from dagwire import DagDefinitionError, NodeStatus, NodeTiming, build_dag
from dagwire.results import ExecutionResult, Interval
from diagram_check import SVG, GanttTask, parse_gantt
from render_cases import NASTY_NAMES, hand_result, ident, nasty_dag, result_with

# -- Mermaid Gantt ----------------------------------------------------------------------------


def test_gantt_structure_of_the_hand_built_run() -> None:
    title, tasks = parse_gantt(hand_result().to_mermaid_gantt())
    assert title == "hand-built: retry & cleanup"
    assert tasks == [
        GanttTask("run", "conn", "done", 0, 10),
        GanttTask("run", "flaky <locals>", "crit", 0, 30),
        GanttTask("run", "pre_failed", "crit", 0, 2),
        GanttTask("run", "slow", "done", 0, 200),  # 0.5 ms rounds to 0
        GanttTask("run", "cached", "done", 1, 2),  # zero-length: 1 ms so that it shows
        GanttTask("run", "fetch attempt 1", "crit", 10, 20),
        GanttTask("run", "title: quick", "done", 20, 21),
        GanttTask("run", "fetch attempt 2", "crit", 50, 60),
        GanttTask("run", "fetch attempt 3", "done", 110, 150),
        GanttTask("run", "sibling", "", 150, 250),
        GanttTask("run", "merge", "crit", 200, 250),
        GanttTask("cleanup", "conn", "crit", 300, 305),  # equal starts: in node start order
        GanttTask("cleanup", "pre_failed", "done", 300, 301),
    ]


def test_gantt_names_that_break_naive_output() -> None:
    dag = nasty_dag()
    names = [n.name for n in dag.nodes[1:]]
    timings = [
        NodeTiming(
            n,
            NodeStatus.SUCCEEDED,
            k / 100,
            k / 100 + 0.005,
            1,
            (Interval("attempt", 1, k / 100, k / 100 + 0.005, "succeeded"),),
        )
        for k, n in enumerate(names)
    ]
    text = result_with(dag, timings).to_mermaid_gantt()
    title, tasks = parse_gantt(text)  # asserts no name would end a task or read as a statement
    assert title == dag.name
    assert [t.name for t in tasks] == NASTY_NAMES
    assert "#116;itle looks like a keyword" in text
    assert "#35;1" in text


def test_gantt_times_are_integer_milliseconds_at_least_one_long() -> None:
    with build_dag(int) as dag:
        dag.add_node(ident, dag.params, name="a")
    t = NodeTiming(
        "a",
        NodeStatus.SUCCEEDED,
        0.0123456,
        0.0123457,
        1,
        (Interval("attempt", 1, 0.0123456, 0.0123457, "succeeded"),),
    )
    _, (task,) = parse_gantt(result_with(dag, [t]).to_mermaid_gantt())
    assert (task.start, task.end) == (12, 13)


def test_gantt_axis_for_long_runs() -> None:
    with build_dag(int) as dag:
        dag.add_node(ident, dag.params, name="a")
    t = NodeTiming(
        "a", NodeStatus.SUCCEEDED, 0.0, 75.0, 1, (Interval("attempt", 1, 0.0, 75.0, "succeeded"),)
    )
    text = result_with(dag, [t]).to_mermaid_gantt()
    assert "    axisFormat %M:%S\n" in text
    assert parse_gantt(text)[1][0].end == 75_000


def test_gantt_needs_a_timeline() -> None:
    with build_dag(int) as dag:
        dag.add_node(ident, dag.params)
    result: ExecutionResult[int] = ExecutionResult(
        dag, 0, [0, 0], [NodeStatus.SUCCEEDED] * 2, [], None
    )
    with pytest.raises(DagDefinitionError, match="timeline=True"):
        result.to_mermaid_gantt()
    with pytest.raises(DagDefinitionError, match="timeline=True"):
        result.plot_gantt("never.png")


# -- matplotlib -------------------------------------------------------------------------------


def _svg_texts(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def test_plot_png_is_a_real_picture(tmp_path: Path) -> None:
    out = tmp_path / "run.png"
    hand_result().plot_gantt(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(out)
    height, width = pixels.shape[:2]
    assert width == 1200  # 10 in at 120 dpi
    assert height > 300
    # Bars were drawn: the outcome colours are there (green succeeded, red failed).
    rgb = {tuple(round(float(c) * 255) for c in px[:3]) for row in pixels[::3] for px in row[::3]}
    assert (0x4C, 0x9F, 0x70) in rgb
    assert (0xD6, 0x45, 0x45) in rgb


def test_plot_svg_names_every_node_and_outcome(tmp_path: Path) -> None:
    out = tmp_path / "run.SVG"  # the suffix is case-insensitive
    hand_result().plot_gantt(out)
    texts = _svg_texts(out)
    for name in (
        "conn",
        "fetch",
        "flaky <locals>",
        "slow",
        "title: quick",
        "cached",
        "pre_failed",
        "merge",
        "sibling",
    ):
        assert name in texts
    for legend in (
        "succeeded",
        "failed, retried",
        "failed, fallback used",
        "failed",
        "cancelled",
        "cached / resumed",
        "cleanup",
    ):
        assert legend in texts
    assert "hand-built: retry & cleanup: 9 nodes, 305 ms" in texts
    assert "milliseconds since the run started" in texts


# DejaVu Sans, matplotlib's default font, has no CJK glyphs: the name is still drawn, as boxes.
@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")
def test_plot_draws_names_as_plain_text(tmp_path: Path) -> None:
    dag = nasty_dag()
    timings = [
        NodeTiming(n.name, NodeStatus.SUCCEEDED, k / 10, k / 10 + 0.05, 1, ())
        for k, n in enumerate(dag.nodes[1:])
    ]
    out = tmp_path / "nasty.svg"
    result_with(dag, timings).plot_gantt(out)
    texts = _svg_texts(out)
    for name in NASTY_NAMES:  # `$x^2$` stays text, not math
        assert name in texts, name
    assert "seconds since the run started" in texts  # a run of 2 s is drawn in seconds


def test_plot_leaves_no_global_state(tmp_path: Path) -> None:
    rc_before = dict(matplotlib.rcParams)
    backend = matplotlib.get_backend()
    managers = list(_pylab_helpers.Gcf.get_all_fig_managers())
    hand_result().plot_gantt(tmp_path / "a.svg")
    hand_result().plot_gantt(tmp_path / "a.png")
    assert dict(matplotlib.rcParams) == rc_before
    assert matplotlib.get_backend() == backend
    assert list(_pylab_helpers.Gcf.get_all_fig_managers()) == managers


def test_plot_does_not_import_pyplot_and_dagwire_does_not_import_matplotlib(tmp_path: Path) -> None:
    code = (
        "import sys, dagwire\n"
        "assert 'matplotlib' not in sys.modules, 'import dagwire imported matplotlib'\n"
        "from dagwire import build_dag\n"
        "with build_dag(int) as dag:\n"
        "    dag.add_node(lambda x: x, dag.params)\n"
        "dag.to_mermaid(); dag.to_dot()\n"
        "assert 'matplotlib' not in sys.modules, 'drawing a graph imported matplotlib'\n"
        "import asyncio\n"
        "r = asyncio.run(dag.invoke(1, timeline=True))\n"
        "r.to_mermaid_gantt(); r.to_chrome_trace()\n"
        "assert 'matplotlib' not in sys.modules, 'a trace imported matplotlib'\n"
        f"r.plot_gantt({str(tmp_path / 'x.png')!r})\n"
        "assert 'matplotlib' in sys.modules\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'plot_gantt imported pyplot'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr


def test_plot_a_run_where_nothing_started(tmp_path: Path) -> None:
    with build_dag(int, name="idle") as dag:
        dag.add_node(ident, dag.params)
    out = tmp_path / "idle.svg"
    result_with(dag, []).plot_gantt(out)
    assert "no node ran" in _svg_texts(out)


@pytest.mark.parametrize("name", ["run.jpg", "run", "run.png.txt"])
def test_plot_refuses_other_formats(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match=r"must end in \.png or \.svg"):
        hand_result().plot_gantt(tmp_path / name)
    assert not (tmp_path / name).exists()


def test_plot_without_matplotlib_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises
    with pytest.raises(ImportError, match=r"pip install dagwire\[plot\]"):
        hand_result().plot_gantt(tmp_path / "x.png")
