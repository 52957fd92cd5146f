"""Command line: `python -m dagwire demo`."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dagwire")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run a small graph and print when each node starts and ends")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import main as demo

        demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
