"""The edges of a graph as the pictures draw them: who feeds whom, and whether a value flows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..definition import NodeSpec

__all__ = ["Edge", "edges"]


@dataclass(frozen=True, slots=True)
class Edge:
    """One dependency, by node index.

    `carries_value` is False for an edge that only orders (`after=`, or a member of a `join`):
    pictures draw those dashed.
    """

    source: int
    target: int
    carries_value: bool


def edges(specs: Sequence[NodeSpec]) -> list[Edge]:
    """Every distinct dependency of every node, in node order, then in the node's input order.

    An input node passed as an argument and the invoke parameter injected as the last argument
    carry a value; a node that is only in `after=` (how joins are declared, too) does not. Plain
    constant inputs are not nodes and have no edge.
    """
    out: list[Edge] = []
    for spec in specs:
        valued = {a for a in spec.args if isinstance(a, int)}
        if spec.inject:
            valued.add(0)  # the params node
        out.extend(Edge(d, spec.index, d in valued) for d in spec.deps)
    return out
