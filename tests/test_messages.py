"""Messages and reprs a user reads: refusals at build time, names, reprs, and misuse of results.

Deliberate misuses go through `loose(...)` (typed as Any): the type checkers reject them, and
these tests check that the run-time checks reject them too, with a message that says what to do.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from dagwire import (
    CircuitBreaker,
    Dag,
    DagDefinitionError,
    Limiter,
    NodeStatus,
    Retry,
    build_dag,
)


def loose(value: object) -> Any:
    """`value` without static types, for calls the type checkers rightly reject."""
    return value


async def fetch_user(user_id: int) -> str:
    return f"user{user_id}"


def parse(text: str) -> int:
    return int(text)


# -- unknown options ----------------------------------------------------------------------------


def test_unknown_option_names_it_suggests_the_closest_and_lists_the_valid_ones() -> None:
    dag = Dag[None]()
    with pytest.raises(DagDefinitionError) as caught:
        loose(dag).add_node(fetch_user, 1, retires=3)
    message = str(caught.value)
    assert message.startswith("add_node(fetch_user): unknown option retires=.")
    assert "Did you mean retry=?" in message
    for option in ("name=", "after=", "timeout=", "retry=", "fallback=", "executor=", "tags="):
        assert option in message
    assert "release=" not in message  # not an option of add_node
    assert "parse_options" not in message  # no private function name
    assert "unexpected keyword" not in message


def test_unknown_option_of_add_resource_and_join() -> None:
    @contextmanager
    def conn() -> Generator[str, None, None]:
        yield "c"

    dag = Dag[None]()
    with pytest.raises(DagDefinitionError, match=r"unknown option relase=\. Did you mean release="):
        loose(dag).add_resource(conn, relase="early")
    with pytest.raises(DagDefinitionError, match=r"join\(\): unknown option nme=.*name=, tags="):
        loose(dag).join(nme="x")


def test_unknown_option_without_a_close_match_has_no_suggestion() -> None:
    with pytest.raises(DagDefinitionError) as caught:
        loose(Dag[None]()).add_node(fetch_user, 1, colour="blue")
    assert "Did you mean" not in str(caught.value)
    assert "unknown option colour=" in str(caught.value)


# -- what add_node / add_resource are given -----------------------------------------------------


def test_a_coroutine_object_is_refused_with_the_right_call_and_closed() -> None:
    # filterwarnings=error: a coroutine left unclosed would fail this test with a
    # "coroutine ... was never awaited" RuntimeWarning.
    dag = Dag[None]()
    with pytest.raises(DagDefinitionError) as caught:
        loose(dag).add_node(fetch_user(1))
    message = str(caught.value)
    assert "coroutine object" in message
    assert "pass `fetch_user` and its inputs: `dag.add_node(fetch_user, 1)`" in message.lower()


def test_a_coroutine_object_of_a_node_input_shows_the_node_name() -> None:
    dag = Dag[None]()
    uid = dag.add_node(lambda: 7, name="uid")
    with pytest.raises(DagDefinitionError, match=r"`dag\.add_node\(fetch_user, uid\)`"):
        loose(dag).add_node(fetch_user(loose(uid)))


def test_a_coroutine_object_of_a_method() -> None:
    class Client:
        async def get(self, path: str) -> str:
            return path

    dag = Dag[None]()
    with pytest.raises(DagDefinitionError, match=r"<Client object>\.get, '/users'\)"):
        loose(dag).add_node(Client().get("/users"))


def test_a_coroutine_object_as_a_hook_is_refused_and_closed() -> None:
    async def audit() -> None:
        pass

    dag = Dag[None]()
    with pytest.raises(DagDefinitionError, match=r"pre=.*coroutine object.*`pre=audit`"):
        dag.add_node(fetch_user, 1, pre=loose(audit()))


def test_a_generator_object_is_refused_with_the_right_call() -> None:
    def connect() -> Iterator[str]:
        yield "conn"

    dag = Dag[None]()
    with pytest.raises(DagDefinitionError, match=r"generator object.*add_resource\(connect, "):
        loose(dag).add_resource(connect())


def test_a_sync_generator_function_given_to_add_node() -> None:
    def numbers() -> Iterator[int]:
        yield 1

    dag = Dag[None]()
    with pytest.raises(DagDefinitionError) as caught:
        loose(dag).add_node(numbers)
    message = str(caught.value)
    assert "is a generator function" in message
    assert "dag.add_resource(numbers, ...)" in message
    dag.add_resource(numbers)  # the right way is accepted


def test_a_callable_object_whose_call_is_a_generator_given_to_add_node() -> None:
    class Session:
        async def __call__(self) -> AsyncIterator[str]:
            yield "session"

    dag = Dag[None]()
    with pytest.raises(DagDefinitionError, match="async generator function"):
        loose(dag).add_node(Session())
    dag.add_resource(Session())


def test_a_plain_async_function_given_to_add_resource() -> None:
    dag = Dag[None]()
    with pytest.raises(DagDefinitionError) as caught:
        loose(dag).add_resource(fetch_user, 1)
    message = str(caught.value)
    assert message.startswith("add_resource(fetch_user): fetch_user is an async function")
    assert "yield" in message  # what a resource factory looks like
    assert "dag.add_node(fetch_user, ...)" in message  # what to use for a plain value


def test_a_class_that_is_not_a_context_manager_given_to_add_resource() -> None:
    class Plain:
        pass

    with pytest.raises(DagDefinitionError, match=r"not a context manager.*add_node\(Plain, "):
        loose(Dag[None]()).add_resource(Plain)


class Session:
    def __enter__(self) -> str:
        return "session"

    def __exit__(self, *exc: object) -> None:
        pass


def open_session() -> Session:
    return Session()


def test_the_return_annotation_tells_a_sync_factory_from_an_async_one() -> None:
    dag = Dag[None]()
    with pytest.raises(
        DagDefinitionError, match=r"timeout= cannot be enforced.*executor=\"thread\""
    ):
        dag.add_resource(open_session, timeout=1.0)
    dag.add_resource(open_session, timeout=1.0, executor="thread")
    with pytest.raises(DagDefinitionError, match=r"timeout= depends on whether .*Annotate"):
        dag.add_resource(lambda: Session(), timeout=1.0)


def test_retry_zero_names_the_node_and_the_keyword() -> None:
    dag = Dag[None]()
    with pytest.raises(DagDefinitionError) as caught:
        dag.add_node(fetch_user, 1, retry=0)
    message = str(caught.value)
    assert message.startswith("add_node(fetch_user): retry=0")
    assert "calls in total" in message
    with pytest.raises(DagDefinitionError, match=r"add_node\(fetch_user\): retry=-1"):
        dag.add_node(fetch_user, 1, retry=-1)
    with pytest.raises(DagDefinitionError, match=r"retry= takes a Retry"):
        dag.add_node(fetch_user, 1, retry=loose(True))


@pytest.mark.parametrize("value", [True, float("nan"), "1", 0, -2.5])
def test_timeouts_must_be_positive_numbers_of_seconds(value: object) -> None:
    dag = Dag[None]()
    with pytest.raises(DagDefinitionError, match=r"timeout=.*positive number of seconds"):
        dag.add_node(fetch_user, 1, timeout=loose(value))


def test_tags_must_be_strings() -> None:
    dag = Dag[None]()
    with pytest.raises(DagDefinitionError, match=r"tags= takes labels as strings"):
        dag.add_node(fetch_user, 1, tags=loose([1, 2]))
    with pytest.raises(DagDefinitionError, match=r"tags= takes labels as strings"):
        dag.add_node(fetch_user, 1, tags=loose(3))


def test_tags_are_readable_back() -> None:
    with build_dag() as dag:
        tagged = dag.add_node(fetch_user, 1, tags=["db", "slow"])
        one = dag.add_node(fetch_user, 2, tags="db")  # one label, not its letters
        plain = dag.add_node(fetch_user, 3)
        barrier = dag.join(tagged, one, tags=("phase-1",))
    assert tagged.tags == ("db", "slow")
    assert one.tags == ("db",)
    assert plain.tags == ()
    assert barrier.tags == ("phase-1",)
    assert dag.params.tags == ()


# -- names and reprs ----------------------------------------------------------------------------


def test_unnamed_graphs_get_distinct_names() -> None:
    first, second = Dag[None](), Dag[None]()
    assert first.name != second.name
    assert re.fullmatch(r"dag-\d+", first.name)
    assert re.fullmatch(r"dag-\d+", second.name)
    with build_dag() as third:
        pass
    assert third.name not in (first.name, second.name)
    assert Dag[None](name="checkout").name == "checkout"


def test_a_foreign_node_message_tells_the_two_graphs_apart() -> None:
    other, mine = Dag[None](), Dag[None]()
    foreign = other.add_node(fetch_user, 1)
    with pytest.raises(DagDefinitionError) as caught:
        mine.add_node(parse, loose(foreign))
    message = str(caught.value)
    assert repr(other.name) in message
    assert repr(mine.name) in message


@pytest.mark.parametrize("name", ["", 3])
def test_a_graph_name_must_be_a_non_empty_string(name: object) -> None:
    with pytest.raises(DagDefinitionError, match="non-empty str"):
        Dag[None](name=loose(name))


def test_repr_grammar() -> None:
    dag = Dag[None](name="g")
    assert repr(dag) == "<Dag 'g': 1 node>"
    dag.add_node(fetch_user, 1)
    dag.freeze()
    assert repr(dag) == "<Dag 'g': 2 nodes, frozen>"


def test_node_status_prints_its_name() -> None:
    assert str(NodeStatus.SUCCEEDED) == "SUCCEEDED"
    assert f"{NodeStatus.FAILED}" == "FAILED"
    assert f"{NodeStatus.SKIPPED:>8}" == " SKIPPED"


async def test_limiter_repr_shows_limit_use_and_waiters() -> None:
    limiter = Limiter(2)
    assert repr(limiter) == "<Limiter in_use=0/2 waiting=0>"
    await limiter.acquire()
    await limiter.acquire()
    waiter = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0)
    assert repr(limiter) == "<Limiter in_use=2/2 waiting=1>"
    limiter.release()
    await waiter
    assert repr(limiter) == "<Limiter in_use=2/2 waiting=0>"
    limiter.release()
    limiter.release()


def test_circuit_breaker_repr_shows_state_failures_and_reset_timeout() -> None:
    now = [0.0]
    breaker = CircuitBreaker(fail_max=2, reset_timeout=10.0, clock=lambda: now[0])
    assert repr(breaker) == "<CircuitBreaker CLOSED failures=0/2 reset_timeout=10.0s>"
    breaker.on_failure(breaker.before_call())
    assert repr(breaker) == "<CircuitBreaker CLOSED failures=1/2 reset_timeout=10.0s>"
    breaker.on_failure(breaker.before_call())
    assert repr(breaker) == "<CircuitBreaker OPEN failures=2/2 reset_timeout=10.0s>"
    assert breaker.failures == 2


# -- an ExecutionResult is not a container -------------------------------------------------------


async def test_iterating_a_result_is_a_clear_type_error() -> None:
    with build_dag() as dag:
        node = dag.add_node(fetch_user, 1)
    result = await dag.invoke(None)
    with pytest.raises(TypeError, match=r"not iterable: read a value with result\[node\]"):
        list(loose(result))
    with pytest.raises(TypeError, match=r"result\.status\(node\) is NodeStatus\.SUCCEEDED"):
        _ = loose(node) in loose(result)
    with pytest.raises(TypeError, match=r"read by node handle.*dag\.node\(name\)"):
        loose(result)["fetch_user"]
    assert result[node] == "user1"


def _generator_hook() -> Iterator[None]:
    yield


async def _async_generator_hook() -> AsyncIterator[None]:
    yield


async def _body() -> int:
    return 1


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: Retry(initial_delay=float("nan")), "initial_delay=nan"),
        (lambda: Retry(backoff=float("nan")), "backoff=nan"),
        (lambda: Retry(initial_delay=0.0, backoff=float("inf")), "backoff=inf"),
        (lambda: Retry(max_delay=float("inf")), "max_delay=inf"),
        (lambda: Retry(attempts=loose(True)), "attempts=True"),
        (lambda: Limiter(loose(True)), "Limiter(True)"),
        (lambda: CircuitBreaker(reset_timeout=float("nan")), "reset_timeout=nan"),
        (lambda: CircuitBreaker(fail_max=loose(True)), "fail_max=True"),
    ],
)
def test_policies_that_cannot_work_are_refused(make: Callable[[], object], says: str) -> None:
    # Was: accepted; a NaN delay then made invoke hang on 3.11/3.12 (asyncio.sleep(nan)).
    with pytest.raises(DagDefinitionError, match=re.escape(says)):
        make()


@pytest.mark.parametrize("hook", [_generator_hook, _async_generator_hook])
@pytest.mark.parametrize("option", ["pre", "post"])
def test_a_generator_function_as_a_hook_is_refused(
    option: str, hook: Callable[[], object]
) -> None:
    # Was: accepted, and the hook's code never ran (calling it only made a generator).
    with build_dag() as dag, pytest.raises(DagDefinitionError) as info:
        dag.add_node(_body, **{option: loose(hook)})
    message = str(info.value)
    assert f"{option}={hook.__name__}" in message
    assert "generator function" in message
    assert "add_resource()" in message


def test_after_must_be_nodes_and_an_immediate_node_not_a_node() -> None:
    with build_dag() as dag:
        n = dag.add_node(_body, name="n")
        with pytest.raises(DagDefinitionError, match=r"after= takes a node or an iterable"):
            dag.add_node(_body, after=loose(5))
        with pytest.raises(DagDefinitionError, match="a node handle is not a constant"):
            dag.add_immediate_node(n)
