"""Settlements per second: N active calls all cross a billing boundary, one meter tick
charges them. Not a test: prints figures (compare ratios within one run).

    .venv/bin/python -m bench.settle [--calls 1000] [--postgres URL]

The PostgreSQL URL defaults to CALLMETER_TEST_DATABASE_URL; its schema is dropped and
rebuilt, so point it at a scratch database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text, update

from callmeter.auth import service as auth
from callmeter.calls import service as calls
from callmeter.config import Settings
from callmeter.kit.clock import ManualClock
from callmeter.kit.migrate import upgrade
from callmeter.kit.runtime import Runtime
from callmeter.ledger import service as ledger
from callmeter.ledger.check import check_ledger
from callmeter.meter.service import tick
from callmeter.models import Call, Role


async def prepare(runtime: Runtime, clock: ManualClock, n: int) -> None:
    """N clients and hosts, N connected calls, both parties last seen just past 60 s."""
    now = clock.now()
    for start in range(0, n, 100):
        async with runtime.sessionmaker.begin() as session:
            for i in range(start, min(n, start + 100)):
                client = await auth.create_user(
                    session, hasher=runtime.hasher, username=f"c{i}", password="bench-pass",
                    role=Role.client, display_name=None, now=now,
                )  # fmt: skip
                host = await auth.create_user(
                    session, hasher=runtime.hasher, username=f"h{i}", password="bench-pass",
                    role=Role.host, display_name=None, now=now,
                )  # fmt: skip
                await ledger.grant(session, user_id=client.id, amount=1000,
                                   idempotency_key=f"bench:{i}", now=now)  # fmt: skip
                call = await calls.create_call(
                    session, client=client, host_id=host.id, settings=runtime.settings, now=now
                )
                await calls.accept(session, user=host, call_id=call.id,
                                   settings=runtime.settings, now=now)  # fmt: skip
                for user in (client, host):
                    await calls.heartbeat(session, user=user, call_id=call.id,
                                          media_connected=True, settings=runtime.settings,
                                          now=now)  # fmt: skip
    seen = now + timedelta(seconds=61)
    async with runtime.sessionmaker.begin() as session:
        await session.execute(update(Call).values(client_last_seen_at=seen, host_last_seen_at=seen))
    clock.set(seen)


async def measure(url: str, n: int) -> tuple[float, bool]:
    settings = Settings(database_url=url, password_hash_profile="cheapest")
    clock = ManualClock()
    runtime = Runtime.create(settings, clock)
    try:
        if url.startswith("postgresql"):
            async with runtime.engine.begin() as conn:
                await conn.execute(text("DROP SCHEMA public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
        await upgrade(runtime.engine)
        await prepare(runtime, clock, n)
        started = time.perf_counter()
        result = await tick(runtime, clock.now())
        elapsed = time.perf_counter() - started
        assert result.advanced == n, result
        async with runtime.sessionmaker() as session:
            report = await check_ledger(session)
        return n / elapsed, report.ok
    finally:
        await runtime.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--postgres", default=os.environ.get("CALLMETER_TEST_DATABASE_URL"))
    args = parser.parse_args()
    targets = []
    with tempfile.TemporaryDirectory() as tmp:
        targets.append(("SQLite", f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"))
        if args.postgres:
            targets.append(("PostgreSQL", args.postgres))
        print(f"{args.calls} active calls crossing one boundary, one meter tick")
        for name, url in targets:
            rate, ok = await measure(url, args.calls)
            print(
                f"{name:>10}: {rate:8.0f} settlements/s   ledger check {'ok' if ok else 'FAILED'}"
            )


if __name__ == "__main__":
    asyncio.run(main())
