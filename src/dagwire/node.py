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
    """A handle to one node of one graph, typed by its result `T_co`.

    Handles are made by `Dag.add_node`, `add_resource`, `add_immediate_node`, `join` (and
    `Dag.params`). Pass one as an input (or in `after=`) of a later node of the same graph, and
    read its value from a run with `result[node]` or `node.extract_result(result)`. Handles
    compare and hash by identity; a handle of another graph is refused with
    `DagDefinitionError` wherever a node of this graph is expected.
    """

    __slots__ = ("_dag", "_index", "_name")

    def __init__(self, dag: Dag[Any], index: int, name: str) -> None:
        self._dag = dag
        self._index = index
        self._name = name

    @property
    def name(self) -> str:
        """The node's name, unique in its graph: `name=`, or the function's `__qualname__`
        (then with a suffix ``_1``, ``_2``, ... for later nodes of the same function)."""
        return self._name

    @property
    def dag(self) -> Dag[Any]:
        """The graph this node belongs to."""
        return self._dag

    @property
    def inputs(self) -> tuple[object, ...]:
        """The positional inputs in call order: `Node` handles, or the constants given."""
        return self._dag._inputs_of(self._index)

    @property
    def after(self) -> tuple[Node[object], ...]:
        """The nodes given in `after=` (for a join: the nodes it waits for)."""
        return self._dag._after_of(self._index)

    @property
    def tags(self) -> tuple[str, ...]:
        """The labels given in `tags=`, in order (``()`` without); a single string given as
        `tags="db"` is one label, ``("db",)``."""
        return self._dag._specs[self._index].tags

    def extract_result(self, result: ExecutionResult[Any]) -> T_co:
        """This node's value in `result`; the same as `result[node]`.

        Raises `NodeNotCompletedError` (with the node's exception as `__cause__`) if the node
        did not succeed in that run, and `DagDefinitionError` if `result` is of another graph.
        """
        return result[self]

    def __repr__(self) -> str:
        return f"<Node {self._name!r} of {self._dag!r}>"
