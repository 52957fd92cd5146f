"""Deliberate misuse: every marked line must be reported, by mypy --strict and by pyright.

Each such line carries `# type: ignore[<mypy code>]  # <why>`. mypy (warn_unused_ignores, part of
--strict) and pyright (the setting below) both fail on an ignore that suppresses nothing, so a
misuse that stops being reported fails tests/test_typing.py. Never run: definitions only.
"""
# pyright: reportUnnecessaryTypeIgnoreComment=error

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Generator
from dataclasses import dataclass

from dagwire import Cache, Dag, Node, build_dag
from dagwire.events import AnyEvent


@dataclass
class Params:
    user_id: int


@dataclass
class OtherParams:
    name: str


def needs_int(x: int) -> str:
    return str(x)


async def needs_int_async(x: int) -> str:
    return str(x)


def needs_int_str(x: int, y: str) -> str:
    return y * x


def wants_other(x: int, params: OtherParams) -> str:
    return params.name * x


def wants_params(params: Params) -> int:
    return params.user_id


def ten(
    v1: int, v2: int, v3: int, v4: int, v5: int, v6: int, v7: int, v8: int, v9: int, v10: int
) -> int:
    return v1 + v2 + v3 + v4 + v5 + v6 + v7 + v8 + v9 + v10


async def conn(dsn: str) -> AsyncIterator[bytes]:
    yield dsn.encode()


async def fetch() -> int:
    return 1


async def check_wiring(dag: Dag[Params], i: Node[int], s: Node[str]) -> None:
    dag.add_node(needs_int, s)  # type: ignore[arg-type]  # Node[str] into an int parameter
    dag.add_node(needs_int_async, s)  # type: ignore[arg-type]  # the same, async
    dag.add_node(needs_int, "3")  # type: ignore[arg-type]  # an immediate of the wrong type
    dag.add_node(needs_int_str, s, i)  # type: ignore[arg-type]  # inputs swapped
    dag.add_node(ten, i, i, i, i, i, i, i, i, i, s)  # type: ignore[arg-type]  # 10th input wrong
    dag.add_node(ten, i, i, i, i, i, i, i, i, i, "x")  # type: ignore[arg-type]  # same, immediate
    dag.add_node(needs_int, i, i)  # type: ignore[arg-type]  # too many inputs for the function
    dag.add_node(needs_int_str, i, s, i)  # type: ignore[arg-type]  # too many inputs
    dag.add_node(needs_int_str)  # type: ignore[arg-type]  # too few: (x, y) is not (params)
    dag.add_node(wants_other, i)  # type: ignore[arg-type]  # injected parameter of another type
    dag.add_node(wants_params, i)  # type: ignore[arg-type]  # a Node[int] is not the Params
    dag.add_node(lambda p: p.name)  # type: ignore[arg-type, misc]  # Params has no .name
    dag.add_node(3)  # type: ignore[call-overload]  # not a callable
    x: Node[str] = dag.add_node(fetch)  # type: ignore[arg-type]  # async def gives Node[int]
    y: Node[int] = dag.add_node(needs_int, i)  # type: ignore[arg-type]  # it is Node[str]
    print(x, y)


def check_options(dag: Dag[Params], i: Node[int]) -> None:
    dag.add_node(needs_int, i, nmae="n")  # type: ignore[arg-type]  # misspelt option
    dag.add_node(needs_int, i, timeout="5")  # type: ignore[call-overload]  # timeout is a number
    dag.add_node(needs_int, i, retry=1.5)  # type: ignore[call-overload]  # Retry or int
    dag.add_node(needs_int, i, after=[3])  # type: ignore[arg-type, list-item]  # after= takes nodes
    dag.add_node(needs_int, i, executor="process")  # type: ignore[call-overload]  # "thread"/Executor
    dag.add_node(needs_int, i, release="early")  # type: ignore[arg-type]  # resources only
    dag.add_resource(conn, "db", release="late")  # type: ignore[call-overload]  # "end" or "early"


def check_resources(dag: Dag[Params], i: Node[int], s: Node[str]) -> None:
    dag.add_resource(conn, i)  # type: ignore[arg-type]  # Node[int] into a str parameter
    dag.add_resource(needs_int, i)  # type: ignore[arg-type]  # returns neither a CM nor a generator
    dag.add_resource(fetch)  # type: ignore[arg-type]  # a coroutine is not a resource
    z: Node[str] = dag.add_resource(conn, s)  # type: ignore[arg-type]  # it is Node[bytes]
    print(z)


async def check_running() -> None:
    with build_dag(Params) as dag:
        n = dag.add_node(needs_int, 1)
    await dag.invoke(OtherParams("x"))  # type: ignore[arg-type]  # the graph takes Params
    await dag.invoke(None)  # type: ignore[arg-type]  # None is not Params
    result = await dag(Params(1))
    a: int = result[n]  # type: ignore[assignment]  # result[n] is str
    b: bytes = n.extract_result(result)  # type: ignore[assignment]  # it is str
    print(a, b)
    with build_dag() as unparametrised:
        unparametrised.add_node(wants_params)  # type: ignore[arg-type]  # its parameter is None
    await unparametrised.invoke(Params(1))  # type: ignore[arg-type]  # takes None


def count(x: str) -> int:
    return len(x)


def total(*parts: int) -> int:
    return sum(parts)


async def ticks() -> AsyncGenerator[int]:
    yield 1


def lines(n: int) -> Generator[str]:
    yield str(n)


def check_fallback(dag: Dag[Params], s: Node[str]) -> None:
    a: Node[int] = dag.add_node(count, s, fallback="x")  # type: ignore[arg-type]  # int | str
    b: Node[int] = dag.add_node(count, s, fallback=None)  # type: ignore[arg-type]  # int | None
    dag.add_node(needs_int, dag.add_node(count, s, fallback="x"))  # type: ignore[arg-type]  # str
    dag.add_node(needs_int, dag.add_node(count, s, fallback=None))  # type: ignore[arg-type]  # None
    m: Node[list[str]]
    m = dag.add_map(needs_int, [1], fallback=[1])  # type: ignore[arg-type, list-item]  # int
    print(a, b)
    del m


def check_variadic(dag: Dag[Params], i: Node[int], s: Node[str], strs: list[Node[str]]) -> None:
    dag.add_node(total, i, s)  # type: ignore[arg-type]  # a str among the ints
    dag.add_node(total, *strs)  # type: ignore[arg-type]  # star-unpacked, all str
    c: Node[str] = dag.add_node(total, i, i)  # type: ignore[arg-type]  # it is Node[int]
    print(c)


def check_generators(dag: Dag[Params], i: Node[int]) -> None:
    dag.add_node(conn, "db")  # type: ignore[deprecated]  # an async generator: a resource
    dag.add_node(ticks)  # type: ignore[deprecated]  # the same, without inputs
    dag.add_node(lines, i)  # type: ignore[deprecated]  # a generator function: a resource


def check_unknown_options(dag: Dag[Params], i: Node[int]) -> None:
    dag.add_node(needs_int, i, retires=3)  # type: ignore[arg-type]  # misspelt retry
    dag.add_node(fetch, retires=3)  # type: ignore[arg-type]  # the same without inputs
    dag.add_node(wants_other, i, retires=3)  # type: ignore[arg-type]  # injected, too
    dag.add_node(total, i, i, retires=3)  # type: ignore[arg-type]  # a variadic function
    dag.add_resource(conn, "db", retires=3)  # type: ignore[arg-type]  # on a resource
    dag.add_map(needs_int, [1], retires=3)  # type: ignore[arg-type]  # on add_map
    dag.add_resource(conn, "db", cache=Cache())  # type: ignore[arg-type]  # add_node only
    dag.add_node(needs_int, i, cache=3)  # type: ignore[call-overload]  # cache= takes a Cache
    dag.add_map(needs_int, [1], limit="2")  # type: ignore[call-overload]  # limit= is an int


def check_add_map(dag: Dag[Params], i: Node[int], s: Node[str]) -> None:
    dag.add_map(needs_int, ["a"])  # type: ignore[arg-type]  # items of the wrong type
    dag.add_map(needs_int, s)  # type: ignore[arg-type]  # a str iterates over str
    dag.add_map(needs_int, i)  # type: ignore[arg-type]  # an int is not iterable
    dag.add_map(needs_int_str, [1], i)  # type: ignore[arg-type]  # the other input is a str
    dag.add_map(needs_int, [1], i)  # type: ignore[arg-type]  # needs_int takes one argument
    dag.add_map(wants_other, [1])  # type: ignore[arg-type]  # injected parameter of another type
    inner = Dag[Params]()
    dag.add_map(inner, [Params(1)], 2)  # type: ignore[arg-type]  # a graph takes one parameter
    d: Node[list[int]] = dag.add_map(needs_int, [1])  # type: ignore[arg-type]  # list[str]
    print(d)


async def check_stream_and_batches(dag: Dag[Params], n: Node[str]) -> None:
    await dag.invoke_many([OtherParams("x")])  # type: ignore[list-item]  # the graph takes Params
    await dag.invoke_many(Params(1))  # type: ignore[arg-type]  # an iterable of them
    await dag.invoke_many([Params(1)], progress="yes")  # type: ignore[arg-type]  # bool/callable
    e: int = (await dag.invoke_many([Params(1)]))[0][n]  # type: ignore[assignment]  # str
    async for done in dag.stream(OtherParams("x")):  # type: ignore[arg-type]  # takes Params
        print(done.value.upper())  # type: ignore[attr-defined]  # value is an object
    print(e)


def check_events(event: AnyEvent) -> None:
    if event.kind == "node_started":
        print(event.delay)  # type: ignore[attr-defined]  # only NodeRetrying has a delay
    if event.kind == "node_skipped":
        print(event.cause.upper())  # type: ignore[union-attr]  # the cause may be None
