"""Run by test_concurrency in separate OS processes: many grants with one key at once.

Usage: python -m tests.ledger.grant_race URL USER_ID KEY AMOUNT N START_AT
Prints one JSON line: {"created": <grants this process created>, "replayed": <n - created>}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from callmeter.kit.clock import SystemClock
from callmeter.kit.db import create_engine, create_sessionmaker, run_in_transaction
from callmeter.ledger import service as ledger


async def main(url: str, user_id: int, key: str, amount: int, n: int, start_at: float) -> None:
    engine = create_engine(url, pool_size=n, max_overflow=0)
    sessionmaker = create_sessionmaker(engine)
    clock = SystemClock()

    async def one() -> bool:
        async def work(session: object) -> bool:
            result = await ledger.grant(
                session,  # type: ignore[arg-type]
                user_id=user_id,
                amount=amount,
                idempotency_key=key,
                now=clock.now(),
            )
            return result.created

        return await run_in_transaction(sessionmaker, work)

    # Open the connections first so that the grants themselves start together.
    async with engine.connect():
        pass
    await asyncio.sleep(max(0.0, start_at - time.time()))
    results = await asyncio.gather(*(one() for _ in range(n)))
    await engine.dispose()
    created = sum(results)
    print(json.dumps({"created": created, "replayed": n - created}))


if __name__ == "__main__":
    url, user_id, key, amount, n, start_at = sys.argv[1:7]
    asyncio.run(main(url, int(user_id), key, int(amount), int(n), float(start_at)))
