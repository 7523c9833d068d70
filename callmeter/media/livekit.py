"""The LiveKit server API, through the official ``livekit-api`` package only.

Every RPC is bounded by ``LIVEKIT_TIMEOUT_SECONDS``; failures surface as
:class:`MediaUnavailable` (503) so that a caller can refuse cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import aiohttp
from livekit import api

from callmeter.config import Settings
from callmeter.errors import MediaUnavailable
from callmeter.kit.runtime import Runtime
from callmeter.kit.text import MAX_ID

log = logging.getLogger(__name__)
T = TypeVar("T")


def identity_for(user_id: int) -> str:
    """A LiveKit participant identity, distinct per user."""
    return f"user-{user_id}"


def user_id_of(identity: str) -> int | None:
    prefix, _, number = identity.partition("-")
    return int(number) if prefix == "user" and number.isdigit() else None


_ROOM = re.compile(r"call-([1-9][0-9]{0,15})")


def call_id_of(room: str) -> int | None:
    """The call id of one of our rooms (``call-<id>``, an id within 1..2^53 - 1), else None."""
    match = _ROOM.fullmatch(room)
    if match is None or int(match.group(1)) > MAX_ID:
        return None
    return int(match.group(1))


@dataclass(frozen=True)
class Participant:
    identity: str
    sid: str


class LiveKit:
    """One process's connection to LiveKit (an aiohttp session opened on first use)."""

    def __init__(self, settings: Settings) -> None:
        assert settings.livekit_url
        assert settings.livekit_api_key
        assert settings.livekit_api_secret
        self.url = settings.livekit_url
        self.key = settings.livekit_api_key
        self.secret = settings.livekit_api_secret
        self.settings = settings
        self._api: api.LiveKitAPI | None = None

    def _client(self) -> api.LiveKitAPI:
        if self._api is None:
            timeout = aiohttp.ClientTimeout(total=self.settings.livekit_timeout_seconds)
            self._api = api.LiveKitAPI(self.url, self.key, self.secret, timeout=timeout)
        return self._api

    async def close(self) -> None:
        if self._api is not None:
            await self._api.aclose()
            self._api = None

    def token(self, *, room: str, user_id: int, name: str) -> str:
        """A join token for one party: its own identity, this room only, a bounded TTL."""
        grants = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True)
        return (
            api.AccessToken(self.key, self.secret)
            .with_identity(identity_for(user_id))
            .with_name(name)
            .with_grants(grants)
            .with_ttl(timedelta(seconds=self.settings.livekit_token_ttl_seconds))
            .to_jwt()
        )

    async def create_room(self, room: str) -> None:
        """Create (or confirm) the call's room: two participants at most, closed soon after
        it empties. Idempotent on the server."""
        s = self.settings
        request = api.CreateRoomRequest(
            name=room,
            max_participants=2,
            empty_timeout=s.ring_timeout_seconds + s.connect_timeout_seconds + 30,
            departure_timeout=s.livekit_departure_timeout_seconds,
        )
        await self._call("CreateRoom", self._client().room.create_room(request))

    async def list_participants(self, room: str) -> list[Participant] | None:
        """Who is in the room, or None when the room does not exist (any more)."""
        try:
            response = await self._call(
                "ListParticipants",
                self._client().room.list_participants(api.ListParticipantsRequest(room=room)),
            )
        except _NotFound:
            return None
        return [Participant(p.identity, p.sid) for p in response.participants]

    async def remove_participant(self, room: str, identity: str) -> None:
        """Disconnect a participant; one who is not there is fine."""
        request = api.RoomParticipantIdentity(room=room, identity=identity)
        with contextlib.suppress(_NotFound):
            await self._call("RemoveParticipant", self._client().room.remove_participant(request))

    async def delete_room(self, room: str) -> None:
        """Close the room for everyone; a room that is gone already is fine."""
        with contextlib.suppress(_NotFound):
            await self._call(
                "DeleteRoom", self._client().room.delete_room(api.DeleteRoomRequest(room=room))
            )

    async def _call(self, method: str, request: Awaitable[T]) -> T:
        try:
            return await request
        except api.ServerError as exc:
            if exc.status == 404 or exc.code == "not_found":
                raise _NotFound from exc
            log.warning("LiveKit %s failed: %s", method, exc)
            raise MediaUnavailable(f"LiveKit {method} failed: {exc.code}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("LiveKit %s failed: %r", method, exc)
            raise MediaUnavailable(
                "the media server is not reachable right now; nothing was charged"
            ) from exc


class _NotFound(Exception):
    pass


def livekit_for(settings: Settings) -> LiveKit | None:
    """LiveKit's client when the settings configure it (built once per process)."""
    return LiveKit(settings) if settings.livekit_enabled else None


def client(runtime: Runtime) -> LiveKit | None:
    """The runtime's LiveKit client, typed (kit's runtime knows it only as a MediaServer)."""
    livekit = runtime.livekit
    if livekit is None or isinstance(livekit, LiveKit):
        return livekit
    raise TypeError(f"the runtime's media server is a {type(livekit).__name__}, not LiveKit")
