"""LiveKit as the witness of who is on a call: webhooks and reconciliation change the same
per-party presence fields, tolerant of lost, duplicated and reordered events.

For a LiveKit call a party is *present* from its ``participant_joined`` (or from being seen
by ``ListParticipants``) until its current participant leaves. A ``participant_left`` or
``participant_connection_aborted`` of an older participant sid is a reconnect, not a
departure. A departure only ends the call when the party has not come back within
``LIVEKIT_ABSENCE_GRACE_SECONDS``; it is then billed to the moment it left. While a party
is in the room by LiveKit's word, its own heartbeats keep it present too (the weakest
signal, and only then): without them a meter outage, which stops reconciliation, would end
every LiveKit call at the heartbeat timeout.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Literal

from callmeter.config import Settings
from callmeter.media.livekit import Participant, identity_for
from callmeter.models import Call, CallStatus

Party = Literal["client", "host"]
PARTIES: tuple[Party, Party] = ("client", "host")


def party_for_identity(call: Call, identity: str) -> Party | None:
    if identity == identity_for(call.client_id):
        return "client"
    if identity == identity_for(call.host_id):
        return "host"
    return None


def _get(call: Call, party: Party, field: str) -> datetime | None:
    value = getattr(call, f"{party}_{field}")
    assert value is None or isinstance(value, datetime)
    return value


def in_room(call: Call, party: Party) -> bool:
    """Whether LiveKit last said ``party`` joined the call's room and has not said it left."""
    return getattr(call, f"{party}_lk_sid") is not None and _get(call, party, "left_at") is None


def saw(call: Call, party: Party, at: datetime) -> None:
    """``party`` was there at ``at``. Last-seen only moves forward: an older word (a request
    that waited behind a later one, a late event) never undoes a newer one."""
    seen = _get(call, party, "last_seen_at")
    setattr(call, f"{party}_last_seen_at", max(seen, at) if seen else at)


def joined(call: Call, party: Party, sid: str, at: datetime) -> None:
    """``party`` is connected through participant ``sid`` since ``at``."""
    setattr(call, f"{party}_lk_sid", sid)
    setattr(call, f"{party}_left_at", None)
    saw(call, party, at)
    if call.status == CallStatus.connecting and _get(call, party, "media_at") is None:
        setattr(call, f"{party}_media_at", at)


def left(call: Call, party: Party, sid: str | None, at: datetime) -> bool:
    """Participant ``sid`` of ``party`` left at ``at``. Returns False when that is not the
    party's current participant (an old session after a reconnect, or never joined)."""
    current = getattr(call, f"{party}_lk_sid")
    if current is None or (sid is not None and sid != current):
        return False
    if _get(call, party, "left_at") is None:
        # It left at the event's time, but not before we last saw it there ourselves.
        seen = _get(call, party, "last_seen_at")
        gone = max(seen, at) if seen else at
        setattr(call, f"{party}_left_at", gone)
        setattr(call, f"{party}_last_seen_at", gone)
    if call.status == CallStatus.connecting:
        setattr(call, f"{party}_media_at", None)
    return True


def reconcile(
    call: Call,
    participants: list[Participant] | None,
    now: datetime,
    departed: Collection[str] = (),
) -> None:
    """Apply what ``ListParticipants`` says (None: the room is gone). A participant whose
    sid is in ``departed`` (LiveKit said it left, after the roster was read) is absent."""
    present = {p.identity: p for p in participants or [] if p.sid not in departed}
    for party in PARTIES:
        user_id = call.client_id if party == "client" else call.host_id
        participant = present.get(identity_for(user_id))
        if participant is not None:
            joined(call, party, participant.sid, now)
        elif getattr(call, f"{party}_lk_sid") is not None:
            # absent: gone since it was last seen (a lost participant_left)
            left(call, party, None, _get(call, party, "last_seen_at") or now)


def departed_at(call: Call, now: datetime, settings: Settings) -> datetime | None:
    """When a party left and did not come back within the grace period, that moment."""
    grace = timedelta(seconds=settings.livekit_absence_grace_seconds)
    gone = [t for t in (call.client_left_at, call.host_left_at) if t is not None]
    if gone and now >= min(gone) + grace:
        return min(gone)
    return None


def next_look(call: Call, now: datetime, settings: Settings) -> datetime:
    """The latest the meter should look at a LiveKit call again: the next reconciliation,
    or the end of a departed party's grace period."""
    moments = [now + timedelta(seconds=settings.livekit_reconcile_seconds)]
    grace = timedelta(seconds=settings.livekit_absence_grace_seconds)
    moments += [t + grace for t in (call.client_left_at, call.host_left_at) if t is not None]
    return min(moments)
