"""`Node[T]`: the typed handle of one node of one graph."""

# pyright: reportPrivateUsage=false
# (package-internal access between the graph, its handles, results and the run)

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from .graph import Dag
    from .results import ExecutionResult

__all__ = ["Node"]

T_co = TypeVar("T_co", covariant=True)


class Node(Generic[T_co]):
    """A handle to a node: pass it as an input to later nodes, and use it to read results.

    Handles are created by `Dag.add_*`; they compare by identity.
    """

    __slots__ = ("_dag", "_index", "_name")

    def __init__(self, dag: Dag[Any], index: int, name: str) -> None:
        self._dag = dag
        self._index = index
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def dag(self) -> Dag[Any]:
        return self._dag

    @property
    def inputs(self) -> tuple[object, ...]:
        """The positional inputs in call order: `Node` handles, or the constants given."""
        return self._dag._inputs_of(self._index)

    @property
    def after(self) -> tuple[Node[object], ...]:
        return self._dag._after_of(self._index)

    def extract_result(self, result: ExecutionResult[Any]) -> T_co:
        return result[self]

    def __repr__(self) -> str:
        return f"<Node {self._name!r} of {self._dag!r}>"
