"""Correct code: mypy --strict and pyright (strict) must accept every line and agree with each
`assert_type`. Checked by tests/test_typing.py; never run (only definitions at module level).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from io import StringIO
from typing import Any, Literal, TypeVar, assert_type

from dagwire import (
    Cache,
    Dag,
    ExecutionResult,
    Limiter,
    Node,
    NodeCompletion,
    NodeStatus,
    Retry,
    build_dag,
)
from dagwire.events import AnyEvent, Event, NodeFailed, NodeRetrying, NodeSkipped, RunFinished

T = TypeVar("T")


@dataclass
class Params:
    user_id: int
    greeting: str


class Conn:
    async def __aenter__(self) -> Conn:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def query(self, sql: str) -> list[int]:
        return [len(sql)]


# -- functions with 0..10 inputs, sync and async ------------------------------------------


async def a0() -> int:
    return 0


def s0() -> str:
    return ""


async def a1(x: int) -> str:
    return str(x)


def s1(x: str) -> bytes:
    return x.encode()


async def a2(x: int, y: str) -> float:
    return x + len(y)


def s2(x: bytes, y: float) -> list[int]:
    return [len(x), int(y)]


def s3(x: int, y: str, z: bytes) -> tuple[int, str, bytes]:
    return x, y, z


async def a4(x: int, y: str, z: bytes, w: float) -> dict[str, int]:
    return {y: x + len(z) + int(w)}


def s5(v1: int, v2: int, v3: int, v4: int, v5: str) -> set[str]:
    return {v5 * (v1 + v2 + v3 + v4)}


async def a6(v1: int, v2: int, v3: int, v4: int, v5: int, v6: str) -> frozenset[str]:
    return frozenset({v6 * (v1 + v2 + v3 + v4 + v5)})


def s7(v1: int, v2: int, v3: int, v4: int, v5: int, v6: int, v7: bool) -> complex:
    return complex(v1 + v2 + v3 + v4 + v5 + v6, v7)


async def a8(v1: int, v2: int, v3: int, v4: int, v5: int, v6: int, v7: int, v8: str) -> bytearray:
    return bytearray((v8 * (v1 + v2 + v3 + v4 + v5 + v6 + v7)).encode())


def s9(
    v1: int, v2: int, v3: int, v4: int, v5: int, v6: int, v7: int, v8: int, v9: float
) -> range:
    return range(v1 + v2 + v3 + v4 + v5 + v6 + v7 + v8 + int(v9))


async def a10(
    v1: int, v2: int, v3: int, v4: int, v5: int, v6: int, v7: int, v8: int, v9: int, v10: str
) -> memoryview:
    return memoryview((v10 * (v1 + v2 + v3 + v4 + v5 + v6 + v7 + v8 + v9)).encode())


def s12(
    v1: int, v2: int, v3: int, v4: int, v5: int, v6: int, v7: int, v8: int, v9: int, v10: int,
    v11: int, v12: str,
) -> str:
    return v12 * (v1 + v2 + v3 + v4 + v5 + v6 + v7 + v8 + v9 + v10 + v11)


untyped_callable: Any = len


# -- the injected parameter: one more trailing argument than inputs -------------------------


async def fetch_user(user_id: int, params: Params) -> str:
    return f"{params.greeting} {user_id}"


def only_params(params: Params) -> int:
    return params.user_id


async def only_params_async(params: Params) -> str:
    return params.greeting


def s10_inject(
    v1: int, v2: int, v3: int, v4: int, v5: int, v6: int, v7: int, v8: int, v9: int, v10: int,
    params: Params,
) -> str:
    return params.greeting * (v1 + v2 + v3 + v4 + v5 + v6 + v7 + v8 + v9 + v10)


def with_default(x: int, y: int = 1) -> int:  # one input given: y keeps its default
    return x + y


def identity(x: T) -> T:
    return x


def returns_future(x: int) -> asyncio.Future[str]:  # a sync callable returning an awaitable:
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()  # awaited at run time
    future.set_result(str(x))
    return future


# -- resource factories of every kind -------------------------------------------------------


async def async_gen_resource() -> AsyncIterator[Conn]:
    yield Conn()


async def async_generator_resource(dsn: str) -> AsyncGenerator[Conn, None]:
    yield Conn()


def sync_gen_resource(path: str) -> Iterator[bytes]:
    yield path.encode()


def generator_resource(n: int, params: Params) -> Generator[list[int], None, None]:
    yield [n, params.user_id]


@asynccontextmanager
async def async_cm_resource(conn: Conn, label: str) -> AsyncGenerator[set[str]]:
    yield {label}


@contextmanager
def cm_resource() -> Generator[float]:
    yield 1.0


def returns_cm(x: int) -> AbstractContextManager[int]:
    return nullcontext(x)


def returns_async_cm_class(params: Params) -> Conn:  # __aenter__ returns Conn
    return Conn()


def log_params(params: Params) -> None:
    print(params)


class Service:
    def __init__(self, factor: int) -> None:
        self.factor = factor

    async def scale(self, x: int) -> int:
        return x * self.factor


async def check_add_node() -> None:
    with build_dag(Params) as dag:
        assert_type(dag, Dag[Params])
        assert_type(dag.params, Node[Params])
        i = assert_type(dag.add_node(a0), Node[int])
        s = assert_type(dag.add_node(s0), Node[str])
        b = assert_type(dag.add_node(s1, s), Node[bytes])
        f = assert_type(dag.add_node(a2, i, s), Node[float])
        t = assert_type(dag.add_node(a1, i), Node[str])
        assert_type(dag.add_node(s2, b, f), Node[list[int]])
        assert_type(dag.add_node(s3, i, s, b), Node[tuple[int, str, bytes]])
        assert_type(dag.add_node(a4, i, t, b, f), Node[dict[str, int]])
        assert_type(dag.add_node(s5, i, i, i, i, s), Node[set[str]])
        assert_type(dag.add_node(a6, i, i, i, i, i, s), Node[frozenset[str]])
        assert_type(dag.add_node(s7, i, i, i, i, i, i, dag.add_node(bool)), Node[complex])
        assert_type(dag.add_node(a8, i, i, i, i, i, i, i, s), Node[bytearray])
        assert_type(dag.add_node(s9, i, i, i, i, i, i, i, i, f), Node[range])
        assert_type(dag.add_node(a10, i, i, i, i, i, i, i, i, i, s), Node[memoryview])

        # immediates (plain values) mixed with nodes, in any position
        assert_type(dag.add_node(a1, 3), Node[str])
        assert_type(dag.add_node(a2, 1, s), Node[float])
        assert_type(dag.add_node(a2, i, "x"), Node[float])
        assert_type(dag.add_node(s7, 1, i, 2, i, 3, i, True), Node[complex])
        assert_type(dag.add_node(a10, i, 2, i, 4, i, 6, i, 8, i, "x"), Node[memoryview])
        assert_type(dag.add_node(s2, b, 2), Node[list[int]])  # an int where a float is wanted

        # a Node[T] goes where a supertype of T is wanted (Node is covariant)
        assert_type(dag.add_node(s2, b, i), Node[list[int]])
        assert_type(dag.add_node(str, dag.params), Node[str])

        # the injected parameter, and dag.params as its explicit alternative
        assert_type(dag.add_node(only_params), Node[int])
        assert_type(dag.add_node(only_params_async), Node[str])
        assert_type(dag.add_node(only_params, dag.params), Node[int])
        assert_type(dag.add_node(fetch_user, i), Node[str])
        assert_type(dag.add_node(fetch_user, 42), Node[str])
        assert_type(dag.add_node(s10_inject, i, i, i, i, i, i, i, i, i, 10), Node[str])
        assert_type(dag.add_node(with_default, i), Node[int])

        # generic and overloaded callables, classes, a sync callable returning an awaitable
        assert_type(dag.add_node(identity, t), Node[str])
        assert_type(dag.add_node(identity, 1.5), Node[float])
        assert_type(dag.add_node(len, s), Node[int])
        assert_type(dag.add_node(int, s), Node[int])
        assert_type(dag.add_node(Params, i, s), Node[Params])
        assert_type(dag.add_node(returns_future, i), Node[str])

        # lambdas, bound methods, partials, a built graph
        uid = assert_type(dag.add_node(lambda p: p.user_id, dag.params), Node[int])
        assert_type(dag.add_node(lambda p: p.greeting), Node[str])
        assert_type(dag.add_node(lambda x, y: x * y, uid, t), Node[str])
        assert_type(dag.add_node(lambda: 1.5), Node[float])
        assert_type(dag.add_node(Service(2).scale, uid), Node[int])
        assert_type(dag.add_node(partial(a2, 1), s), Node[float])
        inner = Dag[Params]()
        inner.freeze()
        assert_type(dag.add_node(inner, dag.params), Node[ExecutionResult[Params]])
        assert_type(dag.add_node(inner), Node[ExecutionResult[Params]])

        # beyond the typed arity: accepted, untyped
        assert_type(dag.add_node(s12, i, i, i, i, i, i, i, i, i, i, i, "x"), Node[Any])
        # a callable typed Any (an untyped library's, say): untyped, and nothing reported
        assert_type(dag.add_node(untyped_callable, i), Node[Any])

        # options, all keyword-only
        assert_type(
            dag.add_node(
                s1,
                s,
                name="encode",
                after=[i, f],
                timeout=1.5,
                retry=Retry(attempts=3),
                fallback=b"",
                limiter=Limiter(2),
                executor="thread",
                pre=lambda: None,
                post=log_params,
                tags=("io",),
                cleanup_timeout=2,
            ),
            Node[bytes],
        )
        assert_type(dag.add_node(a1, i, retry=2, after=t, tags=["x"]), Node[str])
        assert_type(dag.join(t, f), Node[None])
        assert_type(dag.add_immediate_node(3), Node[int])

    result = await dag.invoke(Params(1, "hi"))
    assert_type(result, ExecutionResult[Params])
    assert_type(result[t], str)
    assert_type(t.extract_result(result), str)
    assert_type(result[dag.params], Params)
    assert_type(result.params, Params)
    assert_type(await dag(Params(2, "ho")), ExecutionResult[Params])


async def check_add_resource() -> None:
    with build_dag(Params) as dag:
        conn = assert_type(dag.add_resource(async_gen_resource), Node[Conn])
        dsn = dag.add_node(lambda p: p.greeting, dag.params)
        assert_type(dag.add_resource(async_generator_resource, dsn), Node[Conn])
        assert_type(dag.add_resource(async_generator_resource, "sqlite://"), Node[Conn])
        assert_type(dag.add_resource(sync_gen_resource, "/tmp/x"), Node[bytes])
        assert_type(dag.add_resource(generator_resource, 3), Node[list[int]])  # injected
        assert_type(dag.add_resource(async_cm_resource, conn, "label"), Node[set[str]])
        assert_type(dag.add_resource(cm_resource), Node[float])
        assert_type(dag.add_resource(returns_cm, 1), Node[int])
        assert_type(dag.add_resource(returns_async_cm_class), Node[Conn])  # injected
        assert_type(dag.add_resource(Conn), Node[Conn])  # the class itself is the factory
        # an iterable context manager is entered, as at run time: the value is not a line
        assert_type(dag.add_resource(StringIO, "text"), Node[StringIO])
        lines = dag.add_resource(lambda p: nullcontext(p.user_id), dag.params)
        assert_type(lines, Node[int])
        assert_type(
            dag.add_resource(cm_resource, release="early", cleanup_timeout=1.0, name="cm"),
            Node[float],
        )
        rows = assert_type(dag.add_node(Conn.query, conn, "select 1"), Node[list[int]])

    result = await dag.invoke(Params(1, "x"))
    assert_type(result[rows], list[int])
    assert_type(rows.extract_result(result), list[int])


def check_build_dag() -> None:
    with build_dag() as dag:
        assert_type(dag, Dag[None])
        assert_type(dag.params, Node[None])
        assert_type(dag.add_node(lambda p: p), Node[None])
    with build_dag(Params, name="named") as named:
        assert_type(named, Dag[Params])
    assert_type(Dag[int](name="x").params, Node[int])


# -- fallback= is part of the node's type --------------------------------------------------


def maybe(x: int) -> int | None:
    return x or None


def to_float(x: int) -> float:
    return x / 2


def check_fallback(dag: Dag[Params], i: Node[int], s: Node[str]) -> None:
    assert_type(dag.add_node(a1, i, fallback=""), Node[str])
    assert_type(dag.add_node(s1, s, fallback=b""), Node[bytes])
    assert_type(dag.add_node(s2, dag.add_node(s1, s), 1.0, fallback=[]), Node[list[int]])
    assert_type(dag.add_node(to_float, i, fallback=0), Node[float])  # an int is a float
    assert_type(dag.add_node(only_params, fallback=True), Node[int])  # a bool is an int
    # the value may be the fallback: None widens the node, unless the function returns None
    assert_type(dag.add_node(a1, i, fallback=None), Node[str | None])
    assert_type(dag.add_node(maybe, i, fallback=None), Node[int | None])
    assert_type(dag.add_node(lambda p: p.user_id, dag.params, fallback=0), Node[int])
    assert_type(dag.add_node(lambda p: p.greeting, fallback=None), Node[str | None])
    assert_type(dag.add_resource(cm_resource, fallback=0.0), Node[float])
    assert_type(dag.add_map(a1, [1, 2], fallback=[]), Node[list[str]])


# -- variadic functions: any number of inputs of one type ---------------------------------


def total(*parts: int) -> int:
    return sum(parts)


async def total_async(*parts: int) -> int:
    return sum(parts)


def check_variadic(dag: Dag[Params], i: Node[int], parts: list[Node[int]]) -> None:
    assert_type(dag.add_node(total, *parts), Node[int])
    assert_type(dag.add_node(total_async, *parts), Node[int])
    assert_type(dag.add_node(total, i, i, i), Node[int])
    assert_type(dag.add_node(total, i, 2, i), Node[int])
    assert_type(dag.add_node(total), Node[int])
    assert_type(dag.add_node(total, *[1, 2, 3]), Node[int])
    assert_type(dag.add_node(total, *parts, name="sum", fallback=0), Node[int])
    # beyond the typed arity too
    assert_type(dag.add_node(total, i, i, i, i, i, i, i, i, i, i, i, i, i, i), Node[int])
    # star-unpacked inputs into a function of fixed arity (up to the typed arity)
    assert_type(dag.add_node(a2, *(i, "x")), Node[float])


# -- functions returning iterators are not generator functions -----------------------------


def numbers(n: int) -> Iterator[int]:  # returns an iterator: a plain function, a value
    return iter(range(n))


async def fetch_stream(n: int) -> AsyncIterator[int]:  # awaited: its value is an iterator
    async def gen() -> AsyncIterator[int]:
        yield n

    return gen()


def check_iterators(dag: Dag[Params], i: Node[int]) -> None:
    assert_type(dag.add_node(numbers, i), Node[Iterator[int]])
    assert_type(dag.add_node(fetch_stream, i), Node[AsyncIterator[int]])
    assert_type(dag.add_node(list, dag.add_node(numbers, i)), Node[list[int]])


# -- add_map: fn(item, *others) per item, results in order ---------------------------------


def scale(x: int, factor: float) -> float:
    return x * factor


def user_ids(params: Params) -> list[int]:
    return [params.user_id, params.user_id + 1]


def greet_each(user_id: int, params: Params) -> str:
    return f"{params.greeting} {user_id}"


def check_add_map(dag: Dag[Params], i: Node[int], s: Node[str]) -> None:
    ids = assert_type(dag.add_node(user_ids), Node[list[int]])
    assert_type(dag.add_map(a1, ids), Node[list[str]])  # async
    assert_type(dag.add_map(s1, ["a", "b"]), Node[list[bytes]])  # sync, plain iterable
    assert_type(dag.add_map(str, range(3)), Node[list[str]])
    assert_type(dag.add_map(lambda x: x * 2, ids), Node[list[int]])
    assert_type(dag.add_map(scale, ids, 0.5), Node[list[float]])
    assert_type(dag.add_map(scale, ids, dag.add_node(to_float, i)), Node[list[float]])
    assert_type(dag.add_map(lambda x, k: x * k, ids, s), Node[list[str]])
    assert_type(
        dag.add_map(a1, ids, limit=4, timeout=2.0, retry=3, executor="thread", name="each"),
        Node[list[str]],
    )
    # the injected parameter, last, as in add_node
    assert_type(dag.add_map(greet_each, ids), Node[list[str]])
    assert_type(dag.add_map(fetch_user, [1, 2]), Node[list[str]])
    # a built graph runs once per item
    inner = Dag[Params]()
    inner.freeze()
    many = dag.add_node(lambda p: [p, p], dag.params)
    assert_type(dag.add_map(inner, many), Node[list[ExecutionResult[Params]]])


# -- cache=: any Cache, the node keeps its type --------------------------------------------


def cache_key(user_id: int) -> int:
    return user_id


def check_cache(dag: Dag[Params], i: Node[int]) -> None:
    cache = Cache(ttl=30.0, maxsize=100, key=cache_key)
    assert_type(dag.add_node(a1, i, cache=cache), Node[str])
    assert_type(dag.add_node(lambda p: p.user_id, dag.params, cache=cache), Node[int])
    assert_type(dag.add_node(fetch_user, i, cache=None), Node[str])


# -- streaming and batches -----------------------------------------------------------------


async def check_stream_and_batches(dag: Dag[Params], t: Node[str]) -> None:
    async for done in dag.stream(Params(1, "x"), on_error="continue", timeout=5.0):
        assert_type(done, NodeCompletion)
        assert_type(done.node, Node[object])
        assert_type(done.status, NodeStatus)
        assert_type(done.value, object)
        assert_type(done.error, BaseException | None)
        assert_type(done.time, float)
    results = await dag.invoke_many([Params(1, "x"), Params(2, "y")], concurrency=4)
    assert_type(results, list[ExecutionResult[Params]])
    assert_type(results[0][t], str)
    assert_type(
        await dag.invoke_many(
            (Params(n, "z") for n in range(3)),
            on_error="continue",
            progress=lambda done, total: print(done, total),
        ),
        list[ExecutionResult[Params]],
    )


# -- events: narrowed by class or by kind ----------------------------------------------------


def observer(event: AnyEvent) -> None:
    if event.kind == "node_failed":
        assert_type(event, NodeFailed)
        assert_type(event.recovered, bool)
        assert_type(event.error, BaseException | None)
    elif event.kind == "node_retrying":
        assert_type(event, NodeRetrying)
        assert_type(event.delay, float)
    elif event.kind == "run_finished":
        assert_type(event.ok, bool)
    match event:
        case NodeSkipped(cause=cause):
            assert_type(cause, str | None)
        case RunFinished():
            assert_type(event.node, str | None)
        case _:
            assert_type(event.time, float)
    if isinstance(event, NodeFailed):
        assert_type(event.kind, Literal["node_failed"])


def plain_observer(event: Event) -> None:  # the base class: fields every event has
    assert_type(event.kind, str)
    assert_type(event.time, float)
    assert_type(event.attempt, int)
    assert_type(event.duration, float | None)
