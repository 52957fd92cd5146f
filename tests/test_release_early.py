"""`add_resource(..., release="early")`: released once every direct user has ended.

Each test records events in order and checks the position of the release against them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from dagwire import DagDefinitionError, DagError, build_dag

Log = list[str]


def resource(name: str, log: Log) -> Callable[..., AsyncIterator[str]]:
    async def factory(*_: object) -> AsyncIterator[str]:
        log.append(f"open {name}")
        try:
            yield name
        except BaseException as exc:
            log.append(f"close {name} after {type(exc).__name__}")
            raise
        log.append(f"close {name}")

    factory.__qualname__ = name
    return factory


def step(name: str, log: Log, seconds: float = 0.0) -> Callable[..., object]:
    async def body(*_: object) -> str:
        log.append(f"start {name}")
        await asyncio.sleep(seconds)
        log.append(f"end {name}")
        return name

    body.__qualname__ = name
    return body


async def test_released_when_last_user_ends_while_others_still_run() -> None:
    log: Log = []
    with build_dag() as dag:
        conn = dag.add_resource(resource("conn", log), release="early")
        query = dag.add_node(step("query", log, 0.01), conn)
        dag.add_node(step("report", log, 0.05), query)
        held = dag.add_resource(resource("held", log))
        dag.add_node(step("use_held", log), held)
    await dag.invoke(None)
    assert log.index("close conn") > log.index("end query")
    assert log.index("close conn") < log.index("end report")  # early: before the run ends
    assert log.index("close held") > log.index("end report")  # default: at the end
    assert log.count("close conn") == 1


async def test_dependent_early_resources_release_in_reverse_order() -> None:
    log: Log = []
    with build_dag() as dag:
        conn = dag.add_resource(resource("conn", log), release="early")
        tx = dag.add_resource(resource("tx", log), conn, release="early")
        write = dag.add_node(step("write", log), tx)
        dag.add_node(step("slow_tail", log, 0.05), write)
    await dag.invoke(None)
    assert log.index("close tx") < log.index("close conn") < log.index("end slow_tail")


async def test_held_until_a_dependent_resource_is_released() -> None:
    """A connection cannot go before the transaction on top of it, even if asked early."""
    log: Log = []
    with build_dag() as dag:
        conn = dag.add_resource(resource("conn", log), release="early")
        tx = dag.add_resource(resource("tx", log), conn)  # release="end"
        dag.add_node(step("write", log), tx)
        dag.add_node(step("slow_other", log, 0.03))
    await dag.invoke(None)
    assert log.index("end slow_other") < log.index("close tx") < log.index("close conn")


async def test_held_until_a_users_post_hook_ran() -> None:
    log: Log = []
    with build_dag() as dag:
        conn = dag.add_resource(resource("conn", log), release="early")
        dag.add_node(step("user", log), conn, post=lambda: log.append("post user"))
        dag.add_node(step("slow_other", log, 0.03))
    await dag.invoke(None)
    assert log.index("end slow_other") < log.index("post user") < log.index("close conn")


async def test_continue_mode_failed_user_reaches_the_resource() -> None:
    log: Log = []

    async def broken(_: str) -> None:
        raise ValueError("write failed")

    with build_dag() as dag:
        conn = dag.add_resource(resource("conn", log), release="early")
        dag.add_node(broken, conn)
        dag.add_node(step("slow_other", log, 0.03))
    result = await dag.invoke(None, on_error="continue")
    assert not result.ok
    assert log.index("close conn after ValueError") < log.index("end slow_other")
    assert sum(entry.startswith("close conn") for entry in log) == 1


async def test_fail_fast_closes_once_with_the_run_failure() -> None:
    log: Log = []

    async def broken(_: str) -> None:
        await asyncio.sleep(0.01)
        raise ValueError("boom")

    with build_dag() as dag:
        conn = dag.add_resource(resource("conn", log), release="early")
        dag.add_node(broken, conn, name="broken")
        dag.add_node(step("ok_user", log), conn)
        dag.add_node(step("slow_other", log, 1.0))
    with pytest.raises(DagError) as caught:
        await dag.invoke(None)
    assert set(caught.value.failures) == {"broken"}
    closes = [entry for entry in log if entry.startswith("close conn")]
    assert closes == ["close conn after ValueError"]
    assert "end slow_other" not in log  # cancelled by the failure


async def test_cleanup_failure_of_an_early_release_is_reported() -> None:
    async def leaky() -> AsyncIterator[int]:
        yield 1
        raise OSError("could not close")

    with build_dag() as dag:
        conn = dag.add_resource(leaky, release="early", name="leaky")
        dag.add_node(step("user", []), conn)
    with pytest.raises(DagError) as caught:
        await dag.invoke(None)
    assert isinstance(caught.value.failures["leaky"], OSError)
    notes = caught.value.failures["leaky"].__notes__
    assert any("'leaky'" in n and "cleanup" in n for n in notes)


async def test_cancel_during_early_release_still_finishes_it() -> None:
    log: Log = []
    releasing = asyncio.Event()

    async def slow_close() -> AsyncIterator[int]:
        yield 1
        releasing.set()
        await asyncio.sleep(0.05)
        log.append("closed")

    with build_dag() as dag:
        conn = dag.add_resource(slow_close, release="early")
        dag.add_node(step("user", log), conn)
        dag.add_node(step("slow_other", log, 1.0))
    before = asyncio.all_tasks()
    run = asyncio.ensure_future(dag.invoke(None))
    await releasing.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert log[-1] == "closed"  # the release finished although the caller cancelled
    assert "end slow_other" not in log
    assert asyncio.all_tasks() == before


async def test_users_outside_targets_are_not_waited_for() -> None:
    log: Log = []
    with build_dag() as dag:
        conn = dag.add_resource(resource("conn", log), release="early")
        wanted = dag.add_node(step("wanted", log), conn)
        dag.add_node(step("unwanted", log), conn)
        tail = dag.add_node(step("tail", log, 0.03), wanted)
    await dag.invoke(None, targets=[tail])
    assert "start unwanted" not in log
    assert log.index("close conn") < log.index("end tail")


def test_release_is_for_resources_only() -> None:
    with build_dag() as dag, pytest.raises(DagDefinitionError, match="add_resource"):
        dag.add_node(lambda: 1, release="early")  # type: ignore[arg-type]  # under test


def test_release_value_is_checked() -> None:
    async def res() -> AsyncIterator[int]:
        yield 1

    with build_dag() as dag, pytest.raises(DagDefinitionError, match="'end' or 'early'"):
        dag.add_resource(res, release="soon")  # type: ignore[call-overload]  # the misuse under test
