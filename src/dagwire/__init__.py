"""dagwire: typed, in-process dataflow DAGs for asyncio.

Wire async (or sync) functions together by passing the handles of upstream nodes as arguments;
each node starts the moment its own inputs are ready; results come back through typed handles;
resources acquired along the way are always released, in the right order, whatever fails.
"""

import logging as _logging

from .cache import Cache
from .context import RunContext, current
from .errors import (
    CircuitOpenError,
    DagDefinitionError,
    DagError,
    NodeCancelledError,
    NodeNotCompletedError,
    RetryableError,
    Skip,
)
from .events import Event
from .graph import Dag, build_dag
from .node import Node
from .policies import BreakerState, CircuitBreaker, Limiter, Retry
from .results import ExecutionResult, Interval, NodeCompletion, NodeFailure, NodeTiming
from .status import NodeStatus

__all__ = [
    "BreakerState",
    "Cache",
    "CircuitBreaker",
    "CircuitOpenError",
    "Dag",
    "DagDefinitionError",
    "DagError",
    "Event",
    "ExecutionResult",
    "Interval",
    "Limiter",
    "Node",
    "NodeCancelledError",
    "NodeCompletion",
    "NodeFailure",
    "NodeNotCompletedError",
    "NodeStatus",
    "NodeTiming",
    "Retry",
    "RetryableError",
    "RunContext",
    "Skip",
    "build_dag",
    "current",
]

__version__ = "0.1.0"

# Silent unless the application configures logging: the library's records go nowhere by default.
_logging.getLogger("dagwire").addHandler(_logging.NullHandler())
