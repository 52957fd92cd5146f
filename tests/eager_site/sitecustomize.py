"""Makes every event loop of a Python process use `asyncio.eager_task_factory` (3.12+).

tests/conftest.py puts this directory on PYTHONPATH when the suite runs with
`DAGWIRE_EAGER_TASKS=1`, so the programs that tests start in subprocesses (examples, README
blocks) get eager loops too: `asyncio.run()` creates its loop through the event loop policy.
"""

from __future__ import annotations

import asyncio
import os
import sys
import warnings


class _EagerLoopPolicy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]  # 3.12+
        return loop


if os.environ.get("DAGWIRE_EAGER_TASKS", "") == "1" and sys.version_info >= (3, 12):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # policies are deprecated in 3.14
        asyncio.set_event_loop_policy(_EagerLoopPolicy())
