"""Every test runs with asyncio debug on, warnings as errors (pyproject), and these checks:

- no task created during an async test is still alive when it ends (a leaked task);
- the loop's exception handler was never called (e.g. "Task exception was never retrieved").

An un-awaited coroutine emits a RuntimeWarning, which `filterwarnings = error` turns into a
failure through pytest's unraisable-exception hook.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

# pytest-asyncio's loops get debug from `asyncio_debug = true` (pyproject); this covers loops
# that examples and tests start themselves with asyncio.run().
os.environ["PYTHONASYNCIODEBUG"] = "1"


@pytest.fixture(autouse=True)
async def _asyncio_hygiene() -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    assert loop.get_debug(), "asyncio debug mode must be on for the test suite"
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    before = asyncio.all_tasks()
    yield
    leaked = asyncio.all_tasks() - before - {asyncio.current_task()}
    # A task cancelled by a test might need one loop iteration to finish: give it exactly one.
    if leaked:
        await asyncio.sleep(0)
        leaked = {t for t in leaked if not t.done()}
    for t in leaked:
        t.cancel()
    gc.collect()  # make "exception never retrieved" of dropped tasks/futures surface now
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    assert not leaked, f"tasks outlived the test: {leaked}"
    assert not reported, f"the event loop reported errors: {reported}"
