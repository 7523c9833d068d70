"""What a party needs to join the call's media."""

from __future__ import annotations

from callmeter.calls.schemas import MediaOut
from callmeter.models import Call


def media_for(call: Call) -> MediaOut:
    """Peer-to-peer media: signaling goes through ``/v1/calls/{id}/signal`` and the
    events stream; there is no media server URL or token."""
    return MediaOut(provider="p2p", url=None, room=call.room, token=None)
