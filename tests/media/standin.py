"""A LiveKit stand-in for tests: speaks what the real server speaks to livekit-api.

``POST /twirp/livekit.RoomService/<Method>`` with binary protobuf bodies, Bearer tokens
signed with the API secret (checked with livekit-api's TokenVerifier), livekit-protocol
messages in and out, and Twirp JSON errors (``{"code": "not_found", "msg": …}``) with their
HTTP status. Every request is recorded; faults can be injected per method.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.json_format import MessageToJson
from google.protobuf.message import Message
from livekit import api
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.loopback import serving

KEY = "callmeter-test-key"
SECRET = "a-livekit-test-secret-that-is-long-enough"


def twirp_error(status: int, code: str, msg: str) -> JSONResponse:
    return JSONResponse({"code": code, "msg": msg}, status_code=status)


@dataclass
class Recorded:
    method: str
    request: Any


@dataclass
class Standin:
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    rooms: dict[str, api.CreateRoomRequest] = field(default_factory=dict)
    participants: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    failures: dict[str, int] = field(default_factory=dict)  # method -> failures to come
    _sids: Any = field(default_factory=lambda: itertools.count(1))

    # --- what tests do -------------------------------------------------------------------
    def join(self, room: str, identity: str) -> str:
        """A participant connects (without a webhook); returns its sid."""
        sid = f"PA_{next(self._sids)}"
        self.participants[room][identity] = sid
        return sid

    def drop(self, room: str, identity: str) -> None:
        self.participants[room].pop(identity, None)

    def fail(self, method: str, times: int = 1) -> None:
        self.failures[method] = times

    def calls_to(self, method: str) -> list[Any]:
        return [r.request for r in self.requests if r.method == method]

    # --- the server ----------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        method = request.path_params["method"]
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return twirp_error(401, "unauthenticated", "missing bearer token")
        try:
            claims = api.TokenVerifier(KEY, SECRET).verify(auth.removeprefix("Bearer "))
        except Exception:
            return twirp_error(401, "unauthenticated", "invalid token")
        if request.headers.get("content-type") != "application/protobuf":
            return twirp_error(415, "malformed", "expected application/protobuf")
        handler = HANDLERS.get(method)
        if handler is None:
            return twirp_error(404, "bad_route", f"no method {method}")
        message_class, needs_grant, run = handler
        message = message_class.FromString(await request.body())
        self.requests.append(Recorded(method, message))
        if not needs_grant(claims.video):
            return twirp_error(403, "permission_denied", "missing grant")
        if self.failures.get(method, 0) > 0:
            self.failures[method] -= 1
            return twirp_error(503, "unavailable", "injected failure")
        try:
            reply = run(self, message)
        except LookupError as exc:
            return twirp_error(404, "not_found", str(exc))
        return Response(reply.SerializeToString(), media_type="application/protobuf")

    def create_room(self, req: api.CreateRoomRequest) -> Message:
        self.rooms.setdefault(req.name, req)
        return api.Room(name=req.name, sid=f"RM_{req.name}", max_participants=req.max_participants)

    def list_participants(self, req: api.ListParticipantsRequest) -> Message:
        if req.room not in self.rooms:
            raise LookupError("room not found")
        return api.ListParticipantsResponse(
            participants=[
                api.ParticipantInfo(identity=i, sid=s, state=api.ParticipantInfo.ACTIVE)
                for i, s in self.participants[req.room].items()
            ]
        )

    def remove_participant(self, req: api.RoomParticipantIdentity) -> Message:
        if req.identity not in self.participants.get(req.room, {}):
            raise LookupError("participant not found")
        del self.participants[req.room][req.identity]
        return api.RemoveParticipantResponse()

    def delete_room(self, req: api.DeleteRoomRequest) -> Message:
        if req.room not in self.rooms:
            raise LookupError("room not found")
        del self.rooms[req.room]
        self.participants.pop(req.room, None)
        return api.DeleteRoomResponse()


def _room_admin(video: api.VideoGrants | None) -> bool:
    return bool(video and video.room_admin)


def _room_create(video: api.VideoGrants | None) -> bool:
    return bool(video and video.room_create)


HANDLERS: dict[str, tuple[Any, Callable[[Any], bool], Callable[[Standin, Any], Message]]] = {
    "CreateRoom": (api.CreateRoomRequest, _room_create, Standin.create_room),
    "DeleteRoom": (api.DeleteRoomRequest, _room_create, Standin.delete_room),
    "ListParticipants": (api.ListParticipantsRequest, _room_admin, Standin.list_participants),
    "RemoveParticipant": (api.RoomParticipantIdentity, _room_admin, Standin.remove_participant),
}


@asynccontextmanager
async def running_standin() -> AsyncIterator[Standin]:
    standin = Standin()
    app = Starlette(routes=[Route("/twirp/livekit.RoomService/{method}", standin.handle,
                                  methods=["POST"])])  # fmt: skip
    async with serving(app) as url:
        standin.url = url
        yield standin


def signed_webhook(event: api.WebhookEvent, secret: str = SECRET) -> tuple[bytes, str]:
    """The body and Authorization header exactly as LiveKit sends them."""
    body = MessageToJson(event)
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    token = api.AccessToken(KEY, secret).with_sha256(digest).to_jwt()
    return body.encode(), token
