"""Logging under the ``dagwire`` logger, on real runs.

Silent by default (a `NullHandler`); DEBUG for node starts and ends, only when the logger is
enabled for DEBUG; WARNING for retries and for failures a fallback covered; ERROR only for what
the caller cannot otherwise see (failures of a run that ended cancelled, a raising observer).
Every record carries the `extra` fields ``dagwire_dag``, ``dagwire_run_id``, ``dagwire_node``
and ``dagwire_attempt``, so a handler's format string may name them. Every test runs under the
default task factory and under an eager one (3.12+).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import dagwire
from dagwire import Cache, DagError, Retry, build_dag
from dagwire.events import Event
from observe_support import Recorder
from observe_support import task_factory as task_factory  # every test, both task factories

pytestmark = pytest.mark.usefixtures("task_factory")

FIELDS = ("dagwire_dag", "dagwire_run_id", "dagwire_node", "dagwire_attempt")

# What a user's handler may print: every extra field by name.
FORMAT = logging.Formatter(
    "%(levelname)s %(dagwire_dag)s run=%(dagwire_run_id)s node=%(dagwire_node)s "
    "attempt=%(dagwire_attempt)s %(message)s"
)


def ours(caplog: pytest.LogCaptureFixture, level: int | None = None) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "dagwire" and (level is None or r.levelno == level)
    ]


def extra(record: logging.LogRecord) -> tuple[object, ...]:
    """The record's four extra fields ("missing" for each one it lacks)."""
    return tuple(attr(record, name) for name in FIELDS)


def attr(record: logging.LogRecord, name: str) -> object:
    """An `extra` field of the record, or "missing"."""
    return vars(record).get(name, "missing")


class Down(Exception):
    """A downstream call failed."""


# -- silent by default --------------------------------------------------------------------------


def test_the_dagwire_logger_has_a_null_handler() -> None:
    logger = logging.getLogger("dagwire")
    assert any(isinstance(h, logging.NullHandler) for h in logger.handlers)


def test_a_program_that_configures_no_logging_prints_nothing_for_retries_and_fallbacks() -> None:
    """Without a handler of its own, Python prints WARNING records to stderr (the "last
    resort" handler); a library's logger is silent until the program configures logging."""
    program = textwrap.dedent(
        """
        import asyncio
        from dagwire import Retry, build_dag

        calls = []

        async def flaky() -> int:
            calls.append(1)
            if len(calls) < 2:
                raise ConnectionError("reset")
            return 1

        async def down() -> int:
            raise ValueError("down")

        async def main() -> None:
            with build_dag(name="quiet") as dag:
                dag.add_node(flaky, name="flaky", retry=Retry(attempts=2, initial_delay=0.001))
                dag.add_node(down, name="down", fallback=0)
            result = await dag.invoke(None)
            print("ok" if result.ok else "not ok")

        asyncio.run(main())
        """
    )
    src = str(Path(dagwire.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    env.pop("PYTHONASYNCIODEBUG", None)
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"
    assert done.stderr == ""


# -- DEBUG: node starts and ends -----------------------------------------------------------------


async def test_debug_records_each_node_start_and_end_with_its_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="dagwire")
    rec = Recorder()

    async def fetch() -> int:
        return 1

    def parse(x: int) -> int:
        return x + 1

    with build_dag(name="logged") as dag:
        f = dag.add_node(fetch, name="fetch")
        dag.add_node(parse, f, name="parse")
    await dag.invoke(None, observers=[rec])
    (run_id,) = rec.run_ids()
    records = ours(caplog)
    assert all(r.levelno == logging.DEBUG for r in records)
    node_records = [
        (r.getMessage().split()[0], extra(r)) for r in records if attr(r, "dagwire_node")
    ]
    assert node_records == [
        ("node_started", ("logged", run_id, "fetch", 1)),
        ("node_succeeded", ("logged", run_id, "fetch", 1)),
        ("node_started", ("logged", run_id, "parse", 1)),
        ("node_succeeded", ("logged", run_id, "parse", 1)),
    ]
    for r in records:
        FORMAT.format(r)  # every field present


async def test_debug_records_name_the_failure_a_node_ended_with(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="dagwire")

    async def down() -> None:
        raise Down("503")

    with build_dag(name="logged-fail") as dag:
        dag.add_node(down, name="down")
    with pytest.raises(DagError):
        await dag.invoke(None)
    failed = [r for r in ours(caplog) if r.getMessage().startswith("node_failed")]
    assert len(failed) == 1
    assert failed[0].levelno == logging.DEBUG
    assert "Down('503')" in failed[0].getMessage()
    assert attr(failed[0], "dagwire_node") == "down"
    # The caller sees the failure in the DagError: nothing at ERROR.
    assert ours(caplog, logging.ERROR) == []


async def test_nothing_is_logged_for_a_plain_run_above_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="dagwire")

    async def fetch() -> int:
        return 1

    async def conn() -> AsyncIterator[int]:
        yield 1

    def use(x: int, c: int) -> int:
        return x + c

    with build_dag(name="quiet") as dag:
        f = dag.add_node(fetch, name="fetch")
        c = dag.add_resource(conn, name="conn")
        dag.add_node(use, f, c, name="use")
    await dag.invoke(None)
    await dag.invoke(None, observers=[Recorder()])
    assert ours(caplog) == []


# -- WARNING: retries and fallbacks ---------------------------------------------------------------


async def test_each_retry_is_a_warning_naming_the_failed_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="dagwire")
    rec = Recorder()
    failures = [ConnectionError("reset 1"), ConnectionError("reset 2")]

    async def flaky() -> int:
        if failures:
            raise failures.pop(0)
        return 1

    with build_dag(name="retry-log") as dag:
        dag.add_node(flaky, name="flaky", retry=Retry(attempts=3, initial_delay=0.001))
    await dag.invoke(None, observers=[rec])
    (run_id,) = rec.run_ids()
    records = ours(caplog)
    assert [r.levelno for r in records] == [logging.WARNING, logging.WARNING]
    assert [extra(r) for r in records] == [
        ("retry-log", run_id, "flaky", 1),
        ("retry-log", run_id, "flaky", 2),
    ]
    assert "reset 1" in records[0].getMessage()
    assert "reset 2" in records[1].getMessage()


async def test_a_failure_a_fallback_covered_is_one_warning_even_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="dagwire")
    rec = Recorder()

    async def flags() -> dict[str, bool]:
        raise Down("flags down")

    with build_dag(name="fallback-log") as dag:
        dag.add_node(flags, name="flags", fallback={})
    result = await dag.invoke(None, observers=[rec])
    assert result.ok
    (run_id,) = rec.run_ids()
    warnings = ours(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert extra(warnings[0]) == ("fallback-log", run_id, "flags", 1)
    assert "flags down" in warnings[0].getMessage()
    assert "fallback" in warnings[0].getMessage()
    assert ours(caplog, logging.ERROR) == []


async def test_a_retried_map_item_is_a_warning_naming_the_item_and_its_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="dagwire")
    rec = Recorder()
    failed: set[int] = set()

    async def fetch(x: int) -> int:
        if x == 1 and x not in failed:
            failed.add(x)
            raise ConnectionError("reset")
        return x

    with build_dag(name="map-log") as dag:
        dag.add_map(fetch, [0, 1], name="m", retry=Retry(attempts=2, initial_delay=0.001))
    await dag.invoke(None, observers=[rec])
    (run_id,) = rec.run_ids()
    (warning,) = ours(caplog, logging.WARNING)
    assert extra(warning) == ("map-log", run_id, "m[1]", 1)


async def test_a_retry_of_a_cached_call_is_a_warning_naming_its_node_and_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="dagwire")
    rec = Recorder()
    failures = [ConnectionError("reset")]

    async def load(x: int) -> int:
        if failures:
            raise failures.pop()
        return x

    with build_dag(int, name="cache-log") as dag:
        dag.add_node(
            load,
            dag.params,
            name="load",
            cache=Cache(ttl=60.0),
            retry=Retry(attempts=2, initial_delay=0.001),
        )
    await dag.invoke(3, observers=[rec])
    (run_id,) = rec.run_ids()
    (warning,) = ours(caplog, logging.WARNING)
    assert extra(warning) == ("cache-log", run_id, "load", 1)


async def test_a_node_blocking_the_loop_is_a_warning_naming_the_node_and_its_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """In asyncio debug mode (on for this suite) a sync node that holds the loop longer than
    the loop's `slow_callback_duration` is reported."""
    caplog.set_level(logging.WARNING, logger="dagwire")
    rec = Recorder()
    loop = asyncio.get_running_loop()
    assert loop.get_debug()

    def blocking() -> int:
        time.sleep(0.005)  # longer than the limit set below, whatever the machine
        return 1

    with build_dag(name="blocking-log") as dag:
        dag.add_node(blocking, name="blocking")
    limit = loop.slow_callback_duration
    loop.slow_callback_duration = 0.001
    try:
        await dag.invoke(None, observers=[rec])
    finally:
        loop.slow_callback_duration = limit
    (run_id,) = rec.run_ids()
    (warning,) = [r for r in ours(caplog, logging.WARNING) if "blocked" in r.getMessage()]
    assert extra(warning) == ("blocking-log", run_id, "blocking", 1)


# -- ERROR: only what the caller cannot otherwise see ---------------------------------------------


async def test_failures_of_a_run_that_ended_cancelled_are_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="dagwire")
    rec = Recorder()
    failed = asyncio.Event()

    async def down() -> None:
        try:
            raise Down("payments returned 503")
        finally:
            failed.set()

    async def hang() -> None:
        await asyncio.sleep(10)

    with build_dag(name="cancelled-log") as dag:
        dag.add_node(down, name="down")
        dag.add_node(hang, name="hang")
    task = asyncio.create_task(dag.invoke(None, on_error="continue", observers=[rec]))
    await failed.wait()
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (run_id,) = rec.run_ids()
    (error,) = ours(caplog, logging.ERROR)
    assert "payments returned 503" in error.getMessage()
    assert "down" in error.getMessage()
    assert error.exc_info is not None  # the failures, with their tracebacks
    assert attr(error, "dagwire_dag") == "cancelled-log"
    assert attr(error, "dagwire_run_id") == run_id


async def test_a_failed_run_cancelled_during_its_cleanup_logs_its_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="dagwire")
    closing = asyncio.Event()
    release = asyncio.Event()

    async def conn() -> AsyncIterator[int]:
        try:
            yield 1
        finally:
            closing.set()
            await release.wait()

    async def down(c: int) -> None:
        raise Down("broken pipe")

    with build_dag(name="cleanup-cancel-log") as dag:
        c = dag.add_resource(conn, name="conn")
        dag.add_node(down, c, name="down")
    task = asyncio.create_task(dag.invoke(None))
    await closing.wait()
    task.cancel()  # the caller gives up while the failed run cleans up
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    (error,) = ours(caplog, logging.ERROR)
    assert "broken pipe" in error.getMessage()


async def test_a_raising_observer_is_an_error_record_with_its_traceback_and_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="dagwire")
    rec = Recorder()

    def broken(event: Event) -> None:
        raise RuntimeError(f"observer bug on {event.kind}")

    async def one() -> int:
        return 1

    with build_dag(name="observer-log") as dag:
        dag.add_node(one, name="one")
    await dag.invoke(None, observers=[broken, rec])
    (run_id,) = rec.run_ids()
    (error,) = ours(caplog, logging.ERROR)
    assert error.exc_info is not None
    assert isinstance(error.exc_info[1], RuntimeError)
    assert attr(error, "dagwire_dag") == "observer-log"
    assert attr(error, "dagwire_run_id") == run_id


async def test_what_the_caller_sees_is_never_logged_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="dagwire")

    async def down() -> None:
        raise Down("x")

    async def hang() -> None:
        await asyncio.sleep(10)

    with build_dag(name="visible") as dag:
        dag.add_node(down, name="down")
    with pytest.raises(DagError):
        await dag.invoke(None)
    result = await dag.invoke(None, on_error="continue")
    assert not result.ok
    with build_dag(name="visible-timeout") as slow:
        slow.add_node(down, name="down")
        slow.add_node(hang, name="hang")
    with pytest.raises(TimeoutError) as caught:
        await slow.invoke(None, on_error="continue", timeout=0.01)
    assert isinstance(caught.value.__cause__, DagError)  # the failure rides on the timeout
    assert ours(caplog, logging.ERROR) == []


async def test_run_level_error_records_carry_every_field_for_a_format_string(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A handler formatting ``%(dagwire_node)s`` must not break on dagwire's own records: a
    record about a whole run carries ``dagwire_node`` and ``dagwire_attempt`` too (None)."""
    caplog.set_level(logging.WARNING, logger="dagwire")
    failed = asyncio.Event()

    def broken(event: Event) -> None:
        raise RuntimeError("observer bug")

    async def down() -> None:
        try:
            raise Down("x")
        finally:
            failed.set()

    async def hang() -> None:
        await asyncio.sleep(10)

    with build_dag(name="fields") as dag:
        dag.add_node(down, name="down")
        dag.add_node(hang, name="hang")
    task = asyncio.create_task(dag.invoke(None, on_error="continue", observers=[broken]))
    await failed.wait()
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    errors = ours(caplog, logging.ERROR)
    assert len(errors) == 2  # the raising observer, the failure of a cancelled run
    for record in errors:
        assert attr(record, "dagwire_dag") == "fields"
        assert attr(record, "dagwire_node") is None
        assert attr(record, "dagwire_attempt") is None
        FORMAT.format(record)
