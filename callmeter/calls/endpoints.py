from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status
from sse_starlette import EventSourceResponse

from callmeter.auth import service as auth_service
from callmeter.auth.dependencies import (
    ClientClaims,
    ClientUser,
    CurrentClaims,
    CurrentUser,
    HostUser,
    user_of,
)
from callmeter.auth.tokens import TokenClaims, read_access_token
from callmeter.calls import blocks, chat, queries, service, webhooks
from callmeter.calls.beats import quiet_beats, remembers_beats
from callmeter.calls.events import (
    CallEventsResponse,
    call_events,
    resume_after,
    resume_messages_after,
    take_stream_slot,
)
from callmeter.calls.media import media_for
from callmeter.calls.schemas import (
    BeaconEndIn,
    CallConflictOut,
    CallEnvelope,
    CallOut,
    CallsPage,
    CallWithMedia,
    CreateCallIn,
    HeartbeatIn,
    MediaOut,
    MessageIn,
    MessageOut,
    MessagesPage,
    MoneyLineOut,
    PartyOut,
    ReceiptOut,
    RingCooldownOut,
    SignalAccepted,
    SignalIn,
    TipIn,
    WebhookAck,
)
from callmeter.errors import InvalidWebhookEvent
from callmeter.hosts.schemas import BlockIn, BlockOut
from callmeter.kit.deps import RuntimeDep, SessionDep
from callmeter.kit.pagination import DEFAULT_LIMIT, Before, Limit, PathId
from callmeter.kit.runtime import Runtime
from callmeter.kit.text import MAX_ID
from callmeter.media import webhooks as media_webhooks
from callmeter.media.livekit import client as livekit_client
from callmeter.models import MessageKind, Role
from callmeter.ops import metrics

router = APIRouter(prefix="/v1/calls", tags=["calls"])
webhooks_router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
# Blocking a client ends a call of theirs still ringing: the route is served from here.
host_blocks_router = APIRouter(prefix="/v1/hosts", tags=["hosts"])

CallId = PathId


# OpenAPI links: what a client does next with the call it created (documentation, and what
# stateful API testers follow).
_NEXT = {
    "GetCall": "get_call_v1_calls__call_id__get",
    "AcceptCall": "accept_call_v1_calls__call_id__accept_post",
    "DeclineCall": "decline_call_v1_calls__call_id__decline_post",
    "Heartbeat": "heartbeat_v1_calls__call_id__heartbeat_post",
    "EndCall": "end_call_v1_calls__call_id__end_post",
    "Signal": "signal_v1_calls__call_id__signal_post",
    "SendMessage": "send_message_v1_calls__call_id__messages_post",
    "ListMessages": "list_messages_v1_calls__call_id__messages_get",
    "Tip": "send_tip_v1_calls__call_id__tips_post",
    "Receipt": "call_receipt_v1_calls__call_id__receipt_get",
    "Media": "call_media_v1_calls__call_id__media_get",
}
CALL_LINKS = {
    name: {"operationId": operation, "parameters": {"call_id": "$response.body#/call/id"}}
    for name, operation in _NEXT.items()
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        201: {"description": "the call, ringing", "links": CALL_LINKS},
        409: {
            "model": CallConflictOut,
            "description": "`host_busy`, `client_busy`, `host_unavailable`, or "
            "`rate_changed` with the host's current `rate`",
        },
        429: {
            "model": RingCooldownOut,
            "description": "`ring_cooldown`: wait `retry_after` seconds (also `Retry-After`)",
            "headers": {
                "Retry-After": {
                    "description": "seconds to wait before ringing again",
                    "schema": {"type": "integer"},
                }
            },
        },
    },
)
async def create_call(
    body: CreateCallIn, client: ClientUser, runtime: RuntimeDep, session: SessionDep
) -> CallWithMedia:
    """Ring a host. 402 when your available coins are below the host's rate; 409 when you
    or the host already have an unfinished call, the host is not taking your calls, or its
    rate is no longer the `expected_rate` you send (`rate_changed`, with the current
    `rate`); 429 `ring_cooldown` when your last call to this host did not connect a moment
    ago, or too many of your rings went unanswered lately."""
    now = runtime.clock.now()
    if await service.end_stale_calls(
        session, client_id=client.id, host_id=body.host_id, settings=runtime.settings, now=now
    ):
        await session.commit()  # a stale call's end stands even if this ring is refused
    call = await service.create_call(
        session,
        client=client,
        host_id=body.host_id,
        settings=runtime.settings,
        now=now,
        livekit=livekit_client(runtime),
        expected_rate=body.expected_rate,
    )
    return CallWithMedia(
        call=CallOut.of(call, now, runtime.settings),
        media=media_for(call, client, livekit_client(runtime)),
    )


@router.get("")
async def list_calls(
    user: CurrentUser,
    runtime: RuntimeDep,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    before: Before = None,
) -> CallsPage:
    """Your calls (as client or host), newest first."""
    calls = await queries.list_calls(
        session, user_id=user.id, status=None, limit=limit + 1, before=before
    )
    names = await queries.party_names(session, calls[:limit])
    return CallsPage.of(calls, limit, runtime.clock.now(), runtime.settings, names)


@router.get("/{call_id}")
async def get_call(
    call_id: CallId, user: CurrentUser, runtime: RuntimeDep, session: SessionDep
) -> CallEnvelope:
    """A call you are a party of (admins: any call)."""
    call = await service.get_visible_call(session, user, call_id)
    return CallEnvelope(call=CallOut.of(call, runtime.clock.now(), runtime.settings))


@router.post("/{call_id}/accept")
async def accept_call(
    call_id: CallId, user: CurrentUser, runtime: RuntimeDep, session: SessionDep
) -> CallWithMedia:
    """The host picks up a ringing call and gets its media credentials."""
    now = runtime.clock.now()
    if await service.end_call_if_overdue(session, call_id, runtime.settings, now):
        await session.commit()  # a missed ring's end stands: the accept below answers 409
    call = await service.accept(
        session,
        user=user,
        call_id=call_id,
        settings=runtime.settings,
        now=now,
        livekit=livekit_client(runtime),
    )
    return CallWithMedia(
        call=CallOut.of(call, now, runtime.settings),
        media=media_for(call, user, livekit_client(runtime)),
    )


@router.get("/{call_id}/media")
async def call_media(
    call_id: CallId, user: CurrentUser, runtime: RuntimeDep, session: SessionDep
) -> MediaOut:
    """Your credentials for the call's media again (a new tab, a page that lost them): a
    fresh LiveKit token for this room and you, or the peer-to-peer marker. The call's
    parties only (404 for anyone else), while it lasts (409 `call_ended`); the host once it
    has picked up (409 `invalid_call_state` while it rings)."""
    call = await service.media_call(session, user, call_id)
    return media_for(call, user, livekit_client(runtime))


@router.post("/{call_id}/decline")
async def decline_call(
    call_id: CallId, user: CurrentUser, runtime: RuntimeDep, session: SessionDep
) -> CallEnvelope:
    """The host refuses a ringing call; it costs nothing."""
    now = runtime.clock.now()
    if await service.end_call_if_overdue(session, call_id, runtime.settings, now):
        await session.commit()  # a missed ring's end stands: the decline below answers 409
    call = await service.decline(
        session, user=user, call_id=call_id, settings=runtime.settings, now=now
    )
    return CallEnvelope(call=CallOut.of(call, now, runtime.settings))


@router.post("/{call_id}/heartbeat")
async def heartbeat(
    call_id: CallId,
    body: HeartbeatIn,
    claims: CurrentClaims,
    runtime: RuntimeDep,
    session: SessionDep,
) -> CallEnvelope:
    """Either party, every `heartbeat_seconds` of the call: still here, and whether remote
    media plays."""
    now = runtime.clock.now()
    # (a quiet call this process holds was answered before routing: calls.beats)
    beats = quiet_beats(runtime) if remembers_beats(runtime) else None
    mark = beats.mark() if beats else 0
    if beats is not None:
        await beats.write_pending(session, call_id, claims.user_id)  # what memory was told
    call = await service.quick_heartbeat(
        session,
        user_id=claims.user_id,
        role=claims.role,
        call_id=call_id,
        settings=runtime.settings,
        now=now,
        left_to_meter=beats.leaves_to_meter if beats and beats.meter_ticks else None,
    )
    path = "database"
    if call is not None and beats is not None:
        beats.remember(call, mark)
    if call is None:
        path = "full"
        call = await service.heartbeat(
            session,
            user=await user_of(session, claims),
            call_id=call_id,
            media_connected=body.media_connected,
            settings=runtime.settings,
            now=now,
        )
    metrics.HEARTBEATS.labels(path).inc()
    return CallEnvelope(call=CallOut.of(call, now, runtime.settings))


@router.post("/{call_id}/end")
async def end_call(
    call_id: CallId, user: CurrentUser, runtime: RuntimeDep, session: SessionDep
) -> CallEnvelope:
    """Hang up. Idempotent: every later end returns the same final call."""
    now = runtime.clock.now()
    call = await service.end(
        session, user=user, call_id=call_id, settings=runtime.settings, now=now
    )
    return CallEnvelope(call=CallOut.of(call, now, runtime.settings))


@router.post("/{call_id}/beacon-end")
async def beacon_end(
    call_id: CallId, body: BeaconEndIn, runtime: RuntimeDep, session: SessionDep
) -> CallEnvelope:
    """Hang up from a closing page: ``navigator.sendBeacon`` cannot set headers, so the
    access token travels in the body. Otherwise the same as ``/end``."""
    now = runtime.clock.now()
    claims = read_access_token(body.access_token, secret=runtime.settings.secret_key, now=now)
    user = await auth_service.user_for_token(session, claims.user_id)
    call = await service.end(
        session, user=user, call_id=call_id, settings=runtime.settings, now=now
    )
    return CallEnvelope(call=CallOut.of(call, now, runtime.settings))


@router.post("/{call_id}/signal", status_code=status.HTTP_202_ACCEPTED)
async def signal(
    call_id: CallId,
    body: SignalIn,
    claims: CurrentClaims,
    runtime: RuntimeDep,
    session: SessionDep,
) -> SignalAccepted:
    """Relay a WebRTC offer, answer or ICE candidate to the other party (peer-to-peer).
    413 when the payload is over `MAX_SIGNAL_BYTES` serialized; 429 (Retry-After) past
    `SIGNALS_PER_WINDOW` per `SIGNAL_WINDOW_SECONDS` from you on this call; 409
    `signal_limit_reached` once the call stores `MAX_SIGNALS_PER_CALL`."""
    now = runtime.clock.now()
    settings = runtime.settings
    # a flood is refused here, from the token alone, before it queues for a database
    # connection or the call's row lock (the database count below is what holds across
    # processes)
    wait = runtime.recent_signals.admit(
        (call_id, claims.user_id),
        now.timestamp(),
        settings.signals_per_window,
        settings.signal_window_seconds,
    )
    if wait is not None:
        raise service.signal_rate_limited(settings, wait)
    user = await user_of(session, claims)
    sent = await service.add_signal(
        session,
        user=user,
        call_id=call_id,
        signal_type=body.type,
        payload=body.payload,
        settings=settings,
        now=now,
    )
    return SignalAccepted(id=sent.id)


@router.get(
    "/{call_id}/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "call events"}},
)
async def events(
    call_id: CallId,
    request: Request,
    user: CurrentUser,
    runtime: RuntimeDep,
    session: SessionDep,
) -> EventSourceResponse:
    """Live call state: a `call` event first and on every change (a `: keepalive` comment
    line at least every 15 s while nothing changes), `signal`
    events with peer-to-peer signaling addressed to you, and `message` events with the
    call's chat (a `MessageOut`; event ids `s<n>m<k>`: reconnect with `Last-Event-ID` to
    resume after them). 429 (Retry-After) when
    you already have `MAX_STREAMS_PER_USER_CALL` streams open on this call or
    `MAX_STREAMS_PER_USER` in all."""
    await service.get_visible_call(session, user, call_id)
    slot = take_stream_slot(runtime, user_id=user.id, call_id=call_id)
    return CallEventsResponse(
        call_events(
            runtime,
            call_id=call_id,
            user_id=user.id,
            after_signal=resume_after(request.headers.get("last-event-id")),
            after_message=resume_messages_after(request.headers.get("last-event-id")),
        ),
        slot=slot,
        ping=0,  # sse-starlette's pings off: the feed sends each stream's keepalive
    )


FLOOD_LOOKUPS = 2  # refused retries looked up at once in this process, over every sender


async def _flood_answer(
    claims: TokenClaims,
    call_id: int,
    client_msg_id: str,
    runtime: Runtime,
    *,
    kind: MessageKind,
    body: str = "",
    amount: int | None = None,
) -> MessageOut | None:
    """The in-process gate in front of the chat's writes (messages and tips share its pace),
    from the token alone: None when this request may go on to read its user and take the
    call's row lock (the database count there is what holds across processes). Past the
    pace, a retry of what was stored gets it back (200; 409 when the id went with another
    message), looked up in a short session of its own by one request at a time per sender
    and call and ``FLOOD_LOOKUPS`` in all in this process; anything else is 429, without
    waiting for a database connection."""
    settings = runtime.settings
    key = (call_id, claims.user_id)
    wait = runtime.recent_messages.admit(
        key,
        runtime.clock.now().timestamp(),
        settings.messages_per_window,
        settings.message_window_seconds,
    )
    if wait is None:
        return None
    lookup = runtime.flood_lookups.try_acquire({key: 1, "all": FLOOD_LOOKUPS})
    if lookup is None:
        raise chat.message_rate_limited(settings, wait)
    try:
        async with runtime.read_sessionmaker() as session:  # its connection back before 429
            sent = await chat.already_sent(
                session, sender_id=claims.user_id, call_id=call_id,
                client_msg_id=client_msg_id, kind=kind, body=body, amount=amount,
            )  # fmt: skip
    finally:
        lookup.release()
    if sent is None:
        raise chat.message_rate_limited(settings, wait)
    return MessageOut.of(sent)


_SENT_AGAIN: dict[int | str, dict[str, Any]] = {
    200: {"model": MessageOut, "description": "sent before with this client_msg_id"}
}


@router.post("/{call_id}/messages", status_code=status.HTTP_201_CREATED, responses=_SENT_AGAIN)
async def send_message(
    call_id: CallId,
    body: MessageIn,
    claims: CurrentClaims,
    runtime: RuntimeDep,
    session: SessionDep,
    response: Response,
) -> MessageOut:
    """Say something on the call's chat (its parties, while it rings or lasts: 409
    `call_ended` afterwards). Delivered to both parties as a `message` event. A retry with
    the same `client_msg_id` stores nothing new (200 with the first). 429 (Retry-After) past
    `MESSAGES_PER_WINDOW` per `MESSAGE_WINDOW_SECONDS` from you on this call; 409
    `message_limit_reached` once the call stores `MAX_MESSAGES_PER_CALL`."""
    again = await _flood_answer(
        claims, call_id, body.client_msg_id, runtime, kind=MessageKind.text, body=body.body
    )
    if again:
        response.status_code = status.HTTP_200_OK
        return again
    message, new = await chat.send_message(
        session,
        user=await user_of(session, claims),
        call_id=call_id,
        body=body.body,
        client_msg_id=body.client_msg_id,
        settings=runtime.settings,
        now=runtime.clock.now(),
    )
    if not new:
        response.status_code = status.HTTP_200_OK
    return MessageOut.of(message)


@router.get("/{call_id}/messages")
async def list_messages(
    call_id: CallId,
    user: CurrentUser,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="the previous page's next_after")] = 0,
) -> MessagesPage:
    """The call's chat, oldest first (its parties and admins): text, tips and the call's
    events."""
    rows, next_after = await chat.messages(
        session, user=user, call_id=call_id, after=after, limit=limit
    )
    return MessagesPage(items=[MessageOut.of(m) for m in rows], next_after=next_after)


@router.get("/{call_id}/receipt")
async def call_receipt(
    call_id: CallId,
    user: CurrentUser,
    runtime: RuntimeDep,
    session: SessionDep,
    transcript: bool = False,
) -> ReceiptOut:
    """A call's receipt (its parties and admins): the parties, talk time, rate and
    interval, every charge, tip and refund with its time, and the chat when
    `transcript=true`."""
    call = await service.get_visible_call(session, user, call_id)
    found = await queries.receipt(session, call, transcript=transcript)

    def lines(moved: list[tuple[datetime, int]]) -> list[MoneyLineOut]:
        return [MoneyLineOut(at=at, coins=coins) for at, coins in moved]

    return ReceiptOut(
        call=CallOut.of(call, runtime.clock.now(), runtime.settings),
        client=PartyOut(id=call.client_id, display_name=found.names.get(call.client_id, "")),
        host=PartyOut(id=call.host_id, display_name=found.names.get(call.host_id, "")),
        talk_seconds=call.billed_seconds,
        charges=lines(found.charges),
        tips=lines(found.tips),
        refunds=lines(found.refunds),
        total_charged=call.charged,
        total_tips=sum(coins for _, coins in found.tips),
        total_refunded=call.refunded,
        host_earned=call.host_earned,
        transcript=None
        if found.transcript is None
        else [MessageOut.of(m) for m in found.transcript],
    )


@router.post("/{call_id}/tips", status_code=status.HTTP_201_CREATED, responses=_SENT_AGAIN)
async def send_tip(
    call_id: CallId,
    body: TipIn,
    claims: ClientClaims,
    runtime: RuntimeDep,
    session: SessionDep,
    response: Response,
) -> MessageOut:
    """Tip the call's host `amount` coins (its client: once the call has connected, until
    `TIP_WINDOW_SECONDS` after it ended, else 409 `tip_window_closed`). The host gets
    `TIP_HOST_SHARE_PERCENT` of it. 402 `insufficient_funds` (with `needed`) when your
    available coins do not cover it; a retry with the same `client_msg_id` tips once (200
    with the first). 403 `account_frozen` during a payment dispute; 429 (Retry-After) past
    `MESSAGES_PER_WINDOW` messages and tips per `MESSAGE_WINDOW_SECONDS`. Shown in the chat
    as a `tip` message and on both statements."""
    again = await _flood_answer(
        claims, call_id, body.client_msg_id, runtime, kind=MessageKind.tip, amount=body.amount
    )
    if again:
        response.status_code = status.HTTP_200_OK
        return again
    message, new = await chat.tip(
        session,
        user=await user_of(session, claims, Role.client),
        call_id=call_id,
        amount=body.amount,
        client_msg_id=body.client_msg_id,
        settings=runtime.settings,
        now=runtime.clock.now(),
    )
    if not new:
        response.status_code = status.HTTP_200_OK
    return MessageOut.of(message)


@webhooks_router.post("/livekit")
async def livekit_webhook(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    authorization: Annotated[str | None, Header()] = None,
) -> WebhookAck:
    """LiveKit's webhooks: the raw body, signed by the ``Authorization`` token (no
    "Bearer"). 401 when the signature or body hash fails; 422 (recorded, not applied) for
    an event time more than a day off or a malformed call room; a repeated event id is
    acknowledged with no second effect."""
    event = media_webhooks.verify(await request.body(), authorization, runtime.settings)
    now = runtime.clock.now()
    try:
        new = await webhooks.handle(session, event, now=now, settings=runtime.settings)
    except InvalidWebhookEvent:
        await media_webhooks.record_refused(runtime.sessionmaker, event, now)
        raise
    return WebhookAck(status="ok" if new else "duplicate")


@host_blocks_router.post("/me/blocks")
async def block_client(
    body: BlockIn, host: HostUser, runtime: RuntimeDep, session: SessionDep
) -> BlockOut:
    """Refuse calls from a client: their rings get 409 `host_unavailable`, as if you were
    away, and a call of theirs still ringing ends `declined`. Idempotent."""
    block = await blocks.block(session, host, client_id=body.client_id, now=runtime.clock.now())
    return BlockOut.of(block)
