"""The `Cache` object itself: entries (TTL, LRU, keys), single-flight, failures, event loops.

Real asyncio throughout; the run loop's use of it (``add_node(..., cache=)``) is tested with the
graphs. conftest fails any test that leaks a task or makes the loop report an error.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import math
import sys
import threading
import weakref
from asyncio import CancelledError
from collections.abc import Callable
from typing import Any

import pytest

from dagwire.cache import MISSING, Cache, copy_exception
from dagwire.errors import DagDefinitionError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Body:
    """A node body: counts its calls, records the task each ran in and how it ended.

    With a `gate`, it waits for the gate (so that callers can pile up); otherwise it suspends
    once. It then raises `exc` if given, else returns `value`.
    """

    def __init__(
        self,
        value: object = 42,
        *,
        gate: asyncio.Event | None = None,
        exc: Callable[[], BaseException] | None = None,
    ) -> None:
        self.value = value
        self.gate = gate
        self.exc = exc
        self.calls = 0
        self.tasks: list[asyncio.Task[Any] | None] = []
        self.cancelled = False
        self.ended = False

    async def __call__(self) -> object:
        self.calls += 1
        self.tasks.append(asyncio.current_task())
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0)
            if self.exc is not None:
                raise self.exc()
            return self.value
        except CancelledError:
            self.cancelled = True
            raise
        finally:
            self.ended = True


def caller(
    cache: Cache, body: Body, inputs: tuple[object, ...] = (1,), node: str = "n"
) -> asyncio.Task[tuple[object, bool]]:
    return asyncio.create_task(cache.get_or_call(inputs, body, node=node))


async def until(condition: Callable[[], bool], steps: int = 50) -> None:
    """Let the loop run until `condition` holds (a bounded number of iterations)."""
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def cache_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("dagwire cache")]


# -- construction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"ttl": -1}, "ttl=-1"),
        ({"ttl": math.nan}, "ttl=nan"),
        ({"ttl": None}, "ttl=None"),
        ({"ttl": True}, "ttl=True"),
        ({"ttl": "60"}, "ttl='60'"),
        ({"maxsize": -1}, "maxsize=-1"),
        ({"maxsize": 10.0}, "maxsize=10.0"),
        ({"maxsize": False}, "maxsize=False"),
        ({"key": "id"}, "key='id'"),
        ({"clock": 3.0}, "clock=3.0"),
    ],
)
def test_arguments_that_cannot_work_are_refused(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(DagDefinitionError, match="this Cache cannot work") as info:
        Cache(**kwargs)
    assert named in str(info.value)


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(DagDefinitionError) as info:
        Cache(ttl=-1, maxsize=-1)
    assert "ttl=-1" in str(info.value)
    assert "maxsize=-1" in str(info.value)


def test_defaults_properties_and_repr() -> None:
    cache = Cache()
    assert (cache.ttl, cache.maxsize, cache.key) == (60.0, 1024, None)
    assert repr(cache) == "Cache(ttl=60.0, maxsize=1024, key=None)"

    def by_id(x: int) -> int:
        return x

    keyed = Cache(ttl=math.inf, maxsize=0, key=by_id)
    assert keyed.key is by_id
    assert repr(keyed) == (
        "Cache(ttl=inf, maxsize=0, key=test_defaults_properties_and_repr.<locals>.by_id)"
    )


# -- hits and misses ------------------------------------------------------------------------


async def test_a_value_is_stored_and_hit_without_a_call() -> None:
    cache = Cache()
    body = Body("v")
    assert cache.lookup((1, "a"), "n") is MISSING
    assert await cache.get_or_call((1, "a"), body, node="n") == ("v", False)
    assert cache.lookup((1, "a"), "n") == "v"
    assert await cache.get_or_call((1, "a"), body, node="n") == ("v", True)
    assert body.calls == 1
    assert cache.lookup((1, "b"), "n") is MISSING  # other inputs, other key
    assert await cache.get_or_call((1, "b"), body, node="n") == ("v", False)
    assert body.calls == 2
    assert len(cache) == 2
    cache.clear()
    assert len(cache) == 0
    assert cache.lookup((1, "a"), "n") is MISSING


async def test_a_hit_returns_the_same_object() -> None:
    cache = Cache()
    value: list[int] = [1, 2]
    await cache.get_or_call((), Body(value), node="n")
    assert cache.lookup((), "n") is value


async def test_the_call_runs_in_its_own_task_with_the_starting_callers_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[str] = []
    cache = Cache()

    async def body() -> int:
        seen.append(var.get())
        return 1

    async def first() -> tuple[object, bool]:
        var.set("first caller")
        return await cache.get_or_call((), body, node="n")

    task = asyncio.create_task(first())
    assert await task == (1, False)
    assert seen == ["first caller"]

    tracked = Body()
    me = asyncio.current_task()
    await cache.get_or_call((2,), tracked, node="n")
    assert tracked.tasks[0] is not me
    assert tracked.tasks[0] is not None


# -- single-flight ----------------------------------------------------------------------------


async def test_single_flight_under_100_concurrent_callers() -> None:
    cache = Cache()
    gate = asyncio.Event()
    body = Body("shared", gate=gate)
    callers = [caller(cache, body) for _ in range(100)]
    await until(lambda: body.calls == 1)
    gate.set()
    results = await asyncio.gather(*callers)
    assert body.calls == 1
    assert {value for value, _ in results} == {"shared"}
    assert [hit for _, hit in results].count(False) == 1  # only the caller whose call ran
    assert results[0] == ("shared", False)  # the first caller started it
    assert body.tasks[0] not in callers  # the call ran in a task of its own
    assert cache.lookup((1,), "n") == "shared"


async def test_a_cancelled_waiter_does_not_cancel_the_call_for_the_others() -> None:
    cache = Cache()
    gate = asyncio.Event()
    body = Body("v", gate=gate)
    starter, *others = [caller(cache, body) for _ in range(3)]
    await until(lambda: body.calls == 1)
    starter.cancel()  # even the caller that started the call
    with pytest.raises(CancelledError):
        await starter
    assert not body.cancelled
    gate.set()
    assert await asyncio.gather(*others) == [("v", True), ("v", True)]
    assert body.calls == 1
    assert not body.cancelled
    assert cache.lookup((1,), "n") == "v"


async def test_when_every_waiter_is_gone_the_call_is_cancelled_and_nothing_stored() -> None:
    cache = Cache()
    ended_before_last_waiter: list[bool] = []

    async def body() -> str:
        try:
            await asyncio.Event().wait()
        finally:
            for _ in range(3):  # a slow unwinding: the last waiter must wait for it
                await asyncio.sleep(0)
            ended.set()
        return "never"

    ended = asyncio.Event()
    callers = [asyncio.create_task(cache.get_or_call((1,), body, node="n")) for _ in range(3)]
    await until(lambda: len(cache_tasks()) == 1)
    for task in callers[:2]:
        task.cancel()
    await asyncio.sleep(0)
    assert not ended.is_set()  # others left: the call goes on for the last waiter
    callers[2].cancel()
    results = await asyncio.gather(*callers, return_exceptions=True)
    ended_before_last_waiter.append(ended.is_set())
    assert all(isinstance(r, CancelledError) for r in results)
    assert ended_before_last_waiter == [True]
    assert cache_tasks() == []  # finished before the last waiter returned, not later
    assert len(cache) == 0
    # A new caller starts a new call (it does not join the cancelled one).
    fresh = Body("again")
    assert await cache.get_or_call((1,), fresh, node="n") == ("again", False)


async def test_a_lone_caller_cancelled_at_once_cancels_the_call() -> None:
    cache = Cache()
    body = Body(gate=asyncio.Event())
    task = caller(cache, body)
    await asyncio.sleep(0)  # registered; the call's task is about to start
    task.cancel()
    with pytest.raises(CancelledError):
        await task
    assert body.cancelled
    assert body.ended
    assert cache_tasks() == []
    assert len(cache) == 0


async def test_a_value_returned_after_every_waiter_left_is_not_stored() -> None:
    cache = Cache()

    async def stubborn() -> str:
        try:
            await asyncio.Event().wait()
        except CancelledError:
            await asyncio.sleep(0)
        return "late"

    task = asyncio.create_task(cache.get_or_call((1,), stubborn, node="n"))
    await until(lambda: len(cache_tasks()) == 1)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(CancelledError):
        await task
    assert cache.lookup((1,), "n") is MISSING


async def test_the_last_waiter_cancelled_again_still_waits_for_the_call_to_end() -> None:
    cache = Cache()
    release = asyncio.Event()

    async def slow_to_stop() -> str:
        try:
            await asyncio.Event().wait()
        finally:
            await release.wait()  # unwinding takes a while
        return "never"

    task = asyncio.create_task(cache.get_or_call((1,), slow_to_stop, node="n"))
    await until(lambda: len(cache_tasks()) == 1)
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)
    task.cancel()  # again, while it waits for the call to end
    await asyncio.sleep(0)
    assert not task.done()
    release.set()
    with pytest.raises(CancelledError):
        await task
    assert cache_tasks() == []


async def test_a_caller_waiting_in_a_timeout_gets_timeout_error_and_the_call_goes_on() -> None:
    cache = Cache()
    gate = asyncio.Event()
    body = Body("v", gate=gate)
    other = caller(cache, body)
    await until(lambda: body.calls == 1)

    async def impatient() -> object:
        async with asyncio.timeout(0.001):
            return await cache.get_or_call((1,), body, node="n")

    with pytest.raises(TimeoutError):
        await impatient()
    gate.set()
    assert await other == ("v", False)
    assert body.calls == 1


# -- expiry and eviction ----------------------------------------------------------------------


async def test_entries_expire_ttl_seconds_after_the_call_returned() -> None:
    clock = FakeClock()
    cache = Cache(ttl=10.0, clock=clock)
    gate = asyncio.Event()
    body = Body("v", gate=gate)
    task = caller(cache, body)
    await until(lambda: body.calls == 1)
    clock.now += 5.0  # the call takes 5 s: the entry's life starts when it returns
    gate.set()
    await task
    clock.now += 9.999
    assert cache.lookup((1,), "n") == "v"
    clock.now += 0.001  # exactly ttl after it was stored: expired
    assert cache.lookup((1,), "n") is MISSING
    assert len(cache) == 0  # an expired entry is dropped when looked up
    assert await cache.get_or_call((1,), body, node="n") == ("v", False)
    assert body.calls == 2


async def test_an_infinite_ttl_never_expires() -> None:
    clock = FakeClock()
    cache = Cache(ttl=math.inf, clock=clock)
    await cache.get_or_call((1,), Body("v"), node="n")
    clock.now += 1e12
    assert cache.lookup((1,), "n") == "v"


async def test_the_least_recently_used_entry_is_evicted() -> None:
    cache = Cache(maxsize=3)
    for k in "abc":
        await cache.get_or_call((k,), Body(k), node="n")
    assert cache.lookup(("a",), "n") == "a"  # a lookup hit is a use: b is now the oldest
    await cache.get_or_call(("d",), Body("d"), node="n")
    assert len(cache) == 3
    assert cache.lookup(("b",), "n") is MISSING
    assert await cache.get_or_call(("c",), Body("unused"), node="n") == ("c", True)  # a use
    await cache.get_or_call(("e",), Body("e"), node="n")  # evicts a (c was used after it)
    assert cache.lookup(("a",), "n") is MISSING
    assert [cache.lookup((k,), "n") for k in "cde"] == ["c", "d", "e"]


@pytest.mark.parametrize("kwargs", [{"ttl": 0}, {"maxsize": 0}])
async def test_keeping_nothing_still_shares_concurrent_calls(kwargs: dict[str, Any]) -> None:
    cache = Cache(**kwargs)
    gate = asyncio.Event()
    body = Body("v", gate=gate)
    callers = [caller(cache, body) for _ in range(5)]
    await until(lambda: body.calls == 1)
    gate.set()
    assert [v for v, _ in await asyncio.gather(*callers)] == ["v"] * 5
    assert body.calls == 1
    assert len(cache) == 0
    assert cache.lookup((1,), "n") is MISSING


# -- failures -------------------------------------------------------------------------------


class Boom(Exception):
    pass


async def test_failures_reach_every_waiter_as_distinct_objects_and_are_not_stored() -> None:
    cache = Cache()
    gate = asyncio.Event()
    cause = KeyError("upstream")

    def boom() -> BaseException:
        exc = Boom("boom", 7)
        exc.__cause__ = cause
        exc.add_note("from the body")
        return exc

    body = Body(gate=gate, exc=boom)
    callers = [caller(cache, body) for _ in range(5)]
    await until(lambda: body.calls == 1)
    gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    errors = [r for r in results if isinstance(r, Boom)]
    assert len(errors) == 5
    assert len({id(e) for e in errors}) == 5
    for e in errors:
        assert e.args == ("boom", 7)
        assert e.__cause__ is cause
        assert e.__notes__ == ["from the body"]
        frames: list[str] = []
        tb = e.__traceback__
        while tb is not None:
            frames.append(tb.tb_frame.f_code.co_name)
            tb = tb.tb_next
        assert "__call__" in frames  # the body's frame: the traceback is kept
    errors[0].add_note("dagwire: node 'n' failed in body")  # what each run does
    assert all(e.__notes__ == ["from the body"] for e in errors[1:])
    assert len(cache) == 0
    assert cache.lookup((1,), "n") is MISSING
    assert await cache.get_or_call((1,), Body("ok"), node="n") == ("ok", False)
    assert body.calls == 1


async def test_a_single_waiter_gets_the_very_exception_the_call_raised() -> None:
    cache = Cache()
    raised: list[BaseException] = []

    async def body() -> None:
        exc = Boom("mine")
        raised.append(exc)
        raise exc

    with pytest.raises(Boom) as info:
        await cache.get_or_call((), body, node="n")
    assert info.value is raised[0]


async def test_a_cancelled_error_the_call_raises_itself_reaches_every_waiter() -> None:
    cache = Cache()
    gate = asyncio.Event()
    body = Body(gate=gate, exc=lambda: CancelledError("by itself"))
    seen: list[tuple[str, int]] = []

    async def waiter() -> None:
        try:
            await cache.get_or_call((1,), body, node="n")
        except CancelledError as exc:
            task = asyncio.current_task()
            assert task is not None
            seen.append((str(exc), task.cancelling()))  # nobody cancelled this task

    callers = [asyncio.create_task(waiter()) for _ in range(3)]
    await until(lambda: body.calls == 1)
    gate.set()
    await asyncio.gather(*callers)
    assert seen == [("by itself", 0)] * 3


async def test_keyboard_interrupt_in_the_call_reaches_every_waiter() -> None:
    cache = Cache()
    gate = asyncio.Event()
    body = Body(gate=gate, exc=KeyboardInterrupt)
    got: list[BaseException] = []

    async def waiter() -> None:
        try:
            await cache.get_or_call((1,), body, node="n")
        except KeyboardInterrupt as exc:
            got.append(exc)

    callers = [asyncio.create_task(waiter()) for _ in range(2)]
    await until(lambda: body.calls == 1)
    gate.set()
    await asyncio.gather(*callers)
    assert len(got) == 2
    assert got[0] is not got[1]


async def test_a_failure_nobody_is_left_to_receive_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = Cache()

    async def body() -> None:
        try:
            await asyncio.Event().wait()
        except CancelledError:
            raise Boom("while stopping") from None

    task = asyncio.create_task(cache.get_or_call((1,), body, node="lonely"))
    await until(lambda: len(cache_tasks()) == 1)
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="dagwire"):
        task.cancel()
        with pytest.raises(CancelledError):
            await task
    [record] = [r for r in caplog.records if r.name == "dagwire"]
    assert "'lonely'" in record.getMessage()
    assert "while stopping" in record.getMessage()
    assert record.__dict__["dagwire_node"] == "lonely"


# -- copying exceptions -----------------------------------------------------------------------


class Rewrites(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"error {code}")
        self.code = code


class KeywordOnly(Exception):
    def __init__(self, message: str, *, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


class Unbuildable(Exception):
    def __new__(cls, a: int, b: int) -> Unbuildable:
        return super().__new__(cls, a, b)

    def __init__(self, a: int, b: int) -> None:
        super().__init__(a + b)

    def __reduce__(self) -> Any:
        raise TypeError("not copyable")


class Singleton(Exception):
    def __copy__(self) -> Singleton:
        return self


def test_copy_keeps_type_args_attributes_links_traceback_and_notes() -> None:
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise Rewrites(5) from inner
    except Rewrites as caught:
        exc = caught
    exc.add_note("n1")
    dup = copy_exception(exc)
    assert dup is not exc
    assert type(dup) is Rewrites
    assert dup.args == ("error 5",)  # not "error error 5": args are restored
    assert isinstance(dup, Rewrites)
    assert dup.code == 5
    assert dup.__cause__ is exc.__cause__
    assert dup.__context__ is exc.__context__
    assert dup.__suppress_context__
    assert dup.__traceback__ is exc.__traceback__
    assert dup.__notes__ == ["n1"]
    dup.add_note("n2")
    assert exc.__notes__ == ["n1"]  # a list of its own


def test_copy_of_an_exception_without_notes_has_none() -> None:
    dup = copy_exception(ValueError("x"))
    assert not hasattr(dup, "__notes__")


def test_copy_of_builtin_exceptions_keeps_their_fields() -> None:
    os_error = copy_exception(FileNotFoundError(2, "missing", "/x"))
    assert isinstance(os_error, FileNotFoundError)
    assert (os_error.errno, os_error.strerror, os_error.filename) == (2, "missing", "/x")
    exit_ = copy_exception(SystemExit(3))
    assert isinstance(exit_, SystemExit)
    assert exit_.code == 3
    group = ExceptionGroup("g", [ValueError(1), Boom(2)])
    dup = copy_exception(group)
    assert type(dup) is ExceptionGroup
    assert dup is not group
    assert str(dup) == str(group)
    assert dup.exceptions == group.exceptions  # leaves shared: a shallow copy


def test_copy_falls_back_to_building_without_init() -> None:
    exc = KeywordOnly("m", detail="d")
    exc.add_note("n")
    dup = copy_exception(exc)
    assert dup is not exc
    assert isinstance(dup, KeywordOnly)
    assert (dup.args, dup.detail, dup.__notes__) == (("m",), "d", ["n"])
    assert dup.__notes__ is not exc.__notes__


def test_an_exception_that_cannot_be_copied_is_returned_itself() -> None:
    exc = Unbuildable(1, 2)
    assert copy_exception(exc) is exc
    single = Singleton()
    assert copy_exception(single) is single


async def test_an_uncopyable_failure_is_the_same_object_for_every_waiter() -> None:
    cache = Cache()
    gate = asyncio.Event()
    shared = Unbuildable(1, 2)
    body = Body(gate=gate, exc=lambda: shared)
    callers = [caller(cache, body) for _ in range(3)]
    await until(lambda: body.calls == 1)
    gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(r is shared for r in results)


# -- keys --------------------------------------------------------------------------------------


async def test_two_graphs_nodes_share_one_cache() -> None:
    cache = Cache()
    gate = asyncio.Event()
    body = Body("v", gate=gate)
    in_a = caller(cache, body, node="graph_a.fetch")
    in_b = caller(cache, body, node="graph_b.user")
    await until(lambda: body.calls == 1)
    gate.set()
    assert list(await asyncio.gather(in_a, in_b)) == [("v", False), ("v", True)]
    assert await cache.get_or_call((1,), Body("other"), node="graph_c.x") == ("v", True)
    assert body.calls == 1


async def test_unhashable_inputs_are_a_type_error_naming_the_node() -> None:
    cache = Cache()
    with pytest.raises(TypeError, match=r"node 'load': .* input 1 is an unhashable list") as info:
        cache.lookup((1, [2, 3]), "load")
    assert "key=" in str(info.value)
    body = Body()
    with pytest.raises(TypeError, match=r"node 'load': .* input 0 is an unhashable dict"):
        await cache.get_or_call(({"a": 1},), body, node="load")
    assert body.calls == 0


async def test_a_key_function_keys_the_entries() -> None:
    seen: list[tuple[object, ...]] = []

    def by_user(user: str, verbose: bool) -> str:
        seen.append((user, verbose))
        return user

    cache = Cache(key=by_user)
    body = Body("profile")
    assert await cache.get_or_call(("ann", False), body, node="n") == ("profile", False)
    assert await cache.get_or_call(("ann", True), body, node="n") == ("profile", True)
    assert cache.lookup(("ann", True), "n") == "profile"
    assert cache.lookup(("bob", True), "n") is MISSING
    assert body.calls == 1
    assert seen[0] == ("ann", False)  # the input values, in call order

    # With a key, unhashable inputs are fine.
    def as_tuple(items: list[int]) -> tuple[int, ...]:
        return tuple(items)

    listed = Cache(key=as_tuple)
    assert await listed.get_or_call(([1, 2],), body, node="n") == ("profile", False)
    assert listed.lookup(([1, 2],), "n") == "profile"


async def test_an_unhashable_key_from_the_key_function_is_a_type_error() -> None:
    def as_list(x: int) -> Any:  # Any: a type checker would refuse the list (unhashable)
        return [x]

    cache = Cache(key=as_list)
    with pytest.raises(TypeError, match=r"node 'n': the key= function .* unhashable list"):
        cache.lookup((1,), "n")


async def test_what_the_key_function_raises_propagates_unchanged() -> None:
    def bad_key(x: int) -> int:
        raise Boom("key")

    cache = Cache(key=bad_key)
    with pytest.raises(Boom, match="key"):
        await cache.get_or_call((1,), Body(), node="n")


async def test_a_type_error_from_a_keys_eq_is_not_called_unhashable() -> None:
    class Touchy:
        def __hash__(self) -> int:
            return 1

        def __eq__(self, other: object) -> bool:
            raise TypeError("cannot compare")

    cache = Cache()
    await cache.get_or_call((Touchy(),), Body(), node="n")
    with pytest.raises(TypeError, match="cannot compare"):
        cache.lookup((Touchy(),), "n")


# -- event loops and task factories -------------------------------------------------------------


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager task factories need Python 3.12")
async def test_an_eager_task_factory_does_not_change_single_flight() -> None:
    loop = asyncio.get_running_loop()
    clock = FakeClock()
    cache = Cache(ttl=10.0, clock=clock)
    ran_in: list[asyncio.Task[Any] | None] = []
    calls = 0

    async def instant() -> int:  # completes without suspending
        nonlocal calls
        calls += 1
        ran_in.append(asyncio.current_task())
        return calls

    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]  # 3.12+
    try:
        for round_ in (1, 2):
            callers = [
                loop.create_task(cache.get_or_call((1,), instant, node="n")) for _ in range(100)
            ]
            assert not any(t.done() for t in callers)  # the call is not run by a caller
            results = await asyncio.gather(*callers)
            assert calls == round_
            assert {v for v, _ in results} == {round_}
            assert ran_in[-1] not in callers
            clock.now += 10.0  # expire it: the next round calls again (no stale flight)
    finally:
        loop.set_task_factory(None)


async def test_entries_are_shared_with_a_later_event_loop() -> None:
    cache = Cache()
    body = Body("from the first loop")

    def first_loop() -> tuple[object, bool]:
        return asyncio.run(cache.get_or_call((1,), body, node="n"))

    assert await asyncio.to_thread(first_loop) == ("from the first loop", False)
    assert await cache.get_or_call((1,), body, node="n") == ("from the first loop", True)
    assert body.calls == 1


async def test_a_call_in_flight_on_another_loop_is_not_joined() -> None:
    cache = Cache()
    started, finish = threading.Event(), threading.Event()
    calls: list[str] = []

    async def body() -> str:
        calls.append(threading.current_thread().name)
        if threading.current_thread() is threading.main_thread():
            return "main"
        started.set()
        for _ in range(10_000):  # until the main loop's caller is done (bounded)
            if finish.is_set():
                break
            await asyncio.sleep(0.001)
        return "thread"

    def other_loop() -> tuple[object, bool]:
        return asyncio.run(cache.get_or_call((1,), body, node="n"))

    other = asyncio.create_task(asyncio.to_thread(other_loop))
    assert await asyncio.to_thread(started.wait, 10)
    try:
        # The other loop's call is in flight: this loop makes its own call.
        assert await cache.get_or_call((1,), body, node="n") == ("main", False)
    finally:
        finish.set()
        result = await other
    assert result == ("thread", False)
    assert len(calls) == 2


async def test_a_call_left_pending_on_a_closed_loop_is_dropped() -> None:
    cache = Cache()
    reported: list[str] = []

    def abandon_a_loop() -> weakref.ref[asyncio.Task[Any]]:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(lambda _loop, context: reported.append(context["message"]))
        waiter = loop.create_task(cache.get_or_call((1,), Body(gate=asyncio.Event()), node="n"))
        for _ in range(3):
            loop.run_until_complete(asyncio.sleep(0))
        [flight_task] = [t for t in asyncio.all_tasks(loop) if t is not waiter]
        loop.close()  # with the call still pending, unlike asyncio.run
        del waiter
        return weakref.ref(flight_task)

    stale = await asyncio.to_thread(abandon_a_loop)
    gc.collect()
    assert stale() is not None  # the Cache still holds the stale call
    assert await cache.get_or_call((1,), Body("here"), node="n") == ("here", False)
    gc.collect()
    assert stale() is None  # dropped when this loop first missed
    assert reported  # the closed loop saw its pending tasks destroyed (asyncio's report)
