"""`dagwire.current()` and context variables on real runs.

`current()` returns the `RunContext(dag, run_id, node, attempt)` of the code calling it: node
bodies (async, inline sync, in a thread executor), `pre=`/`post=` hooks, resource setups and
cleanups, retried attempts, `add_map` items, sub-graph nodes (the innermost run wins); None
elsewhere. Nodes, hooks and resources run in a copy of the caller's context: they see the
caller's context variables, and nothing they set is seen by the caller after `invoke`. Every
test runs under the default task factory and under an eager one (3.12+).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

import dagwire
from dagwire import Cache, Retry, RunContext, build_dag, current
from observe_support import Recorder
from observe_support import task_factory as task_factory  # every test, both task factories

pytestmark = pytest.mark.usefixtures("task_factory")

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


def _run_id(rec: Recorder) -> int:
    (run_id,) = rec.run_ids()
    return run_id


# -- where current() answers ----------------------------------------------------------------


async def test_current_is_none_outside_a_run_and_after_invoke() -> None:
    async def one() -> int:
        return 1

    assert current() is None
    with build_dag(name="outside") as dag:
        dag.add_node(one, name="one")
    await dag.invoke(None)
    assert current() is None
    await dag.invoke(None, observers=[Recorder()], timeout=5.0)
    assert current() is None


async def test_current_in_async_inline_sync_and_thread_bodies() -> None:
    rec = Recorder()
    seen: dict[str, RunContext | None] = {}
    threads: dict[str, threading.Thread] = {}

    async def first() -> int:  # the first root: runs inline in the caller's task
        seen["first"] = current()
        await asyncio.sleep(0)
        seen["first after await"] = current()
        return 1

    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        seen["fetch"] = current()
        return x

    def transform(x: int) -> int:  # inline on the loop
        seen["transform"] = current()
        return x

    def blocking(x: int) -> int:
        threads["blocking"] = threading.current_thread()
        seen["blocking"] = current()
        return x

    def pooled(x: int) -> int:
        threads["pooled"] = threading.current_thread()
        seen["pooled"] = current()
        return x

    with ThreadPoolExecutor(max_workers=1) as pool:
        with build_dag(name="bodies") as dag:
            a = dag.add_node(first, name="first")
            f = dag.add_node(fetch, a, name="fetch")
            t = dag.add_node(transform, f, name="transform")
            b = dag.add_node(blocking, t, name="blocking", executor="thread")
            dag.add_node(pooled, b, name="pooled", executor=pool)
        await dag.invoke(None, observers=[rec])
    run_id = _run_id(rec)
    assert threads["blocking"] is not threading.main_thread()
    assert threads["pooled"] is not threading.main_thread()
    assert seen == {
        "first": RunContext("bodies", run_id, "first", 1),
        "first after await": RunContext("bodies", run_id, "first", 1),
        "fetch": RunContext("bodies", run_id, "fetch", 1),
        "transform": RunContext("bodies", run_id, "transform", 1),
        "blocking": RunContext("bodies", run_id, "blocking", 1),
        "pooled": RunContext("bodies", run_id, "pooled", 1),
    }
    assert current() is None


async def test_current_in_a_plain_run_without_observers() -> None:
    """A run without observers takes the fast path: current() still knows where it is."""
    seen: list[RunContext | None] = []

    async def a() -> int:
        seen.append(current())
        return 1

    def b(x: int) -> int:
        seen.append(current())
        return x

    with build_dag(name="fast") as dag:
        na = dag.add_node(a, name="a")
        dag.add_node(b, na, name="b")
    await dag.invoke(None)
    assert [s.node if s else None for s in seen] == ["a", "b"]
    assert seen[0] is not None
    assert seen[1] is not None
    assert seen[0].run_id == seen[1].run_id > 0
    assert seen[0].dag == "fast"
    assert seen[0].attempt == 1


async def test_current_with_an_invoke_timeout_where_every_node_has_a_task() -> None:
    rec = Recorder()
    seen: list[RunContext | None] = []

    async def a() -> int:
        seen.append(current())
        await asyncio.sleep(0)
        seen.append(current())
        return 1

    with build_dag(name="timed") as dag:
        dag.add_node(a, name="a")
    await dag.invoke(None, timeout=5.0, observers=[rec])
    expected = RunContext("timed", _run_id(rec), "a", 1)
    assert seen == [expected, expected]


async def test_current_in_sync_and_async_pre_and_post_hooks() -> None:
    rec = Recorder()
    seen: dict[str, RunContext | None] = {}

    def pre_sync() -> None:
        seen["pre_sync"] = current()

    def post_sync() -> None:
        seen["post_sync"] = current()

    async def pre_async() -> None:
        await asyncio.sleep(0)
        seen["pre_async"] = current()

    async def post_async() -> None:
        await asyncio.sleep(0)
        seen["post_async"] = current()

    def body(x: int) -> int:
        return x

    with build_dag(name="hooks") as dag:
        dag.add_node(body, 1, name="sync_hooks", pre=pre_sync, post=post_sync)
        dag.add_node(body, 2, name="async_hooks", pre=pre_async, post=post_async)
    await dag.invoke(None, observers=[rec])
    run_id = _run_id(rec)
    assert seen["pre_sync"] == RunContext("hooks", run_id, "sync_hooks", 1)
    assert seen["pre_async"] == RunContext("hooks", run_id, "async_hooks", 1)
    # (post's attempt: test_current_in_a_post_hook_gives_the_attempt_that_ran_last)
    where = {k: (v.dag, v.run_id, v.node) if v else None for k, v in seen.items()}
    assert where["post_sync"] == ("hooks", run_id, "sync_hooks")
    assert where["post_async"] == ("hooks", run_id, "async_hooks")


async def test_current_in_a_post_hook_gives_attempt_zero() -> None:
    """`RunContext.attempt` is 0 in a `post=` hook: a cleanup, run once after the attempts."""
    seen: dict[str, RunContext | None] = {}
    failures = [ConnectionError("reset")]

    async def flaky() -> int:
        if failures:
            raise failures.pop()
        return 1

    def post() -> None:
        seen["post"] = current()

    with build_dag(name="post-attempt") as dag:
        dag.add_node(flaky, name="flaky", retry=Retry(attempts=2, initial_delay=0.001), post=post)
    rec = Recorder()
    await dag.invoke(None, observers=[rec])
    assert seen["post"] == RunContext("post-attempt", _run_id(rec), "flaky", 0)


async def test_current_in_resource_setups_and_cleanups() -> None:
    rec = Recorder()
    seen: dict[str, RunContext | None] = {}

    async def agen() -> AsyncIterator[str]:
        seen["agen setup"] = current()
        yield "a"
        await asyncio.sleep(0)
        seen["agen cleanup"] = current()

    def sgen() -> Iterator[str]:
        seen["sgen setup"] = current()
        yield "s"
        seen["sgen cleanup"] = current()

    @contextlib.asynccontextmanager
    async def acm() -> AsyncGenerator[str, None]:
        seen["acm setup"] = current()
        yield "c"
        seen["acm cleanup"] = current()

    def use(a: str, s: str, c: str) -> str:
        return a + s + c

    with build_dag(name="resources") as dag:
        a = dag.add_resource(agen, name="agen")
        s = dag.add_resource(sgen, name="sgen")
        c = dag.add_resource(acm, name="acm")
        dag.add_node(use, a, s, c, name="use")
    await dag.invoke(None, observers=[rec])
    run_id = _run_id(rec)
    assert seen == {
        "agen setup": RunContext("resources", run_id, "agen", 1),
        "sgen setup": RunContext("resources", run_id, "sgen", 1),
        "acm setup": RunContext("resources", run_id, "acm", 1),
        "agen cleanup": RunContext("resources", run_id, "agen", 0),
        "sgen cleanup": RunContext("resources", run_id, "sgen", 0),
        "acm cleanup": RunContext("resources", run_id, "acm", 0),
    }


async def test_current_in_a_sync_resource_set_up_and_cleaned_in_a_thread() -> None:
    rec = Recorder()
    seen: dict[str, RunContext | None] = {}
    threads: list[threading.Thread] = []

    def conn() -> Iterator[str]:
        threads.append(threading.current_thread())
        seen["setup"] = current()
        yield "c"
        threads.append(threading.current_thread())
        seen["cleanup"] = current()

    with build_dag(name="thread-resource") as dag:
        dag.add_resource(conn, name="conn", executor="thread")
    await dag.invoke(None, observers=[rec])
    assert len(threads) == 2
    assert all(t is not threading.main_thread() for t in threads)
    run_id = _run_id(rec)
    assert seen == {
        "setup": RunContext("thread-resource", run_id, "conn", 1),
        "cleanup": RunContext("thread-resource", run_id, "conn", 0),
    }


async def test_current_counts_the_attempts_of_a_retried_body() -> None:
    rec = Recorder()
    seen: list[RunContext | None] = []

    async def flaky() -> int:
        seen.append(current())
        if len(seen) < 2:
            raise ConnectionError("reset")
        return 1

    def thread_flaky() -> int:
        seen.append(current())
        if len(seen) < 4:
            raise ConnectionError("reset")
        return 1

    retry = Retry(attempts=3, initial_delay=0.001)
    with build_dag(name="attempts") as dag:
        f = dag.add_node(flaky, name="flaky", retry=retry)
        dag.add_node(thread_flaky, name="thread_flaky", retry=retry, executor="thread", after=[f])
    await dag.invoke(None, observers=[rec])
    run_id = _run_id(rec)
    assert seen == [
        RunContext("attempts", run_id, "flaky", 1),
        RunContext("attempts", run_id, "flaky", 2),
        RunContext("attempts", run_id, "thread_flaky", 1),
        RunContext("attempts", run_id, "thread_flaky", 2),
    ]


async def test_current_in_async_map_items_after_an_await() -> None:
    rec = Recorder()
    seen: dict[str, RunContext | None] = {}

    async def item(x: int) -> int:
        seen[f"{x} first step"] = current()
        await asyncio.sleep(0)
        seen[f"{x} after an await"] = current()
        return x

    with build_dag(name="mapped") as dag:
        dag.add_map(item, [0, 1, 2], name="m", limit=2)
    await dag.invoke(None, observers=[rec])
    run_id = _run_id(rec)
    assert seen == {
        f"{x} {when}": RunContext("mapped", run_id, f"m[{x}]", 1)  # items are named like events
        for x in range(3)
        for when in ("first step", "after an await")
    }


async def test_current_in_map_items_run_in_a_thread() -> None:
    rec = Recorder()
    seen: dict[int, RunContext | None] = {}

    def item(x: int) -> int:
        seen[x] = current()
        return x

    with build_dag(name="mapped-threads") as dag:
        dag.add_map(item, [0, 1], name="t", executor="thread")
    await dag.invoke(None, observers=[rec])
    run_id = _run_id(rec)
    assert seen == {x: RunContext("mapped-threads", run_id, f"t[{x}]", 1) for x in (0, 1)}


async def test_the_innermost_run_wins_in_a_sub_graph() -> None:
    rec = Recorder()
    seen: dict[str, RunContext | None] = {}

    async def inner_node(x: int) -> int:
        await asyncio.sleep(0)
        seen["inner"] = current()
        return x

    with build_dag(int, name="inner") as inner:
        inner.add_node(inner_node, inner.params, name="inner_node")

    def before(x: int) -> int:
        seen["outer"] = current()
        return x

    def after(r: dagwire.ExecutionResult[int]) -> bool:
        seen["after"] = current()
        return r.ok

    with build_dag(int, name="outer") as outer:
        b = outer.add_node(before, outer.params, name="before")
        sub = outer.add_node(inner, b, name="sub")
        outer.add_node(after, sub, name="after")
    await outer.invoke(1, observers=[rec])
    outer_id, inner_id = rec.run_ids()
    assert seen == {
        "outer": RunContext("outer", outer_id, "before", 1),
        "inner": RunContext("inner", inner_id, "inner_node", 1),
        "after": RunContext("outer", outer_id, "after", 1),
    }


async def test_current_in_a_cached_body_names_the_run_that_started_the_call() -> None:
    """A `Cache` shares one call between runs; the body still runs as a node of the run whose
    miss started it, so `current()` there is that run's node."""
    rec = Recorder()
    seen: list[RunContext | None] = []

    async def load(x: int) -> int:
        seen.append(current())
        return x

    with build_dag(int, name="cached") as dag:
        dag.add_node(load, dag.params, name="load", cache=Cache(ttl=60.0))
    await dag.invoke(5, observers=[rec])
    assert seen == [RunContext("cached", _run_id(rec), "load", 1)]


async def test_current_is_none_in_tasks_and_threads_a_body_starts_itself() -> None:
    """`current()` finds the run by looking up the calling stack (plain nodes pay nothing for
    it), so a task that a body starts with `asyncio.create_task`, or a thread it starts with
    `asyncio.to_thread`, is outside the run: None there, before and after its first await,
    whatever the loop's task factory."""
    seen: dict[str, RunContext | None] = {}

    async def helper() -> None:
        seen["task, first step"] = current()
        await asyncio.sleep(0)
        seen["task, after an await"] = current()

    def in_thread() -> None:
        seen["to_thread"] = current()

    async def body() -> int:
        await asyncio.create_task(helper())
        await asyncio.to_thread(in_thread)
        seen["body"] = current()
        return 1

    with build_dag(name="own-tasks") as dag:
        dag.add_node(body, name="body")
    await dag.invoke(None)
    assert seen["body"] is not None
    assert seen["task, first step"] is None
    assert seen["task, after an await"] is None
    assert seen["to_thread"] is None


# -- context variables -------------------------------------------------------------------------


async def test_nodes_hooks_and_resources_see_the_callers_context_variables() -> None:
    seen: dict[str, str] = {}

    async def conn() -> AsyncIterator[str]:
        seen["setup"] = request_id.get()
        yield "c"
        seen["cleanup"] = request_id.get()

    async def first() -> int:
        seen["first"] = request_id.get()
        return 1

    def inline(c: str, x: int) -> int:
        seen["inline"] = request_id.get()
        return x

    def blocking(x: int) -> int:
        seen["thread"] = request_id.get()
        return x

    def pooled(x: int) -> int:
        seen["pool"] = request_id.get()
        return x

    async def item(x: int) -> int:
        seen[f"item {x}"] = request_id.get()
        return x

    def pre() -> None:
        seen["pre"] = request_id.get()

    async def post() -> None:
        seen["post"] = request_id.get()

    with ThreadPoolExecutor(max_workers=1) as pool:
        with build_dag(name="contextvars") as dag:
            f = dag.add_node(first, name="first")
            c = dag.add_resource(conn, name="conn")
            i = dag.add_node(inline, c, f, name="inline", pre=pre, post=post)
            b = dag.add_node(blocking, i, name="blocking", executor="thread")
            dag.add_node(pooled, b, name="pooled", executor=pool)
            dag.add_map(item, [0, 1], name="items")
        token = request_id.set("req-42")
        try:
            await dag.invoke(None)
            await dag.invoke(None, timeout=5.0, observers=[Recorder()])
        finally:
            request_id.reset(token)
    assert seen == dict.fromkeys(
        [
            "setup",
            "cleanup",
            "first",
            "inline",
            "thread",
            "pool",
            "item 0",
            "item 1",
            "pre",
            "post",
        ],
        "req-42",
    )


async def test_a_sync_resource_in_a_thread_sees_the_callers_context_variables() -> None:
    seen: dict[str, str] = {}

    def conn() -> Iterator[str]:
        seen["setup"] = request_id.get()
        yield "c"
        seen["cleanup"] = request_id.get()

    with build_dag(name="thread-resource-vars") as dag:
        dag.add_resource(conn, name="conn", executor="thread")
    token = request_id.set("req-7")
    try:
        await dag.invoke(None)
    finally:
        request_id.reset(token)
    assert seen == {"setup": "req-7", "cleanup": "req-7"}


@pytest.mark.parametrize("how", ["plain", "timeout", "observed"])
async def test_what_nodes_set_is_never_seen_by_the_caller(how: str) -> None:
    seen_downstream: list[str] = []

    async def first() -> int:  # the inline root (without a timeout)
        request_id.set("set by first")
        return 1

    def pre() -> None:
        request_id.set("set by a pre hook")

    def second(x: int) -> int:
        request_id.set("set by second")
        return x

    def blocking(x: int) -> int:
        request_id.set("set in a thread")
        return x

    async def conn() -> AsyncIterator[str]:
        request_id.set("set by a resource")
        yield "c"

    def last(x: int, c: str) -> int:
        seen_downstream.append(request_id.get())
        return x

    with build_dag(name="no-leak") as dag:
        f = dag.add_node(first, name="first", pre=pre)
        s = dag.add_node(second, f, name="second")
        b = dag.add_node(blocking, s, name="blocking", executor="thread")
        c = dag.add_resource(conn, name="conn")
        dag.add_node(last, b, c, name="last")
    token = request_id.set("caller")
    try:
        if how == "plain":
            await dag.invoke(None)
        elif how == "timeout":
            await dag.invoke(None, timeout=5.0)
        else:
            await dag.invoke(None, observers=[Recorder()])
        assert request_id.get() == "caller"
    finally:
        request_id.reset(token)
    assert len(seen_downstream) == 1


async def test_an_inline_first_root_that_completes_without_waiting_leaks_nothing() -> None:
    def only() -> int:
        request_id.set("set by the only node")
        return 1

    with build_dag(name="inline-only") as dag:
        dag.add_node(only, name="only")
    token = request_id.set("caller")
    try:
        await dag.invoke(None)
        assert request_id.get() == "caller"
    finally:
        request_id.reset(token)


async def test_a_resource_cleanup_runs_in_the_context_its_setup_ran_in() -> None:
    """An async generator's code after `yield` sees what its code before `yield` set, as in
    one `async with`: a resource may set a context variable and reset it with its token
    (as `opentelemetry.context.attach`/`detach` and `decimal.localcontext` do)."""
    seen: list[str] = []

    async def scoped() -> AsyncIterator[str]:
        token = request_id.set("inside the resource")
        try:
            yield "value"
        finally:
            seen.append(request_id.get())
            request_id.reset(token)

    def user(v: str) -> str:
        return v

    with build_dag(name="scoped-resource") as dag:
        r = dag.add_resource(scoped, name="scoped")
        u = dag.add_node(user, r, name="user")
    result = await dag.invoke(None)
    assert result[u] == "value"
    assert seen == ["inside the resource"]


async def test_concurrent_runs_each_see_their_own_context_in_threads_and_on_the_loop() -> None:
    seen: dict[tuple[int, str], RunContext | None] = {}

    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        seen[(x, "loop")] = current()
        return x

    def parse(x: int) -> int:
        seen[(x, "thread")] = current()
        return x

    with build_dag(int, name="concurrent") as dag:
        f = dag.add_node(fetch, dag.params, name="fetch")
        dag.add_node(parse, f, name="parse", executor="thread")
    recs = [Recorder() for _ in range(12)]
    await asyncio.gather(*(dag.invoke(k, observers=[rec]) for k, rec in enumerate(recs)))
    for k, rec in enumerate(recs):
        run_id = _run_id(rec)
        assert seen[(k, "loop")] == RunContext("concurrent", run_id, "fetch", 1)
        assert seen[(k, "thread")] == RunContext("concurrent", run_id, "parse", 1)
    # A pool thread that ran a node knows nothing of the run afterwards.
    assert await asyncio.to_thread(current) is None
    assert current() is None


async def test_a_graph_invoked_inside_a_body_is_innermost_only_while_it_runs() -> None:
    rec = Recorder()
    seen: dict[str, RunContext | None] = {}

    def inner_node() -> int:
        seen["inner"] = current()
        return 1

    with build_dag(name="direct-inner") as inner:
        inner.add_node(inner_node, name="inner_node")

    async def body() -> int:
        seen["before"] = current()
        await inner.invoke(None, observers=[rec])
        seen["after"] = current()
        return 1

    with build_dag(name="direct-outer") as outer:
        outer.add_node(body, name="body")
    await outer.invoke(None, observers=[rec])
    inner_id, outer_id = sorted(rec.run_ids(), key=lambda r: rec.of(None, r)[-1].time)
    outer_ctx = RunContext("direct-outer", outer_id, "body", 1)
    assert seen == {
        "before": outer_ctx,
        "inner": RunContext("direct-inner", inner_id, "inner_node", 1),
        "after": outer_ctx,
    }


async def test_current_in_a_streamed_run_and_with_max_concurrency() -> None:
    seen: list[RunContext | None] = []

    async def a() -> int:
        await asyncio.sleep(0)
        seen.append(current())
        return 1

    def b(x: int) -> int:
        seen.append(current())
        return x

    with build_dag(name="streamed") as dag:
        na = dag.add_node(a, name="a")
        dag.add_node(b, na, name="b")
    completions = [c async for c in dag.stream(None)]
    assert [c.node.name for c in completions] == ["a", "b"]
    await dag.invoke(None, max_concurrency=1)
    assert [(s.dag, s.node, s.attempt) if s else None for s in seen] == [
        ("streamed", "a", 1),
        ("streamed", "b", 1),
    ] * 2
    ids = [s.run_id for s in seen if s is not None]
    assert ids[0] == ids[1] != ids[2] == ids[3]
