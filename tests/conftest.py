"""Every test runs with asyncio debug on, warnings as errors (pyproject), and these checks:

- no task created during an async test is still alive when it ends (a leaked task);
- the loop's exception handler was never called (e.g. "Task exception was never retrieved").

An un-awaited coroutine emits a RuntimeWarning, which `filterwarnings = error` turns into a
failure through pytest's unraisable-exception hook.

`DAGWIRE_EAGER_TASKS=1` (Python 3.12+) runs the whole suite with every event loop using
`asyncio.eager_task_factory`: pytest-asyncio's loops (its `pytest_asyncio_loop_factories`
hook), loops that tests create with `asyncio.run()`/`asyncio.new_event_loop()` (both patched
to add the factory), and loops of the programs tests start in subprocesses
(`eager_site/sitecustomize.py` on PYTHONPATH). The README promises that such a loop changes
nothing.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import gc
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from reliability._settings import PROFILE
from reliability._stats import EXAMPLES, OUTCOMES

# pytest-asyncio's loops get debug from `asyncio_debug = true` (pyproject); this covers loops
# that examples and tests start themselves with asyncio.run().
os.environ["PYTHONASYNCIODEBUG"] = "1"

# Also read by tests/reliability/_loops.py (a conftest module cannot be imported).
EAGER_TASKS = os.environ.get("DAGWIRE_EAGER_TASKS", "") == "1"
_EAGER_SITE = Path(__file__).resolve().parent / "eager_site"


_new_event_loop: Callable[[], asyncio.AbstractEventLoop] = asyncio.events.new_event_loop


def _eager_loop() -> asyncio.AbstractEventLoop:
    loop = _new_event_loop()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]  # 3.12+
    return loop


def pytest_configure(config: pytest.Config) -> None:
    if not EAGER_TASKS:
        return
    if sys.version_info < (3, 12):
        raise pytest.UsageError(
            "DAGWIRE_EAGER_TASKS=1 needs Python 3.12 or newer (asyncio.eager_task_factory)"
        )
    # Loops that tests create themselves (asyncio.run() creates its loop with
    # asyncio.events.new_event_loop()).
    setattr(asyncio.events, "new_event_loop", _eager_loop)  # noqa: B010
    setattr(asyncio, "new_event_loop", _eager_loop)  # noqa: B010
    paths = [str(_EAGER_SITE), *filter(None, [os.environ.get("PYTHONPATH")])]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)


def pytest_report_header(config: pytest.Config) -> str | None:
    if EAGER_TASKS:
        return "dagwire: every event loop uses asyncio.eager_task_factory (DAGWIRE_EAGER_TASKS=1)"
    return None


if EAGER_TASKS:

    def pytest_asyncio_loop_factories(
        config: pytest.Config, item: pytest.Item
    ) -> Mapping[str, Any]:
        """pytest-asyncio's hook: the loop every async test and fixture runs in."""
        return {"eager": _eager_loop}


@pytest.fixture(autouse=True)
async def _asyncio_hygiene() -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    assert loop.get_debug(), "asyncio debug mode must be on for the test suite"
    if EAGER_TASKS:
        factory = loop.get_task_factory()
        assert factory is asyncio.eager_task_factory, f"not an eager loop: {factory!r}"  # type: ignore[attr-defined,unused-ignore]  # 3.12+
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


# -- how many examples the reliability suite checked (tests/reliability/_stats.py) -----------


def pytest_sessionfinish(session: pytest.Session) -> None:
    output: dict[str, Any] | None = getattr(session.config, "workeroutput", None)
    if output is not None:  # a pytest-xdist worker: hand its counts to the controller
        output["dagwire_examples"] = dict(EXAMPLES)
        output["dagwire_outcomes"] = dict(OUTCOMES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist's hook, in the controller: a worker is done."""
    output: dict[str, dict[str, int]] = getattr(node, "workeroutput", {})
    EXAMPLES.update(output.get("dagwire_examples", {}))
    OUTCOMES.update(output.get("dagwire_outcomes", {}))


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
