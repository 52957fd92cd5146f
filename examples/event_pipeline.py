"""Fetch two events, store the allowed one, publish and log: the invoke parameter carries clients.

The async-dag "another example", for dagwire: node functions receive the invoke parameter as
their last argument when they declare one parameter more than the inputs they are given.

Run: python examples/event_pipeline.py
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dagwire import build_dag


@dataclass(frozen=True)
class Event:
    at: datetime
    location: str


@dataclass
class Database:
    rows: list[Event] = field(default_factory=list[Event])

    async def insert(self, event: Event) -> bool:
        await asyncio.sleep(0.02)  # a database round trip
        self.rows.append(event)
        return True


@dataclass
class Http:
    published: list[list[bool]] = field(default_factory=list[list[bool]])

    async def fetch(self, url: str) -> Event:
        await asyncio.sleep(0.02)  # an HTTP round trip
        return Event(datetime.now(UTC), url)

    async def publish(self, outcomes: list[bool]) -> None:
        await asyncio.sleep(0.02)
        self.published.append(outcomes)


@dataclass
class Services:
    http: Http
    db: Database
    allowed_location: str


async def fetch_event(url: str, services: Services) -> Event:
    return await services.http.fetch(url)


async def store_if_allowed(event: Event, services: Services) -> bool:
    if event.location != services.allowed_location:
        return False
    return await services.db.insert(event)


async def publish(first: bool, second: bool, services: Services) -> None:
    await services.http.publish([first, second])


def describe(moon: Event, moon_stored: bool, sun: Event, sun_stored: bool) -> str:
    # A sync node: it runs inline on the event loop, which is right for cheap transforms.
    return f"{moon.location}: stored={moon_stored}; {sun.location}: stored={sun_stored}"


with build_dag(Services, name="events") as dag:
    moon = dag.add_node(fetch_event, "moon")  # "moon" is a constant input
    moon_stored = dag.add_node(store_if_allowed, moon)
    sun_url = dag.add_immediate_node("sun")
    sun = dag.add_node(fetch_event, sun_url)
    sun_stored = dag.add_node(store_if_allowed, sun)
    dag.add_node(publish, moon_stored, sun_stored)
    summary = dag.add_node(describe, moon, moon_stored, sun, sun_stored, name="summary")


async def main() -> list[str]:
    http, db = Http(), Database()
    lines: list[str] = []
    # One built graph, invoked as often as needed (even concurrently).
    for allowed in ("moon", "sun"):
        result = await dag.invoke(Services(http, db, allowed))
        lines.append(result[summary])
        print(result[summary])
    print("published:", http.published, "rows:", [e.location for e in db.rows])
    return lines


if __name__ == "__main__":
    asyncio.run(main())
