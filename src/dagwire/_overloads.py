"""PLACEHOLDER: replaced by the generated overloads (tools/gen_overloads.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from .definition import NodeKind
from .node import Node

P = TypeVar("P")


class TypedAdders(Generic[P]):
    def _add(
        self,
        kind: NodeKind,
        fn: Callable[..., object],
        inputs: Sequence[object],
        options: Mapping[str, Any],
    ) -> Node[Any]:
        raise NotImplementedError

    def add_node(self, fn: Callable[..., object], /, *inputs: object, **options: Any) -> Node[Any]:
        return self._add(NodeKind.CALL, fn, inputs, options)

    def add_resource(
        self, factory: Callable[..., object], /, *inputs: object, **options: Any
    ) -> Node[Any]:
        return self._add(NodeKind.RESOURCE, factory, inputs, options)
