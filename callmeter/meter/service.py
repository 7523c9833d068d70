"""One meter tick: every call whose ``due_at`` has passed is settled or advanced.

Several workers and API processes may tick at once against one database. Each tick takes
due calls a batch at a time (``FOR UPDATE SKIP LOCKED`` on PostgreSQL). The batch path
(:mod:`callmeter.meter.batch`) settles the common case — an active call that goes on — for
the whole batch in one transaction; every other due call is leased (its ``due_at`` pushed
forward) and advanced in its own short transaction under the call's row lock by
``calls.service.advance``. Correctness does not depend on the claim — every step is
idempotent — only efficiency does.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.calls import repository as calls_repository
from callmeter.calls import service as calls
from callmeter.calls.repository import DueCall
from callmeter.calls.service import Roster
from callmeter.errors import MediaUnavailable
from callmeter.kit.db import is_disconnected, run_in_transaction
from callmeter.kit.runtime import Runtime
from callmeter.media import livekit as media
from callmeter.media.kicks import process_kicks
from callmeter.meter.batch import BatchResult, settle_due_batch
from callmeter.models import Call
from callmeter.ops import metrics

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=15)


@dataclass
class TickResult:
    claimed: int = 0
    advanced: int = 0
    ended: int = 0
    failed: int = 0
    kicked: int = 0
    batched: int = 0  # settled by the batch path
    # seconds from each settled call's due time to the commit that settled it
    lags: list[float] = field(default_factory=list)


async def tick(runtime: Runtime, now: datetime | None = None) -> TickResult:
    """Settle or advance every call due at ``now`` (default: the runtime's clock)."""
    now = now or runtime.clock.now()
    result = TickResult()
    size = runtime.settings.meter_batch_size
    while True:
        due, picked = await _take_batch(runtime, now, size, result)
        result.claimed += picked
        rosters = await _rosters(runtime, due)
        for call in due:
            await _advance_one(runtime, call.id, now, result, rosters.get(call.id))
        if picked < size:
            break
    result.kicked = await process_kicks(runtime, now)
    for lag in result.lags:
        metrics.METER_LAG.observe(lag)
    return result


async def _take_batch(
    runtime: Runtime, now: datetime, size: int, result: TickResult
) -> tuple[list[DueCall], int]:
    """Settle what the batch path can of the next ``size`` due calls; returns the rest
    (leased to this worker) and how many calls were picked."""
    settings = runtime.settings
    if settings.meter_batch_path:

        async def batch(session: AsyncSession) -> BatchResult:
            return await settle_due_batch(
                session,
                now=now,
                lease_until=now + LEASE,
                limit=size,
                heartbeat_timeout=settings.heartbeat_timeout_seconds,
            )

        try:
            done = await run_in_transaction(runtime.sessionmaker, batch)
        except Exception as exc:
            # No connection: the per-call path cannot do better, this tick fails. A statement
            # that timed out or waited on a lock is different: smaller transactions may pass,
            # and retrying the same batch every tick would stall the meter.
            if is_disconnected(exc):
                raise
            # Nothing of the batch was written; the per-call path below still makes progress.
            log.exception("meter batch failed; settling these calls one by one")
        else:
            committed = runtime.clock.now()
            result.batched += len(done.settled)
            result.ended += done.ended
            result.advanced += len(done.settled)
            result.lags.extend((committed - due_at).total_seconds() for _, due_at in done.settled)
            return done.others, done.picked

    async def claim(session: AsyncSession) -> list[DueCall]:
        return await calls_repository.claim_due_calls(
            session, now=now, lease_until=now + LEASE, limit=size
        )

    due = await run_in_transaction(runtime.sessionmaker, claim)
    return due, len(due)


async def _rosters(runtime: Runtime, due: list[DueCall]) -> dict[int, Roster]:
    """Ask LiveKit who is in each due LiveKit call's room, outside any transaction and a
    few at a time. A room LiveKit cannot be asked about gets no roster this tick."""
    livekit = media.client(runtime)
    wanted = [
        c for c in due if c.media_provider == "livekit" and c.status in ("connecting", "active")
    ]
    if livekit is None or not wanted:
        return {}
    limit = asyncio.Semaphore(8)

    async def ask(call: DueCall) -> tuple[int, Roster | None]:
        async with limit:
            try:
                return call.id, Roster(await livekit.list_participants(call.room))
            except MediaUnavailable:
                return call.id, None

    answers = await asyncio.gather(*(ask(c) for c in wanted))
    return {call_id: roster for call_id, roster in answers if roster is not None}


async def _advance_one(
    runtime: Runtime, call_id: int, now: datetime, result: TickResult, roster: Roster | None
) -> None:
    async def work(session: AsyncSession) -> Call | None:
        return await calls.advance(
            session, call_id=call_id, settings=runtime.settings, now=now, roster=roster
        )

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
