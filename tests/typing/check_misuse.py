"""Deliberate misuse: every marked line must be reported, by mypy --strict and by pyright.

Each such line carries `# type: ignore[<mypy code>]  # <why>`. mypy (warn_unused_ignores, part of
--strict) and pyright (the setting below) both fail on an ignore that suppresses nothing, so a
misuse that stops being reported fails tests/test_typing.py. Never run: definitions only.
"""
# pyright: reportUnnecessaryTypeIgnoreComment=error

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from dagwire import Dag, Node, build_dag


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
    dag.add_node(needs_int, i, nmae="n")  # type: ignore[call-overload]  # misspelt option
    dag.add_node(needs_int, i, timeout="5")  # type: ignore[call-overload]  # timeout is a number
    dag.add_node(needs_int, i, retry=1.5)  # type: ignore[call-overload]  # Retry or int
    dag.add_node(needs_int, i, after=[3])  # type: ignore[arg-type, list-item]  # after= takes nodes
    dag.add_node(needs_int, i, executor="process")  # type: ignore[call-overload]  # "thread"/Executor
    dag.add_node(needs_int, i, release="early")  # type: ignore[call-overload]  # resources only
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
