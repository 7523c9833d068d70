"""The meter loop, run inside ``callmeter serve`` and alone as ``callmeter worker``."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from callmeter.calls.repository import DUE_CHANNEL, say_meter_ticks
from callmeter.kit.db import is_sqlite, is_unavailable
from callmeter.kit.notify import DatabaseWakeups
from callmeter.kit.runtime import Runtime
from callmeter.meter.service import tick

log = logging.getLogger(__name__)

WOKEN_GAP_SECONDS = (
    0.05  # a tick asked for by a notification starts at least this long after the last
)
BEACON_SECONDS = 1.0  # the meter says it ticks at most this often (calls.beats listens)


async def run_meter(runtime: Runtime, stop: asyncio.Event | None = None) -> None:
    """Tick every ``METER_TICK_SECONDS`` until ``stop`` is set (or the task is cancelled),
    and at once (PostgreSQL) when a process brings calls due and says so on
    ``callmeter_due`` (``calls.repository.bring_due``): a notification lost costs at most
    one tick period.

    A failed tick (the database down, hung or busy) is logged and the next one runs on
    schedule: the loop never dies of an error.

    On PostgreSQL, while it listens, a tick that settled what it took (or some of it) is
    followed (at most once every ``BEACON_SECONDS``) by a word on ``callmeter_meter``: API
    processes that heard it lately bring a charge due for the meter instead of settling it
    themselves (``calls.beats``)."""
    stop = stop or asyncio.Event()
    interval = runtime.settings.meter_tick_seconds
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()  # calls brought due, or stop: tick (or stop) now
    wakeups = None
    if not is_sqlite(str(runtime.engine.url)):
        wakeups = DatabaseWakeups(runtime.engine, DUE_CHANNEL, woken.set, on_commit=False)
        wakeups.on_listening.append(lambda: log.info("meter: listening on %s", DUE_CHANNEL))
        wakeups.start()
    relay = asyncio.create_task(_set_when(stop, woken))
    said = float("-inf")  # when the meter last said it ticks
    try:
        while not stop.is_set():
            started = loop.time()
            woken.clear()
            try:
                result = await tick(runtime)
                if result.ended or result.failed:
                    log.info("meter: %s", result)
                # it settles: nothing failed, or some calls went through (a few lost to a
                # busy database are taken again; a meter that fails every call is silent)
                settles = not result.failed or result.advanced > 0
                if settles and wakeups is not None and wakeups.listening:
                    said = await _say_it_ticks(runtime, said, started)
            except Exception as exc:
                if is_unavailable(exc):  # expected during an outage: one line, no traceback
                    log.warning("meter tick failed, database unavailable: %r", exc)
                else:
                    log.exception("meter tick failed")
            # a steady cadence: the next tick starts one interval after this one started,
            # or sooner when woken
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), max(0.0, started + interval - loop.time()))
            if woken.is_set() and not stop.is_set():
                await asyncio.sleep(max(0.0, started + WOKEN_GAP_SECONDS - loop.time()))
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        if wakeups is not None:
            await wakeups.close()


async def _say_it_ticks(runtime: Runtime, said: float, now: float) -> float:
    """The meter's word on ``callmeter_meter`` after a tick that worked, at most once every
    ``BEACON_SECONDS``; returns when it was last said."""
    if now - said < BEACON_SECONDS:
        return said
    try:
        async with runtime.sessionmaker() as session:
            await say_meter_ticks(session)
            await session.commit()
    except Exception as exc:  # not said: API processes settle charges themselves meanwhile
        log.warning("meter: could not say it ticks: %r", exc)
        return said
    return now


async def _set_when(stop: asyncio.Event, woken: asyncio.Event) -> None:
    await stop.wait()
    woken.set()
