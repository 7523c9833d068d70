"""The meter loop, run inside ``callmeter serve`` and alone as ``callmeter worker``."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from callmeter.kit.runtime import Runtime
from callmeter.meter.service import tick

log = logging.getLogger(__name__)


async def run_meter(runtime: Runtime, stop: asyncio.Event | None = None) -> None:
    """Tick every ``METER_TICK_SECONDS`` until ``stop`` is set (or the task is cancelled)."""
    stop = stop or asyncio.Event()
    interval = runtime.settings.meter_tick_seconds
    while not stop.is_set():
        try:
            result = await tick(runtime)
            if result.ended or result.failed:
                log.info("meter: %s", result)
        except Exception:  # the database may be briefly unreachable; keep ticking
            log.exception("meter tick failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
