"""The session's process pool. (How many examples the reliability properties checked is
printed by tests/conftest.py, which also collects the counts of pytest-xdist's workers.)

The hypothesis profiles ("ci", the default, and "long", `DAGWIRE_RELIABILITY=long`) are in
`_settings.py`. `pytest --hypothesis-show-statistics` adds hypothesis' own numbers.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest


@pytest.fixture(scope="session")
def process_pool() -> Iterator[ProcessPoolExecutor]:
    """One process pool for the session (workers are slow to start). "spawn", not "fork":
    forking a process that runs threads is deprecated (and can deadlock)."""
    with ProcessPoolExecutor(
        max_workers=2, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        yield pool
