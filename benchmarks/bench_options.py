"""Issue 13: nodes that carry options. ``run.py`` runs this as the section ``node_options``
and checks it in ``--check``.

The 10-node endpoint graph with every node carrying one option, against the floor of
``runners.py`` whose node functions are wrapped in exactly what the option promises
(``wrappers.py``; ``floor_state.py`` where the wrapper needs its run): ``timeout=10.0`` against
``async with asyncio.timeout(10.0)``; ``retry=3`` that never fires against a try/except loop with
the same backoff; ``fallback=0`` against try/except; ``pre=``/``post=`` sync no-ops against
calling ``pre`` (the node's ``post`` registered first: it runs whenever ``pre`` started) and the
posts in reverse after the run; every node an async-generator resource against entering each on
an ``AsyncExitStack`` (``asynccontextmanager``) unwound after the run (failure thrown in); two
resources (the two first roots) and eight plain nodes, the same way. ``floor_genlist``
(reported, not a target): the resource floor with a plain list of generators instead of the
``AsyncExitStack`` (what the stack itself costs).

``--check`` also sends a failure through each floor and through dagwire (``probes``): a timeout
that expires, a retry that fires, a fallback taken, a failing body among hooks, a failing
resource setup; both must end the same way and keep the same promises.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import floor_state
import harness
import runners as rmod
import shapes
from bench_common import Case, Out, Target, measure, table, target
from builders import (
    Add,
    dagwire_runner,
    funcs,
    option,
    resources,
    state_floors,
    wrapped_floors,
)
from harness import Row
from runners import Invoke, Runner
from shapes import Boom, Graph, NodeFn
from wrappers import (
    FALLBACK,
    RETRY,
    TIMEOUT,
    call_posts,
    close_list,
    entering,
    entering_list,
    noop,
    res,
    unwind,
    with_fallback,
    with_hooks,
    with_retry,
    with_timeout,
)


@dataclass(frozen=True)
class Variant:
    """One row of the node_options table."""

    label: str
    runners: Callable[[Graph], list[Runner]]


TWO = {0, 1}  # the two resources of the "two resources" row: the first two roots


def variants() -> list[Variant]:
    return [
        Variant(
            f"timeout={TIMEOUT}",
            lambda g: [
                *wrapped_floors(g, with_timeout, None),
                dagwire_runner(g, option(timeout=TIMEOUT)),
            ],
        ),
        Variant(
            f"retry={RETRY} (never fires)",
            lambda g: [
                *wrapped_floors(g, with_retry, None),
                dagwire_runner(g, option(retry=RETRY)),
            ],
        ),
        Variant(
            f"fallback={FALLBACK}",
            lambda g: [
                *wrapped_floors(g, with_fallback, None),
                dagwire_runner(g, option(fallback=FALLBACK)),
            ],
        ),
        Variant(
            "pre=/post= (sync no-ops)",
            lambda g: [
                *state_floors(g, with_hooks(shapes.f, noop, noop), list, call_posts, None),
                dagwire_runner(g, option(pre=noop, post=noop)),
            ],
        ),
        Variant(
            "every node a resource",
            lambda g: [
                *state_floors(g, entering(res), AsyncExitStack, unwind, None),
                *state_floors(g, entering_list(res), list, close_list, None, "floor_genlist"),
                dagwire_runner(g, resources(None)),
            ],
        ),
        Variant(
            "two resources, 8 plain nodes",
            lambda g: [
                *state_floors(g, entering(res), AsyncExitStack, unwind, TWO),
                dagwire_runner(g, resources(TWO)),
            ],
        ),
    ]


OPTION_LIMIT = 1.3


async def run_node_options(out: Out, *, repeat: int, count: int) -> list[Target]:
    g = shapes.endpoint()
    case = Case("endpoint", 1, g.reference)
    groups: list[tuple[str, list[Row]]] = []
    for v in variants():
        rows = await measure(v.runners(g), case, count=count, repeat=repeat)
        groups.append((v.label, rows))
    table(
        out,
        "nodes with options: endpoint, every node carrying the option",
        groups,
        unit="µs/invoke",
        note=(
            f"10-node endpoint graph; sample = {count} sequential invokes; {repeat} interleaved "
            "rounds per row; × = ratio of medians to that row's floor, which is the floor of "
            "runners.py with each node function wrapped in exactly what the option promises "
            "(timeout: `async with asyncio.timeout`; retry: a try/except loop with the same "
            "backoff; fallback: try/except; pre/post: post registered, pre called, posts called "
            "in reverse after the run; resources: `AsyncExitStack.enter_async_context` of an "
            "`asynccontextmanager`, unwound after the run with the failure thrown in). "
            "floor_genlist: the resource floor with a list of generators instead of the stack "
            "(what the stack itself costs); not a target."
        ),
    )
    return [
        target(f"node options, endpoint, {label}: dagwire / floor", rows, "dagwire", OPTION_LIMIT)
        for label, rows in groups
    ]


# -- same behaviour: failures through each floor and through dagwire ----------------------------


class Probe:
    """Counts what one probe's instrumented nodes did."""

    def __init__(self) -> None:
        self.calls = 0
        self.pres = 0
        self.posts = 0
        self.entered = 0
        self.closed = 0
        self.heard = 0

    def pre(self) -> None:
        self.pres += 1

    def post(self) -> None:
        self.posts += 1

    def resource(self, fail: bool) -> Callable[..., Any]:
        async def probe_res(*xs: int) -> Any:
            if fail:
                raise Boom("setup fails")
            self.entered += 1
            try:
                yield sum(xs) + 1
            except Boom:
                self.heard += 1
                raise
            finally:
                self.closed += 1

        return probe_res


BAD = 4  # the endpoint node that misbehaves in the probes (a middle node)


async def _outcome(invoke: Invoke) -> tuple[str, Any]:
    try:
        value = await harness.isolated(invoke(), 5.0)
    except Exception as e:
        return "raised", sorted(t.__name__ for t in harness.leaf_types(e))
    return "value", value


def _with(g: Graph, k: int, fn: NodeFn) -> Graph:
    return funcs(g, lambda i, f: fn if i == k else f)


async def probes() -> list[str]:
    """Each option's failure behaviour, by the floor and by dagwire: the same outcome (and the
    same promise kept: every post for a pre, every resource closed with the failure)."""
    quiet = logging.getLogger("dagwire")
    was, quiet.disabled = quiet.disabled, True  # the retry and fallback warnings are expected
    try:
        return await _probes()
    finally:
        quiet.disabled = was


async def _probes() -> list[str]:
    g = shapes.endpoint()
    problems: list[str] = []

    async def slow(*xs: int) -> int:
        await asyncio.sleep(1.0)
        return sum(xs) + 1

    async def bad(*xs: int) -> int:
        raise Boom("fails")

    def flaky(p: Probe) -> NodeFn:
        async def once_failing(*xs: int) -> int:
            p.calls += 1
            if p.calls % 2:
                raise ConnectionError("first attempt fails")
            return sum(xs) + 1

        return once_failing

    def pair(name: str, floor: Invoke, dagwire_: Invoke) -> list[tuple[str, Invoke]]:
        return [(f"{name}/floor", floor), (f"{name}/dagwire", dagwire_)]

    def dw(graph: Graph, add: Add) -> Invoke:
        return dagwire_runner(graph, add).prepare(None)  # type: ignore[arg-type]

    # timeout: a node that outlives its limit fails the run with TimeoutError
    tg = _with(g, BAD, slow)
    for who, inv in pair(
        "timeout",
        rmod._prepare_floor(funcs(tg, lambda _i, fn: with_timeout(fn, 0.02))),
        dw(tg, option(timeout=0.02)),
    ):
        got = await _outcome(inv)
        if got != ("raised", ["TimeoutError"]):
            problems.append(f"{who}: {got}")
    # retry: a first attempt failing with ConnectionError is retried; the run succeeds
    for who in ("retry/floor", "retry/dagwire"):
        p = Probe()
        rg = _with(g, BAD, flaky(p))
        inv = (
            rmod._prepare_floor(funcs(rg, lambda _i, fn: with_retry(fn)))
            if who.endswith("floor")
            else dw(rg, option(retry=RETRY))
        )
        got = await _outcome(inv)
        if got != ("value", g.reference) or p.calls != 2:
            problems.append(f"{who}: {got}, {p.calls} calls")
    # fallback: a failing node's fallback value flows on
    fg = _with(g, BAD, bad)
    values = []
    for who, inv in pair(
        "fallback",
        rmod._prepare_floor(funcs(fg, lambda _i, fn: with_fallback(fn))),
        dw(fg, option(fallback=FALLBACK)),
    ):
        values.append(got := await _outcome(inv))
        if got[0] != "value" or got[1] == g.reference:
            problems.append(f"{who}: {got}")
    if len(set(map(repr, values))) != 1:
        problems.append(f"fallback: floor and dagwire differ: {values}")
    # pre/post: a failing body; every node whose pre started gets its post
    for who in ("hooks/floor", "hooks/dagwire"):
        p = Probe()
        hg = _with(g, BAD, bad)
        if who.endswith("floor"):
            inv = floor_state.prepare(
                funcs(hg, lambda _i, fn, p=p: with_hooks(fn, p.pre, p.post)),
                set(range(g.n)),
                list,
                call_posts,
            )
        else:
            inv = dw(hg, option(pre=p.pre, post=p.post))
        got = await _outcome(inv)
        if got != ("raised", ["Boom"]) or not p.pres or p.pres != p.posts:
            problems.append(f"{who}: {got}, {p.pres} pre, {p.posts} post")
    # resources: a failing setup; every resource entered is closed with the failure thrown in
    for who in ("resources/floor", "resources/dagwire"):
        p = Probe()
        fails, ok = p.resource(True), p.resource(False)
        if who.endswith("floor"):
            rg = funcs(g, lambda i, _fn, f=fails, o=ok: entering(f if i == BAD else o))
            inv = floor_state.prepare(rg, set(range(g.n)), AsyncExitStack, unwind)
        else:

            def add(dag: Any, i: int, _fn: NodeFn, args: list[Any], f: Any = fails) -> Any:
                return dag.add_resource(f if i == BAD else ok, *args)  # noqa: B023 (used now)

            inv = dw(g, add)
        got = await _outcome(inv)
        if got != ("raised", ["Boom"]) or not p.entered or not p.entered == p.closed == p.heard:
            problems.append(
                f"{who}: {got}, {p.entered} entered, {p.closed} closed, {p.heard} heard"
            )
    return problems


# -- check --------------------------------------------------------------------------------------


def failures_in(rows: Sequence[Row]) -> list[str]:
    return [f"{r.runner}: {r.error}" for r in rows if r.error]


async def check(out: Out) -> int:
    """Every row once, small (values checked, no task left), and the failure probes."""
    bad: list[str] = []
    g = shapes.endpoint()
    case = Case("endpoint", 1, g.reference)
    for v in variants():
        rows = await measure(v.runners(g), case, count=3, repeat=1)
        bad += [f"{v.label}/{f}" for f in failures_in(rows)]
    bad += [f"same behaviour: {p}" for p in await probes()]
    out("  node_options: " + ("ok" if not bad else "FAILED " + "; ".join(bad)))
    return len(bad)
