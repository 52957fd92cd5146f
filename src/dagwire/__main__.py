"""Command line.

- ``python -m dagwire graph module:attr [--format mermaid|dot]`` prints the `Dag` found at
  `attr` (dots allowed: ``pkg.mod:holder.dag``) in module `module`, imported as Python would
  (the current directory first), as Mermaid (default) or Graphviz DOT.
- ``python -m dagwire demo [--trace FILE] [--gantt FILE]`` runs the demo graph and writes its
  run as a Trace Event JSON file (open it in Perfetto) and as a Gantt chart (PNG or SVG by the
  suffix; needs ``pip install dagwire[plot]``).

Mistakes in the arguments (a bad ``module:attr``, an attribute that is not a `Dag`, a Gantt file
that is not .png/.svg) exit with status 2 and a message naming what to use instead.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from .graph import Dag


class UsageError(Exception):
    """An argument the command cannot use; the message says what to give instead."""


def load_dag(target: str) -> Dag[Any]:
    """The `Dag` named by ``module:attr``; `UsageError` when there is none."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"{target!r}: expected module:attribute, e.g. myapp.graphs:checkout")
    try:
        obj: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import module {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(obj, Dag):
        raise UsageError(
            f"{target!r} is of type {type(obj).__name__}, not a dagwire Dag: "
            "name the variable that holds the graph"
        )
    # isinstance() cannot know the graph's parameter type: Dag[Unknown] to pyright.
    return obj  # pyright: ignore[reportUnknownVariableType]


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(prog="python -m dagwire")
    commands = parser.add_subparsers(dest="command", required=True)
    graph = commands.add_parser("graph", help="print a graph as Mermaid or Graphviz DOT")
    graph.add_argument("target", metavar="module:attr", help="where the Dag is, e.g. app:dag")
    graph.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    demo = commands.add_parser(
        "demo", help="run a small graph and print when each node starts and ends"
    )
    demo.add_argument("--trace", metavar="FILE", help="write the run as Trace Event JSON")
    demo.add_argument("--gantt", metavar="FILE", help="draw the run to FILE (.png or .svg)")
    return parser, {"graph": graph, "demo": demo}


def main(argv: list[str] | None = None) -> int:
    """Run the command line with `argv` (default: ``sys.argv[1:]``); return the exit status."""
    parser, commands = _parser()
    args = parser.parse_args(argv)
    if args.command == "graph":
        try:
            dag = load_dag(args.target)
        except UsageError as exc:
            commands["graph"].error(str(exc))
        sys.stdout.write(dag.to_dot() if args.format == "dot" else dag.to_mermaid())
    elif args.command == "demo":
        if args.gantt is not None:
            from .render.gantt import FORMATS

            if not args.gantt.lower().endswith(tuple(FORMATS)):
                commands["demo"].error(
                    f"--gantt {args.gantt!r}: the file name must end in .png or .svg"
                )
        from ._demo import main as demo

        result = demo()
        if args.trace is not None:
            with open(args.trace, "w", encoding="utf-8") as f:
                json.dump(result.to_chrome_trace(), f)
            print(f"trace written to {args.trace}: open it at https://ui.perfetto.dev")
        if args.gantt is not None:
            result.plot_gantt(args.gantt)
            print(f"Gantt chart written to {args.gantt}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
