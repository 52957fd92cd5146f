"""The command line (`python -m dagwire graph ...`, `python -m dagwire demo --trace --gantt`) and
the README's pictures section, which shows its output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.image import imread

import dagwire
from dagwire.__main__ import main
from dagwire._demo import dag as demo_dag
from diagram_check import parse_flowchart, render_dot
from trace_check import as_object, check_trace

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")

GRAPHS = """\
from dagwire import build_dag


def double(x: int) -> int:
    return 2 * x


with build_dag(int, name="cli") as dag:
    dag.add_node(double, dag.params)


class Holder:
    dag = dag


number = 3
"""


@pytest.fixture
def graphs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module of graphs importable under a name unique to the test."""
    name = f"cli_graphs_{abs(hash(tmp_path))}"
    (tmp_path / f"{name}.py").write_text(GRAPHS, encoding="utf-8")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    return name


def _run(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    # The dagwire under test, wherever the child process starts.
    path = [str(Path(dagwire.__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")]
    return subprocess.run(
        [sys.executable, "-m", "dagwire", *argv],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_graph_prints_mermaid_by_default(graphs: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", f"{graphs}:dag"]) == 0
    chart = parse_flowchart(capsys.readouterr().out)
    assert [label for _, label in chart.nodes.values()] == ["params", "double"]


def test_graph_as_dot_renders_with_graphviz(
    graphs: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["graph", f"{graphs}:Holder.dag", "--format", "dot"]) == 0
    picture = render_dot(capsys.readouterr().out)
    assert picture.labels == {"n0": "params", "n1": "double"}
    assert picture.edges == {("n0", "n1", False)}


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("{m}", r"'{m}': expected module:attribute"),
        ("{m}:", r"expected module:attribute"),
        (":dag", r"expected module:attribute"),
        ("no_such_module_x:dag", r"cannot import module 'no_such_module_x': No module named"),
        ("{m}:missing", r"module '{m}' has no attribute 'missing'"),
        ("{m}:Holder.missing", r"module '{m}' has no attribute 'Holder.missing'"),
        ("{m}:number", r"'{m}:number' is of type int, not a dagwire Dag"),
        ("{m}:double", r"is of type function, not a dagwire Dag"),
    ],
)
def test_graph_refuses_what_is_not_a_dag(
    graphs: str, target: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["graph", target.format(m=graphs)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m dagwire graph")
    assert re.search(message.format(m=graphs), err), err


def test_graph_refuses_an_unknown_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["graph", "dagwire._demo:dag", "--format", "png"])
    assert "invalid choice: 'png'" in capsys.readouterr().err


def test_python_m_dagwire_graph_finds_modules_in_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "app_graphs.py").write_text(GRAPHS, encoding="utf-8")
    done = _run("graph", "app_graphs:dag", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert '    n1["double"]\n' in done.stdout


def test_demo_writes_a_valid_trace_and_a_gantt_chart(tmp_path: Path) -> None:
    trace_file, png = tmp_path / "demo.json", tmp_path / "demo.png"
    done = _run("demo", "--trace", str(trace_file), "--gantt", str(png))
    assert done.returncode == 0, done.stderr
    assert f"trace written to {trace_file}" in done.stdout
    trace = json.loads(trace_file.read_text(encoding="utf-8"))
    flows = check_trace(trace)
    nodes = sorted(
        str(args["node"])
        for e in trace["traceEvents"]
        if e["ph"] == "X" and (args := as_object(e["args"])) is not None
    )
    assert nodes == sorted(n.name for n in demo_dag.nodes[1:])
    assert len(flows) == 7  # every edge but the one from params, which does not run
    assert imread(png).shape[1] == 1200


def test_demo_refuses_a_gantt_it_cannot_write_before_running(tmp_path: Path) -> None:
    done = _run("demo", "--gantt", str(tmp_path / "demo.jpg"))
    assert done.returncode == 2
    assert "must end in .png or .svg" in done.stderr
    assert done.stdout == ""  # the demo did not run


# -- the README shows these pictures ---------------------------------------------------------


def _section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_readme_mermaid_graph_is_the_demo_graph() -> None:
    blocks = re.findall(r"^```mermaid\n(.*?)^```$", README, flags=re.MULTILINE | re.DOTALL)
    assert blocks == [demo_dag.to_mermaid()], (
        "regenerate: python -m dagwire graph dagwire._demo:dag"
    )


def test_readme_picture_is_committed_and_its_command_is_shown() -> None:
    pictures = _section("Pictures")
    assert "python -m dagwire graph dagwire._demo:dag" in pictures
    assert "python -m dagwire demo --trace demo-trace.json --gantt docs/demo-gantt.png" in pictures
    assert "![" in pictures
    assert "](docs/demo-gantt.png)" in pictures
    png = ROOT / "docs" / "demo-gantt.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert imread(png).shape[1] == 1200
    assert "https://ui.perfetto.dev" in pictures
    assert "Open trace file" in pictures
