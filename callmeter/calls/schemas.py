from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from callmeter.billing.settlement import billable_seconds, heartbeat_period
from callmeter.config import Settings
from callmeter.kit.text import ChatText, ClientMessageId, Coins, InputModel, Note, PositiveId
from callmeter.models import Call, CallMessage, CallStatus


class CallOut(BaseModel):
    id: int
    client_id: int
    host_id: int
    status: Literal["ringing", "connecting", "active", "ended"]
    end_reason: str | None
    policy: str
    rate: int
    interval_seconds: int
    host_share_percent: int
    created_at: datetime
    accepted_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    billed_seconds: int = Field(description="billable seconds so far (final once ended)")
    charged: int
    host_earned: int
    held: int
    paid_until: datetime | None
    next_charge_at: datetime | None
    warning: Literal["low_balance"] | None
    refunded: int
    heartbeat_seconds: int = Field(
        description="how often each party should heartbeat now (0 once ended); a client "
        "also beats just after each next_charge_at"
    )
    server_time: datetime = Field(
        description="the server's clock when this was read: a client sets its countdowns by "
        "it, not by its own clock"
    )

    @classmethod
    def of(cls, call: Call, now: datetime, settings: Settings) -> CallOut:
        billed = call.billed_seconds
        if call.status == CallStatus.active and call.started_at is not None:
            # live, for display: up to now, never past what is paid or both were present
            billed = max(billed, billable_seconds(call, now))
        return cls(
            id=call.id,
            client_id=call.client_id,
            host_id=call.host_id,
            status=call.status,
            end_reason=call.end_reason,
            policy=call.policy,
            rate=call.rate,
            interval_seconds=call.interval_seconds,
            host_share_percent=call.host_share_percent,
            created_at=call.created_at,
            accepted_at=call.accepted_at,
            started_at=call.started_at,
            ended_at=call.ended_at,
            billed_seconds=billed,
            charged=call.charged,
            host_earned=call.host_earned,
            held=call.held,
            paid_until=call.paid_until,
            next_charge_at=call.next_charge_at,
            warning=call.warning,
            refunded=call.refunded,
            heartbeat_seconds=heartbeat_period(call.status, settings.heartbeat_timeout_seconds),
            server_time=now,
        )


class MediaOut(BaseModel):
    provider: Literal["livekit", "p2p"]
    url: str | None
    room: str
    token: str | None


class CallEnvelope(BaseModel):
    call: CallOut


class CallWithMedia(BaseModel):
    call: CallOut
    media: MediaOut


class CallsPage(BaseModel):
    items: list[CallOut]
    next_before: int | None
    names: dict[int, str] = Field(
        description="the display name of every client and host in `items`, by user id"
    )

    @classmethod
    def of(
        cls, calls: list[Call], limit: int, now: datetime, settings: Settings,
        names: dict[int, str],
    ) -> CallsPage:  # fmt: skip
        """A page from ``limit + 1`` calls read newest first (the extra one says whether
        there is a next page)."""
        items = [CallOut.of(c, now, settings) for c in calls[:limit]]
        shown = {i.client_id for i in items} | {i.host_id for i in items}
        return cls(
            items=items,
            next_before=items[-1].id if len(calls) > limit else None,
            names={k: v for k, v in names.items() if k in shown},
        )


class CreateCallIn(InputModel):
    host_id: PositiveId
    expected_rate: Annotated[
        Coins | None,
        Field(
            description="the rate per interval the client was shown; when the host's rate "
            "is different now, the call is refused with 409 `rate_changed`"
        ),
    ] = None


class CallConflictOut(BaseModel):
    """409 from POST /v1/calls: `host_busy`, `client_busy`, `host_unavailable` or
    `rate_changed` (which also carries the host's current rate)."""

    error: str
    detail: str
    rate: int | None = Field(
        default=None, description="with `rate_changed`: the host's rate per interval now"
    )


class RingCooldownOut(BaseModel):
    """429 `ring_cooldown` from POST /v1/calls (the `Retry-After` header says the same)."""

    error: str
    detail: str
    retry_after: int | None = Field(
        default=None, description="with `ring_cooldown`: seconds to wait before ringing again"
    )


class HeartbeatIn(InputModel):
    media_connected: Annotated[bool, Field(strict=True)] = False


class SignalIn(InputModel):
    type: Literal["offer", "answer", "ice", "restart"]
    payload: dict[str, Any] | str | None = Field(
        description=(
            "the SDP or ICE candidate, relayed as is (at most MAX_SIGNAL_BYTES, 16 KiB by "
            "default, serialized as compact JSON)"
        )
    )


class BeaconEndIn(InputModel):
    access_token: Annotated[str, Field(min_length=1, max_length=4096)]


class SignalAccepted(BaseModel):
    id: int


class RefundIn(InputModel):
    amount: Coins | None = None
    reason: Note


class RefundOut(BaseModel):
    call: CallOut
    refunded: int


class WebhookAck(BaseModel):
    status: str


class MessageIn(InputModel):
    body: ChatText = Field(
        description="1 to 1,000 characters (after NFC normalization and trimming); line "
        "breaks allowed, no other control or invisible characters"
    )
    client_msg_id: ClientMessageId = Field(
        description="your id for this message: a retry with the same id stores it once"
    )


class TipIn(InputModel):
    amount: Coins
    client_msg_id: ClientMessageId = Field(
        description="your id for this tip: a retry with the same id tips once"
    )


class MessageOut(BaseModel):
    """A line of a call's chat. ``kind`` text: ``body`` as typed (plain text: never HTML);
    tip: ``amount`` coins to the host (``body`` empty); system: ``body`` is the event's code
    (``connected``, ``ended:<end_reason>``) for the client to put in words."""

    id: int
    call_id: int
    sender_id: int | None
    kind: Literal["text", "tip", "system"]
    body: str
    amount: int | None
    client_msg_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, message: CallMessage) -> MessageOut:
        return cls(
            id=message.id,
            call_id=message.call_id,
            sender_id=message.sender_id,
            kind=message.kind,
            body=message.body,
            amount=message.amount,
            client_msg_id=message.client_msg_id,
            created_at=message.created_at,
        )


class MessagesPage(BaseModel):
    items: list[MessageOut]
    next_after: int | None = Field(
        description="pass as `after` for the next page; null when this is the last"
    )


class MoneyLineOut(BaseModel):
    at: datetime
    coins: int


class PartyOut(BaseModel):
    id: int
    display_name: str


class ReceiptOut(BaseModel):
    """A call's receipt: who, how long, at what rate, and every coin it moved."""

    call: CallOut
    client: PartyOut
    host: PartyOut
    talk_seconds: int = Field(description="the billed talk time")
    charges: list[MoneyLineOut] = Field(description="each charge (both its parts), in order")
    tips: list[MoneyLineOut] = Field(description="what the client tipped, in order")
    refunds: list[MoneyLineOut]
    total_charged: int
    total_tips: int
    total_refunded: int
    host_earned: int = Field(description="the host's part of the charges (tips not included)")
    transcript: list[MessageOut] | None = Field(
        description="the chat, oldest first, when asked for (`?transcript=true`)"
    )
