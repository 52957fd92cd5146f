"""Checks for the graph and Gantt pictures.

- `render_dot`: renders DOT with the real Graphviz (``dot -Tsvg``: exit 0, empty stderr) and
  reads the nodes and edges back from the SVG it drew.
- `parse_flowchart` / `parse_gantt`: strict structural readers of the Mermaid text dagwire writes
  (every line must match the expected grammar; labels hold no character Mermaid would misread).
  These are structural checks, not rendering.
- `render_mermaid`: renders Mermaid with the mermaid CLI (`mmdc`) in headless Chromium, when it
  is installed; `MMDC` is None otherwise.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

SVG = "{http://www.w3.org/2000/svg}"
XHTML = "{http://www.w3.org/1999/xhtml}"
MMDC = shutil.which("mmdc")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Characters dagwire leaves unescaped in Mermaid labels: letters, digits, space, `_.-`.
_LABEL = re.compile(r"(?:[^\W]|[ .\-]|#\d+;)*")
_ENTITY = re.compile(r"#(\d+);")


def decode(label: str) -> str:
    """A Mermaid label with its ``#NNN;`` entity codes turned back into characters."""
    return _ENTITY.sub(lambda m: chr(int(m.group(1))), label)


# -- Graphviz -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DotPicture:
    """What Graphviz drew: node id -> label text, and edges (source, target, dashed)."""

    labels: dict[str, str]
    edges: set[tuple[str, str, bool]]


def render_dot(text: str) -> DotPicture:
    """Render `text` with ``dot -Tsvg``; assert it exits 0 with an empty stderr."""
    done = subprocess.run(
        ["dot", "-Tsvg"], input=text.encode(), capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b"", done.stderr.decode()
    root = ET.fromstring(done.stdout)
    labels: dict[str, str] = {}
    edges: set[tuple[str, str, bool]] = set()
    for g in root.iter(f"{SVG}g"):
        title = g.find(f"{SVG}title")
        if title is None or title.text is None:
            continue
        if g.get("class") == "node":
            labels[title.text] = "\n".join(t.text or "" for t in g.iter(f"{SVG}text"))
        elif g.get("class") == "edge":
            source, target = title.text.split("->")
            path = g.find(f"{SVG}path")
            dashed = path is not None and path.get("stroke-dasharray") is not None
            edges.add((source, target, dashed))
    return DotPicture(labels, edges)


# -- Mermaid, structurally --------------------------------------------------------------------

_SHAPE = {
    '(["': ('"])', "params"),
    '>"': ('"]', "immediate"),
    '[("': ('")]', "resource"),
    '{"': ('"}', "join"),
    '["': ('"]', "call"),
}
_NODE = re.compile(
    r"    (n\d+)(\(\[\"|>\"|\[\(\"|\{\"|\[\")(.*?)(\"\]\)|\"\]|\"\)\]|\"\})(:::\w+)?"
)
_EDGE = re.compile(r"    (n\d+) (-->|-\.->) (n\d+)")
_CLASSDEF = re.compile(r"    classDef (\w+) fill:#[0-9a-f]{6},stroke:#[0-9a-f]{6}")


@dataclass(frozen=True)
class Flowchart:
    """A parsed flowchart: node id -> (kind, decoded label), edges (source, target, dashed)."""

    nodes: dict[str, tuple[str, str]]
    edges: list[tuple[str, str, bool]]


def parse_flowchart(text: str) -> Flowchart:
    """Read the flowchart `text`; assert every line is a header, node, edge or classDef line."""
    lines = text.split("\n")
    assert lines[0] == "flowchart LR", text
    assert lines[-1] == "", text
    nodes: dict[str, tuple[str, str]] = {}
    edges: list[tuple[str, str, bool]] = []
    classes: set[str] = set()
    used: set[str] = set()
    for line in lines[1:-1]:
        if m := _NODE.fullmatch(line):
            closing, kind = _SHAPE[m.group(2)]
            assert m.group(4) == closing, line
            assert _LABEL.fullmatch(m.group(3)), f"unescaped character in {line!r}"
            assert m.group(3) == m.group(3).strip(), f"Mermaid trims {line!r}"
            assert m.group(1) not in nodes, f"node defined twice: {line!r}"
            nodes[m.group(1)] = (kind, decode(m.group(3)))
            if m.group(5):
                used.add(m.group(5)[3:])
        elif m := _EDGE.fullmatch(line):
            edges.append((m.group(1), m.group(3), m.group(2) == "-.->"))
        elif m := _CLASSDEF.fullmatch(line):
            classes.add(m.group(1))
        else:
            raise AssertionError(f"unexpected flowchart line {line!r}")
    assert used == classes, f"classes used {used}, defined {classes}"
    for source, target, _ in edges:
        assert source in nodes, source
        assert target in nodes, target
    return Flowchart(nodes, edges)


# Statements of the Gantt lexer that a task line must not start with (case-insensitive).
_GANTT_STATEMENTS = re.compile(
    r"(gantt|dateformat|inclusiveenddates|topaxis|axisformat|tickinterval|includes|excludes|"
    r"todaymarker|weekday|weekend|title|accdescr|acctitle|section|click|call|href|%|\d)",
    re.IGNORECASE,
)
# A task name ends at `:`, `#` or `;`; Mermaid swaps entity codes out before it reads the line.
_TASK = re.compile(r"    ((?:[^:#;\n]|#\d+;)+) :((?:done|crit|active), )?(\d+), (\d+)")


@dataclass(frozen=True)
class GanttTask:
    """One task of a parsed Gantt chart; times in integer milliseconds."""

    section: str
    name: str
    tag: str
    start: int
    end: int


def parse_gantt(text: str) -> tuple[str, list[GanttTask]]:
    """Read the Gantt `text`: its decoded title and tasks; assert the grammar line by line."""
    lines = text.split("\n")
    assert lines[0] == "gantt", text
    assert lines[-1] == "", text
    m = re.fullmatch(r"    title (.+)", lines[1])
    assert m, lines[1]
    assert _LABEL.fullmatch(m.group(1)), lines[1]
    title = decode(m.group(1))
    assert lines[2] == "    dateFormat x", lines[2]
    assert re.fullmatch(r"    axisFormat (%S\.%L|%M:%S)", lines[3]), lines[3]
    section = ""
    tasks: list[GanttTask] = []
    for line in lines[4:-1]:
        if s := re.fullmatch(r"    section (run|cleanup)", line):
            section = s.group(1)
            continue
        t = _TASK.fullmatch(line)
        assert t, f"unexpected Gantt line {line!r}"
        assert section, f"a task before any section: {line!r}"
        name = t.group(1)
        assert _LABEL.fullmatch(name), f"unescaped character in {line!r}"
        assert not _GANTT_STATEMENTS.match(name), f"task read as a statement: {line!r}"
        assert name == name.strip(), f"the lexer trims {line!r}"
        start, end = int(t.group(3)), int(t.group(4))
        assert end > start, f"zero-length task is invisible: {line!r}"
        tag = (t.group(2) or "").rstrip(", ")
        tasks.append(GanttTask(section, decode(name), tag, start, end))
    return title, tasks


# -- Mermaid, rendered ----------------------------------------------------------------------


def render_mermaid(diagrams: list[str], workdir: Path) -> list[ET.Element]:
    """Render every diagram with one `mmdc` run (a Markdown file of mermaid blocks); return
    the SVG root of each, in order. Asserts mmdc exits 0 and writes one SVG per diagram."""
    assert MMDC is not None
    config: dict[str, object] = {"args": ["--no-sandbox", "--headless", "--disable-gpu"]}
    if CHROMIUM is not None:
        config["executablePath"] = CHROMIUM
    (workdir / "puppeteer.json").write_text(json.dumps(config), encoding="utf-8")
    blocks = "\n".join(f"```mermaid\n{d}```\n" for d in diagrams)
    (workdir / "in.md").write_text(blocks, encoding="utf-8")
    done = subprocess.run(
        [MMDC, "-q", "-p", "puppeteer.json", "-i", "in.md", "-o", "out.md"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = [workdir / f"out-{k}.svg" for k in range(1, len(diagrams) + 1)]
    assert all(p.exists() for p in out), sorted(p.name for p in workdir.iterdir())
    return [ET.parse(p).getroot() for p in out]


def svg_text(element: ET.Element) -> str:
    """All text under `element`, joined."""
    return "".join(element.itertext())
