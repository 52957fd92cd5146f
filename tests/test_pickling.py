"""Every exception dagwire raises survives pickle (and so a process pool) with its message and
attributes; a DagError keeps its exceptions, their notes and its `failures`."""

from __future__ import annotations

import asyncio
import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

import dagwire
from dagwire import (
    CircuitOpenError,
    DagDefinitionError,
    DagError,
    NodeCancelledError,
    NodeNotCompletedError,
    NodeStatus,
    RetryableError,
    Skip,
    build_dag,
)


def samples() -> dict[type[BaseException], BaseException]:
    """One instance of each exception class dagwire exports, with its attributes set."""
    cause = ValueError("inner")
    return {
        DagDefinitionError: DagDefinitionError("add_node(f): timeout=0 must be positive"),
        RetryableError: RetryableError("try again"),
        CircuitOpenError: CircuitOpenError("circuit open after 5 failures"),
        NodeCancelledError: NodeCancelledError.wrapping(cause, "node 'x'"),
        NodeNotCompletedError: NodeNotCompletedError("x", NodeStatus.FAILED, has_cause=True),
        DagError: DagError("dag 'd' failed", [cause, KeyError("k")], {"x": cause}),
        Skip: Skip("nothing to do today"),
    }


def exported_exceptions() -> set[type[BaseException]]:
    exported = (getattr(dagwire, name) for name in dagwire.__all__)
    return {c for c in exported if isinstance(c, type) and issubclass(c, BaseException)}


def test_every_exported_exception_has_a_sample() -> None:
    # A new exception class must be added to samples(), so that it is checked below.
    assert exported_exceptions() == set(samples())


def same(a: BaseException, b: BaseException) -> None:
    assert type(a) is type(b)
    assert str(a) == str(b)
    assert getattr(a, "__notes__", None) == getattr(b, "__notes__", None)
    if isinstance(a, Skip):
        assert isinstance(b, Skip)
        assert a.reason == b.reason
    if isinstance(a, NodeNotCompletedError):
        assert isinstance(b, NodeNotCompletedError)
        assert (a.node_name, a.status) == (b.node_name, b.status)
    if isinstance(a, DagError):
        assert isinstance(b, DagError)
        assert a.message == b.message
        assert len(a.exceptions) == len(b.exceptions)
        for x, y in zip(a.exceptions, b.exceptions, strict=True):
            same(x, y)
        assert a.failures.keys() == b.failures.keys()
        for name, exc in b.failures.items():  # still the very exceptions of the group
            assert any(exc is e for e in b.exceptions)
            same(a.failures[name], exc)


@pytest.mark.parametrize("cls", list(samples()), ids=lambda c: c.__name__)
def test_round_trip(cls: type[BaseException]) -> None:
    exc = samples()[cls]
    exc.add_note("a note")
    for protocol in range(pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL + 1):
        same(exc, pickle.loads(pickle.dumps(exc, protocol)))


async def test_a_dag_error_of_a_real_run_round_trips() -> None:
    def broken() -> int:
        raise LookupError("missing")

    with build_dag() as dag:
        dag.add_node(broken, name="broken")
    with pytest.raises(DagError) as caught:
        await dag.invoke(None)
    copy = pickle.loads(pickle.dumps(caught.value))
    same(caught.value, copy)
    assert isinstance(copy.failures["broken"], LookupError)
    assert "node 'broken' failed in body" in " ".join(copy.failures["broken"].__notes__)
    # A split keeps the type and the failures (`except*` relies on it), after a round trip too.
    match, _ = copy.split(LookupError)
    assert isinstance(match, DagError)
    assert set(match.failures) == {"broken"}


def raise_in_worker(kind: str) -> None:
    """Runs in a worker process: raise one of dagwire's exceptions there."""
    if kind == "DagError":

        def broken() -> int:
            raise LookupError("missing")

        with build_dag() as dag:
            dag.add_node(broken, name="broken")
        asyncio.run(dag.invoke(None))
        raise AssertionError("the run should have failed")
    raise samples()[getattr(dagwire, kind)]


@pytest.mark.parametrize("kind", sorted(c.__name__ for c in samples()))
async def test_exceptions_cross_a_process_pool(kind: str) -> None:
    loop = asyncio.get_running_loop()
    with (
        ProcessPoolExecutor(max_workers=1) as pool,
        pytest.raises(BaseException) as caught,  # noqa: PT011 - the type is checked below
    ):
        await loop.run_in_executor(pool, raise_in_worker, kind)
    got = caught.value
    assert type(got).__name__ == kind
    if kind == "DagError":
        assert isinstance(got, DagError)
        assert isinstance(got.failures["broken"], LookupError)
        assert got.exceptions[0] is got.failures["broken"]
        assert "node 'broken' failed in body" in " ".join(got.failures["broken"].__notes__)
    else:
        same(samples()[type(got)], got)
