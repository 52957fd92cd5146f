"""Benchmark rows for `dagwire.Cache`: cache hits on the endpoint graph, and single-flight on
one cold key. ``run.py`` runs them as the ``cache`` section; ``run.py --check`` checks them.

* **hit**: the 10-node endpoint graph where every node is cached, invoked once untimed (which
  fills the caches) and then timed by ``harness.measure``: every timed node is a hit. The floor
  is the hand-written floor runner (``runners._prepare_floor``, and ``floor_eager`` on 3.12+)
  whose node functions look their value up in a dict keyed by their input values (computing
  and storing it on a miss). ``dagwire_cache`` is the real graph, ``add_node(f, *inputs,
  cache=Cache(...))`` per node; ``cache_object`` is the floor runner whose nodes use
  ``Cache.lookup`` (``get_or_call`` on a miss) instead of the dict: the Cache object's own cost
  in the same scheduling.
* **cold**: ``count`` (1,000) concurrent callers needing one key nobody has computed yet. Each
  round uses a fresh key (the body moves a generation counter on). Measured here rather than by
  ``harness.measure`` (same method: warm-up, interleaved rounds in rotating order, GC off,
  values and leftover tasks checked), because a round also checks that exactly one body call
  was made, and records *release*: the time from the body's return until every caller has the
  value (the target), besides the total time of the round. Callers: ``floor`` shares a
  hand-written ``asyncio.Future`` (the first caller runs the body and sets it; no cancellation
  handling), ``cache_object`` calls ``Cache.get_or_call``. Invokes: ``floor`` is the floor
  runner on a one-node graph whose node is the shared-future code, ``dagwire_cache`` a one-node
  graph ``add_node(body, dag.params, cache=Cache(...))`` invoked as ``dag.invoke(key)``.

A runner whose graph dagwire refuses (``cache=`` not accepted yet) is reported as skipped with
the reason. After the hit samples each runner's body calls are counted: more than one per node
(its first, untimed run) marks the row failed.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import harness
import runners as rmod
import shapes
from harness import Row, Workload
from runners import EAGER_FLOOR, FLOOR, Invoke, Runner, Skip
from shapes import Graph, NodeFn

#: the hit table compares with both floors on 3.12+ (dagwire starts tasks eagerly there)
EAGER = sys.version_info >= (3, 12)
#: a TTL no benchmark reaches: hits stay hits
TTL = 3600.0


class Counter:
    """Counts body calls of one runner."""

    def __init__(self) -> None:
        self.calls = 0


def counted(fn: NodeFn, counter: Counter) -> NodeFn:
    async def body(*xs: Any) -> Any:
        counter.calls += 1
        return await fn(*xs)

    return body


def _refused(e: Exception) -> Skip:
    return Skip(f"dagwire refuses cache= ({type(e).__name__}: {str(e)[:120]})")


def _cache_class() -> Any:
    try:
        from dagwire.cache import Cache
    except ImportError as e:
        raise Skip(f"dagwire.cache not importable ({e})") from e
    return Cache


# -- hit: the endpoint graph, every node cached ----------------------------------------------


def dict_memo(fn: NodeFn) -> NodeFn:
    """The hand-written memo: a dict lookup keyed by the input values."""
    memo: dict[tuple[Any, ...], Any] = {}
    get = memo.get

    async def node(*xs: Any) -> Any:
        value = get(xs, memo)  # the dict itself as "missing": no node value is that dict
        if value is memo:
            value = memo[xs] = await fn(*xs)
        return value

    return node


def cache_memo(fn: NodeFn, name: str) -> NodeFn:
    """The same node through the Cache object: lookup, get_or_call on a miss."""
    from dagwire.cache import MISSING

    cache = _cache_class()(ttl=TTL)
    lookup = cache.lookup

    async def node(*xs: Any) -> Any:
        value = lookup(xs, name)
        if value is MISSING:
            value, _ = await cache.get_or_call(xs, lambda: fn(*xs), node=name)
        return value

    return node


def _with_funcs(g: Graph, wrap: Callable[[int, NodeFn], NodeFn]) -> Graph:
    return Graph(g.name, g.inputs, tuple(wrap(i, fn) for i, fn in enumerate(g.funcs)))


def hit_runners(counters: dict[str, Counter]) -> list[Runner]:
    """Runners of the hit table; `counters` receives each runner's body-call counter."""

    def floor_with(prepare: Callable[[Graph], Invoke], name: str) -> Callable[[Graph], Invoke]:
        def prep(g: Graph) -> Invoke:
            c = counters[name] = Counter()
            return prepare(_with_funcs(g, lambda _i, fn: dict_memo(counted(fn, c))))

        return prep

    def cache_object(g: Graph) -> Invoke:
        c = counters["cache_object"] = Counter()
        _cache_class()
        return rmod._prepare_floor(
            _with_funcs(g, lambda i, fn: cache_memo(counted(fn, c), f"n{i}"))
        )

    def dagwire_cache(g: Graph) -> Invoke:
        reason = rmod.dagwire_status()
        if reason:
            raise Skip(reason)
        from dagwire import DagDefinitionError, build_dag

        cache_cls = _cache_class()
        c = counters["dagwire_cache"] = Counter()
        nodes: list[Any] = []
        try:
            with build_dag() as dag:
                for fn, ins in zip(g.funcs, g.inputs, strict=True):
                    args = [nodes[j] for j in ins]
                    nodes.append(dag.add_node(counted(fn, c), *args, cache=cache_cls(ttl=TTL)))
        except (TypeError, NotImplementedError, DagDefinitionError) as e:
            raise _refused(e) from e
        sink = nodes[-1]

        async def invoke() -> Any:
            return (await dag.invoke(None))[sink]

        return invoke

    chosen = [
        Runner(FLOOR, floor_with(rmod._prepare_floor, FLOOR)),
        Runner(EAGER_FLOOR, floor_with(rmod._prepare_floor_eager, EAGER_FLOOR)),
        Runner("cache_object", cache_object),
        Runner("dagwire_cache", dagwire_cache),
        # for reference: the same graph without cache=, every body running
        Runner("dagwire (no cache)", rmod._prepare_dagwire),
    ]
    return chosen if EAGER else [r for r in chosen if r.name != EAGER_FLOOR]


# -- cold: many callers, one key nobody has computed yet --------------------------------------


class Cold:
    """A body that yields a few loop iterations (so every caller has joined before it returns)
    and moves the generation on: the next sample's key is cold. Counts its calls."""

    def __init__(self) -> None:
        self.gen = 0
        self.calls = 0
        self.returned_at = 0.0  # harness.clock() when the body last returned

    async def body(self, *_: Any) -> int:
        self.calls += 1
        for _ in range(3):
            await asyncio.sleep(0)
        self.gen += 1
        self.returned_at = harness.clock()
        return 1  # the one-node graph's reference value


COLD_GRAPH = Graph("cold1", ((),), (shapes.f,))


def shared_future(cold: Cold) -> Callable[[], Awaitable[Any]]:
    """The hand-written single-flight: one asyncio.Future per key, shared by the waiters."""
    inflight: dict[int, asyncio.Future[Any]] = {}
    memo: dict[int, Any] = {}

    async def node() -> Any:
        key = cold.gen
        if key in memo:
            return memo[key]
        fut = inflight.get(key)
        if fut is not None:
            return await fut
        fut = inflight[key] = asyncio.get_running_loop().create_future()
        try:
            value = await cold.body()
        except BaseException as e:
            del inflight[key]
            fut.set_exception(e)
            raise
        del inflight[key]
        memo[key] = value
        fut.set_result(value)
        return value

    return node


def cold_bare_runners(colds: dict[str, Cold]) -> list[Runner]:
    def floor(_g: Graph) -> Invoke:
        return shared_future(colds.setdefault(FLOOR, Cold()))

    def cache_object(_g: Graph) -> Invoke:
        cold = colds.setdefault("cache_object", Cold())
        cache = _cache_class()(ttl=TTL)

        async def invoke() -> Any:
            value, _ = await cache.get_or_call((cold.gen,), cold.body, node="cold")
            return value

        return invoke

    return [Runner(FLOOR, floor), Runner("cache_object", cache_object)]


def cold_invoke_runners(colds: dict[str, Cold]) -> list[Runner]:
    def floor(_g: Graph) -> Invoke:
        node = shared_future(colds.setdefault(FLOOR, Cold()))
        return rmod._prepare_floor(Graph("cold1", ((),), (node,)))

    def dagwire_cache(_g: Graph) -> Invoke:
        reason = rmod.dagwire_status()
        if reason:
            raise Skip(reason)
        from dagwire import DagDefinitionError, build_dag

        cold = colds.setdefault("dagwire_cache", Cold())
        cache_cls = _cache_class()
        try:
            with build_dag() as dag:
                node = dag.add_node(cold.body, dag.params, cache=cache_cls(ttl=TTL))
        except (TypeError, NotImplementedError, DagDefinitionError) as e:
            raise _refused(e) from e

        async def invoke() -> Any:
            return (await dag.invoke(cold.gen))[node]

        return invoke

    return [Runner(FLOOR, floor), Runner("dagwire_cache", dagwire_cache)]


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class ColdRows:
    """One cold table: per runner, the release time and the total time per caller."""

    release: list[Row]
    total: list[Row]


@dataclass
class CacheResults:
    """The rows of every table, for the tables and the summary."""

    hit: list[Row]
    hit_w: Workload
    cold_bare: ColdRows
    cold_invoke: ColdRows
    count: int


def _check_hit_calls(rows: Sequence[Row], counters: dict[str, Counter], n: int) -> None:
    """After warm-up and samples, a hit runner's bodies ran once per node (its first run)."""
    for row in rows:
        c = counters.get(row.runner)
        if row.ok and c is not None and c.calls != n:
            row.error = f"{c.calls} body calls for {n} nodes: not every timed node was a hit"


async def _cold_sample(
    runner: Runner, invoke: Invoke, cold: Cold, count: int
) -> tuple[float, float]:
    """One round of `count` concurrent callers: (release, total) seconds per caller. Checks
    the values, one body call, and that no task was left behind."""
    calls = cold.calls
    before = asyncio.all_tasks()
    gc.collect()
    with harness.task_factory(runner.task_factory), harness.gc_disabled():
        t0 = harness.clock()
        values = await asyncio.gather(*[invoke() for _ in range(count)])
        t1 = harness.clock()
    if any(v != COLD_GRAPH.reference for v in values):
        raise harness.ValueMismatch(f"{runner.name}: wrong value")
    if cold.calls != calls + 1:
        raise AssertionError(f"{runner.name}: {cold.calls - calls} body calls for one cold key")
    if left := len(asyncio.all_tasks() - before):
        raise AssertionError(f"{runner.name}: left {left} task(s) running")
    return (t1 - cold.returned_at) / count, (t1 - t0) / count


async def measure_cold(
    runners: Sequence[Runner], colds: dict[str, Cold], *, count: int, repeat: int, warmup: int = 2
) -> ColdRows:
    """Warm-up rounds, then `repeat` interleaved rounds (rotating order), as harness.measure."""
    release = [Row(r.name) for r in runners]
    total = [Row(r.name) for r in runners]
    invokes: dict[int, Invoke] = {}
    for k, r in enumerate(runners):
        try:
            invokes[k] = r.prepare(COLD_GRAPH)
        except Skip as e:
            release[k].skipped = total[k].skipped = str(e)
        except Exception as e:
            release[k].error = total[k].error = f"build failed: {harness.describe_error(e)}"
    keys = list(invokes)
    for rep in range(-warmup, repeat):
        s = rep % len(keys) if keys else 0
        for k in keys[s:] + keys[:s]:
            if release[k].error:
                continue
            r = runners[k]
            try:
                rel, tot = await harness.isolated(_cold_sample(r, invokes[k], colds[r.name], count))
            except Exception as e:
                release[k].error = total[k].error = harness.describe_error(e)
                continue
            if rep >= 0:
                release[k].samples.append(rel)
                total[k].samples.append(tot)
    return ColdRows(release, total)


async def measure(*, repeat: int, seq: int, conc: int) -> CacheResults:
    ep = shapes.endpoint()
    counters: dict[str, Counter] = {}
    hit_w = Workload("cache_hit", ep, "seq", seq, "invoke")
    hit = await harness.measure(hit_runners(counters), hit_w, repeat=repeat)
    _check_hit_calls(hit, counters, ep.n)
    colds: dict[str, Cold] = {}
    bare = await measure_cold(cold_bare_runners(colds), colds, count=conc, repeat=repeat)
    colds = {}
    invoke = await measure_cold(cold_invoke_runners(colds), colds, count=conc, repeat=repeat)
    return CacheResults(hit, hit_w, bare, invoke, conc)


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.2f}"


def cold_table(out: Callable[..., None], title: str, rows: ColdRows) -> None:
    out(f"### {title}")
    out()
    out("| runner | release µs/caller | min | max | × floor | total µs/caller | × floor |")
    out("|---|---:|---:|---:|---:|---:|---:|")
    for rel, tot in zip(rows.release, rows.total, strict=True):
        if not rel.ok:
            why = f"skipped: {rel.skipped}" if rel.skipped else f"FAILED: {rel.error}"
            out(f"| {rel.runner} | {why} | | | | | |")
            continue
        r_rel, _ = _ratio(rows.release, rel.runner)
        r_tot, _ = _ratio(rows.total, rel.runner)
        out(
            f"| {rel.runner} | {_us(rel.median)} | {_us(min(rel.samples))} "
            f"| {_us(max(rel.samples))} | {r_rel:.2f} | {_us(tot.median)} | {r_tot:.2f} |"
        )
    out()


#: run.py's timing_table(out, title, rows, workload)
TableFn = Callable[[Any, str, Sequence[Row], Workload], None]


async def run_cache(
    out: Callable[..., None], table: TableFn, *, repeat: int, seq: int, conc: int
) -> CacheResults:
    """Measure and print the tables (the hit table with ``run.py``'s `table` function)."""
    res = await measure(repeat=repeat, seq=seq, conc=conc)
    table(out, "cache hit: endpoint, every node cached", res.hit, res.hit_w)
    out(
        "Every node of the endpoint graph is cached and every timed node is a hit (checked: "
        "the bodies ran only in the first, untimed invoke). floor / floor_eager: the floor "
        "runners with a hand-written dict lookup per node (keyed by the input values). "
        "cache_object: the floor runner with `Cache.lookup` per node instead. dagwire_cache: "
        "`add_node(f, *inputs, cache=Cache())` per node. `dagwire (no cache)`: the same graph "
        "without caches, running every body."
    )
    out()
    cold_table(out, f"cache cold key: {conc} concurrent callers", res.cold_bare)
    cold_table(out, f"cache cold key: {conc} concurrent invokes", res.cold_invoke)
    n = len(res.cold_bare.release[0].samples) if res.cold_bare.release else 0
    out(
        f"One round: {conc} callers started at once (one gather), all needing one key nobody "
        "has computed; the body yields 3 loop iterations and returns. Exactly one body call "
        "per round (checked, with the values and leftover tasks). release: from the body's "
        "return until every caller has the value; total: the whole gather; both per caller, "
        f"{n} interleaved rounds after 2 warm-up rounds, medians. Callers: floor shares a "
        "hand-written asyncio.Future (the first caller runs the body and sets it); "
        "cache_object calls `Cache.get_or_call`. Invokes: floor is the floor runner on a "
        "one-node graph whose node is that shared-future code; dagwire_cache is "
        "`add_node(body, dag.params, cache=Cache())` invoked as `dag.invoke(key)`."
    )
    out()
    return res


def _ratio(rows: Sequence[Row], name: str) -> tuple[float | None, str]:
    """(ratio of medians to the floor, per-round min-max or why there is no ratio)."""
    fl = next((r for r in rows if r.runner == FLOOR and r.ok), None)
    row = next((r for r in rows if r.runner == name), None)
    if fl is None or row is None or not row.ok:
        if row is not None and row.skipped:
            return None, f"skipped: {row.skipped}"
        return None, (row.error or "") if row is not None else ""
    per = [a / b for a, b in zip(row.samples, fl.samples, strict=False)]
    return row.median / fl.median, f"{min(per):.2f}-{max(per):.2f}"


def summary_lines(res: CacheResults) -> list[tuple[str, float | None, str, float]]:
    """(what, ratio or None, per-round spread or why there is no ratio, limit)."""
    n = res.count
    targets = (
        ("cache hit, endpoint: dagwire_cache / floor (dict per node)", res.hit, "dagwire_cache"),
        ("cache hit, endpoint: Cache object in the floor / floor", res.hit, "cache_object"),
        (
            f"cache cold key, {n} callers: release, Cache.get_or_call / shared Future",
            res.cold_bare.release,
            "cache_object",
        ),
        (
            f"cache cold key, {n} invokes: release, dagwire / floor",
            res.cold_invoke.release,
            "dagwire_cache",
        ),
    )
    return [(label, *_ratio(rows, runner), 1.5) for label, rows, runner in targets]


async def check(out: Callable[[str], None]) -> int:
    """Small runs of every cache runner (values, body calls, no task left); returns failures."""
    res = await measure(repeat=2, seq=5, conc=20)
    failures = 0
    cells: list[str] = []
    tables = (
        ("hit", res.hit),
        ("cold", res.cold_bare.release),
        ("cold invoke", res.cold_invoke.release),
    )
    for name, rows in tables:
        for row in rows:
            if row.error:
                failures += 1
                cells.append(f"{name}/{row.runner}: FAILED {row.error}")
            elif row.skipped:
                cells.append(f"{name}/{row.runner}: skipped ({row.skipped})")
            else:
                cells.append(f"{name}/{row.runner}: ok")
    out("  cache                " + ", ".join(cells))
    return failures
