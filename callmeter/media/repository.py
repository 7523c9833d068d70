"""Queries on the LiveKit webhook inbox."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.models import WebhookEvent

SOURCE = "livekit"
LEFT_EVENTS = ("participant_left", "participant_connection_aborted")


async def departed_sids(session: AsyncSession, sids: Iterable[str]) -> set[str]:
    """Which of these participant sids LiveKit already said left (a participant sid is
    never reused: once gone, gone for good)."""
    wanted = [sid for sid in sids if sid]
    if not wanted:
        return set()
    result = await session.scalars(
        select(WebhookEvent.participant_sid).where(
            WebhookEvent.source == SOURCE,
            WebhookEvent.participant_sid.in_(wanted),
            WebhookEvent.event.in_(LEFT_EVENTS),
        )
    )
    return {sid for sid in result if sid}
