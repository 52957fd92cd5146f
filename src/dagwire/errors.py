"""The exceptions dagwire raises, in one place so users can import them from the package root."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from .status import NodeStatus

__all__ = [
    "CircuitOpenError",
    "DagDefinitionError",
    "DagError",
    "NodeCancelledError",
    "NodeNotCompletedError",
    "RetryableError",
    "Skip",
]


class DagDefinitionError(Exception):
    """A graph was built or used wrongly: the message says what was wrong and what to do."""


class Skip(Exception):
    """Raise `Skip(reason)` in a node body or `pre=` hook to skip the node at run time.

    The node is SKIPPED, not failed: its dependents are SKIPPED in both error modes,
    `result.ok` stays True, and `result.skip_cause(dependent)` names the node that skipped.
    A node with `fallback=` that skips takes its fallback value and succeeds instead. A
    resource whose setup skips is not cleaned up (it acquired nothing); `post=` still runs if
    `pre=` started. `Skip` is never retried.
    """

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class RetryableError(Exception):
    """Base class for errors that the default `Retry` policy retries."""


class CircuitOpenError(Exception):
    """A call was refused because its circuit breaker is open."""


class NodeCancelledError(Exception):
    """A node body raised `CancelledError` although nobody cancelled the run.

    `ExceptionGroup` cannot hold a `CancelledError`, so the original is kept as `__cause__`.
    """

    @classmethod
    def wrapping(cls, cancel: BaseException, where: str) -> NodeCancelledError:
        """The failure to report for `cancel`, raised by `where` although nobody cancelled."""
        wrapped = cls(f"{where} raised CancelledError by itself")
        wrapped.__cause__ = cancel
        return wrapped


class DagError(ExceptionGroup[Exception]):
    """Every node failure and cleanup failure of one run.

    Each exception carries a note naming its node and phase, so `except* ValueError` and
    tracebacks both work. `failures` maps node names to the first exception of that node.
    """

    _failures: Mapping[str, Exception]

    def __new__(
        cls,
        message: str,
        exceptions: Sequence[Exception],
        failures: Mapping[str, Exception] | None = None,
    ) -> Self:
        self = super().__new__(cls, message, exceptions)
        self._failures = MappingProxyType(dict(failures or {}))
        return self

    def __init__(
        self,
        message: str,
        exceptions: Sequence[Exception],
        failures: Mapping[str, Exception] | None = None,
    ) -> None:
        super().__init__(message, exceptions)

    @property
    def failures(self) -> Mapping[str, Exception]:
        return self._failures

    def derive(self, excs: Sequence[Exception]) -> DagError:  # type: ignore[override]  # narrower
        # Called by split()/subgroup() (and so by `except*`): keep the type and the
        # failures that are still present in the subgroup.
        kept = {name: exc for name, exc in self._failures.items() if exc in excs}
        return DagError(self.message, excs, kept)


_WHY_NO_RESULT = {
    "PENDING": " (it did not run: not needed for targets=, or the run stopped first)",
    "SKIPPED": " (a node it depends on failed)",
    "CANCELLED": " (the run stopped while it was running)",
}


class NodeNotCompletedError(Exception):
    """A result was asked of a node that did not succeed in that run."""

    def __init__(self, node_name: str, status: NodeStatus, *, has_cause: bool = False) -> None:
        why = " (its exception is the __cause__ of this error)" if has_cause else ""
        super().__init__(
            f"node {node_name!r} has no result: its status is {status.name}"
            + (why or _WHY_NO_RESULT.get(status.name, ""))
        )
        self.node_name = node_name
        self.status = status
