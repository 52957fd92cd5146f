"""Graphviz DOT text of a graph."""

from __future__ import annotations

from collections.abc import Sequence

from ..definition import NodeKind, NodeSpec
from .edges import edges

__all__ = ["digraph"]

# Node attributes by kind, after the label.
_STYLES = {
    NodeKind.PARAMS: 'shape=invhouse, style=filled, fillcolor="#fff4d6", color="#b7791f"',
    NodeKind.IMMEDIATE: 'shape=note, style=filled, fillcolor="#f2f2f2", color="#888888"',
    NodeKind.CALL: "shape=box, style=rounded",
    NodeKind.RESOURCE: 'shape=cylinder, style=filled, fillcolor="#e3f2fd", color="#1e6aa8"',
    NodeKind.JOIN: 'shape=diamond, style=filled, fillcolor="#ede7f6", color="#5e35b1"',
}


def quote(text: str) -> str:
    """`text` as a double-quoted DOT string that Graphviz shows exactly as `text`.

    In labels Graphviz reads backslash sequences (``\\n``, ``\\N``, ...) and HTML entities
    (``&lt;``), so backslashes, quotes and ampersands are escaped, and line breaks become ``\\n``.
    """
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("&", "&amp;")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )
    return f'"{escaped}"'


def digraph(name: str, specs: Sequence[NodeSpec]) -> str:
    """The graph as a DOT ``digraph`` (left to right), newline-ended.

    Nodes are ``n<index>`` labelled by name: the parameter as a house, constants as a note,
    resources as a cylinder, joins as a diamond, calls as a rounded box; each node's tooltip is
    its kind. Edges that carry a value are solid, ordering-only edges (`after=`, a join's
    members) dashed.
    """
    lines = [
        f"digraph {quote(name)} {{",
        "    rankdir=LR;",
        '    node [fontname="Helvetica", fontsize=11];',
        "    edge [arrowsize=0.7];",
    ]
    for spec in specs:
        lines.append(
            f"    n{spec.index} [label={quote(spec.name)}, tooltip={quote(spec.kind.value)}, "
            f"{_STYLES[spec.kind]}];"
        )
    for e in edges(specs):
        style = "" if e.carries_value else " [style=dashed]"
        lines.append(f"    n{e.source} -> n{e.target}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"
