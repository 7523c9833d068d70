"""What a party needs to join the call's media."""

from __future__ import annotations

from callmeter.calls.schemas import MediaOut
from callmeter.errors import MediaUnavailable
from callmeter.media.livekit import LiveKit
from callmeter.models import Call, User


def media_for(call: Call, user: User, livekit: LiveKit | None) -> MediaOut:
    """LiveKit: the server URL and a join token for this party and room only.
    Peer-to-peer: no URL or token; signaling goes through ``/v1/calls/{id}/signal`` and the
    events stream."""
    if call.media_provider != "livekit":
        return MediaOut(provider="p2p", url=None, room=call.room, token=None)
    if livekit is None:
        raise MediaUnavailable("this call uses LiveKit, which is not configured any more")
    token = livekit.token(room=call.room, user_id=user.id, name=user.display_name)
    return MediaOut(provider="livekit", url=livekit.url, room=call.room, token=token)
