"""The session's process pool, and how many examples the reliability properties checked
(printed in pytest's terminal summary).

The hypothesis profiles ("ci", the default, and "long", `DAGWIRE_RELIABILITY=long`) are in
`_settings.py`. `pytest --hypothesis-show-statistics` adds hypothesis' own numbers.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest

from ._settings import PROFILE
from ._stats import EXAMPLES, OUTCOMES


@pytest.fixture(scope="session")
def process_pool() -> Iterator[ProcessPoolExecutor]:
    """One process pool for the session (workers are slow to start). "spawn", not "fork":
    forking a process that runs threads is deprecated (and can deadlock)."""
    with ProcessPoolExecutor(
        max_workers=2, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        yield pool


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not EXAMPLES:
        return
    counts = ", ".join(f"{name} {count}" for name, count in sorted(EXAMPLES.items()))
    terminalreporter.section("dagwire reliability")
    terminalreporter.write_line(
        f"{sum(EXAMPLES.values())} examples checked (profile {PROFILE!r}): {counts}"
    )
    for key, count in sorted(OUTCOMES.items()):
        terminalreporter.write_line(f"  {key}: {count}")
