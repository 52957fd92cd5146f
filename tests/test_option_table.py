"""Every option on every kind of callable either works or is refused at build time.

One table, `EXPECTED`, decides each cell (option x kind). A "works" cell runs a real graph and
checks the option's effect; a refused cell checks the `DagDefinitionError` names the callable,
the option and what to use instead. A cell cannot be missing: `test_the_table_is_complete`.

Kinds: async function, inline sync function, sync function in an executor, async generator
resource, sync generator resource (inline and in an executor), async context-manager resource
(a class, an @asynccontextmanager function, a function annotated to return one), sync
context-manager resource (a class inline, a @contextmanager function in an executor), a lambda
returning a context manager (sync or async: unknown before it is called), and join.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from dagwire import (
    Cache,
    CircuitBreaker,
    CircuitOpenError,
    Dag,
    DagDefinitionError,
    DagError,
    Event,
    ExecutionResult,
    Limiter,
    Node,
    NodeStatus,
    Retry,
)
from dagwire.events import CleanupFinished, NodeFailed

# Safety nets only (a broken promise fails instead of hanging the suite), never speed checks.
HANG = 2.0
SHORT = 0.05  # a timeout that only a body blocked until HANG can reach

OPTIONS = (
    "name",
    "after",
    "timeout",
    "retry",
    "fallback",
    "breaker",
    "limiter",
    "executor",
    "pre",
    "post",
    "tags",
    "release",
    "cleanup_timeout",
    "cache",
)
KINDS = (
    "async_fn",
    "sync_fn",
    "sync_fn_thread",
    "async_gen",
    "sync_gen",
    "sync_gen_thread",
    "async_cm_class",
    "asynccontextmanager",
    "sync_cm_class",
    "contextmanager_thread",
    "cm_factory",
    "cm_lambda",
    "join",
)
NODES = ("async_fn", "sync_fn", "sync_fn_thread")
RESOURCES = tuple(k for k in KINDS if k not in NODES and k != "join")
ASYNC = ("async_fn", "async_gen", "async_cm_class", "asynccontextmanager", "cm_factory")
SYNC_INLINE = ("sync_fn", "sync_gen", "sync_cm_class")
SYNC_THREAD = ("sync_fn_thread", "sync_gen_thread", "contextmanager_thread")


@dataclass(frozen=True)
class Refused:
    """The cell is refused with a message matching `hint` (what to use instead)."""

    hint: str


WORKS = "works"
JOIN_HINT = r"on the nodes the join waits for|join\(a, b, c\)|after=\[barrier\]|add_resource"
TO_THREAD = 'executor="thread"'
UNKNOWN_HINT = r"cannot tell.*@asynccontextmanager"


def _expected(option: str, kind: str) -> str | Refused:
    if kind == "join":
        return WORKS if option in ("name", "tags") else Refused(JOIN_HINT)
    if option == "release":
        return WORKS if kind in RESOURCES else Refused(r"resources only.*add_resource\(\)")
    if option == "cache":
        return WORKS if kind in NODES else Refused(r"add_node only.*cache the node that computes")
    if kind == "cm_lambda" and option in ("timeout", "cleanup_timeout", "executor"):
        return Refused(UNKNOWN_HINT)
    if option == "timeout" and kind in SYNC_INLINE:
        return Refused(TO_THREAD)
    if option == "executor" and kind in ASYNC:
        return Refused(r"asyncio\.to_thread")
    if option == "cleanup_timeout" and kind in ("sync_gen", "sync_cm_class"):
        return Refused(TO_THREAD)
    return WORKS


EXPECTED: dict[tuple[str, str], str | Refused] = {
    (option, kind): _expected(option, kind) for option in OPTIONS for kind in KINDS
}

# Cells that need the run loop to run a sync resource's setup and cleanup in its executor.
NEEDS_EXECUTOR_RESOURCES = {
    ("executor", "sync_gen"),
    ("executor", "sync_gen_thread"),
    ("executor", "sync_cm_class"),
    ("executor", "contextmanager_thread"),
    ("timeout", "sync_gen_thread"),
    ("timeout", "contextmanager_thread"),
    ("cleanup_timeout", "sync_gen_thread"),
    ("cleanup_timeout", "contextmanager_thread"),
}


# -- a probe: the body (or setup) and cleanup of every kind call into one of these ----------


@dataclass
class Probe:
    log: list[str] = field(default_factory=list[str])
    threads: dict[str, int] = field(default_factory=dict[str, int])
    thread_names: dict[str, str] = field(default_factory=dict[str, str])
    calls: int = 0
    fail_first: int = 0  # the first n calls of the body/setup raise ConnectionError
    block_setup: bool = False  # the body/setup waits (until HANG, or `release` in threads)
    block_cleanup: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    during_setup: Callable[[], None] | None = None
    cleaned: asyncio.Event = field(default_factory=asyncio.Event)
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)

    def _enter(self, phase: str) -> None:
        self.threads[phase] = threading.get_ident()
        self.thread_names[phase] = threading.current_thread().name
        self.log.append(phase)

    def _setup_start(self) -> None:
        self.calls += 1
        self._enter("setup")
        if self.during_setup is not None:
            self.during_setup()
        if self.calls <= self.fail_first:
            raise ConnectionError(f"call {self.calls} fails")

    def setup(self) -> str:
        self._setup_start()
        if self.block_setup:
            self.release.wait(HANG)
            self.log.append("setup not interrupted")
        return "value"

    async def asetup(self) -> str:
        await asyncio.sleep(0)
        self._setup_start()
        if self.block_setup:
            await asyncio.sleep(HANG)
            self.log.append("setup not interrupted")
        return "value"

    def cleanup(self) -> None:
        self._enter("cleanup")
        if self.block_cleanup:
            self.release.wait(HANG)
            self.log.append("cleanup not interrupted")
        self.loop.call_soon_threadsafe(self.cleaned.set)

    async def acleanup(self) -> None:
        self._enter("cleanup")
        if self.block_cleanup:
            await asyncio.sleep(HANG)
            self.log.append("cleanup not interrupted")
        self.cleaned.set()


class AsyncCM:
    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def __aenter__(self) -> str:
        return await self.probe.asetup()

    async def __aexit__(self, *exc: object) -> None:
        await self.probe.acleanup()


class SyncCM:
    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    def __enter__(self) -> str:
        return self.probe.setup()

    def __exit__(self, *exc: object) -> None:
        self.probe.cleanup()


def async_cm_class(probe: Probe) -> type[AsyncCM]:
    """A context-manager class (the factory is the class itself) bound to `probe`."""

    class BoundAsyncCM(AsyncCM):
        def __init__(self) -> None:
            super().__init__(probe)

    return BoundAsyncCM


def sync_cm_class(probe: Probe) -> type[SyncCM]:
    class BoundSyncCM(SyncCM):
        def __init__(self) -> None:
            super().__init__(probe)

    return BoundSyncCM


def callable_of(kind: str, probe: Probe) -> tuple[Callable[..., Any], dict[str, Any]]:
    """The callable of `kind` driving `probe`, and the options that make it that kind."""
    thread: dict[str, Any] = {"executor": "thread"}
    if kind == "async_fn":

        async def async_fn() -> str:
            return await probe.asetup()

        return async_fn, {}
    if kind in ("sync_fn", "sync_fn_thread"):

        def sync_fn() -> str:
            return probe.setup()

        return sync_fn, thread if kind == "sync_fn_thread" else {}
    if kind == "async_gen":

        async def async_gen() -> AsyncIterator[str]:
            value = await probe.asetup()
            try:
                yield value
            finally:
                await probe.acleanup()

        return async_gen, {}
    if kind in ("sync_gen", "sync_gen_thread", "contextmanager_thread"):

        def sync_gen() -> Generator[str, None, None]:
            value = probe.setup()
            try:
                yield value
            finally:
                probe.cleanup()

        if kind == "contextmanager_thread":
            return contextmanager(sync_gen), thread
        return sync_gen, thread if kind == "sync_gen_thread" else {}
    if kind == "asynccontextmanager":

        async def acm() -> AsyncGenerator[str, None]:
            value = await probe.asetup()
            try:
                yield value
            finally:
                await probe.acleanup()

        return asynccontextmanager(acm), {}
    if kind == "async_cm_class":
        return async_cm_class(probe), {}
    if kind == "sync_cm_class":
        return sync_cm_class(probe), {}
    if kind == "cm_lambda":  # returns an async context manager, which nothing says before a call
        return (lambda: AsyncCM(probe)), {}
    assert kind == "cm_factory", kind

    def cm_factory() -> AsyncCM:  # the annotation says what it returns
        return AsyncCM(probe)

    return cm_factory, {}


def add(dag: Dag[None], kind: str, probe: Probe, *inputs: object, **options: Any) -> Node[Any]:
    """Add a node of `kind` driving `probe`, with `options` (over the kind's own)."""
    loose: Any = dag  # options of every kind go through one call: typed as Any on purpose
    if kind == "join":

        async def member() -> str:
            return await probe.asetup()

        barrier: Node[Any] = loose.join(dag.add_node(member), *inputs, **options)
        return barrier
    fn, base = callable_of(kind, probe)
    adder = loose.add_node if kind in NODES else loose.add_resource
    node: Node[Any] = adder(fn, *inputs, **{**base, **options})
    return node


async def run(dag: Dag[None], **kwargs: Any) -> ExecutionResult[None]:
    dag.freeze()
    return await dag.invoke(None, **kwargs)


def failure(err: DagError, node: Node[Any]) -> BaseException:
    return err.failures[node.name]


# -- what "works" means, option by option ----------------------------------------------------


async def works_name(kind: str) -> None:
    probe, dag = Probe(), Dag[None]()
    node = add(dag, kind, probe, name="custom")
    assert node.name == "custom"
    assert dag.node("custom") is node
    assert (await run(dag)).status(node) is NodeStatus.SUCCEEDED


async def works_after(kind: str) -> None:
    probe, dag = Probe(), Dag[None]()

    async def gate() -> None:
        for _ in range(3):  # a root that yields: without after=, the node would start first
            await asyncio.sleep(0)
        probe.log.append("gate done")

    g = dag.add_node(gate)
    node = add(dag, kind, probe, after=[g])
    result = await run(dag)
    assert result.status(node) is NodeStatus.SUCCEEDED
    assert node.after == (g,)
    assert probe.log.index("gate done") < probe.log.index("setup")


def release_on_failure(probe: Probe) -> Callable[[Event], None]:
    """An observer: once the node has failed, let a blocked thread go (threads cannot be
    interrupted; the run stops waiting for them, and cleans up what they acquired)."""

    def observe(event: Event) -> None:
        if isinstance(event, NodeFailed | CleanupFinished) and event.error is not None:
            probe.release.set()

    return observe


async def works_timeout(kind: str) -> None:
    probe, dag = Probe(block_setup=True), Dag[None]()
    node = add(dag, kind, probe, timeout=SHORT)
    try:
        with pytest.raises(DagError) as caught:
            await run(dag, observers=[release_on_failure(probe)])
    finally:
        probe.release.set()
    assert isinstance(failure(caught.value, node), TimeoutError)
    if kind in ASYNC:  # a coroutine is cancelled at its await; a thread runs to its end
        assert "setup not interrupted" not in probe.log


async def works_retry(kind: str) -> None:
    probe, dag = Probe(fail_first=1), Dag[None]()
    node = add(dag, kind, probe, retry=Retry(attempts=2, initial_delay=0))
    result = await run(dag)
    assert result[node] == "value"
    assert probe.calls == 2
    if kind in RESOURCES:  # only the setup that succeeded is cleaned up
        assert probe.log.count("cleanup") == 1


async def works_fallback(kind: str) -> None:
    probe, dag = Probe(fail_first=99), Dag[None]()
    node = add(dag, kind, probe, fallback="fallback")
    user = dag.add_node(lambda v: f"got {v}", node)
    result = await run(dag)
    assert result[node] == "fallback"
    assert result[user] == "got fallback"
    assert [(f.node, f.recovered) for f in result.errors] == [(node.name, True)]


async def works_breaker(kind: str) -> None:
    probe, dag = Probe(fail_first=99), Dag[None]()
    breaker = CircuitBreaker(fail_max=1, reset_timeout=3600)
    node = add(dag, kind, probe, breaker=breaker)
    with pytest.raises(DagError) as first:
        await run(dag)
    assert isinstance(failure(first.value, node), ConnectionError)
    with pytest.raises(DagError) as second:
        await run(dag)
    assert isinstance(failure(second.value, node), CircuitOpenError)
    assert probe.calls == 1  # the open breaker refused the second call


async def works_limiter(kind: str) -> None:
    limiter = Limiter(1)
    seen: list[int] = []
    probe, dag = Probe(during_setup=lambda: seen.append(limiter.in_use)), Dag[None]()
    node = add(dag, kind, probe, limiter=limiter)
    result = await run(dag)
    assert result.status(node) is NodeStatus.SUCCEEDED
    assert seen == [1]  # the slot was held while the body (or setup) ran
    assert limiter.in_use == 0


async def works_executor(kind: str) -> None:
    probe, dag = Probe(), Dag[None]()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="table") as pool:
        node = add(dag, kind, probe, executor=pool)
        result = await run(dag)
    assert result[node] == "value"
    assert probe.thread_names["setup"].startswith("table")
    if kind in RESOURCES:  # setup *and* cleanup run in the executor
        assert probe.thread_names["cleanup"].startswith("table")


async def works_pre(kind: str) -> None:
    probe, dag = Probe(), Dag[None]()
    node = add(dag, kind, probe, pre=lambda: probe.log.append("pre"))
    result = await run(dag)
    assert result.status(node) is NodeStatus.SUCCEEDED
    assert probe.log.index("pre") < probe.log.index("setup")


async def works_post(kind: str) -> None:
    probe, dag = Probe(), Dag[None]()
    node = add(dag, kind, probe, post=lambda: probe.log.append("post"))
    later = dag.add_node(lambda v: probe.log.append("user"), node)
    result = await run(dag)
    assert result.status(later) is NodeStatus.SUCCEEDED
    assert probe.log.index("setup") < probe.log.index("user") < probe.log.index("post")
    if kind in RESOURCES:  # post runs after the resource's own exit
        assert probe.log.index("cleanup") < probe.log.index("post")


async def works_tags(kind: str) -> None:
    probe, dag = Probe(), Dag[None]()
    node = add(dag, kind, probe, tags=("db", "slow"))
    assert node.tags == ("db", "slow")
    assert (await run(dag)).status(node) is NodeStatus.SUCCEEDED


async def works_release(kind: str) -> None:
    probe, dag = Probe(), Dag[None]()
    res = add(dag, kind, probe, release="early")
    user = dag.add_node(lambda v: probe.log.append("user"), res)

    async def later() -> None:  # ends only once the resource is released
        await asyncio.wait_for(probe.cleaned.wait(), HANG)
        probe.log.append("later saw the release")

    dag.add_node(later, after=[user])
    await run(dag)
    assert probe.log[-1] == "later saw the release"


async def works_cleanup_timeout(kind: str) -> None:
    probe, dag = Probe(block_cleanup=kind in RESOURCES), Dag[None]()
    options: dict[str, Any] = {"cleanup_timeout": SHORT}
    if kind in NODES:  # a node's cleanup is its post= hook: an async one that hangs

        async def hanging_post() -> None:
            await asyncio.sleep(HANG)
            probe.log.append("cleanup not interrupted")

        options["post"] = hanging_post
    node = add(dag, kind, probe, **options)
    try:
        with pytest.raises(DagError) as caught:
            await run(dag, observers=[release_on_failure(probe)])
    finally:
        probe.release.set()
    assert isinstance(failure(caught.value, node), TimeoutError)
    if kind in ASYNC or kind in NODES:  # the hanging post= hook of a node is async
        assert "cleanup not interrupted" not in probe.log


async def works_cache(kind: str) -> None:
    probe, dag = Probe(), Dag[None]()
    node = add(dag, kind, probe, cache=Cache(ttl=math.inf))
    first, second = await run(dag), await run(dag)
    assert first[node] == second[node] == "value"
    assert probe.calls == 1  # the second run took the cached value
    assert second.status(node) is NodeStatus.SUCCEEDED


WORKS_CHECKS: dict[str, Callable[[str], Any]] = {
    "name": works_name,
    "after": works_after,
    "timeout": works_timeout,
    "retry": works_retry,
    "fallback": works_fallback,
    "breaker": works_breaker,
    "limiter": works_limiter,
    "executor": works_executor,
    "pre": works_pre,
    "post": works_post,
    "tags": works_tags,
    "release": works_release,
    "cleanup_timeout": works_cleanup_timeout,
    "cache": works_cache,
}

# A valid value of each option, for the refused cells.
VALUES: dict[str, Callable[[Dag[None]], object]] = {
    "name": lambda dag: "n",
    "after": lambda dag: [dag.add_node(lambda: 0)],
    "timeout": lambda dag: 1.0,
    "retry": lambda dag: 2,
    "fallback": lambda dag: 0,
    "breaker": lambda dag: CircuitBreaker(),
    "limiter": lambda dag: Limiter(1),
    "executor": lambda dag: "thread",
    "pre": lambda dag: lambda: None,
    "post": lambda dag: lambda: None,
    "tags": lambda dag: ("t",),
    "release": lambda dag: "early",
    "cleanup_timeout": lambda dag: 1.0,
    "cache": lambda dag: Cache(),
}


def test_the_table_is_complete() -> None:
    assert set(WORKS_CHECKS) == set(OPTIONS) == set(VALUES)
    assert len(EXPECTED) == len(OPTIONS) * len(KINDS)
    assert {c for c, e in EXPECTED.items() if e == WORKS} >= NEEDS_EXECUTOR_RESOURCES


CELLS = [
    pytest.param(
        option,
        kind,
        id=f"{option}-{kind}-{'works' if EXPECTED[option, kind] == WORKS else 'refused'}",
    )
    for option in OPTIONS
    for kind in KINDS
]


@pytest.mark.parametrize(("option", "kind"), CELLS)
async def test_cell(option: str, kind: str) -> None:
    expected = EXPECTED[option, kind]
    if isinstance(expected, Refused):
        dag = Dag[None]()
        with pytest.raises(DagDefinitionError) as caught:
            add(dag, kind, Probe(), **{option: VALUES[option](dag)})
        message = str(caught.value)
        assert f"{option}=" in message
        call = "join(" if kind == "join" else "add_node(" if kind in NODES else "add_resource("
        assert message.startswith(call), message  # names the call and the function
        assert re.search(expected.hint, message), message
        return
    await WORKS_CHECKS[option](kind)
