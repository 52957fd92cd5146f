"""The exceptions dagwire raises, in one place so users can import them from the package root.

Every one survives `pickle` with its message and attributes, so it can cross a process pool.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from .results import ExecutionResult
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
    """A graph was built or used wrongly: the message says what was wrong and what to do.

    Raised while building (a wrong arity, an option that cannot work on that kind of callable,
    a node of another graph, a taken name, a frozen graph) and when a graph or result is used
    wrongly (invoking a graph that is not frozen, reading a result with another graph's node).
    """


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
    """Base class for errors that the default `Retry` policy retries.

    Raise it (or a subclass) from a node body to mark a failure as worth retrying: the default
    `Retry.on` is ``(TimeoutError, ConnectionError, RetryableError)``.
    """


class CircuitOpenError(Exception):
    """A call was refused because its `CircuitBreaker` is open (or half-open with its one trial
    call already running). The node fails with it, or takes its `fallback=`."""


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
    """Every node failure and cleanup failure of one run, raised by `invoke` (fail-fast mode)
    and by `ExecutionResult.raise_for_errors()`.

    An `ExceptionGroup`: `exceptions` holds the node exceptions themselves, each with a note
    naming its node and phase (``node 'x' failed in body``), so `except* ValueError` and
    tracebacks both work. `failures` maps node names to the first exception of that node.
    Failures covered by `fallback=` are not in it.

    `result` is the failed run's `ExecutionResult` (what succeeded, what failed, what never
    ran), for `invoke(resume_from=error.result)`; None for a `DagError` made otherwise, and
    after pickling (a result holds the graph, which does not cross processes).
    """

    _failures: Mapping[str, Exception]
    result: ExecutionResult[Any] | None = None

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
        """Node name -> the first exception of that node (read-only); every exception of the
        run, cleanup failures included, is in `exceptions`."""
        return self._failures

    def __reduce__(self) -> tuple[object, ...]:
        # The default reduction rebuilds from (message, exceptions) and a __dict__ holding a
        # mappingproxy, which cannot be pickled: rebuild with the failures instead.
        state = {k: v for k, v in vars(self).items() if k not in ("_failures", "result")}
        return (type(self), (self.message, list(self.exceptions), dict(self._failures)), state)

    def derive(self, excs: Sequence[Exception]) -> DagError:  # type: ignore[override]  # narrower
        """A `DagError` with the same message over `excs`, keeping the `failures` among them.

        Called by `split()`/`subgroup()`, and so by `except*`: the parts stay `DagError`s.
        """
        kept = {name: exc for name, exc in self._failures.items() if exc in excs}
        return DagError(self.message, excs, kept)


_WHY_NO_RESULT = {
    "PENDING": " (it did not run: not needed for targets=, or the run stopped first)",
    "SKIPPED": " (it raised Skip, or a node it depends on failed or skipped)",
    "CANCELLED": " (the run stopped while it was running)",
}


class NodeNotCompletedError(Exception):
    """A result was asked of a node that did not succeed in that run (`result[node]`).

    `node_name` is the node's name and `status` its `NodeStatus` in that run. When the node
    failed, its exception is this error's `__cause__` (on the raising side; like every
    `__cause__`, it is not pickled).
    """

    def __init__(
        self,
        node_name: str,
        status: NodeStatus,
        *,
        has_cause: bool = False,
        why: str | None = None,
    ) -> None:
        if has_cause:
            why = "its exception is the __cause__ of this error"
        because = f" ({why})" if why else _WHY_NO_RESULT.get(status.name, "")
        super().__init__(f"node {node_name!r} has no result: its status is {status.name}{because}")
        self.node_name = node_name
        self.status = status

    def __reduce__(self) -> tuple[object, ...]:
        # Rebuilt from its message (the default would call __init__ with the message alone).
        return (_not_completed, (str(self), self.node_name, self.status), vars(self))


def _not_completed(message: str, node_name: str, status: NodeStatus) -> NodeNotCompletedError:
    exc = NodeNotCompletedError.__new__(NodeNotCompletedError, message)
    Exception.__init__(exc, message)
    exc.node_name, exc.status = node_name, status
    return exc
