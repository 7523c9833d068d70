"""LiveKit webhooks, the media side: verified with livekit-api's WebhookReceiver, their
time and room checked, and stored in an inbox keyed by event id (a repeat does nothing).
Applying an event to its call is the calls domain's (``calls/webhooks.py``).

An event's time (``createdAt``, LiveKit's clock) is only trusted within bounds: never later
than its arrival (here), never earlier than the moment the call was accepted (there: a
stale event or a media server whose clock runs behind cannot bill time before the call
existed). An event
whose time is absurd (more than a day from its arrival, or not a time at all) or that names
a room of ours that cannot be (``call-`` and not a call id) is recorded in the inbox and
refused with 422, never a 500.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from livekit import api
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callmeter.config import Settings
from callmeter.errors import InvalidWebhook, InvalidWebhookEvent, WebhooksNotConfigured
from callmeter.kit.db import dialect_insert
from callmeter.media import repository
from callmeter.media.livekit import call_id_of
from callmeter.models import WebhookEvent

CALL_EVENTS = ("participant_joined", "room_finished", *repository.LEFT_EVENTS)
# Further from its arrival than this, an event's time is not a clock being off but garbage.
MAX_EVENT_SKEW = timedelta(days=1)


def verify(body: bytes, authorization: str | None, settings: Settings) -> api.WebhookEvent:
    """The event, if the ``Authorization`` token signs exactly this body."""
    if not settings.livekit_enabled:
        raise WebhooksNotConfigured()
    if not authorization:
        raise InvalidWebhook("the Authorization header is missing")
    receiver = api.WebhookReceiver(
        api.TokenVerifier(settings.livekit_api_key, settings.livekit_api_secret)
    )
    try:
        return receiver.receive(body.decode("utf-8"), authorization)
    except Exception as exc:  # jwt errors, "hash mismatch", bad UTF-8 or JSON
        raise InvalidWebhook() from exc


def event_time(event: api.WebhookEvent, now: datetime) -> datetime:
    """When the event happened by LiveKit's clock, never later than its arrival.
    Raises InvalidWebhookEvent for a time that is no time (or more than a day off)."""
    if not event.created_at:
        return now
    try:
        occurred = datetime.fromtimestamp(event.created_at, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidWebhookEvent(f"createdAt {event.created_at} is not a time") from exc
    if abs(occurred - now) > MAX_EVENT_SKEW:
        raise InvalidWebhookEvent(
            f"createdAt {event.created_at} is more than a day from the event's arrival"
        )
    return min(occurred, now)


def check_room(event: api.WebhookEvent) -> None:
    """Raises InvalidWebhookEvent for a call event naming a room that cannot be a call's."""
    name = event.room.name
    if event.event in CALL_EVENTS and name.startswith("call-") and call_id_of(name) is None:
        raise InvalidWebhookEvent(f"room {name[:64]!r} is not a call's room")


async def record_refused(
    sessionmaker: async_sessionmaker[AsyncSession], event: api.WebhookEvent, now: datetime
) -> None:
    """Keep a refused event in the inbox (its own transaction: the request's rolls back),
    stamped handled with its arrival time, so a repeat is a duplicate and an operator can
    see it."""
    async with sessionmaker.begin() as session:
        row_id = await record(session, event, now, now)
        if row_id is not None:
            await mark_handled(session, row_id, now)


async def record(
    session: AsyncSession, event: api.WebhookEvent, occurred: datetime, now: datetime
) -> int | None:
    """Store the event in the inbox; its row id, or None when its id was already there."""
    participant = event.participant if event.HasField("participant") else None
    inserted = await session.scalars(
        dialect_insert(session, WebhookEvent)
        .values(
            source=repository.SOURCE,
            event_id=event.id[:100],
            event=event.event[:64],
            room=event.room.name[:128] or None,
            participant_identity=participant.identity[:128] if participant else None,
            participant_sid=participant.sid[:64] if participant else None,
            occurred_at=occurred,
            received_at=now,
        )
        .on_conflict_do_nothing(index_elements=["source", "event_id"])
        .returning(WebhookEvent.id)
    )
    row_id: int | None = inserted.one_or_none()
    return row_id


async def mark_handled(session: AsyncSession, row_id: int, now: datetime) -> None:
    await session.execute(
        update(WebhookEvent).where(WebhookEvent.id == row_id).values(handled_at=now)
    )
