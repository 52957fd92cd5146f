"""Building a graph: build_dag / Dag, names, handles, every DagDefinitionError of SPEC 1 and 10.

Deliberate misuses go through `loose(dag)` (the graph typed as Any): the type checkers reject
them statically, and these tests check that the run-time checks reject them too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import pytest

from dagwire import Dag, DagDefinitionError, Node, NodeStatus, Retry, build_dag


def double(x: int) -> int:
    return 2 * x


async def fetch() -> int:
    return 1


def loose(dag: Dag[Any]) -> Any:
    """The graph without static types, for calls the type checkers rightly reject."""
    return dag


class Scaler:
    def __init__(self, factor: int) -> None:
        self.factor = factor

    def scale(self, x: int) -> int:
        return self.factor * x


# -- build_dag / Dag / freeze ---------------------------------------------------------------


async def test_build_dag_freezes_on_clean_exit() -> None:
    with build_dag(int) as dag:
        assert not dag.frozen
        node = dag.add_node(double, dag.params)
    assert dag.frozen
    result = await dag.invoke(21)
    assert result[node] == 42


def test_build_dag_does_not_mask_an_exception_raised_inside_the_block() -> None:
    mine = RuntimeError("raised by the user inside the block")
    made: list[Dag[None]] = []
    with pytest.raises(RuntimeError) as caught, build_dag() as dag:  # noqa: PT012
        made.append(dag)
        dag.add_node(fetch)
        raise mine
    assert caught.value is mine
    assert caught.value.__context__ is None  # nothing of ours was raised while handling it
    assert not made[0].frozen


def test_build_dag_does_not_mask_a_definition_error_inside_the_block() -> None:
    made: list[Dag[None]] = []
    with pytest.raises(DagDefinitionError, match="already exists"), build_dag() as dag:  # noqa: PT012
        made.append(dag)
        dag.add_node(fetch, name="x")
        dag.add_node(fetch, name="x")
    assert not made[0].frozen


async def test_dag_without_context_manager_then_freeze() -> None:
    @dataclass
    class Params:
        base: int

    dag = Dag[Params]()
    base = dag.add_node(lambda p: p.base, dag.params)
    doubled = dag.add_node(double, base)
    assert not dag.frozen
    dag.freeze()
    assert dag.frozen
    dag.freeze()  # idempotent
    result = await dag.invoke(Params(5))
    assert result[doubled] == 10
    assert result.params == Params(5)


async def test_build_dag_without_a_type_takes_none() -> None:
    with build_dag() as dag:
        seen = dag.add_node(lambda p: ("got", p), dag.params)
    result = await dag.invoke(None)
    assert result[seen] == ("got", None)


def test_build_dag_name() -> None:
    with build_dag(name="checkout") as dag:
        pass
    assert dag.name == "checkout"


# -- names and handles --------------------------------------------------------------------


def test_default_name_is_exactly_the_qualname() -> None:
    async def local_step() -> int:
        return 0

    scaler = Scaler(3)
    with build_dag(int) as dag:
        d = dag.add_node(double, dag.params)
        f = dag.add_node(fetch)
        loc = dag.add_node(local_step)
        m = dag.add_node(scaler.scale, d)
        part = dag.add_node(functools.partial(Scaler.scale, scaler), d)
    assert d.name == "double"
    assert f.name == "fetch"
    assert loc.name == local_step.__qualname__
    assert loc.name == "test_default_name_is_exactly_the_qualname.<locals>.local_step"
    assert m.name == "Scaler.scale"
    # A partial is named after the function it wraps; the second use gets a suffix.
    assert part.name != m.name
    assert part.name.startswith("Scaler.scale")


def test_duplicate_default_names_get_distinct_suffixes() -> None:
    with build_dag(int) as dag:
        nodes = [dag.add_node(double, dag.params) for _ in range(5)]
    names = [n.name for n in nodes]
    assert names[0] == "double"
    assert len(set(names)) == 5
    assert all(name.startswith("double") and name != "double" for name in names[1:])
    for n in nodes:
        assert dag.node(n.name) is n


def test_default_names_skip_explicit_names_already_taken() -> None:
    with build_dag(int) as dag:
        first = dag.add_node(double, dag.params)
        explicit = dag.add_node(double, dag.params, name="double_1")
        second = dag.add_node(double, dag.params)
        third = dag.add_node(double, dag.params)
    names = [first.name, explicit.name, second.name, third.name]
    assert len(set(names)) == 4
    assert explicit.name == "double_1"


def test_explicit_name() -> None:
    with build_dag(int) as dag:
        node = dag.add_node(double, dag.params, name="twice")
        imm = dag.add_immediate_node(3, name="three")
        j = dag.join(node, imm, name="barrier")
    assert node.name == "twice"
    assert dag.node("twice") is node
    assert dag.node("three") is imm
    assert dag.node("barrier") is j


def test_duplicate_explicit_name_is_a_definition_error() -> None:
    with build_dag(int) as dag:
        dag.add_node(double, dag.params, name="twice")
        with pytest.raises(DagDefinitionError, match=r"'twice' already exists.*another name"):
            dag.add_node(fetch, name="twice")
        # Equal to an existing *default* name is a duplicate as well.
        assert dag.add_node(double, dag.params).name == "double"
        with pytest.raises(DagDefinitionError, match="'double' already exists"):
            dag.add_node(fetch, name="double")
        with pytest.raises(DagDefinitionError, match="already exists"):
            dag.add_immediate_node(1, name="twice")
        with pytest.raises(DagDefinitionError, match="already exists"):
            dag.join(name="twice")


def test_node_lookup_unknown_name_raises_key_error() -> None:
    with build_dag() as dag:
        dag.add_node(fetch)
    assert dag.node("fetch").name == "fetch"
    with pytest.raises(KeyError):
        dag.node("unknown")


def triple(x: int, y: int, z: dict[str, int]) -> tuple[int, int, dict[str, int]]:
    return (x, y, z)


def test_inputs_and_nodes_are_readable() -> None:
    payload = {"k": 1}
    with build_dag(int) as dag:
        a = dag.add_node(double, dag.params)
        imm = dag.add_immediate_node(7)
        b = dag.add_node(triple, a, imm, payload)
        c = dag.add_node(fetch, after=[a, b])
        j = dag.join(a, c)
    assert a.inputs == (dag.params,)
    assert b.inputs[0] is a
    assert b.inputs[1] is imm
    assert b.inputs[2] is payload  # a constant input is kept as given
    assert c.inputs == ()
    assert c.after == (a, b)
    assert j.inputs == ()
    assert set(j.after) == {a, c}
    added = [n for n in dag.nodes if n is not dag.params]
    assert added == [a, imm, b, c, j]
    assert all(isinstance(n, Node) for n in dag.nodes)
    assert all(n.dag is dag for n in dag.nodes)


def test_params_is_one_handle() -> None:
    with build_dag(int) as dag:
        first = dag.params
        dag.add_node(double, dag.params)
    assert dag.params is first
    assert dag.params is dag.params


async def test_result_of_params_node_is_the_parameter() -> None:
    marker = object()
    with build_dag(object) as dag:
        dag.add_node(lambda p: p, dag.params)
    result = await dag.invoke(marker)
    assert result[dag.params] is marker
    assert result.status(dag.params) is NodeStatus.SUCCEEDED
    assert result.params is marker


# -- DagDefinitionError: foreign nodes ----------------------------------------------------


def _two_graphs() -> tuple[Dag[int], Node[Any], Dag[int]]:
    other = Dag[int]()
    foreign = other.add_node(double, other.params)
    other.freeze()
    mine = Dag[int]()
    return other, foreign, mine


def test_foreign_node_as_input() -> None:
    _, foreign, dag = _two_graphs()
    with pytest.raises(DagDefinitionError, match="double") as caught:
        dag.add_node(double, foreign)
    message = str(caught.value)
    assert "belongs to" in message
    assert "Use handles returned by this graph" in message


def test_foreign_params_as_input() -> None:
    other, _, dag = _two_graphs()
    with pytest.raises(DagDefinitionError, match="belongs to"):
        dag.add_node(double, other.params)


def test_foreign_node_in_after() -> None:
    _, foreign, dag = _two_graphs()
    with pytest.raises(DagDefinitionError, match=r"after=.*belongs to"):
        dag.add_node(fetch, after=foreign)
    with pytest.raises(DagDefinitionError, match=r"after=.*belongs to"):
        dag.add_node(fetch, after=[dag.params, foreign])


def test_foreign_node_in_join() -> None:
    _, foreign, dag = _two_graphs()
    mine = dag.add_node(fetch)
    with pytest.raises(DagDefinitionError, match="belongs to"):
        dag.join(mine, foreign)


def test_non_node_in_after() -> None:
    dag = Dag[int]()
    with pytest.raises(DagDefinitionError, match="must be a Node of this graph"):
        dag.add_node(fetch, after=[cast(Any, "not a node")])


async def test_foreign_node_in_targets_and_overrides() -> None:
    _, foreign, dag = _two_graphs()
    dag.add_node(double, dag.params)
    dag.freeze()
    with pytest.raises(DagDefinitionError, match=r"targets=.*belongs to"):
        await dag.invoke(1, targets=[foreign])
    with pytest.raises(DagDefinitionError, match=r"overrides=.*belongs to"):
        await dag.invoke(1, overrides={foreign: 3})


async def test_reading_a_result_with_another_graphs_handle() -> None:
    other, foreign, dag = _two_graphs()
    dag.add_node(double, dag.params)
    dag.freeze()
    result = await dag.invoke(1)
    with pytest.raises(DagDefinitionError, match="not a node of"):
        result[foreign]
    with pytest.raises(DagDefinitionError, match="not a node of"):
        foreign.extract_result(result)
    with pytest.raises(DagDefinitionError, match="not a node of"):
        result.status(foreign)
    with pytest.raises(DagDefinitionError, match="not a node of"):
        result[other.params]


# -- DagDefinitionError: frozen / not frozen ----------------------------------------------


def test_adding_to_a_frozen_graph() -> None:
    with build_dag(int) as dag:
        a = dag.add_node(double, dag.params)
    hint = r"frozen.*build_dag\(\) block"
    with pytest.raises(DagDefinitionError, match=rf"add_node.*{hint}"):
        dag.add_node(double, a)
    with pytest.raises(DagDefinitionError, match=rf"add_immediate_node.*{hint}"):
        dag.add_immediate_node(1)
    with pytest.raises(DagDefinitionError, match=rf"join.*{hint}"):
        dag.join(a)

    async def res() -> AsyncIterator[int]:
        yield 1

    with pytest.raises(DagDefinitionError, match=rf"add_resource.*{hint}"):
        dag.add_resource(res)
    assert [n for n in dag.nodes if n is not dag.params] == [a]


async def test_invoking_an_unfrozen_graph() -> None:
    dag = Dag[int]()
    dag.add_node(double, dag.params)
    with pytest.raises(DagDefinitionError, match=r"not frozen: call dag\.freeze\(\)"):
        await dag.invoke(1)
    with pytest.raises(DagDefinitionError, match="not frozen"):
        await dag(1)
    dag.freeze()
    assert (await dag.invoke(1)).ok


# -- DagDefinitionError: what add_node is given -------------------------------------------


def test_non_callable() -> None:
    dag = Dag[int]()
    with pytest.raises(DagDefinitionError, match=r"needs a callable.*got 42.*add_immediate_node"):
        dag.add_node(cast(Any, 42))
    assert list(dag.nodes) == [dag.params]


def test_wrong_arity_too_few_inputs() -> None:
    def three(a: int, b: int, c: int) -> int:
        return a + b + c

    dag = Dag[int]()
    a = dag.add_node(double, dag.params)
    with pytest.raises(DagDefinitionError) as caught:
        loose(dag).add_node(three, a)
    message = str(caught.value)
    assert re.search(r"three\(a: .*, b: .*, c: .*\)", message)  # function and signature
    assert "1 input(s)" in message  # what was passed
    assert "needs 3 positional arguments" in message
    assert "one fewer to receive the invoke parameter" in message  # what to do


def test_wrong_arity_too_many_inputs() -> None:
    dag = Dag[int]()
    with pytest.raises(DagDefinitionError) as caught:
        loose(dag).add_node(double, 1, 2, 3)
    message = str(caught.value)
    assert re.search(r"\bdouble\(x: .*\)", message)
    assert "3 input(s)" in message
    assert "at most 1 positional" in message


def test_wrong_arity_required_keyword_only() -> None:
    def kw(x: int, *, mode: str) -> int:
        return x

    dag = Dag[int]()
    with pytest.raises(DagDefinitionError, match=r"kw\(x: .*, \*, mode: .*\).*\['mode'\]"):
        loose(dag).add_node(kw, 1)


def test_wrong_arity_of_lambda_partial_and_bound_method() -> None:
    dag = Dag[int]()
    with pytest.raises(DagDefinitionError, match="<lambda>"):
        loose(dag).add_node(lambda a, b, c: a, 1)  # pyright: ignore[reportUnknownLambdaType]
    with pytest.raises(DagDefinitionError, match=r"Scaler\.scale"):
        loose(dag).add_node(Scaler(2).scale, 1, 2, 3)
    with pytest.raises(DagDefinitionError, match=r"Scaler\.scale"):
        loose(dag).add_node(functools.partial(Scaler.scale, Scaler(2)), 1, 2)


def test_variadic_functions_accept_any_number_of_inputs() -> None:
    def total(*xs: int) -> int:
        return sum(xs)

    dag = Dag[int]()
    dag.add_node(total)
    dag.add_node(total, 1, 2, 3, 4, 5)


def test_async_generator_given_to_add_node() -> None:
    async def connection() -> AsyncIterator[str]:
        yield "conn"

    dag = Dag[int]()
    with pytest.raises(DagDefinitionError, match=r"async generator.*add_resource\(connection, "):
        dag.add_node(connection)  # type: ignore[deprecated]  # refused at build time: tested
    dag.add_resource(connection)  # the right way is accepted


@pytest.mark.parametrize("timeout", [0, -1, -0.5])
def test_non_positive_timeout(timeout: float) -> None:
    dag = Dag[int]()
    with pytest.raises(DagDefinitionError, match=r"timeout=.*must be a positive number"):
        dag.add_node(fetch, timeout=timeout)


def test_non_numeric_timeout() -> None:
    dag = Dag[int]()
    with pytest.raises(DagDefinitionError, match="timeout="):
        dag.add_node(fetch, timeout=cast(Any, "soon"))


async def test_invoke_non_positive_timeout() -> None:
    with build_dag() as dag:
        dag.add_node(fetch)
    with pytest.raises(DagDefinitionError, match="positive"):
        await dag.invoke(None, timeout=0)


@pytest.mark.parametrize(
    ("kwargs", "mentions"),
    [
        ({"attempts": 0}, "attempts=0"),
        ({"attempts": -2}, "attempts=-2"),
        ({"initial_delay": -0.1}, "initial_delay=-0.1"),
        ({"max_delay": -1.0}, "max_delay=-1.0"),
        ({"backoff": 0.5}, "backoff=0.5"),
        ({"on": ()}, "on=()"),
    ],
)
def test_retry_policies_that_cannot_work(kwargs: dict[str, Any], mentions: str) -> None:
    with pytest.raises(DagDefinitionError) as caught:
        Retry(**kwargs)
    message = str(caught.value)
    assert "cannot work" in message
    assert mentions in message


def test_retry_shorthand_that_cannot_work() -> None:
    dag = Dag[int]()
    with pytest.raises(DagDefinitionError, match=r"add_node\(fetch\): retry=0 .*calls in total"):
        dag.add_node(fetch, retry=0)
    with pytest.raises(DagDefinitionError, match=r"retry= takes a Retry\(\.\.\.\) or an int"):
        dag.add_node(fetch, retry=cast(Any, "twice"))
    dag.add_node(fetch, retry=Retry(attempts=1))  # one call in total is a valid policy


async def test_bad_on_error() -> None:
    with build_dag() as dag:
        dag.add_node(fetch)
    with pytest.raises(DagDefinitionError, match=r"on_error must be 'raise' or 'continue'"):
        await dag.invoke(None, on_error=cast(Any, "ignore"))


def test_unknown_option() -> None:
    dag = Dag[int]()
    with pytest.raises(DagDefinitionError, match="fetch"):
        loose(dag).add_node(fetch, colour="blue")


def test_cycles_cannot_be_built() -> None:
    # Inputs must exist before the node that uses them: every input precedes its user.
    with build_dag(int) as dag:
        a = dag.add_node(double, dag.params)
        b = dag.add_node(double, a)
        c = dag.add_node(lambda x, y: x + y, a, b)
    order = [n.name for n in dag.nodes]
    for node in (a, b, c):
        for inp in node.inputs:
            assert isinstance(inp, Node)
            assert order.index(inp.name) < order.index(node.name)
