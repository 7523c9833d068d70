"""One meter tick: every call whose ``due_at`` has passed gets ``calls.service.advance``.

Several workers and API processes may tick at once against one database. Each tick claims
a batch (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and leases it by pushing ``due_at``
forward, then advances each call in its own short transaction under the call's row lock;
correctness does not depend on the claim — every step is idempotent — only efficiency does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.calls import repository as calls_repository
from callmeter.calls import service as calls
from callmeter.kit.db import run_in_transaction
from callmeter.kit.runtime import Runtime
from callmeter.models import Call

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=15)


@dataclass
class TickResult:
    claimed: int = 0
    advanced: int = 0
    ended: int = 0
    failed: int = 0


async def tick(runtime: Runtime, now: datetime | None = None) -> TickResult:
    """Advance every call due at ``now`` (default: the runtime's clock)."""
    now = now or runtime.clock.now()
    result = TickResult()
    batch = runtime.settings.meter_batch_size
    while True:

        async def claim(session: AsyncSession) -> list[int]:
            return await calls_repository.claim_due_calls(
                session, now=now, lease_until=now + LEASE, limit=batch
            )

        call_ids = await run_in_transaction(runtime.sessionmaker, claim)
        result.claimed += len(call_ids)
        for call_id in call_ids:
            await _advance_one(runtime, call_id, now, result)
        if len(call_ids) < batch:
            return result


async def _advance_one(runtime: Runtime, call_id: int, now: datetime, result: TickResult) -> None:
    async def work(session: AsyncSession) -> Call | None:
        return await calls.advance(session, call_id=call_id, settings=runtime.settings, now=now)

    try:
        call = await run_in_transaction(runtime.sessionmaker, work)
    except Exception:
        # The lease brings the call back in a few seconds; one bad call must not stop the rest.
        log.exception("meter could not advance call %s", call_id)
        result.failed += 1
        return
    result.advanced += 1
    if call is not None and call.ended_at is not None:
        result.ended += 1
