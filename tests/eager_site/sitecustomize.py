"""Makes every event loop of a Python process use `asyncio.eager_task_factory` (3.12+).

tests/conftest.py puts this directory on PYTHONPATH when the suite runs with
`DAGWIRE_EAGER_TASKS=1`, so the programs that tests start in subprocesses (examples, README
blocks) get eager loops too: `asyncio.run()` creates its loop through the event loop policy.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import os
import sys
from collections.abc import Callable

_new_event_loop: Callable[[], asyncio.AbstractEventLoop] = asyncio.events.new_event_loop


def _new_eager_event_loop() -> asyncio.AbstractEventLoop:
    loop = _new_event_loop()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]  # 3.12+
    return loop


if os.environ.get("DAGWIRE_EAGER_TASKS", "") == "1" and sys.version_info >= (3, 12):
    # asyncio.run() (its Runner) creates its loop with asyncio.events.new_event_loop().
    setattr(asyncio.events, "new_event_loop", _new_eager_event_loop)  # noqa: B010
    setattr(asyncio, "new_event_loop", _new_eager_event_loop)  # noqa: B010
