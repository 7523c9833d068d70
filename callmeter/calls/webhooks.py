"""LiveKit webhooks, the calls side: an event verified and recorded by ``media.webhooks``
is applied to its call under the call's row lock (presence, activation, deadlines,
settlement, the end of the room), once per event id."""

from __future__ import annotations

import logging
from datetime import datetime

from livekit import api
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.billing.settlement import charge_pending
from callmeter.calls import repository
from callmeter.calls.service import (
    activate_if_connected,
    end_if_overdue,
    finish,
    look_again_for_media,
    settle,
)
from callmeter.config import Settings
from callmeter.media import presence, webhooks
from callmeter.media import repository as media_repository
from callmeter.media.kicks import enqueue_kick
from callmeter.media.livekit import call_id_of
from callmeter.models import CallStatus, EndReason

log = logging.getLogger(__name__)


async def handle(
    session: AsyncSession, event: api.WebhookEvent, *, now: datetime, settings: Settings
) -> bool:
    """Record the event and apply it once. Returns False for a duplicate; raises
    InvalidWebhookEvent for an event that cannot be applied (the caller keeps it with
    ``media.webhooks.record_refused``)."""
    occurred = webhooks.event_time(event, now)
    webhooks.check_room(event)
    row_id = await webhooks.record(session, event, occurred, now)
    if row_id is None:
        return False
    await _apply(session, event, occurred, now, settings)
    await webhooks.mark_handled(session, row_id, now)
    return True


async def _apply(
    session: AsyncSession,
    event: api.WebhookEvent,
    occurred: datetime,
    now: datetime,
    settings: Settings,
) -> None:
    call_id = call_id_of(event.room.name)
    call = await repository.lock_call(session, call_id) if call_id else None
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
    if event.event not in ("participant_joined", *media_repository.LEFT_EVENTS):
        return
    party = presence.party_for_identity(call, event.participant.identity)
    if party is None:
        return
    sid = event.participant.sid
    if event.event == "participant_joined":
        if call.status == CallStatus.ended:
            await enqueue_kick(session, call, now)  # not paid for: out again
            return
        if sid in await media_repository.departed_sids(session, [sid]):
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
