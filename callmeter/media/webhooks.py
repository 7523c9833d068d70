"""LiveKit webhooks: verified with livekit-api's WebhookReceiver, stored in an inbox keyed
by event id (a repeat does nothing), then applied to the call under its row lock."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from livekit import api
from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.calls import repository as calls_repository
from callmeter.calls.service import activate_if_connected, look_again_for_media
from callmeter.calls.settlement import charge_pending, finish, settle
from callmeter.config import Settings
from callmeter.errors import CallmeterError
from callmeter.kit.db import dialect_insert
from callmeter.media import presence
from callmeter.media.kicks import enqueue_kick
from callmeter.media.livekit import call_id_of
from callmeter.models import CallStatus, EndReason, WebhookEvent

log = logging.getLogger(__name__)

SOURCE = "livekit"
LEFT_EVENTS = ("participant_left", "participant_connection_aborted")


class InvalidWebhook(CallmeterError):
    """The webhook's signature or body hash does not verify."""

    status_code = 401
    code = "invalid_webhook"


class WebhooksNotConfigured(CallmeterError):
    """LiveKit is not configured on this server."""

    status_code = 404
    code = "not_found"


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


async def handle(
    session: AsyncSession, event: api.WebhookEvent, *, now: datetime, settings: Settings
) -> bool:
    """Record the event and apply it once. Returns False for a duplicate."""
    occurred = datetime.fromtimestamp(event.created_at, UTC) if event.created_at else now
    occurred = min(occurred, now)  # never later than its arrival
    participant = event.participant if event.HasField("participant") else None
    inserted = await session.scalars(
        dialect_insert(session, WebhookEvent)
        .values(
            source=SOURCE,
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
    row_id = inserted.one_or_none()
    if row_id is None:
        return False
    await _apply(session, event, occurred, now, settings)
    await session.execute(
        update(WebhookEvent).where(WebhookEvent.id == row_id).values(handled_at=now)
    )
    return True


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
    if event.event == "room_finished":
        await finish(session, call, occurred, EndReason.media_left, now)
        await session.flush()
        return
    if event.event not in ("participant_joined", *LEFT_EVENTS):
        return
    party = presence.party_for_identity(call, event.participant.identity)
    if party is None:
        return
    sid = event.participant.sid
    if event.event == "participant_joined":
        if call.status == CallStatus.ended:
            await enqueue_kick(session, call, now)  # not paid for: out again
            return
        if await _already_left(session, sid):
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


async def _already_left(session: AsyncSession, sid: str) -> bool:
    if not sid:
        return False
    result = await session.execute(
        select(
            exists().where(
                WebhookEvent.source == SOURCE,
                WebhookEvent.participant_sid == sid,
                WebhookEvent.event.in_(LEFT_EVENTS),
            )
        )
    )
    return bool(result.scalar())
