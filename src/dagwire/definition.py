"""Frozen definitions: what the user declared, before compilation into a plan."""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from .cache import Cache
from .executors import ExecutorLike
from .policies import CircuitBreaker, Limiter, Retry

__all__ = ["NO_FALLBACK", "Const", "Hook", "NodeKind", "NodeOptions", "NodeSpec", "upstream"]

Hook = Callable[..., object]  # sync or async; takes the invoke parameter, or nothing


class _NoFallback(enum.Enum):
    NO_FALLBACK = enum.auto()


NO_FALLBACK = _NoFallback.NO_FALLBACK


class NodeKind(enum.Enum):
    PARAMS = "params"
    IMMEDIATE = "immediate"
    CALL = "call"
    RESOURCE = "resource"
    JOIN = "join"
    MAP = "map"  # add_map: the function called once per item of its first input
    GRAPH = "graph"  # a built Dag given to add_node: its run is the node's value


@dataclass(frozen=True, slots=True)
class Const:
    """A constant ("immediate") positional input given as a plain value."""

    value: object


@dataclass(frozen=True, slots=True)
class NodeOptions:
    """Everything optional about a node. `None` on a spec means "all defaults": the fast path."""

    timeout: float | None = None
    retry: Retry | None = None
    fallback: object = NO_FALLBACK
    breaker: CircuitBreaker | None = None
    limiter: Limiter | None = None
    executor: ExecutorLike | None = None
    pre: Hook | None = None
    post: Hook | None = None
    pre_takes_param: bool = False
    post_takes_param: bool = False
    release: Literal["end", "early"] = "end"
    cleanup_timeout: float | None = None
    cache: Cache | None = None
    limit: int | None = None  # add_map: items called at once (None: all)
    # Derived: an attempt must wait for a limiter, ask a breaker or run in an executor.
    guarded: bool = field(init=False, default=False, compare=False)
    lean: bool = field(init=False, default=False, compare=False)
    post_async: bool = field(init=False, default=False, compare=False)  # a coroutine function

    def __post_init__(self) -> None:
        post_async = self.post is not None and inspect.iscoroutinefunction(self.post)
        object.__setattr__(self, "post_async", post_async)
        guarded = not (self.limiter is None and self.breaker is None and self.executor is None)
        object.__setattr__(self, "guarded", guarded)
        lean = not guarded and self.pre is None and self.post is None and self.cache is None
        object.__setattr__(self, "lean", lean)

    @property
    def is_default(self) -> bool:
        return self == _DEFAULT_OPTIONS


_DEFAULT_OPTIONS = NodeOptions()


class NodeSpec(NamedTuple):
    """One node as declared. Inputs refer to earlier nodes by index, so no cycle can exist.

    Immutable like the other definitions, but a `NamedTuple` rather than a frozen dataclass:
    building a graph makes one per node, and a tuple is made four times faster (a frozen
    dataclass sets each field through `object.__setattr__`), which the build benchmark shows.
    """

    index: int  # type: ignore[assignment]  # shadows tuple.index: the name every reader uses
    name: str
    kind: NodeKind
    fn: Callable[..., object] | None
    args: tuple[int | Const, ...]  # node indices or constants, in call order
    inject: bool  # the invoke parameter is appended as the last argument
    after: tuple[int, ...]
    options: NodeOptions | None
    is_async: bool
    tags: tuple[str, ...]
    # Distinct upstream nodes: inputs, the params node when injected, then `after=`, in that
    # order (see `upstream`). Worked out while the node is added, where its inputs are at hand.
    deps: tuple[int, ...]


def upstream(
    args: tuple[int | Const, ...], inject: bool, after: tuple[int, ...]
) -> tuple[int, ...]:
    """`NodeSpec.deps` of a node with these inputs, injection and `after=` nodes."""
    seen: dict[int, None] = {}
    for a in args:
        if isinstance(a, int):
            seen[a] = None
    if inject:
        seen[0] = None
    for a in after:
        seen[a] = None
    return tuple(seen)
