"""Run by the seed regression in two OS processes at once: heartbeats from both parties,
ends from both parties and meter ticks, all at the same server moment.

Usage: python -m tests.calls.race_worker URL CALL_ID NOW_ISO N
Prints {"final": <the call as the end returned it>}.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.app import create_runtime
from callmeter.calls import service
from callmeter.calls.schemas import CallOut
from callmeter.config import Settings
from callmeter.kit.clock import ManualClock
from callmeter.kit.db import run_in_transaction
from callmeter.meter.service import tick
from callmeter.models import Call, User


async def main(url: str, call_id: int, now: datetime, n: int) -> None:
    runtime = create_runtime(
        Settings(database_url=url, password_hash_profile="cheapest"), ManualClock(now)
    )
    async with runtime.sessionmaker() as session:
        call = await session.get(Call, call_id)
        assert call is not None
        client = await session.get(User, call.client_id)
        host = await session.get(User, call.host_id)
        assert client is not None
        assert host is not None

    async def beat(user: User) -> object:
        async def work(session: AsyncSession) -> Call:
            return await service.heartbeat(session, user=user, call_id=call_id,
                                           media_connected=True, settings=runtime.settings,
                                           now=now)  # fmt: skip

        return await run_in_transaction(runtime.sessionmaker, work)

    async def end(user: User) -> CallOut:
        async def work(session: AsyncSession) -> CallOut:
            ended = await service.end(
                session, user=user, call_id=call_id, settings=runtime.settings, now=now
            )
            return CallOut.of(ended, now, runtime.settings)

        return await run_in_transaction(runtime.sessionmaker, work)

    jobs: list[object] = [beat(u) for u in [client, host] * n]
    jobs += [end(client), end(host), tick(runtime, now), tick(runtime, now)]
    results = await asyncio.gather(*jobs)  # type: ignore[call-overload]
    ends = [r for r in results if isinstance(r, CallOut)]
    assert ends[0] == ends[1]
    await runtime.close()
    print(json.dumps({"final": ends[0].model_dump(mode="json")}))


if __name__ == "__main__":
    url, call_id, now, n = sys.argv[1:5]
    asyncio.run(main(url, int(call_id), datetime.fromisoformat(now), int(n)))
