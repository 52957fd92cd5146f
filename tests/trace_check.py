"""A structural checker for Trace Event JSON, as Perfetto's importer reads it.

`check_trace(trace)` raises `TraceProblem` listing every problem found, and returns each flow
with the two slices it binds to, so tests can assert that an arrow joins the intended nodes.
What it checks (the rules Perfetto and chrome://tracing apply, see the Trace Event format):

- the trace is `{"traceEvents": [...]}` and survives a strict JSON round trip (no NaN);
- required fields per phase: every event `name`, `ph`, `pid`; `X`: `cat`, `ts`, `dur` (numbers
  >= 0; Perfetto drops an `X` without `dur`), `tid`, `args`; `s`/`f`: `cat`, `id`, `ts`, `tid`,
  and `bp: "e"` on every `f`; `M`: `args` with `name` (process/thread name) or `sort_index`;
- no two `X` events of one thread overlap partly (nested or disjoint only; Perfetto moves
  partly overlapping ones to an overflow track);
- each thread that has events has exactly one `thread_name`, each process one `process_name`;
- each flow id is used by exactly one `s` and one `f` with the same `cat` and `name`;
- each flow event binds to a slice: replaying the events in timestamp order (equal timestamps
  in file order, as Perfetto's sorter does), the last `X` seen on the flow's thread must enclose
  the flow's timestamp.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import cast

Event = dict[str, object]

__all__ = ["Event", "Flow", "TraceProblem", "as_object", "check_trace"]

_NUMBER = (int, float)


class TraceProblem(AssertionError):
    """The trace breaks the rules above; the message lists every problem."""


@dataclass(frozen=True)
class Flow:
    """One flow arrow: its id and category, and the `X` events its `s` and `f` bind to."""

    id: object
    cat: object
    source: Event
    target: Event


def as_object(value: object) -> Event | None:
    """`value` as a JSON object (a dict with str keys), or None when it is something else."""
    if not isinstance(value, dict):
        return None
    obj = cast("dict[object, object]", value)
    return cast("Event", obj) if all(isinstance(k, str) for k in obj) else None


def _is_number(value: object) -> bool:
    return isinstance(value, _NUMBER) and not isinstance(value, bool) and value >= 0


def _fields(event: Event, problems: list[str], where: str) -> None:
    ph = event.get("ph")
    for key in ("name", "ph", "pid"):
        if key not in event:
            problems.append(f"{where}: missing {key!r}")
    if ph == "X":
        for key in ("cat", "ts", "dur", "tid", "args"):
            if key not in event:
                problems.append(f"{where}: X event without {key!r}")
        for key in ("ts", "dur"):
            if key in event and not _is_number(event[key]):
                problems.append(f"{where}: {key}={event[key]!r} is not a number >= 0")
        if "args" in event and not isinstance(event["args"], dict):
            problems.append(f"{where}: args is not an object")
    elif ph in ("s", "f"):
        for key in ("cat", "id", "ts", "tid"):
            if key not in event:
                problems.append(f"{where}: flow event without {key!r}")
        if "ts" in event and not _is_number(event["ts"]):
            problems.append(f"{where}: ts={event['ts']!r} is not a number >= 0")
        if ph == "f" and event.get("bp") != "e":
            problems.append(f"{where}: flow end without bp='e' binds to the next slice")
    elif ph == "M":
        args = as_object(event.get("args"))
        name = event.get("name")
        if args is None:
            problems.append(f"{where}: metadata without args")
        elif name in ("process_name", "thread_name"):
            if not isinstance(args.get("name"), str):
                problems.append(f"{where}: {name} without args.name")
        elif name in ("process_sort_index", "thread_sort_index"):
            if not isinstance(args.get("sort_index"), int):
                problems.append(f"{where}: {name} without an int args.sort_index")
        else:
            problems.append(f"{where}: unknown metadata {name!r}")
        if isinstance(name, str) and name.startswith("thread_") and "tid" not in event:
            problems.append(f"{where}: {name} without tid")
    else:
        problems.append(f"{where}: phase {ph!r} is not one this checker knows (X, M, s, f)")


def _end(event: Event) -> float:
    ts, dur = event["ts"], event["dur"]
    assert isinstance(ts, _NUMBER)
    assert isinstance(dur, _NUMBER)
    return ts + dur


def _ts(event: Event) -> float:
    ts = event["ts"]
    assert isinstance(ts, _NUMBER)
    return ts


def _overlaps(slices: list[Event], thread: object, problems: list[str]) -> None:
    for i, a in enumerate(slices):
        for b in slices[i + 1 :]:
            a0, a1, b0, b1 = _ts(a), _end(a), _ts(b), _end(b)
            if a0 < b1 and b0 < a1 and not ((a0 <= b0 and b1 <= a1) or (b0 <= a0 and a1 <= b1)):
                problems.append(
                    f"thread {thread}: {a['name']!r} [{a0}, {a1}] and {b['name']!r} "
                    f"[{b0}, {b1}] overlap partly"
                )


def _bind_flows(events: list[Event], problems: list[str]) -> dict[tuple[object, str], Event]:
    bound: dict[tuple[object, str], Event] = {}
    top: dict[tuple[object, object], Event] = {}
    timed = [e for e in events if e.get("ph") in ("X", "s", "f") and _is_number(e.get("ts"))]
    for e in sorted(timed, key=_ts):  # stable: equal timestamps keep file order
        thread = (e.get("pid"), e.get("tid"))
        if e["ph"] == "X":
            if _is_number(e.get("dur")):
                top[thread] = e
            continue
        slice_ = top.get(thread)
        if slice_ is None or not (_ts(slice_) <= _ts(e) <= _end(slice_)):
            problems.append(f"flow {e['ph']} id={e.get('id')!r} at {e['ts']}: no enclosing slice")
            continue
        bound[(e.get("id"), str(e["ph"]))] = slice_
    return bound


def check_trace(trace: object) -> list[Flow]:
    """Check `trace`; raise `TraceProblem` with every problem, else return its flows."""
    top = as_object(trace)
    raw = top.get("traceEvents") if top is not None else None
    if not isinstance(raw, list):
        raise TraceProblem('not {"traceEvents": [...]}')
    try:
        same = json.loads(json.dumps(trace, allow_nan=False)) == trace
    except (TypeError, ValueError) as exc:
        raise TraceProblem(f"the trace does not survive a JSON round trip: {exc}") from None
    if not same:
        raise TraceProblem("the trace does not survive a JSON round trip")
    events: list[Event] = []
    problems: list[str] = []
    for k, item in enumerate(cast("list[object]", raw)):
        e = as_object(item)
        if e is None:
            problems.append(f"event #{k}: not an object")
            continue
        events.append(e)
        _fields(e, problems, f"event #{k} ({e.get('ph')!r} {e.get('name')!r})")

    by_thread: dict[tuple[object, object], list[Event]] = defaultdict(list)
    used_threads: set[tuple[object, object]] = set()
    for e in events:
        if e.get("ph") in ("X", "s", "f"):
            used_threads.add((e.get("pid"), e.get("tid")))
        if e.get("ph") == "X" and _is_number(e.get("ts")) and _is_number(e.get("dur")):
            by_thread[(e.get("pid"), e.get("tid"))].append(e)
    for thread, slices in by_thread.items():
        _overlaps(slices, thread, problems)

    meta = [e for e in events if e.get("ph") == "M"]
    for thread in sorted(used_threads, key=repr):
        names = [
            e
            for e in meta
            if e.get("name") == "thread_name" and (e.get("pid"), e.get("tid")) == thread
        ]
        if len(names) != 1:
            problems.append(f"thread {thread}: {len(names)} thread_name events, expected 1")
    for pid in sorted({t[0] for t in used_threads}, key=repr):
        names = [e for e in meta if e.get("name") == "process_name" and e.get("pid") == pid]
        if len(names) != 1:
            problems.append(f"process {pid}: {len(names)} process_name events, expected 1")

    flows: dict[object, list[Event]] = defaultdict(list)
    for e in events:
        if e.get("ph") in ("s", "f"):
            flows[e.get("id")].append(e)
    for flow_id, pair in flows.items():
        phases = sorted(str(e["ph"]) for e in pair)
        keys = {(e.get("cat"), e.get("name")) for e in pair}
        if phases != ["f", "s"] or len(keys) != 1:
            problems.append(f"flow id={flow_id!r}: {phases} with cat/name {keys}")

    bound = _bind_flows(events, problems)
    if problems:
        raise TraceProblem("\n".join(problems))
    return [
        Flow(flow_id, pair[0].get("cat"), bound[(flow_id, "s")], bound[(flow_id, "f")])
        for flow_id, pair in flows.items()
    ]
