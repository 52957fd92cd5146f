"""Mermaid output rendered by the real mermaid CLI (`mmdc`, headless Chromium), then read back
from the SVG it drew: every label exactly as named, edge styles, task bars to scale.

These tests need `mmdc` on PATH (``npm i @mermaid-js/mermaid-cli`` with Debian's `chromium`; see
the README's test section); without it they are skipped, and only the structural checks of
`test_render_graph.py` / `test_render_gantt.py` run.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from dagwire import Dag, NodeStatus, NodeTiming
from dagwire._demo import dag as demo_dag
from dagwire.results import Interval
from diagram_check import MMDC, SVG, render_mermaid
from render_cases import KINDS, NASTY_NAMES, hand_result, kinds_dag, nasty_dag, result_with

pytestmark = pytest.mark.skipif(MMDC is None, reason="the mermaid CLI (mmdc) is not installed")


def _nasty_gantt() -> str:
    dag = nasty_dag()
    timings = [
        NodeTiming(
            n.name,
            NodeStatus.SUCCEEDED,
            k / 100,
            k / 100 + 0.005,
            1,
            (Interval("attempt", 1, k / 100, k / 100 + 0.005, "succeeded"),),
        )
        for k, n in enumerate(dag.nodes[1:])
    ]
    return result_with(dag, timings).to_mermaid_gantt()


def _long_gantt() -> str:
    dag = nasty_dag()
    t = NodeTiming(
        NASTY_NAMES[0],
        NodeStatus.SUCCEEDED,
        0.0,
        75.0,
        1,
        (Interval("attempt", 1, 0.0, 75.0, "succeeded"),),
    )
    return result_with(dag, [t]).to_mermaid_gantt()


DIAGRAMS = {
    "kinds": kinds_dag().to_mermaid(),
    "nasty": nasty_dag().to_mermaid(),
    "demo": demo_dag.to_mermaid(),
    "hand gantt": hand_result().to_mermaid_gantt(),
    "nasty gantt": _nasty_gantt(),
    "long gantt": _long_gantt(),
}


@pytest.fixture(scope="module")
def svgs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ET.Element]:
    """Every diagram rendered in one mmdc run (one browser start)."""
    roots = render_mermaid(list(DIAGRAMS.values()), tmp_path_factory.mktemp("mmdc"))
    return dict(zip(DIAGRAMS, roots, strict=True))


def _nodes(root: ET.Element) -> dict[str, tuple[str, str]]:
    """Flowchart node id (n<k>) -> (class attribute, rendered label text)."""
    out: dict[str, tuple[str, str]] = {}
    for g in root.iter(f"{SVG}g"):
        m = re.search(r"flowchart-(n\d+)-\d+$", g.get("id") or "")
        if m and "node" in (g.get("class") or "").split():
            out[m.group(1)] = (g.get("class") or "", "".join(g.itertext()))
    return out


def _links(root: ET.Element) -> dict[tuple[str, str], bool]:
    """(source, target) -> dashed, for every edge drawn."""
    out: dict[tuple[str, str], bool] = {}
    for p in root.iter(f"{SVG}path"):
        m = re.search(r"L_(n\d+)_(n\d+)_\d+$", p.get("id") or "")
        if m and "flowchart-link" in (p.get("class") or ""):
            out[(m.group(1), m.group(2))] = "edge-pattern-dotted" in (p.get("class") or "")
    return out


def _tasks(root: ET.Element) -> list[tuple[str, float]]:
    """(task text, bar width in px) in drawing order."""
    texts = {
        (t.get("id") or "").removesuffix("-text"): "".join(t.itertext()).removesuffix(" ")
        for t in root.iter(f"{SVG}text")
        if (t.get("class") or "").startswith("taskText")
    }
    return [
        (texts[r.get("id") or ""], float(r.get("width") or "nan"))
        for r in root.iter(f"{SVG}rect")
        if (r.get("class") or "").startswith("task ")
    ]


def _check_flowchart(root: ET.Element, dag: Dag[int]) -> dict[str, tuple[str, str]]:
    assert root.get("aria-roledescription") == "flowchart-v2"
    nodes = _nodes(root)
    assert {k: label for k, (_, label) in nodes.items()} == {
        f"n{k}": n.name for k, n in enumerate(dag.nodes)
    }
    return nodes


def test_every_kind_renders_with_its_class_and_edge_style(svgs: dict[str, ET.Element]) -> None:
    dag = kinds_dag()
    nodes = _check_flowchart(svgs["kinds"], dag)
    index = {n.name: f"n{k}" for k, n in enumerate(dag.nodes)}
    classes = {"params": "param", "immediate": "constant", "resource": "resource", "join": "join"}
    for name, (kind, _) in KINDS.items():
        if kind in classes:
            assert classes[kind] in nodes[index[name]][0].split(), name
    expected = {
        (index[src], index[name]): dashed
        for name, (_, incoming) in KINDS.items()
        for src, dashed in incoming
    }
    assert _links(svgs["kinds"]) == expected


def test_nasty_names_render_exactly(svgs: dict[str, ET.Element]) -> None:
    _check_flowchart(svgs["nasty"], nasty_dag())


def test_the_demo_graph_renders(svgs: dict[str, ET.Element]) -> None:
    _check_flowchart(svgs["demo"], demo_dag)
    assert len(_links(svgs["demo"])) == 8


def _check_gantt(root: ET.Element, title: str, names: list[str], spans: list[int]) -> None:
    assert root.get("aria-roledescription") == "gantt"
    titles = [
        "".join(t.itertext()) for t in root.iter(f"{SVG}text") if t.get("class") == "titleText"
    ]
    assert titles == [title]
    tasks = _tasks(root)
    assert [name for name, _ in tasks] == names
    # Bars to scale: integer milliseconds were read as milliseconds (a 1 ms task is ~2 px).
    px_per_ms = max(w for _, w in tasks) / max(spans)
    for (name, width), ms in zip(tasks, spans, strict=True):
        assert abs(width - ms * px_per_ms) <= 1.5, (name, width, ms)
        assert width > 0, name


def test_the_hand_built_run_renders_as_a_gantt(svgs: dict[str, ET.Element]) -> None:
    from diagram_check import parse_gantt

    title, tasks = parse_gantt(DIAGRAMS["hand gantt"])
    _check_gantt(
        svgs["hand gantt"], title, [t.name for t in tasks], [t.end - t.start for t in tasks]
    )


def test_nasty_names_render_exactly_as_gantt_tasks(svgs: dict[str, ET.Element]) -> None:
    _check_gantt(svgs["nasty gantt"], nasty_dag().name, NASTY_NAMES, [5] * len(NASTY_NAMES))


def test_a_long_run_renders(svgs: dict[str, ET.Element]) -> None:
    _check_gantt(svgs["long gantt"], nasty_dag().name, [NASTY_NAMES[0]], [75_000])
