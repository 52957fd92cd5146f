"""A run in the Trace Event format (the JSON that Perfetto and chrome://tracing open).

Shape of the result, `{"traceEvents": [...]}`, all in one process (`pid` 1):

- metadata (`M`): the process name, then for each lane a `thread_name` ("lane N") and a
  `thread_sort_index`;
- one complete event (`X`, with `ts` and `dur` in integer microseconds since the run started) per
  node attempt and per cleanup, named by node (cleanups ``"<node> cleanup"``), with `args`
  carrying `node`, `status`, `attempt`, `outcome` and, when the run recorded it, `error`;
- one flow (`s` then `f`, a unique integer `id` per edge, `cat` ``"input"`` for an edge carrying
  a value or ``"after"`` for an ordering-only one) per dependency edge between two nodes that
  ran: the `s` inside the end of the upstream node's last attempt, the `f` at the start of the
  downstream node's first attempt, bound to that slice (`bp: "e"`).

Lanes are assigned by interval partitioning: each node's attempts (kept together, retry delays
included) and each cleanup take the lowest lane free at their start, so no two events of one
lane overlap even partly (Perfetto would move them to an overflow track) and the number of lanes
is the largest number of nodes busy at one moment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..definition import NodeSpec
from ..results import NodeFailure, NodeTiming
from .edges import edges
from .timeline import Bar, bars

__all__ = ["TraceEvent", "trace"]

TraceEvent = dict[str, object]
_PID = 1
_CLEANUP_PHASES = ("cleanup", "post")


def _us(seconds: float) -> int:
    # Integer microseconds: rounding is monotonic, so slices that touch or nest in seconds still
    # do exactly in the trace, and no float sum can make two of them overlap by a hair.
    return round(seconds * 1_000_000)


@dataclass(slots=True)
class _Slice:
    bar: Bar
    ts: int
    dur: int
    lane: int = 0
    seq: int = 0  # order in the file among events of equal timestamp

    @property
    def end(self) -> int:
        return self.ts + self.dur


def _units(timings: Sequence[NodeTiming]) -> list[list[_Slice]]:
    """Groups that share one lane: a node's attempts together, each cleanup alone."""
    units: list[list[_Slice]] = []
    for timing in timings:
        body: list[_Slice] = []
        for bar in bars(timing):
            ts = _us(bar.start)
            piece = _Slice(bar, ts, max(_us(bar.end) - ts, 0))
            if bar.what == "cleanup":
                units.append([piece])
            else:
                body.append(piece)
        if body:
            units.append(body)
    return units


def _assign_lanes(units: list[list[_Slice]]) -> int:
    """Give each unit the lowest lane free at its start (in start order); return the count."""
    lane_ends: list[int] = []
    for unit in sorted(units, key=lambda u: (u[0].ts, max(s.end for s in u))):
        start, end = unit[0].ts, max(s.end for s in unit)
        lane = next((k for k, e in enumerate(lane_ends) if e <= start), len(lane_ends))
        if lane == len(lane_ends):
            lane_ends.append(end)
        lane_ends[lane] = end
        for s in unit:
            s.lane = lane + 1
    return len(lane_ends)


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _args(s: _Slice, errors: dict[tuple[str, str], BaseException], last: bool) -> TraceEvent:
    bar = s.bar
    args: TraceEvent = {
        "node": bar.node,
        "status": bar.status.name.lower(),
        "attempt": bar.attempt,
        "outcome": bar.outcome,
    }
    # The run keeps one exception per node and phase: the last attempt's, and the cleanup's.
    kind = "cleanup" if bar.what == "cleanup" else "body"
    if (last or kind == "cleanup") and bar.outcome in ("failed", "recovered"):
        error = errors.get((bar.node, kind))
        if error is not None:
            args["error"] = _error_text(error)
    return args


def _metadata(dag_name: str, lanes: int) -> list[TraceEvent]:
    meta: list[TraceEvent] = [
        {"name": "process_name", "ph": "M", "pid": _PID, "args": {"name": f"dagwire {dag_name}"}}
    ]
    for lane in range(1, lanes + 1):
        lane_meta = {"ph": "M", "pid": _PID, "tid": lane}
        meta.append({"name": "thread_name", **lane_meta, "args": {"name": f"lane {lane}"}})
        meta.append({"name": "thread_sort_index", **lane_meta, "args": {"sort_index": lane}})
    return meta


# (ts, seq of the slice it belongs to, 0 for the slice / 1 for a flow, event): sorted, a slice
# comes before the flows bound to it at the same timestamp, as Perfetto's importer needs.
_Timed = tuple[int, int, int, TraceEvent]


def _slice_events(
    slices: list[_Slice], last: dict[str, _Slice], errors: dict[tuple[str, str], BaseException]
) -> list[_Timed]:
    out: list[_Timed] = []
    for s in slices:
        event: TraceEvent = {
            "name": s.bar.node + (" cleanup" if s.bar.what == "cleanup" else ""),
            "cat": s.bar.what,
            "ph": "X",
            "ts": s.ts,
            "dur": s.dur,
            "pid": _PID,
            "tid": s.lane,
            "args": _args(s, errors, last.get(s.bar.node) is s),
        }
        out.append((s.ts, s.seq, 0, event))
    return out


def _flow_events(
    specs: Sequence[NodeSpec], first: dict[str, _Slice], last: dict[str, _Slice]
) -> list[_Timed]:
    out: list[_Timed] = []
    flow_id = 0
    for e in edges(specs):
        source = last.get(specs[e.source].name)
        target = first.get(specs[e.target].name)
        if source is None or target is None:
            continue  # the params node, constants, or a node that did not run
        flow_id += 1
        common: TraceEvent = {
            "name": "dependency",
            "cat": "input" if e.carries_value else "after",
            "id": flow_id,
            "pid": _PID,
        }
        # Inside the upstream slice (its last microsecond), so that it binds to that slice.
        s_ts = max(source.ts, source.end - 1)
        out.append((s_ts, source.seq, 1, {**common, "ph": "s", "ts": s_ts, "tid": source.lane}))
        f_event = {**common, "ph": "f", "bp": "e", "ts": target.ts, "tid": target.lane}
        out.append((target.ts, target.seq, 1, f_event))
    return out


def trace(
    dag_name: str,
    specs: Sequence[NodeSpec],
    timings: Sequence[NodeTiming],
    failures: Sequence[NodeFailure],
) -> dict[str, list[TraceEvent]]:
    """The run as ``{"traceEvents": [...]}``; see the module docstring for every event's shape.

    `timings` are the run's `NodeTiming`s (seconds since the run started), `failures` its
    `NodeFailure`s (for the `error` argument), `specs` the graph's node specs (for the edges).
    """
    errors: dict[tuple[str, str], BaseException] = {}
    for f in failures:
        kind = "cleanup" if f.phase in _CLEANUP_PHASES else "body"
        errors.setdefault((f.node, kind), f.error)

    units = _units(timings)
    lanes = _assign_lanes(units)
    slices = sorted((s for u in units for s in u), key=lambda s: (s.ts, s.dur, s.lane))
    first: dict[str, _Slice] = {}
    last: dict[str, _Slice] = {}
    for seq, s in enumerate(slices):
        s.seq = seq
        if s.bar.what != "cleanup":
            first.setdefault(s.bar.node, s)
            last[s.bar.node] = s

    timed = _slice_events(slices, last, errors) + _flow_events(specs, first, last)
    timed.sort(key=lambda t: t[:3])
    return {"traceEvents": _metadata(dag_name, lanes) + [t[3] for t in timed]}
