"""LiveKit webhooks: verified with livekit-api's WebhookReceiver, stored in an inbox keyed
by event id (a repeat does nothing), then applied to the call under its row lock.

An event's time (``createdAt``, LiveKit's clock) is only trusted within bounds: never later
than its arrival, never earlier than the moment the call was accepted (a stale event or a
media server whose clock runs behind cannot bill time before the call existed). An event
whose time is absurd (more than a day from its arrival, or not a time at all) or that names
a room of ours that cannot be (``call-`` and not a call id) is recorded in the inbox and
refused with 422, never a 500.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from livekit import api
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callmeter.calls import repository as calls_repository
from callmeter.calls.service import activate_if_connected, end_if_overdue, look_again_for_media
from callmeter.calls.settlement import charge_pending, finish, settle
from callmeter.config import Settings
from callmeter.errors import InvalidWebhook, InvalidWebhookEvent, WebhooksNotConfigured
from callmeter.kit.db import dialect_insert
from callmeter.media import presence, repository
from callmeter.media.kicks import enqueue_kick
from callmeter.media.livekit import call_id_of
from callmeter.models import CallStatus, EndReason, WebhookEvent

log = logging.getLogger(__name__)

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


def _check_room(event: api.WebhookEvent) -> None:
    name = event.room.name
    if event.event in CALL_EVENTS and name.startswith("call-") and call_id_of(name) is None:
        raise InvalidWebhookEvent(f"room {name[:64]!r} is not a call's room")


async def handle(
    session: AsyncSession, event: api.WebhookEvent, *, now: datetime, settings: Settings
) -> bool:
    """Record the event and apply it once. Returns False for a duplicate; raises
    InvalidWebhookEvent for an event that cannot be applied (see :func:`record_refused`)."""
    occurred = event_time(event, now)
    _check_room(event)
    row_id = await _record(session, event, occurred, now)
    if row_id is None:
        return False
    await _apply(session, event, occurred, now, settings)
    await session.execute(
        update(WebhookEvent).where(WebhookEvent.id == row_id).values(handled_at=now)
    )
    return True


async def record_refused(
    sessionmaker: async_sessionmaker[AsyncSession], event: api.WebhookEvent, now: datetime
) -> None:
    """Keep a refused event in the inbox (its own transaction: the request's rolls back),
    stamped handled with its arrival time, so a repeat is a duplicate and an operator can
    see it."""
    async with sessionmaker.begin() as session:
        row_id = await _record(session, event, now, now)
        if row_id is not None:
            await session.execute(
                update(WebhookEvent).where(WebhookEvent.id == row_id).values(handled_at=now)
            )


async def _record(
    session: AsyncSession, event: api.WebhookEvent, occurred: datetime, now: datetime
) -> int | None:
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


async def _apply(
    session: AsyncSession,
    event: api.WebhookEvent,
    occurred: datetime,
    now: datetime,
    settings: Settings,
) -> None:
    call_id = call_id_of(event.room.name)
    call = await calls_repository.lock_call(session, call_id) if call_id else None
    if call is None or call.media_provider != "livekit":
        log.info("LiveKit %s for room %r: no such call", event.event, event.room.name)
        return
    # LiveKit's clock may run behind ours, or the event be stale: never before the call
    # was accepted (or created), so no time before anyone could connect is ever billed.
    occurred = max(occurred, call.accepted_at or call.created_at)
    if await end_if_overdue(session, call, settings, now):
        if event.event == "participant_joined":
            await enqueue_kick(session, call, now)  # not paid for: out again
        await session.flush()
        return
    if event.event == "room_finished":
        await finish(session, call, occurred, EndReason.media_left, now)
        await session.flush()
        return
    if event.event not in ("participant_joined", *repository.LEFT_EVENTS):
        return
    party = presence.party_for_identity(call, event.participant.identity)
    if party is None:
        return
    sid = event.participant.sid
    if event.event == "participant_joined":
        if call.status == CallStatus.ended:
            await enqueue_kick(session, call, now)  # not paid for: out again
            return
        if sid in await repository.departed_sids(session, [sid]):
            return  # a late joined of a participant whose departure we already had
        if call.status in (CallStatus.connecting, CallStatus.active):
            presence.joined(call, party, sid, occurred)
            activate_if_connected(call)
    elif call.status in (CallStatus.connecting, CallStatus.active):
        presence.left(call, party, sid, occurred)
    if charge_pending(call, now):
        await settle(session, call, now, settings)
    look_again_for_media(call, now, settings)
    call.version += 1
    await session.flush()
