"""Running a graph: start-as-soon-as-ready scheduling, parameters, immediates, sync nodes,
`after=` / `join`, concurrent reuse, `await dag(params)`, timelines and 10,000-node chains."""

from __future__ import annotations

import asyncio
import functools
import itertools
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from dagwire import Dag, ExecutionResult, Node, NodeStatus, build_dag

# Generous, ordering-only timing rules: a node must start after its inputs ended, and soon after.
SOON = 0.05

Spans = dict[str, list[float]]  # node name -> [start, end] (time.perf_counter)


def one_arg_task(name: str, delay: float, spans: Spans) -> Callable[[int], Awaitable[int]]:
    async def task(n: int) -> int:
        spans[name] = [time.perf_counter(), float("nan")]
        await asyncio.sleep(delay)
        spans[name][1] = time.perf_counter()
        return n + 1

    task.__qualname__ = name
    return task


def two_arg_task(name: str, delay: float, spans: Spans) -> Callable[[int, int], Awaitable[int]]:
    async def task(a: int, b: int) -> int:
        spans[name] = [time.perf_counter(), float("nan")]
        await asyncio.sleep(delay)
        spans[name][1] = time.perf_counter()
        return a + b

    task.__qualname__ = name
    return task


def readme_graph(spans: Spans, scale: float = 0.2) -> tuple[Dag[int], dict[str, Node[int]]]:
    """The async-dag README graph (seeds/004), its timings scaled by `scale`."""
    with build_dag(int) as dag:
        fast_a = dag.add_node(one_arg_task("fast_a", 0.1 * scale, spans))  # param injected
        slow_b = dag.add_node(one_arg_task("slow_b", 1.0 * scale, spans), fast_a)
        slow_a = dag.add_node(one_arg_task("slow_a", 0.5 * scale, spans))
        fast_b = dag.add_node(one_arg_task("fast_b", 0.1 * scale, spans))
        fast_c = dag.add_node(two_arg_task("fast_c", 0.1 * scale, spans), slow_a, fast_b)
        end = dag.add_node(two_arg_task("end", 0.0, spans), fast_c, slow_b)
    nodes = {
        "fast_a": fast_a,
        "slow_b": slow_b,
        "slow_a": slow_a,
        "fast_b": fast_b,
        "fast_c": fast_c,
        "end": end,
    }
    return dag, nodes


def input_names(node: Node[Any]) -> list[str]:
    names = [inp.name for inp in node.inputs if isinstance(inp, Node)]
    return [n for n in names if n != "params"] + [a.name for a in node.after]


# -- scheduling ---------------------------------------------------------------------------


async def test_readme_graph_starts_each_node_right_after_its_last_input() -> None:
    spans: Spans = {}
    dag, nodes = readme_graph(spans)
    t0 = time.perf_counter()
    result = await dag.invoke(0)

    # The README's values: fast_task_a -> 1, end_task -> 4.
    assert nodes["fast_a"].extract_result(result) == 1
    assert result[nodes["end"]] == 4
    assert result[nodes["slow_b"]] == 2
    assert result[nodes["fast_c"]] == 2

    for name, node in nodes.items():
        start, end = spans[name]
        assert start <= end
        inputs = input_names(node)
        ready = max((spans[i][1] for i in inputs), default=t0)
        assert start >= ready, f"{name} started before its inputs {inputs} ended"
        assert start - ready < SOON, f"{name} started {start - ready:.3f}s after it was ready"

    # The point of the graph: slow_b starts as soon as fast_a is done, not after slow_a.
    assert spans["slow_b"][0] < spans["slow_a"][1]
    assert spans["slow_b"][0] < spans["fast_c"][0]
    # fast_c waits for both of its inputs, end waits for fast_c and slow_b.
    assert spans["fast_c"][0] >= max(spans["slow_a"][1], spans["fast_b"][1])
    assert spans["end"][0] >= max(spans["fast_c"][1], spans["slow_b"][1])

    # The README's start order: the three roots first, then slow_b, fast_c, end.
    starts = sorted(spans, key=lambda n: spans[n][0])
    assert set(starts[:3]) == {"fast_a", "slow_a", "fast_b"}
    assert starts[3:] == ["slow_b", "fast_c", "end"]


async def test_timeline_gives_per_node_start_and_end() -> None:
    spans: Spans = {}
    dag, nodes = readme_graph(spans, scale=0.1)
    result = await dag.invoke(0, timeline=True)
    timeline = result.timeline()
    assert {t.node for t in timeline} == set(nodes)
    assert [t.start for t in timeline] == sorted(t.start for t in timeline)
    by_name = {t.node: t for t in timeline}
    for name, node in nodes.items():
        t = by_name[name]
        assert t.status is NodeStatus.SUCCEEDED
        assert t.attempts == 1
        assert 0 <= t.start <= t.end
        ready = max((by_name[i].end for i in input_names(node)), default=0.0)
        assert t.start >= ready
        assert t.start - ready < SOON
    assert by_name["slow_b"].start < by_name["slow_a"].end
    assert by_name["slow_b"].end - by_name["slow_b"].start >= 0.1 * 0.9  # it slept 0.1 s


# -- parameters -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    value: int


class Service:
    def __init__(self, tag: str) -> None:
        self.tag = tag

    def combine(self, x: int, p: Params) -> tuple[str, int, int]:
        return (self.tag, x, p.value)

    async def acombine(self, x: int, p: Params) -> tuple[str, int, int]:
        await asyncio.sleep(0)
        return (self.tag, x, p.value)


def combine(tag: str, x: int, p: Params) -> tuple[str, int, int]:
    return (tag, x, p.value)


async def acombine(tag: str, x: int, p: Params) -> tuple[str, int, int]:
    await asyncio.sleep(0)
    return (tag, x, p.value)


def read_value(p: Params) -> int:
    return p.value


async def aread_value(p: Params) -> int:
    await asyncio.sleep(0)
    return p.value


async def test_explicit_params_node() -> None:
    with build_dag(Params) as dag:
        v = dag.add_node(lambda p: p.value * 10, dag.params)
        w = dag.add_node(lambda p, x: (p.value, x), dag.params, v)
    result = await dag.invoke(Params(4))
    assert result[v] == 40
    assert result[w] == (4, 40)
    assert result[dag.params] == Params(4)


async def test_injected_params_every_kind_of_callable() -> None:
    svc = Service("svc")
    with build_dag(Params) as dag:
        x = dag.add_node(read_value)  # 0 inputs, 1 required positional: injected
        ax = dag.add_node(aread_value)
        lam0 = dag.add_node(lambda p: p.value + 1)
        lam1 = dag.add_node(lambda x, p: (x, p.value), x)
        sync_fn = dag.add_node(combine, "fn", x)
        async_fn = dag.add_node(acombine, "afn", x)
        part = dag.add_node(functools.partial(combine, "partial"), x)
        apart = dag.add_node(functools.partial(acombine, "apartial"), x)
        bound = dag.add_node(svc.combine, x)
        abound = dag.add_node(svc.acombine, x)
    result = await dag.invoke(Params(7))
    assert result[x] == 7
    assert result[ax] == 7
    assert result[lam0] == 8
    assert result[lam1] == (7, 7)
    assert result[sync_fn] == ("fn", 7, 7)
    assert result[async_fn] == ("afn", 7, 7)
    assert result[part] == ("partial", 7, 7)
    assert result[apart] == ("apartial", 7, 7)
    assert result[bound] == ("svc", 7, 7)
    assert result[abound] == ("svc", 7, 7)
    # The parameter comes last: with a different parameter only the last element changes.
    other = await dag.invoke(Params(9))
    assert other[bound] == ("svc", 9, 9)
    assert other[lam1] == (9, 9)


def takes_default(x: int, y: int = 100) -> tuple[int, int]:
    return (x, y)


def injected_with_default(x: int, p: Params, extra: int = 5) -> tuple[int, int, int]:
    return (x, p.value, extra)


async def test_injection_counts_required_positionals_only() -> None:
    with build_dag(Params) as dag:
        one = dag.add_immediate_node(1)
        default_kept = dag.add_node(takes_default, one)  # 1 required == 1 input: no injection
        both_given = dag.add_node(takes_default, one, 2)
        injected = dag.add_node(injected_with_default, one)  # 2 required == 1 + 1: injected
    result = await dag.invoke(Params(3))
    assert result[default_kept] == (1, 100)
    assert result[both_given] == (1, 2)
    assert result[injected] == (1, 3, 5)


# -- immediates and sync nodes ----------------------------------------------------------


def add(a: int, b: int) -> int:
    return a + b


async def test_raw_values_are_constant_inputs() -> None:
    shared: list[int] = []

    def append(items: list[int], x: int) -> int:
        items.append(x)
        return len(items)

    with build_dag(int) as dag:
        total = dag.add_node(add, 2, 3)
        mixed = dag.add_node(add, total, 10)
        appended = dag.add_node(append, shared, dag.params)
    result = await dag.invoke(0)
    assert result[total] == 5
    assert result[mixed] == 15
    assert result[appended] == 1
    await dag.invoke(1)
    assert shared == [0, 1]  # the very object given, in every run


async def test_add_immediate_node() -> None:
    payload = {"a": 1}
    with build_dag() as dag:
        imm = dag.add_immediate_node(payload)
        size = dag.add_node(len, imm)
    result = await dag.invoke(None)
    assert result[imm] is payload
    assert result.status(imm) is NodeStatus.SUCCEEDED
    assert result[size] == 1


async def test_graph_of_immediates_only() -> None:
    with build_dag() as dag:
        imm = dag.add_immediate_node(3)
    result = await dag.invoke(None)
    assert result[imm] == 3
    assert result.ok


async def test_sync_nodes_run_inline_on_the_loop_thread() -> None:
    seen: list[tuple[int, asyncio.AbstractEventLoop]] = []
    loop = asyncio.get_running_loop()

    def where(x: int) -> int:
        seen.append((threading.get_ident(), asyncio.get_running_loop()))
        return x + 1

    with build_dag(int) as dag:
        a = dag.add_node(where, dag.params)
        b = dag.add_node(where, a)
        c = dag.add_node(where, 5)
    result = await dag.invoke(1)
    assert (result[a], result[b], result[c]) == (2, 3, 6)
    assert seen == [(threading.get_ident(), loop)] * 3


async def test_sync_function_returning_an_awaitable() -> None:
    loop = asyncio.get_running_loop()

    def deferred(x: int) -> Awaitable[int]:
        return asyncio.sleep(0.001, result=x * 2)  # a coroutine: awaited, never leaked

    def future_of(x: int) -> Awaitable[int]:
        fut: asyncio.Future[int] = loop.create_future()
        loop.call_soon(fut.set_result, x + 100)
        return fut

    with build_dag(int) as dag:
        d = dag.add_node(deferred, dag.params)
        f = dag.add_node(future_of, d)
        g = dag.add_node(lambda x: x, f)
    result = await dag.invoke(4)
    assert result[d] == 8
    assert result[f] == 108
    assert result[g] == 108


# -- after= and join --------------------------------------------------------------------


async def test_after_orders_without_passing_the_value() -> None:
    spans: Spans = {}

    async def slow() -> str:
        spans["slow"] = [time.perf_counter(), float("nan")]
        await asyncio.sleep(0.03)
        spans["slow"][1] = time.perf_counter()
        return "slow value"

    async def later() -> str:  # takes no argument: after= passes nothing
        spans["later"] = [time.perf_counter(), time.perf_counter()]
        return "later"

    def with_input(x: int) -> int:
        spans["with_input"] = [time.perf_counter(), time.perf_counter()]
        return x

    with build_dag() as dag:
        s = dag.add_node(slow)
        la = dag.add_node(later, after=s)
        wi = dag.add_node(with_input, 3, after=[s, la])
    result = await dag.invoke(None)
    assert result[la] == "later"
    assert result[wi] == 3
    assert spans["later"][0] >= spans["slow"][1]
    assert spans["later"][0] - spans["slow"][1] < SOON
    assert spans["with_input"][0] >= spans["later"][1]


async def test_join_waits_for_all_and_is_none() -> None:
    spans: Spans = {}

    def sleeper(name: str, delay: float) -> Callable[[], Awaitable[str]]:
        async def run() -> str:
            spans[name] = [time.perf_counter(), float("nan")]
            await asyncio.sleep(delay)
            spans[name][1] = time.perf_counter()
            return name

        return run

    def after_join(value: None) -> str:
        spans["after_join"] = [time.perf_counter(), time.perf_counter()]
        return f"joined: {value}"

    with build_dag() as dag:
        a = dag.add_node(sleeper("a", 0.01))
        b = dag.add_node(sleeper("b", 0.04))
        c = dag.add_node(sleeper("c", 0.02))
        j = dag.join(a, b, c)
        done = dag.add_node(after_join, j)
    result = await dag.invoke(None)
    assert result[j] is None
    assert result.status(j) is NodeStatus.SUCCEEDED
    assert result[done] == "joined: None"
    last = max(spans[n][1] for n in "abc")
    assert spans["after_join"][0] >= last
    assert spans["after_join"][0] - last < SOON


# -- reuse ------------------------------------------------------------------------------


async def test_one_frozen_graph_serves_1000_concurrent_invokes() -> None:
    runs = 1000
    arrived = 0
    all_in = asyncio.Event()

    async def enter(p: int) -> int:
        nonlocal arrived
        arrived += 1
        if arrived == runs:
            all_in.set()
        await all_in.wait()  # every run is in flight at once before any goes on
        return p

    async def square(x: int, p: int) -> int:
        await asyncio.sleep(0.001 * (p % 3))
        assert x == p
        return x * x

    async def negate(x: int) -> int:
        await asyncio.sleep(0)
        return -x

    def label(x: int, sq: int, neg: int, p: int) -> str:
        return f"{p}:{x}:{sq}:{neg}"

    with build_dag(int) as dag:
        x = dag.add_node(enter)
        sq = dag.add_node(square, x)
        neg = dag.add_node(negate, x)
        out = dag.add_node(label, x, sq, neg)

    results = await asyncio.gather(*(dag.invoke(p) for p in range(runs)))
    for p, result in enumerate(results):
        assert result.params == p
        assert result[dag.params] == p
        assert result[out] == f"{p}:{p}:{p * p}:{-p}"
        assert result.ok
    assert arrived == runs


# -- await dag(params) ------------------------------------------------------------------


async def test_awaiting_the_dag_is_invoke() -> None:
    with build_dag(int) as dag:
        a = dag.add_node(lambda p: p + 1)
        b = dag.add_node(add, a, dag.params)
    called = await dag(10)
    invoked = await dag.invoke(10)
    assert isinstance(called, ExecutionResult)
    assert called.params == invoked.params == 10
    assert (called[a], called[b]) == (invoked[a], invoked[b]) == (11, 21)
    assert called.ok


# -- 10,000-node chains -------------------------------------------------------------------

CHAIN = 10_000


def inc(x: int) -> int:
    return x + 1


async def ainc(x: int) -> int:
    await asyncio.sleep(0)
    return x + 1


async def test_10000_node_sync_chain() -> None:
    with build_dag(int) as dag:
        node: Node[int] = dag.params
        for _ in range(CHAIN):
            node = dag.add_node(inc, node)
    assert len(dag.nodes) == CHAIN + 1
    result = await dag.invoke(0)
    assert result[node] == CHAIN
    assert result.status(node) is NodeStatus.SUCCEEDED


async def test_10000_node_async_chain() -> None:
    with build_dag(int) as dag:
        node: Node[int] = dag.params
        for _ in range(CHAIN):
            node = dag.add_node(ainc, node)
    result = await dag.invoke(5)
    assert result[node] == CHAIN + 5


async def test_10000_node_mixed_chain_with_timeline() -> None:
    with build_dag(int) as dag:
        node: Node[int] = dag.params
        for k in range(CHAIN):
            node = dag.add_node(ainc, node) if k % 2 else dag.add_node(inc, node)
    result = await dag.invoke(0, timeline=True)
    assert result[node] == CHAIN
    timeline = result.timeline()
    assert len(timeline) == CHAIN
    assert all(a.end <= b.start for a, b in itertools.pairwise(timeline))
