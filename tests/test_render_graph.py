"""`Dag.to_mermaid()` and `Dag.to_dot()`: every node by name, kinds and edge styles, escaping.

DOT output is rendered with the real Graphviz (`dot -Tsvg`) and read back from the SVG it drew.
Mermaid output is checked structurally here (a strict reader of the text); it is rendered with
the mermaid CLI in `test_render_mermaid_cli.py`.
"""

from __future__ import annotations

from dagwire import Dag, build_dag
from diagram_check import parse_flowchart, render_dot
from render_cases import KINDS, NASTY_NAMES, ident, kinds_dag, nasty_dag


def _named_edges(dag: Dag[int], edges: set[tuple[str, str, bool]]) -> set[tuple[str, str, bool]]:
    names = {f"n{k}": n.name for k, n in enumerate(dag.nodes)}
    return {(names[s], names[t], dashed) for s, t, dashed in edges}


def _expected_edges() -> set[tuple[str, str, bool]]:
    return {(src, node, dashed) for node, (_, inc) in KINDS.items() for src, dashed in inc}


def test_mermaid_structure_every_kind_and_edge_style() -> None:
    dag = kinds_dag()
    chart = parse_flowchart(dag.to_mermaid())
    assert {label: kind for kind, label in chart.nodes.values()} == {
        name: kind for name, (kind, _) in KINDS.items()
    }
    assert len(chart.edges) == len(set(chart.edges)), "an edge drawn twice"
    named = {(chart.nodes[s][1], chart.nodes[t][1], d) for s, t, d in chart.edges}
    assert named == _expected_edges()


def test_dot_every_kind_and_edge_style_renders_with_graphviz() -> None:
    dag = kinds_dag()
    picture = render_dot(dag.to_dot())
    assert sorted(picture.labels.values()) == sorted(KINDS)
    assert _named_edges(dag, picture.edges) == _expected_edges()


def test_dot_shapes_by_kind() -> None:
    text = kinds_dag().to_dot()
    shapes = {
        "params": "invhouse",
        "three": "note",
        "conn": "cylinder",
        "join": "diamond",
        "use": "box",
    }
    for name, shape in shapes.items():
        line = next(ln for ln in text.splitlines() if f'label="{name}"' in ln)
        assert f"shape={shape}" in line, line


def test_mermaid_structure_nasty_names_decode_exactly() -> None:
    dag = nasty_dag()
    text = dag.to_mermaid()
    chart = parse_flowchart(text)  # asserts no label holds a character Mermaid would misread
    assert [label for _, label in chart.nodes.values()] == ["params", *NASTY_NAMES]
    assert "<locals>" not in text
    assert "#60;locals#62;" in text


def test_dot_nasty_names_render_exactly_with_graphviz() -> None:
    dag = nasty_dag()
    picture = render_dot(dag.to_dot())
    drawn = [picture.labels[f"n{k}"] for k in range(len(dag.nodes))]
    assert drawn == ["params", *NASTY_NAMES]


def test_dot_graph_name_is_quoted() -> None:
    with build_dag(int, name='g"raph\\') as dag:
        dag.add_node(ident, dag.params)
    picture = render_dot(dag.to_dot())
    assert sorted(picture.labels.values()) == ["ident", "params"]


def test_a_multi_line_name_becomes_lines() -> None:
    with build_dag(int) as dag:
        dag.add_node(ident, dag.params, name="two\nlines")
    assert render_dot(dag.to_dot()).labels["n1"] == "two\nlines"
    assert parse_flowchart(dag.to_mermaid()).nodes["n1"] == ("call", "two\nlines")


def test_pictures_of_a_graph_being_built() -> None:
    dag: Dag[int] = Dag(name="open")
    dag.add_node(ident, dag.params)
    assert not dag.frozen
    assert [label for _, label in parse_flowchart(dag.to_mermaid()).nodes.values()] == [
        "params",
        "ident",
    ]
    assert render_dot(dag.to_dot()).labels == {"n0": "params", "n1": "ident"}


def test_graph_of_only_params() -> None:
    with build_dag(int, name="empty") as dag:
        pass
    assert parse_flowchart(dag.to_mermaid()).nodes == {"n0": ("params", "params")}
    assert render_dot(dag.to_dot()).edges == set()
