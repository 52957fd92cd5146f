"""Mermaid text: the graph as a flowchart, a run as a Gantt chart.

Labels are written with Mermaid's entity codes (``#60;`` for ``<``) for every character other
than letters, digits, space, ``_``, ``.`` and ``-``. Mermaid renders labels as HTML and drops
anything that looks like a tag, so ``outer.<locals>.f`` would lose ``<locals>`` unescaped; quotes,
brackets and pipes end a label early; in a Gantt chart ``:``, ``#`` and ``;`` end a task name and a
task whose name starts with a keyword (``title``, ``section``, ...) is read as that statement.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..definition import NodeKind, NodeSpec
from ..results import NodeTiming
from .edges import edges
from .timeline import Bar, bars

__all__ = ["flowchart", "gantt"]

# Node shapes by kind: (opening, closing) around the quoted label.
_SHAPES = {
    NodeKind.PARAMS: ("([", "])"),  # stadium
    NodeKind.IMMEDIATE: (">", "]"),  # flag: a constant
    NodeKind.CALL: ("[", "]"),
    NodeKind.RESOURCE: ("[(", ")]"),  # cylinder
    NodeKind.JOIN: ("{", "}"),  # rhombus: a barrier
}
_CLASSES = {
    NodeKind.PARAMS: "param",
    NodeKind.IMMEDIATE: "constant",
    NodeKind.RESOURCE: "resource",
    NodeKind.JOIN: "join",
}
_CLASS_STYLES = {
    "param": "fill:#fff4d6,stroke:#b7791f",
    "constant": "fill:#f2f2f2,stroke:#888888",
    "resource": "fill:#e3f2fd,stroke:#1e6aa8",
    "join": "fill:#ede7f6,stroke:#5e35b1",
}


def escape(text: str) -> str:
    """`text` with every character but letters, digits, space and ``_.-`` as a Mermaid entity
    code (``#60;``), and a space at either end too (Mermaid would trim it)."""
    out = [c if c.isalnum() or c in " _.-" else f"#{ord(c)};" for c in text]
    if out and out[0] == " ":
        out[0] = "#32;"
    if out and out[-1] == " ":
        out[-1] = "#32;"
    return "".join(out)


def flowchart(specs: Sequence[NodeSpec]) -> str:
    """The graph as a Mermaid ``flowchart LR``, one line per node and per edge, newline-ended.

    Nodes are ``n<index>`` labelled by name: the parameter as a stadium, constants as a flag,
    resources as a cylinder, joins as a rhombus, calls as a rectangle; edges that carry a value
    are solid (``-->``), ordering-only edges (`after=`, a join's members) dashed (``-.->``).
    """
    lines = ["flowchart LR"]
    for spec in specs:
        opening, closing = _SHAPES[spec.kind]
        cls = _CLASSES.get(spec.kind)
        suffix = f":::{cls}" if cls else ""
        lines.append(f'    n{spec.index}{opening}"{escape(spec.name)}"{closing}{suffix}')
    for e in edges(specs):
        arrow = "-->" if e.carries_value else "-.->"
        lines.append(f"    n{e.source} {arrow} n{e.target}")
    used = {_CLASSES[s.kind] for s in specs if s.kind in _CLASSES}
    lines.extend(f"    classDef {c} {style}" for c, style in _CLASS_STYLES.items() if c in used)
    return "\n".join(lines) + "\n"


# Words the Gantt lexer reads as statements when a line starts with them (case-insensitive).
_GANTT_KEYWORD = re.compile(
    r"(gantt|dateformat|inclusiveenddates|topaxis|axisformat|tickinterval|includes|excludes|"
    r"todaymarker|weekday|weekend|title|accdescr|acctitle|section|click|call|href|\d)",
    re.IGNORECASE,
)
_GANTT_TAGS = {
    "succeeded": "done, ",
    "ok": "done, ",
    "cached": "done, ",
    "resumed": "done, ",
    "failed": "crit, ",
    "retrying": "crit, ",
    "recovered": "crit, ",
}


def _task_name(text: str) -> str:
    # The lexer reads a line that starts with a keyword as that statement: such a first
    # character is written as an entity code too.
    if _GANTT_KEYWORD.match(text):
        return f"#{ord(text[0])};{escape(text[1:])}"
    return escape(text)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _task(bar: Bar, attempts: int) -> str:
    name = bar.node
    if bar.what == "attempt" and attempts > 1:
        name = f"{name} attempt {bar.attempt}"
    start = _ms(bar.start)
    end = max(_ms(bar.end), start + 1)  # a zero-length task would not be drawn at all
    return f"    {_task_name(name)} :{_GANTT_TAGS.get(bar.outcome, '')}{start}, {end}"


def gantt(dag_name: str, timings: Sequence[NodeTiming]) -> str:
    """A run as a Mermaid Gantt chart (``dateFormat x``: integer milliseconds since the run
    started), newline-ended.

    Section ``run`` holds one task per attempt (or per node, when no attempt was recorded),
    section ``cleanup`` one per cleanup, each in start order. Tasks are named by node (with
    ``attempt N`` when the node ran more than once); succeeded ones are drawn ``done``, failed
    ones ``crit``. Times are rounded to the millisecond and every task lasts at least 1 ms, so
    none is invisible.
    """
    all_bars = [b for t in timings for b in bars(t)]
    attempts = {t.node: sum(b.what == "attempt" for b in bars(t)) for t in timings}
    span = max((b.end for b in all_bars), default=0.0)
    lines = [
        "gantt",
        f"    title {escape(dag_name)}",
        "    dateFormat x",
        # Seconds and milliseconds read the same in every time zone the browser may be in.
        f"    axisFormat {'%S.%L' if span < 60 else '%M:%S'}",
    ]
    for section, whats in (("run", ("attempt", "node")), ("cleanup", ("cleanup",))):
        chosen = sorted((b for b in all_bars if b.what in whats), key=lambda b: b.start)
        if chosen:
            lines.append(f"    section {section}")
            lines.extend(_task(b, attempts[b.node]) for b in chosen)
    return "\n".join(lines) + "\n"
