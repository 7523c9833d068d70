"""Floods through two API processes (each its own engine and pool), and how many database
connections each pool had out meanwhile: a flood's refused requests must not queue for one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from callmeter.app import create_app, create_runtime
from callmeter.kit.runtime import Runtime
from tests.calls.driver import CallDriver, Party


@contextmanager
def connections_out(*engines: AsyncEngine) -> Iterator[list[int]]:
    """The most connections each engine's pool had checked out at once during the block."""
    out, peaks = [0] * len(engines), [0] * len(engines)
    listeners = []
    for i, engine in enumerate(engines):

        def checkout(*_: object, i: int = i) -> None:
            out[i] += 1
            peaks[i] = max(peaks[i], out[i])

        def checkin(*_: object, i: int = i) -> None:
            out[i] -= 1

        for name, listener in (("checkout", checkout), ("checkin", checkin)):
            event.listen(engine.sync_engine, name, listener)
            listeners.append((engine.sync_engine, name, listener))
    try:
        yield peaks
    finally:
        for target, name, listener in listeners:
            event.remove(target, name, listener)


async def flood(
    driver: CallDriver,
    runtime: Runtime,
    who: Party,
    url: str,
    body: Callable[[int], dict[str, Any]],
    count: int = 300,
) -> tuple[list[Response], list[int]]:
    """``count`` posts at once, every other one through a second API process (its own
    engine and pool): the answers, and the most connections each pool had out at once."""
    other = create_runtime(runtime.settings, driver.clock)
    try:
        async with AsyncClient(
            transport=ASGITransport(app=create_app(runtime=other)), base_url="http://test"
        ) as second:
            clients = [driver.client, second]
            with connections_out(runtime.engine, other.engine) as peaks:
                results = await asyncio.gather(
                    *(
                        clients[n % 2].post(url, json=body(n), headers=who.headers)
                        for n in range(count)
                    )
                )
    finally:
        await other.close()
    return list(results), peaks
