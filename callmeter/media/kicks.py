"""Server-side disconnect: when the server ends a LiveKit call, both participants are
removed and the room deleted. Queued in the ending transaction (an outbox row), carried
out by the meter, retried with backoff; billing never waits for it."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.errors import MediaUnavailable
from callmeter.kit.db import dialect_insert, run_in_transaction
from callmeter.kit.lease import claim_due
from callmeter.kit.runtime import Runtime
from callmeter.media.livekit import client, identity_for
from callmeter.models import Call, MediaKick

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 60
LEASE = timedelta(seconds=30)


async def enqueue_kick(session: AsyncSession, call: Call, now: datetime) -> None:
    """Ask for the call's participants to be removed and its room deleted (again)."""
    insert = dialect_insert(session, MediaKick)
    await session.execute(
        insert.values(
            call_id=call.id, room=call.room, attempts=0, next_attempt_at=now, created_at=now
        ).on_conflict_do_update(
            index_elements=["call_id"],
            set_={"done_at": None, "next_attempt_at": now, "attempts": 0},
        )
    )


async def process_kicks(runtime: Runtime, now: datetime, limit: int = 50) -> int:
    """Carry out the kicks that are due; returns how many succeeded."""
    livekit = client(runtime)
    if livekit is None:
        return 0

    async def claim(session: AsyncSession) -> list[tuple[int, int, str, int, int]]:
        claimed = await claim_due(
            session,
            id_column=MediaKick.id,
            due_column=MediaKick.next_attempt_at,
            where=[MediaKick.done_at.is_(None)],
            now=now,
            lease_until=now + LEASE,
            limit=limit,
            returning=[MediaKick.id, MediaKick.call_id, MediaKick.room, MediaKick.attempts],
        )
        calls = {
            c.id: c
            for c in await session.scalars(
                select(Call).where(Call.id.in_([r.call_id for r in claimed]))
            )
        }
        return [
            (r.id, r.attempts, r.room, calls[r.call_id].client_id, calls[r.call_id].host_id)
            for r in claimed
        ]

    done = 0
    for kick_id, attempts, room, client_id, host_id in await run_in_transaction(
        runtime.sessionmaker, claim
    ):
        error: str | None = None
        try:
            for user_id in (client_id, host_id):
                await livekit.remove_participant(room, identity_for(user_id))
            await livekit.delete_room(room)
        except MediaUnavailable as exc:
            error = exc.detail
        retry_at = now + timedelta(seconds=min(MAX_BACKOFF_SECONDS, 2**attempts))
        if error:
            log.warning("kick of room %s failed (attempt %d): %s", room, attempts + 1, error)
        else:
            done += 1
        values = (
            {"attempts": attempts + 1, "next_attempt_at": retry_at, "last_error": error[:500]}
            if error
            else {"attempts": attempts + 1, "done_at": now, "last_error": None}
        )

        async def record(
            session: AsyncSession, kick_id: int = kick_id, values: dict[str, object] = values
        ) -> None:
            await session.execute(update(MediaKick).where(MediaKick.id == kick_id).values(values))

        await run_in_transaction(runtime.sessionmaker, record)
    return done
