"""The fast path of `add_node`/`add_resource` (plain functions read from their code object) gives
exactly what the complete path (`inspect.signature`, every check) gives, or defers to it.

The complete path is the reference: for every callable and number of inputs, the fast path must
either agree with it (injection, name, async-ness, the recorded node) or decline, and every
refusal must come from the complete path with its message.
"""

# pyright: reportPrivateUsage=false
# (compares the graph's recorded node specs, which are internal)

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from dagwire import Dag, DagDefinitionError, Node
from dagwire._callables import callable_name, injects_param, is_async_callable, plain_facts


def positional(a: int, b: int) -> int:
    return a + b


def defaults(a: int, b: int = 1, c: int = 2) -> int:
    return a + b + c


def variadic(a: int, *rest: int) -> int:
    return a + sum(rest)


def keyword_only_default(a: int, *, k: int = 1) -> int:
    return a + k


def keyword_only_required(a: int, *, k: int) -> int:
    return a + k


def positional_only(a: int, b: int, /) -> int:
    return a + b


async def coroutine(a: int) -> int:
    return a


def generator(a: int) -> Iterator[int]:
    yield a


async def async_generator(a: int) -> AsyncIterator[int]:
    yield a


def wrapped(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        return fn(*args)

    return wrapper


class Holder:
    def method(self, a: int, b: int = 0) -> int:
        return a + b

    async def amethod(self, a: int) -> int:
        return a

    @staticmethod
    def static(a: int) -> int:
        return a

    @classmethod
    def klass(cls, a: int) -> int:
        return a


CALLABLES: list[Callable[..., Any]] = [
    positional,
    defaults,
    variadic,
    keyword_only_default,
    keyword_only_required,
    positional_only,
    coroutine,
    generator,
    async_generator,
    wrapped(positional),
    wrapped(coroutine),
    functools.partial(positional, 1),
    Holder().method,
    Holder().amethod,
    Holder.static,
    Holder.klass,
    lambda: 0,
    lambda x, y=2: x,  # pyright: ignore[reportUnknownLambdaType]
    len,
    Holder,
]
if sys.version_info >= (3, 12):

    def marked(a: int) -> Any:
        return coroutine(a)

    inspect.markcoroutinefunction(marked)
    CALLABLES.append(marked)


@pytest.mark.parametrize("fn", CALLABLES, ids=[callable_name(f) for f in CALLABLES])
@pytest.mark.parametrize("n_inputs", [0, 1, 2, 3])
def test_fast_facts_agree_with_the_complete_path(fn: Callable[..., Any], n_inputs: int) -> None:
    facts = plain_facts(fn, n_inputs)
    try:
        inject = injects_param(fn, n_inputs, what="add_node()")
    except DagDefinitionError:
        assert facts is None  # every refusal is the complete path's, with its message
        return
    if facts is None:
        return  # declined: the complete path decides
    name, flags, fast_inject = facts
    assert fast_inject == inject
    assert name == callable_name(fn)
    assert bool(flags & inspect.CO_COROUTINE) == is_async_callable(fn)
    assert not flags & (inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR) or inspect.isfunction(fn)


def test_the_fast_path_is_taken_for_plain_functions_and_methods() -> None:
    assert plain_facts(positional, 2) is not None
    assert plain_facts(Holder().method, 1) is not None
    assert plain_facts(coroutine, 0) is not None  # injected: a required parameter left over
    assert plain_facts(wrapped(positional), 2) is None  # __wrapped__: inspect follows it
    assert plain_facts(functools.partial(positional, 1), 1) is None


def first_of_two(x: int, p: int) -> int:
    return x


def _spec_without_name(dag: Dag[Any], node: Node[Any]) -> tuple[object, ...]:
    spec = dag._specs[node._index]
    return (*spec[:1], *spec[2:])


Pick = Callable[[Node[Any], Node[Any]], tuple[object, ...]]
SAME_NODE_CASES: list[tuple[Callable[..., Any], Pick]] = [
    (positional, lambda a, b: (a, b)),
    (positional, lambda a, b: (a, a)),  # one node twice: one dependency
    (positional, lambda a, b: (a, 5)),  # a constant
    (defaults, lambda a, b: (b,)),
    (variadic, lambda a, b: (a, b, a, 3)),
    (coroutine, lambda a, b: ()),  # injected
    (Holder().method, lambda a, b: (a,)),
    (first_of_two, lambda a, b: (b,)),  # injected after an input
]


@pytest.mark.parametrize(("fn", "make_inputs"), SAME_NODE_CASES)
def test_fast_and_checked_paths_record_the_same_node(
    fn: Callable[..., Any], make_inputs: Callable[[Node[Any], Node[Any]], tuple[object, ...]]
) -> None:
    recorded: list[tuple[object, ...]] = []
    for explicit_name in (False, True):  # name= takes the checked path
        dag = Dag[int]()
        loose: Any = dag
        a, b = dag.add_node(positional, 1, 2), dag.add_node(positional, 3, 4)
        inputs = make_inputs(a, b)
        node = (
            loose.add_node(fn, *inputs, name="n") if explicit_name else loose.add_node(fn, *inputs)
        )
        recorded.append(_spec_without_name(dag, node))
    assert recorded[0] == recorded[1]


def test_the_fast_path_still_refuses_with_the_complete_message() -> None:
    dag = Dag[None]()
    other = Dag[None]()
    foreign = other.add_node(positional, 1, 2)
    loose: Any = dag
    with pytest.raises(DagDefinitionError, match="belongs to"):
        loose.add_node(positional, foreign, 1)
    with pytest.raises(DagDefinitionError, match="cannot be called with the 3 input"):
        loose.add_node(positional, 1, 2, 3)
    with pytest.raises(DagDefinitionError, match="generator function"):
        loose.add_node(generator, 1)
    with pytest.raises(DagDefinitionError, match="async function that returns a value"):
        loose.add_resource(coroutine, 1)
    with pytest.raises(DagDefinitionError, match=r"keyword-only parameters \['k'\]"):
        loose.add_node(keyword_only_required, 1)
    dag.freeze()
    with pytest.raises(DagDefinitionError, match="frozen"):
        loose.add_node(positional, 1, 2)
