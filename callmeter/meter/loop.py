"""The meter loop, run inside ``callmeter serve`` and alone as ``callmeter worker``."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from callmeter.kit.db import is_unavailable
from callmeter.kit.runtime import Runtime
from callmeter.meter.service import tick

log = logging.getLogger(__name__)


async def run_meter(runtime: Runtime, stop: asyncio.Event | None = None) -> None:
    """Tick every ``METER_TICK_SECONDS`` until ``stop`` is set (or the task is cancelled).

    A failed tick (the database down, hung or busy) is logged and the next one runs on
    schedule: the loop never dies of an error."""
    stop = stop or asyncio.Event()
    interval = runtime.settings.meter_tick_seconds
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        started = loop.time()
        try:
            result = await tick(runtime)
            if result.ended or result.failed:
                log.info("meter: %s", result)
        except Exception as exc:
            if is_unavailable(exc):  # expected during an outage: one line, not a traceback
                log.warning("meter tick failed, database unavailable: %r", exc)
            else:
                log.exception("meter tick failed")
        # a steady cadence: the next tick starts one interval after this one started
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=max(0.0, started + interval - loop.time()))
