"""A meter worker process under measurement (run by bench/run.py, prints one JSON line).

    python -m bench.worker burst URL BOUNDARY [--per-call] [--batch-size N]
        one meter tick at the instant every seeded call crosses BOUNDARY (the process's
        clock is shifted so that "now" starts there); lag = commit time - due time
    python -m bench.worker steady URL START --seconds S [--tick-seconds T]
        the meter loop, as ``callmeter worker`` runs it, for S seconds of a clock that
        starts at START and runs at real speed

Memory: VmRSS once the runtime is connected and warmed up (idle), and the process's peak
RSS (ru_maxrss) after the work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from callmeter.app import create_runtime
from callmeter.config import Settings
from callmeter.kit.memory import freeze_startup_objects
from callmeter.meter.service import tick


class ShiftedClock:
    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("burst", "steady"))
    parser.add_argument("url")
    parser.add_argument("moment", type=datetime.fromisoformat)
    parser.add_argument("--per-call", action="store_true")
    parser.add_argument("--batch-size", type=int, default=Settings().meter_batch_size)
    parser.add_argument("--tick-seconds", type=float, default=0.25)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    settings = Settings(
        database_url=args.url,
        meter_batch_path=not args.per_call,
        meter_batch_size=args.batch_size,
        meter_tick_seconds=args.tick_seconds,
        heartbeat_timeout_seconds=3600,
    )
    clock = ShiftedClock(args.moment - datetime.now(UTC))
    runtime = create_runtime(settings, clock)
    freeze_startup_objects()  # as ``callmeter worker`` does before its first tick
    try:
        await tick(runtime, clock.now() - timedelta(days=1))  # connect and warm up: no work
        idle = rss_mb()
        cpu0, started = cpu_seconds(), time.perf_counter()
        charges, lags, ticks = 0, [], 0
        if args.mode == "burst":
            result = await tick(runtime, args.moment)
            charges, lags, ticks = result.advanced, result.lags, 1
        else:
            until = args.moment + timedelta(seconds=args.seconds)
            loop = asyncio.get_running_loop()
            while clock.now() < until:  # the cadence of callmeter.meter.loop.run_meter
                began = loop.time()
                result = await tick(runtime)
                charges += result.advanced
                lags += result.lags
                ticks += 1
                await asyncio.sleep(max(0.0, began + settings.meter_tick_seconds - loop.time()))
        elapsed = time.perf_counter() - started
        report = {
            "charges": charges,
            "seconds": elapsed,
            "ticks": ticks,
            "cpu_seconds": cpu_seconds() - cpu0,
            "lag_p50": percentile(lags, 0.50),
            "lag_p99": percentile(lags, 0.99),
            "lag_max": max(lags, default=float("nan")),
            "lag_count": len(lags),
            "idle_rss_mb": idle,
            "peak_rss_mb": peak_rss_mb(),
        }
        print(json.dumps(report))
    finally:
        await runtime.close()


if __name__ == "__main__":
    asyncio.run(main())
