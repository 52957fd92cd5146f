"""A task pipeline in the async_orch style, wired as one dagwire graph.

What async_orch builds from `Sequence`, `Parallel(limit=)`, a monkey-patched retry, a
`CircuitGroup` and its global event bus, dagwire says with nodes and options:

- a sequence: fetch -> process -> save, each node fed by the one before;
- parallel work with a limit: three fetches sharing a `Limiter(2)` (never more than two at once);
- a flaky task with retries: `retry=Retry(attempts=3, ...)` on `ConnectionError`;
- a circuit breaker: `breaker=CircuitBreaker(fail_max=2, ...)` on a call to a service that is
  down; after two failures it fails fast, and `fallback=` keeps the runs going;
- event logging: an observer given to `build_dag(observers=[...])` sees every run's events.

Run: python examples/orchestrated_pipeline.py
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from dagwire import CircuitBreaker, Limiter, Retry, build_dag
from dagwire.events import BreakerChanged, Event, NodeFailed, NodeRetrying


@dataclass
class Services:
    """What one run needs: here just counters standing in for real clients."""

    flaky_calls: int = 0
    fetching: int = 0
    most_fetching: int = 0
    saved: list[str] = field(default_factory=list[str])


async def fetch_data(item: int, services: Services) -> str:
    services.fetching += 1
    services.most_fetching = max(services.most_fetching, services.fetching)
    try:
        await asyncio.sleep(0.02)  # an I/O round trip
        return f"data_{item}"
    finally:
        services.fetching -= 1


def process_data(data: str) -> str:  # sync: runs inline, it is cheap
    return data.upper()


def save_data(data: str, services: Services) -> str:
    services.saved.append(data)
    return f"saved {data}"


def collect(*parts: str) -> list[str]:
    return list(parts)


async def flaky_task(services: Services) -> str:
    services.flaky_calls += 1
    await asyncio.sleep(0.005)
    if services.flaky_calls < 3:
        raise ConnectionError(f"connection reset (call {services.flaky_calls})")
    return f"flaky succeeded on call {services.flaky_calls}"


async def check_inventory(services: Services) -> str:
    await asyncio.sleep(0.005)
    raise ConnectionError("inventory service is down")


def log_event(event: Event) -> None:
    """The observer: a plain callable, called on the loop for every event of every run."""
    where = f" {event.node}" if event.node else ""
    line = f"  event #{event.run_id} {event.kind}{where}"
    if isinstance(event, NodeRetrying):
        line += f" (attempt {event.attempt} failed: {event.error}; next in {event.delay:.3f}s)"
    elif isinstance(event, NodeFailed):
        line += f" ({type(event.error).__name__}: {event.error}; fallback={event.recovered})"
    elif isinstance(event, BreakerChanged):
        line += f" {event.old.name} -> {event.new.name}"
    print(line)


# Shared by every run: the limit on fetches and the breaker's memory of failures.
FETCH_LIMIT = Limiter(2)
INVENTORY_BREAKER = CircuitBreaker(fail_max=2, reset_timeout=10.0)

with build_dag(Services, name="pipeline", observers=[log_event]) as pipeline:
    # Sequence: fetch -> process -> save
    fetched = pipeline.add_node(fetch_data, 1, limiter=FETCH_LIMIT, name="fetch_1")
    processed = pipeline.add_node(process_data, fetched, name="process_1")
    saved = pipeline.add_node(save_data, processed, name="save_1")
    # Parallel with a limit: three fetches, at most two at once (the limiter is shared)
    fetches = [
        pipeline.add_node(fetch_data, n, limiter=FETCH_LIMIT, name=f"fetch_{n}")
        for n in (10, 20, 30)
    ]
    gathered = pipeline.add_node(collect, *fetches, name="gathered")
    # A flaky task, retried on ConnectionError
    flaky = pipeline.add_node(
        flaky_task, retry=Retry(attempts=3, initial_delay=0.01, on=(ConnectionError,))
    )
    # A circuit breaker around a failing service; the fallback keeps the run going
    inventory = pipeline.add_node(
        check_inventory, breaker=INVENTORY_BREAKER, fallback="inventory unknown"
    )


async def main() -> None:
    for run in (1, 2, 3):
        print(f"run {run}:")
        services = Services()
        result = await pipeline.invoke(services)
        print(f"  sequence: {result[saved]!r}")
        print(f"  parallel: {result[gathered]} (at most {services.most_fetching} at once)")
        print(f"  flaky:    {result[flaky]!r}")
        print(f"  breaker:  {result[inventory]!r}, now {INVENTORY_BREAKER.state.name}")
        print(f"  recovered failures: {[f'{e.node}: {e.error!r}' for e in result.errors]}")


if __name__ == "__main__":
    asyncio.run(main())
