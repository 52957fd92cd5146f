"""`add_resource`: the four factory shapes, exactly-once cleanup, and failures reaching resources.

SPEC sections 1, 4 and 10 ("Failures and resources").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
    suppress,
)
from types import TracebackType
from typing import Any, Literal

import pytest

from dagwire import Dag, DagDefinitionError, DagError, NodeStatus, Retry, build_dag

# What each resource saw at its exit: ("exit", name, exception or None).
Seen = list[tuple[str, str, BaseException | None]]


def notes(exc: BaseException) -> str:
    return " | ".join(getattr(exc, "__notes__", []))


async def forever() -> None:
    """Wait until cancelled; fail (rather than hang the suite) if nothing ever cancels it."""
    await asyncio.sleep(5)
    raise AssertionError("nothing cancelled this wait")


# -- the four factory shapes ---------------------------------------------------------------


def async_gen_factory(name: str, seen: Seen) -> Callable[..., AsyncGenerator[str, None]]:
    async def factory(*args: object) -> AsyncGenerator[str, None]:
        seen.append(("enter", name, None))
        try:
            yield f"{name}{args}"
        except BaseException as exc:
            seen.append(("exit", name, exc))
            raise
        seen.append(("exit", name, None))

    return factory


def sync_gen_factory(name: str, seen: Seen) -> Callable[..., Generator[str, None, None]]:
    def factory(*args: object) -> Generator[str, None, None]:
        seen.append(("enter", name, None))
        try:
            yield f"{name}{args}"
        except BaseException as exc:
            seen.append(("exit", name, exc))
            raise
        seen.append(("exit", name, None))

    return factory


class AsyncCM:
    def __init__(self, name: str, seen: Seen, args: tuple[object, ...]) -> None:
        self.name, self.seen, self.args = name, seen, args

    async def __aenter__(self) -> str:
        await asyncio.sleep(0)
        self.seen.append(("enter", self.name, None))
        return f"{self.name}{self.args}"

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert (et is None) == (exc is None)
        assert exc is None or (et is type(exc) and tb is exc.__traceback__)
        self.seen.append(("exit", self.name, exc))


class SyncCM:
    def __init__(self, name: str, seen: Seen, args: tuple[object, ...]) -> None:
        self.name, self.seen, self.args = name, seen, args

    def __enter__(self) -> str:
        self.seen.append(("enter", self.name, None))
        return f"{self.name}{self.args}"

    def __exit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert (et is None) == (exc is None)
        assert exc is None or (et is type(exc) and tb is exc.__traceback__)
        self.seen.append(("exit", self.name, exc))


def async_cm_factory(name: str, seen: Seen) -> Callable[..., AsyncCM]:
    def factory(*args: object) -> AsyncCM:
        return AsyncCM(name, seen, args)

    return factory


def sync_cm_factory(name: str, seen: Seen) -> Callable[..., SyncCM]:
    def factory(*args: object) -> SyncCM:
        return SyncCM(name, seen, args)

    return factory


def contextlib_async_factory(
    name: str, seen: Seen
) -> Callable[..., AbstractAsyncContextManager[str]]:
    return asynccontextmanager(async_gen_factory(name, seen))


def contextlib_sync_factory(name: str, seen: Seen) -> Callable[..., AbstractContextManager[str]]:
    return contextmanager(sync_gen_factory(name, seen))


# Parametrized over shapes, a factory is typed Any (each shape alone is precisely typed above).
FACTORIES: dict[str, Callable[[str, Seen], Any]] = {
    "async_generator": async_gen_factory,
    "sync_generator": sync_gen_factory,
    "async_context_manager": async_cm_factory,
    "sync_context_manager": sync_cm_factory,
    "asynccontextmanager": contextlib_async_factory,
    "contextmanager": contextlib_sync_factory,
}
SHAPES = list(FACTORIES)


@pytest.mark.parametrize("shape", SHAPES)
async def test_value_flows_downstream_and_cleanup_runs_once_on_success(shape: str) -> None:
    seen: Seen = []
    make = FACTORIES[shape]
    with build_dag() as dag:
        x = dag.add_immediate_node(7)
        r = dag.add_resource(make("r", seen), x, name="r")
        user = dag.add_node(lambda v: f"used {v}", r)
    for run in range(2):  # a graph is reusable: each run sets up and cleans up its own resource
        result = await dag.invoke(None)
        assert result[r] == "r(7,)"
        assert result[user] == "used r(7,)"
        assert result.status(r) is NodeStatus.SUCCEEDED
        assert seen == [("enter", "r", None), ("exit", "r", None)] * (run + 1)


async def test_resource_receives_the_invoke_parameter_when_it_asks_for_it() -> None:
    seen: list[object] = []

    async def res(x: int, p: str) -> AsyncIterator[str]:
        seen.append((x, p))
        yield f"{p}{x}"

    with build_dag(str) as dag:
        r = dag.add_resource(res, dag.add_immediate_node(1))
    result = await dag.invoke("p")
    assert result[r] == "p1"
    assert seen == [(1, "p")]


@pytest.mark.parametrize("shape", ["async_generator", "sync_generator"])
async def test_generator_whose_setup_raised_before_yielding_is_not_cleaned_up_again(
    shape: str,
) -> None:
    log: list[str] = []
    boom = ValueError("cannot connect")

    async def agen() -> AsyncIterator[int]:
        try:
            raise boom
            yield 1  # makes this a generator
        finally:
            log.append("finally")

    def gen() -> Iterator[int]:
        try:
            raise boom
            yield 1  # makes this a generator
        finally:
            log.append("finally")

    with build_dag() as dag:
        r = dag.add_resource(agen if shape == "async_generator" else gen, name="r")
        dag.add_node(lambda x: log.append("user"), r)
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert log == ["finally"]
    assert list(info.value.exceptions) == [boom]
    assert "node 'r' failed in setup" in notes(boom)


async def test_context_manager_whose_enter_raised_gets_no_exit() -> None:
    log: list[str] = []
    boom = ConnectionError("no")

    class CM:
        async def __aenter__(self) -> int:
            raise boom

        async def __aexit__(self, *exc: object) -> None:
            log.append("exit")

    with build_dag() as dag:
        dag.add_resource(CM, name="r")
    result = await dag.invoke(None, on_error="continue")
    assert log == []
    assert [(f.node, f.phase, f.error) for f in result.errors] == [("r", "setup", boom)]


async def test_resource_setup_retried_is_cleaned_up_once() -> None:
    """Only the setup that succeeded registers a cleanup; the failed attempt closed itself."""
    log: list[str] = []
    calls = 0

    async def res() -> AsyncIterator[int]:
        nonlocal calls
        calls += 1
        n = calls
        try:
            if n == 1:
                raise ConnectionError("first attempt")
            yield n
        finally:
            log.append(f"finally {n}")

    with build_dag() as dag:
        r = dag.add_resource(res, retry=Retry(attempts=2, initial_delay=0.001))
    result = await dag.invoke(None)
    assert result[r] == 2
    assert log == ["finally 1", "finally 2"]


@pytest.mark.parametrize("fail", [False, True], ids=["success", "failure"])
async def test_async_generator_yielding_twice_is_reported(fail: bool) -> None:
    log: list[str] = []

    async def twice() -> AsyncIterator[int]:
        try:
            with suppress(ValueError):
                yield 1
            yield 2
        finally:
            log.append("closed")

    def body(x: int) -> int:
        if fail:
            raise ValueError("body")
        return x

    with build_dag() as dag:
        r = dag.add_resource(twice, name="twice")
        dag.add_node(body, r, name="body")
    result = await dag.invoke(None, on_error="continue")
    assert log == ["closed"]
    cleanup_errors = [f.error for f in result.errors if f.node == "twice"]
    assert len(cleanup_errors) == 1
    assert isinstance(cleanup_errors[0], RuntimeError)
    assert "more than once" in str(cleanup_errors[0])
    assert "node 'twice' failed in cleanup" in notes(cleanup_errors[0])


@pytest.mark.parametrize("fail", [False, True], ids=["success", "failure"])
async def test_sync_generator_yielding_twice_is_reported(fail: bool) -> None:
    log: list[str] = []

    def twice() -> Iterator[int]:
        try:
            with suppress(ValueError):
                yield 1
            yield 2
        finally:
            log.append("closed")

    def body(x: int) -> int:
        if fail:
            raise ValueError("body")
        return x

    with build_dag() as dag:
        r = dag.add_resource(twice, name="twice")
        dag.add_node(body, r)
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert log == ["closed"]
    err = info.value.failures["twice"]
    assert isinstance(err, RuntimeError)
    assert "more than once" in str(err)


@pytest.mark.parametrize("shape", ["async_generator", "sync_generator"])
async def test_generator_that_never_yields_is_a_setup_error(shape: str) -> None:
    async def agen() -> AsyncIterator[int]:
        return
        yield 1  # makes this a generator

    def gen() -> Iterator[int]:
        return
        yield 1  # makes this a generator

    with build_dag() as dag:
        dag.add_resource(agen if shape == "async_generator" else gen, name="empty")
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    err = info.value.failures["empty"]
    assert isinstance(err, RuntimeError)
    assert "without yielding" in str(err)


@pytest.mark.parametrize(
    "returned",
    [42, None, "text"],
)
async def test_factory_returning_something_else_is_a_clear_error(returned: Any) -> None:
    with build_dag() as dag:
        dag.add_resource(lambda: returned, name="bad")
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    err = info.value.failures["bad"]
    assert isinstance(err, TypeError)
    assert "'bad'" in str(err)
    assert "add_resource()" in str(err)
    assert "generator" in str(err)
    assert "context manager" in str(err)


def test_async_function_factory_is_rejected_at_build_time() -> None:
    async def not_a_cm() -> int:
        return 1

    wrong: Any = not_a_cm  # deliberately not a resource factory
    dag = Dag[None]()
    with pytest.raises(DagDefinitionError, match=r"async function that returns a value"):
        dag.add_resource(wrong, name="coro")


# -- the run's failure reaches resources ---------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
async def test_fail_fast_failure_is_thrown_into_every_open_resource(shape: str) -> None:
    seen: Seen = []
    boom = ValueError("body failed")
    make = FACTORIES[shape]

    def fail(a: str, b: str) -> None:
        raise boom

    with build_dag() as dag:
        a = dag.add_resource(make("a", seen), name="a")
        b = dag.add_resource(make("b", seen), a, name="b")
        unrelated = dag.add_resource(make("unrelated", seen), name="unrelated")
        dag.add_node(fail, a, b, after=[unrelated])
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert list(info.value.exceptions) == [boom]
    exits = {name: exc for kind, name, exc in seen if kind == "exit"}
    assert set(exits) == {"a", "b", "unrelated"}
    for exc in exits.values():
        assert exc is boom
    assert [name for kind, name, _ in seen if kind == "exit"].index("b") < [
        name for kind, name, _ in seen if kind == "exit"
    ].index("a")


class Transaction:
    """A transaction-like resource: commits on a clean exit, rolls back when given an error."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def __call__(self) -> AsyncIterator[list[str]]:
        self.log.append("begin")
        rows: list[str] = []
        try:
            yield rows
        except BaseException as exc:
            self.log.append(f"rollback {rows} ({type(exc).__name__})")
            raise
        else:
            self.log.append(f"commit {rows}")


@pytest.mark.parametrize("fail", [False, True], ids=["commit", "rollback"])
async def test_transaction_commits_on_success_and_rolls_back_on_failure(fail: bool) -> None:
    log: list[str] = []

    def insert(rows: list[str]) -> None:
        rows.append("row")

    def check(rows: list[str]) -> None:
        if fail:
            raise ValueError("credit limit")

    with build_dag() as dag:
        tx = dag.add_resource(Transaction(log))
        ins = dag.add_node(insert, tx)
        dag.add_node(check, tx, after=[ins])
    if fail:
        with pytest.raises(DagError):
            await dag.invoke(None)
        assert log == ["begin", "rollback ['row'] (ValueError)"]
    else:
        await dag.invoke(None)
        assert log == ["begin", "commit ['row']"]


async def test_recovered_failure_does_not_roll_back() -> None:
    """A failure covered by fallback= is not the run's failure: the transaction commits."""
    log: list[str] = []

    def failing(rows: list[str]) -> str:
        raise ConnectionError("flaky")

    with build_dag() as dag:
        tx = dag.add_resource(Transaction(log))
        n = dag.add_node(failing, tx, fallback="default")
    result = await dag.invoke(None)
    assert result[n] == "default"
    assert log == ["begin", "commit []"]


def swallowing_async_gen(log: list[str]) -> Any:
    async def factory() -> AsyncIterator[int]:
        try:
            yield 1
        except Exception:
            log.append("swallowed")
            return

    return factory


def swallowing_sync_gen(log: list[str]) -> Any:
    def factory() -> Iterator[int]:
        try:
            yield 1
        except Exception:
            log.append("swallowed")
            return

    return factory


def swallowing_async_cm(log: list[str]) -> Any:
    class CM:
        async def __aenter__(self) -> int:
            return 1

        async def __aexit__(self, *exc: object) -> bool:
            log.append("swallowed")
            return True

    return CM


def swallowing_sync_cm(log: list[str]) -> Any:
    class CM:
        def __enter__(self) -> int:
            return 1

        def __exit__(self, *exc: object) -> bool:
            log.append("swallowed")
            return True

    return CM


SWALLOWERS = {
    "async_generator": swallowing_async_gen,
    "sync_generator": swallowing_sync_gen,
    "async_context_manager": swallowing_async_cm,
    "sync_context_manager": swallowing_sync_cm,
}


@pytest.mark.parametrize("shape", list(SWALLOWERS))
async def test_a_resource_cannot_swallow_the_runs_failure(shape: str) -> None:
    log: list[str] = []
    boom = ValueError("body failed")

    def fail(x: int) -> None:
        raise boom

    with build_dag() as dag:
        r = dag.add_resource(SWALLOWERS[shape](log), name="r")
        dag.add_node(fail, r, name="body")
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert log == ["swallowed"]
    assert list(info.value.exceptions) == [boom]  # swallowing is not a cleanup failure either
    result = await dag.invoke(None, on_error="continue")
    assert not result.ok


@pytest.mark.parametrize("shape", SHAPES)
async def test_continue_mode_resource_hears_the_failure_of_a_transitive_dependent(
    shape: str,
) -> None:
    seen: Seen = []
    boom = ValueError("deep failure")
    make = FACTORIES[shape]

    def fail(x: object) -> None:
        raise boom

    with build_dag() as dag:
        base = dag.add_resource(make("base", seen), name="base")
        mid = dag.add_node(lambda x: x, base, name="mid")
        failing = dag.add_node(fail, mid, name="failing")
        dag.add_node(lambda x: x, failing, name="skipped")
        healthy = dag.add_resource(make("healthy", seen), name="healthy")
        ok_user = dag.add_node(lambda x: x, healthy, name="ok_user")
    result = await dag.invoke(None, on_error="continue")
    assert not result.ok
    assert result[ok_user] == "healthy()"
    exits = {name: exc for kind, name, exc in seen if kind == "exit"}
    assert exits == {"base": boom, "healthy": None}


async def test_continue_mode_resource_with_a_failed_and_a_healthy_user_hears_the_failure() -> None:
    seen: Seen = []
    boom = KeyError("one user failed")

    def fail(x: object) -> None:
        raise boom

    with build_dag() as dag:
        r = dag.add_resource(async_gen_factory("r", seen), name="r")
        dag.add_node(lambda x: x, r, name="healthy")
        dag.add_node(fail, r, name="failing")
    await dag.invoke(None, on_error="continue")
    assert [e for e in seen if e[0] == "exit"] == [("exit", "r", boom)]


@pytest.mark.parametrize("shape", SHAPES)
async def test_caller_cancellation_is_thrown_into_resources(shape: str) -> None:
    seen: Seen = []
    started = asyncio.Event()

    async def body(x: object) -> None:
        started.set()
        await forever()

    with build_dag() as dag:
        r = dag.add_resource(FACTORIES[shape]("r", seen))
        dag.add_node(body, r)
    task = asyncio.create_task(dag.invoke(None))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [(_, _, exc)] = [e for e in seen if e[0] == "exit"]
    assert isinstance(exc, asyncio.CancelledError)


async def test_resource_swallowing_cancellation_cannot_stop_it() -> None:
    log: list[str] = []
    started = asyncio.Event()

    async def res() -> AsyncIterator[int]:
        try:
            yield 1
        except asyncio.CancelledError:
            log.append("swallowed cancel")

    async def body(x: int) -> None:
        started.set()
        await forever()

    with build_dag() as dag:
        dag.add_node(body, dag.add_resource(res))
    task = asyncio.create_task(dag.invoke(None))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log == ["swallowed cancel"]


@pytest.mark.parametrize("shape", SHAPES)
async def test_invoke_timeout_reaches_resources_then_raises_timeout_error(shape: str) -> None:
    seen: Seen = []

    async def body(x: object) -> None:
        await forever()

    with build_dag() as dag:
        r = dag.add_resource(FACTORIES[shape]("r", seen))
        dag.add_node(body, r)
    with pytest.raises(TimeoutError) as info:
        await dag.invoke(None, timeout=0.02)
    assert type(info.value) is TimeoutError
    [(_, _, exc)] = [e for e in seen if e[0] == "exit"]
    assert isinstance(exc, TimeoutError)


async def test_failure_reaching_a_resource_is_the_failure_not_a_copy() -> None:
    """Two resources and two failing nodes (fail-fast): both resources get the first failure."""
    caught: list[BaseException] = []
    first = ValueError("first")

    async def res() -> AsyncIterator[int]:
        try:
            yield 1
        except Exception as exc:
            caught.append(exc)
            raise

    def fail_first(x: int) -> None:
        raise first

    with build_dag() as dag:
        r1 = dag.add_resource(res)
        r2 = dag.add_resource(res)
        dag.add_node(fail_first, r1, after=[r2])
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert caught == [first, first]
    assert caught[0] is first
    assert caught[1] is first
    assert info.value.exceptions == (first,)


async def test_resource_cleanup_order_with_post_hooks_of_users() -> None:
    log: list[str] = []

    def res(name: str) -> Callable[..., Any]:
        async def gen(*_: object) -> AsyncIterator[str]:
            yield name
            log.append(f"close {name}")

        return gen

    with build_dag() as dag:
        conn = dag.add_resource(res("conn"), post=lambda: log.append("conn post"))
        tx = dag.add_resource(res("tx"), conn)
        dag.add_node(lambda t: None, tx, post=lambda: log.append("user post"))
    await dag.invoke(None)
    assert log == ["user post", "close tx", "close conn", "conn post"]


@pytest.mark.parametrize("is_async", [True, False], ids=["__aexit__", "__exit__"])
async def test_exit_re_raising_the_runs_failure_is_not_a_second_failure(is_async: bool) -> None:
    boom = ValueError("body failed")

    class AsyncReRaiser:
        async def __aenter__(self) -> int:
            return 1

        async def __aexit__(self, et: object, exc: BaseException | None, tb: object) -> None:
            if exc is not None:
                raise exc

    class ReRaiser:
        def __enter__(self) -> int:
            return 1

        def __exit__(self, et: object, exc: BaseException | None, tb: object) -> None:
            if exc is not None:
                raise exc

    def fail(x: int) -> None:
        raise boom

    with build_dag() as dag:
        r = dag.add_resource(AsyncReRaiser if is_async else ReRaiser, name="r")
        dag.add_node(fail, r, name="body")
    with pytest.raises(DagError) as info:
        await dag.invoke(None)
    assert info.value.exceptions == (boom,)
    assert notes(boom) == "dagwire: node 'body' failed in body"


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("on_error", ["raise", "continue"])
async def test_a_failed_cleanup_reaches_the_resources_above_it_not_the_others(
    on_error: Literal["raise", "continue"], kind: str
) -> None:
    # `top` uses `mid`, which uses `base`; `top`'s exit fails: `mid` and `base` must roll back
    # (hear it), the independent `other` must not, whatever the order they go in. (With sync
    # exits only, the cleanup phase runs them one after another in the caller.)
    heard: dict[str, BaseException | None] = {}
    exit_error = KeyError("top's exit failed")

    def sync_resource(name: str) -> Callable[..., Iterator[str]]:
        def make(*_: str) -> Iterator[str]:
            try:
                yield name
            except BaseException as exc:
                heard[name] = exc
                raise
            heard[name] = None
            if name == "top":
                raise exit_error

        return make

    def async_resource(name: str) -> Callable[..., AsyncIterator[str]]:
        async def make(*_: str) -> AsyncIterator[str]:
            try:
                yield name
            except BaseException as exc:
                heard[name] = exc
                raise
            await asyncio.sleep(0)
            heard[name] = None
            if name == "top":
                raise exit_error

        return make

    resource = sync_resource if kind == "sync" else async_resource

    with build_dag() as dag:
        base = dag.add_resource(resource("base"), name="base")
        dag.add_resource(resource("other"), name="other")
        mid = dag.add_resource(resource("mid"), base, name="mid")
        dag.add_resource(resource("top"), mid, name="top")

    if on_error == "raise":
        with pytest.raises(DagError) as info:
            await dag.invoke(None)
        assert set(info.value.failures) == {"top"}
    else:
        result = await dag.invoke(None, on_error="continue")
        assert [f.node for f in result.errors] == ["top"]
    assert heard == {"top": None, "mid": exit_error, "base": exit_error, "other": None}
