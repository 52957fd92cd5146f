"""`ExecutionResult.to_chrome_trace()`, checked by `trace_check.check_trace` on every trace.

The timelines here are built by hand (see `render_cases`); `test_render_real_timeline.py` checks
traces of real runs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dagwire import Dag, DagDefinitionError, Node, NodeStatus, NodeTiming, build_dag
from dagwire.results import ExecutionResult, Interval
from render_cases import HAND_TIMINGS, hand_result, ident, result_with
from trace_check import Event, TraceProblem, as_object, check_trace


def _slices(trace: dict[str, list[Event]]) -> list[Event]:
    return [e for e in trace["traceEvents"] if e["ph"] == "X"]


def _args(event: Event) -> Event:
    args = as_object(event["args"])
    assert args is not None
    return args


def _conflict(a: tuple[int, int], b: tuple[int, int]) -> bool:
    # Two stretches cannot share a lane when they overlap; one that ends where the other
    # starts, or an instant at either end of the other, can.
    return a[0] < b[1] and b[0] < a[1]


def _fewest_lanes(units: list[tuple[int, int]]) -> int:
    """The chromatic number of the conflict graph, by backtracking (few units only)."""
    order = sorted(range(len(units)), key=lambda k: units[k])

    def fits(k: int, lanes: int, colors: dict[int, int]) -> bool:
        if k == len(order):
            return True
        u = order[k]
        for c in range(lanes):
            if all(colors[v] != c or not _conflict(units[u], units[v]) for v in colors):
                colors[u] = c
                if fits(k + 1, lanes, colors):
                    return True
                del colors[u]
        return False

    return next(n for n in range(len(units) + 1) if fits(0, n, {}))


def _units(slices: list[Event]) -> list[tuple[int, int]]:
    """A node's attempts together (retry gaps included), each cleanup alone."""
    units: dict[tuple[object, object], tuple[int, int]] = {}
    for e in slices:
        ts, dur = e["ts"], e["dur"]
        assert isinstance(ts, int)
        assert isinstance(dur, int)
        key = (_args(e)["node"], e["ts"] if e["cat"] == "cleanup" else "body")
        lo, hi = units.get(key, (ts, ts + dur))
        units[key] = (min(lo, ts), max(hi, ts + dur))
    return list(units.values())


# -- the checker catches what it must -------------------------------------------------------


def _valid() -> dict[str, list[Event]]:
    return {
        "traceEvents": [
            {"name": "process_name", "ph": "M", "pid": 1, "args": {"name": "p"}},
            {"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "lane 1"}},
            {
                "name": "a",
                "cat": "attempt",
                "ph": "X",
                "ts": 0,
                "dur": 10,
                "pid": 1,
                "tid": 1,
                "args": {},
            },
            {"name": "d", "cat": "input", "ph": "s", "id": 1, "ts": 9, "pid": 1, "tid": 1},
            {
                "name": "b",
                "cat": "attempt",
                "ph": "X",
                "ts": 10,
                "dur": 5,
                "pid": 1,
                "tid": 1,
                "args": {},
            },
            {
                "name": "d",
                "cat": "input",
                "ph": "f",
                "bp": "e",
                "id": 1,
                "ts": 10,
                "pid": 1,
                "tid": 1,
            },
        ]
    }


def test_checker_accepts_a_valid_trace_and_binds_its_flow() -> None:
    (flow,) = check_trace(_valid())
    assert (flow.source["name"], flow.target["name"]) == ("a", "b")


def _drop_dur(t: list[Event]) -> None:
    del t[2]["dur"]


def _partial_overlap(t: list[Event]) -> None:
    t[4]["ts"] = 5  # b [5, 25) starts inside a [0, 10) and ends after it
    t[4]["dur"] = 20


def _flow_outside(t: list[Event]) -> None:
    t[3]["ts"] = 50


def _unpaired_flow(t: list[Event]) -> None:
    del t[5]


def _duplicate_id(t: list[Event]) -> None:
    t.append({**t[3], "ts": 1})


def _no_bp(t: list[Event]) -> None:
    del t[5]["bp"]


def _no_thread_name(t: list[Event]) -> None:
    del t[1]


def _two_thread_names(t: list[Event]) -> None:
    t.insert(2, copy.deepcopy(t[1]))


def _flow_cat_mismatch(t: list[Event]) -> None:
    t[5]["cat"] = "after"


def _float_nan(t: list[Event]) -> None:
    t[2]["ts"] = float("nan")


def _negative_dur(t: list[Event]) -> None:
    t[2]["dur"] = -1


def _flow_before_its_slice_in_file(t: list[Event]) -> None:
    t[4], t[5] = t[5], t[4]  # the f at ts 10 comes before b starts: it binds to a


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (_drop_dur, "X event without 'dur'"),
        (_partial_overlap, "overlap partly"),
        (_flow_outside, "no enclosing slice"),
        (_unpaired_flow, "flow id=1"),
        (_duplicate_id, "flow id=1"),
        (_no_bp, "bp='e'"),
        (_no_thread_name, "0 thread_name events"),
        (_two_thread_names, "2 thread_name events"),
        (_flow_cat_mismatch, "flow id=1"),
        (_float_nan, "JSON round trip"),
        (_negative_dur, "not a number >= 0"),
    ],
)
def test_checker_rejects(corrupt: Callable[[list[Event]], None], message: str) -> None:
    trace = _valid()
    corrupt(trace["traceEvents"])
    with pytest.raises(TraceProblem, match=message.replace("(", r"\(").replace("[", r"\[")):
        check_trace(trace)


def test_checker_binds_by_file_order_at_equal_timestamps() -> None:
    trace = _valid()
    _flow_before_its_slice_in_file(trace["traceEvents"])
    (flow,) = check_trace(trace)  # still inside a slice, but the wrong one
    assert flow.target["name"] == "a"


# -- the hand-built run -----------------------------------------------------------------------


def test_hand_built_run_passes_the_checker() -> None:
    trace = hand_result().to_chrome_trace()
    check_trace(trace)


def test_one_slice_per_attempt_and_cleanup() -> None:
    slices = _slices(hand_result().to_chrome_trace())
    got = sorted((_args(e)["node"], e["cat"], _args(e)["attempt"]) for e in slices)
    expected = sorted(
        [(t.node, iv.what, iv.attempt) for t in HAND_TIMINGS for iv in t.intervals]
        # no attempt recorded: the node's whole span
        + [("cached", "node", 0), ("pre_failed", "node", 0)]
    )
    assert got == expected


def test_times_are_integer_microseconds_with_dur_everywhere() -> None:
    for e in _slices(hand_result().to_chrome_trace()):
        assert type(e["ts"]) is int, e
        assert type(e["dur"]) is int, e
    fetch = [e for e in _slices(hand_result().to_chrome_trace()) if e["name"] == "fetch"]
    assert [(e["ts"], e["dur"]) for e in fetch] == [
        (10_000, 10_000),
        (50_000, 10_000),
        (110_000, 40_000),
    ]


def test_args_carry_status_attempt_outcome_and_error() -> None:
    slices = _slices(hand_result().to_chrome_trace())
    by = {(_args(e)["node"], e["cat"], _args(e)["attempt"]): _args(e) for e in slices}
    assert by[("fetch", "attempt", 1)] == {
        "node": "fetch",
        "status": "succeeded",
        "attempt": 1,
        "outcome": "retrying",
    }
    assert by[("fetch", "attempt", 3)]["outcome"] == "succeeded"
    assert by[("flaky <locals>", "attempt", 1)]["error"] == "ValueError: flaky"
    assert by[("flaky <locals>", "attempt", 1)]["outcome"] == "recovered"
    assert by[("merge", "attempt", 1)] == {
        "node": "merge",
        "status": "failed",
        "attempt": 1,
        "outcome": "failed",
        "error": "RuntimeError: merge broke",
    }
    assert by[("conn", "cleanup", 0)] == {
        "node": "conn",
        "status": "succeeded",
        "attempt": 0,
        "outcome": "failed",
        "error": "OSError: close failed",
    }
    assert by[("pre_failed", "node", 0)]["error"] == "KeyError: 'missing'"
    assert by[("pre_failed", "cleanup", 0)]["outcome"] == "ok"
    assert by[("sibling", "attempt", 1)]["status"] == "cancelled"
    assert by[("cached", "node", 0)]["outcome"] == "cached"
    cleanup_names = sorted(str(e["name"]) for e in slices if e["cat"] == "cleanup")
    assert cleanup_names == ["conn cleanup", "pre_failed cleanup"]


def test_attempts_of_a_node_share_a_lane_and_lanes_are_as_few_as_possible() -> None:
    trace = hand_result().to_chrome_trace()
    slices = _slices(trace)
    assert len({e["tid"] for e in slices if e["name"] == "fetch"}) == 1
    lanes = {e["tid"] for e in slices}
    # four nodes start at once and the cached one is an instant inside all of them
    assert len(lanes) == _fewest_lanes(_units(slices)) == 5
    names = [e["tid"] for e in trace["traceEvents"] if e["name"] == "thread_name"]
    assert sorted(map(str, names)) == sorted(map(str, lanes))


def test_a_flow_per_edge_between_nodes_that_ran_bound_to_the_right_slices() -> None:
    flows = check_trace(hand_result().to_chrome_trace())
    got = sorted(
        (
            _args(f.source)["node"],
            _args(f.source)["attempt"],
            _args(f.target)["node"],
            _args(f.target)["attempt"],
            f.cat,
        )
        for f in flows
    )
    # Upstream's last attempt (or whole span) -> downstream's first; params and skipped nodes
    # have no slice, so their edges have no arrow.
    assert got == sorted(
        [
            ("conn", 1, "fetch", 1, "input"),
            ("fetch", 3, "merge", 1, "input"),
            ("flaky <locals>", 1, "merge", 1, "input"),
            ("slow", 1, "merge", 1, "input"),
            ("cached", 0, "merge", 1, "input"),
            ("title: quick", 1, "merge", 1, "after"),
            ("fetch", 3, "sibling", 1, "input"),
        ]
    )
    assert len({f.id for f in flows}) == len(flows)
    assert all(f.source["cat"] != "cleanup" and f.target["cat"] != "cleanup" for f in flows)


def test_touching_and_zero_length_slices() -> None:
    with build_dag(int) as dag:
        a = dag.add_node(ident, dag.params, name="a")
        z1 = dag.add_node(ident, a, name="z1")
        z2 = dag.add_node(ident, a, name="z2")
        dag.add_node(ident, z1, name="b", after=[z2])
    ok = NodeStatus.SUCCEEDED

    def timing(name: str, start: float, end: float) -> NodeTiming:
        return NodeTiming(
            name, ok, start, end, 1, (Interval("attempt", 1, start, end, "succeeded"),)
        )

    result = result_with(
        dag,
        [
            timing("a", 0.0, 0.001),
            timing("z1", 0.001, 0.001),
            timing("z2", 0.001, 0.001),
            timing("b", 0.001, 0.002),
        ],
    )
    trace = result.to_chrome_trace()
    flows = check_trace(trace)
    assert len({e["tid"] for e in _slices(trace)}) == 1  # touching and instant: one lane
    pairs = sorted((_args(f.source)["node"], _args(f.target)["node"]) for f in flows)
    assert pairs == [("a", "z1"), ("a", "z2"), ("z1", "b"), ("z2", "b")]


def test_a_run_without_timeline_has_no_trace() -> None:
    with build_dag(int) as dag:
        dag.add_node(ident, dag.params)
    result: ExecutionResult[int] = ExecutionResult(
        dag, 0, [0, 0], [NodeStatus.SUCCEEDED] * 2, [], None
    )
    with pytest.raises(DagDefinitionError, match="timeline=True"):
        result.to_chrome_trace()


def test_a_run_where_nothing_started() -> None:
    with build_dag(int, name="idle") as dag:
        dag.add_node(ident, dag.params)
    trace = result_with(dag, []).to_chrome_trace()
    assert check_trace(trace) == []
    assert trace["traceEvents"] == [
        {"name": "process_name", "ph": "M", "pid": 1, "args": {"name": "dagwire idle"}}
    ]


# -- any timeline ---------------------------------------------------------------------------

_N = 6


def _dense_dag() -> Dag[int]:
    """n0 .. n5, each fed by the one before and after= every earlier one."""
    with build_dag(int, name="random") as dag:
        nodes: list[Node[object]] = [dag.add_node(ident, dag.params, name="n0")]
        for k in range(1, _N):
            nodes.append(dag.add_node(ident, nodes[-1], name=f"n{k}", after=nodes[:-1]))
    return dag


DENSE = _dense_dag()
_moment = st.integers(0, 30).map(lambda k: k / 1000)


@st.composite
def _timing(draw: st.DrawFn, k: int) -> NodeTiming:
    cuts = sorted(draw(st.lists(_moment, min_size=2, max_size=6)))
    attempts = [
        Interval("attempt", i + 1, s, e, "retrying")
        for i, (s, e) in enumerate(zip(cuts[::2], cuts[1::2], strict=False))
    ]
    intervals = list(attempts)
    if draw(st.booleans()):
        c0 = draw(_moment)
        intervals.append(Interval("cleanup", 0, c0, c0 + draw(_moment), "failed"))
    status = NodeStatus.SUCCEEDED
    return NodeTiming(f"n{k}", status, cuts[0], cuts[-1], len(attempts), tuple(intervals))


_timelines = st.lists(st.booleans(), min_size=_N, max_size=_N).flatmap(
    lambda ran: st.tuples(*[_timing(k) for k in range(_N) if ran[k]])
)


@settings(max_examples=200, deadline=None)
@given(_timelines)
def test_any_timeline_gives_a_valid_trace_in_the_fewest_lanes(
    timings: tuple[NodeTiming, ...],
) -> None:
    trace = result_with(DENSE, list(timings)).to_chrome_trace()
    flows = check_trace(trace)
    slices = _slices(trace)
    assert len(slices) == sum(len(t.intervals) for t in timings)
    assert len({e["tid"] for e in slices}) == _fewest_lanes(_units(slices))
    ran = sorted(int(t.node[1:]) for t in timings)
    # every ordered pair of nodes that both ran is an edge of DENSE: one arrow each, from the
    # upstream node's last attempt to the downstream node's first
    assert len(flows) == len(ran) * (len(ran) - 1) // 2
    attempts = {t.node: t.attempts for t in timings}
    for f in flows:
        source, target = _args(f.source), _args(f.target)
        assert str(source["node"]) < str(target["node"])
        assert source["attempt"] == attempts[str(source["node"])]
        assert target["attempt"] == 1
