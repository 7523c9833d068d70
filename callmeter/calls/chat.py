"""A call's chat: messages from its parties, tips, and the call's own events.

The server owns the chat (LiveKit keeps no data messages, and a peer-to-peer call has no
server in its media path): messages are rows, delivered on the call's event stream by the
process's change feed (``calls.feed``) and paged by ``GET /v1/calls/{id}/messages``.

Every write takes the call's row lock first, as the meter and a heartbeat do, so counting
and inserting are one step, a retry with the same ``client_msg_id`` finds what the first
attempt stored, and a tip and a charge of the call queue instead of racing. A tip then
moves coins through the one ledger writer (``ledger.service.post``), which refuses it when
the client's available coins (after the call's hold) do not cover it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.calls import repository
from callmeter.calls.service import get_visible_call, locked_party_call
from callmeter.config import Settings
from callmeter.errors import (
    AccountFrozen,
    CallEnded,
    Forbidden,
    IdempotencyConflict,
    InvalidCallState,
    MessageLimitReached,
    MessageRateLimited,
    TipWindowClosed,
)
from callmeter.ledger import service as ledger
from callmeter.ledger.service import Movement, TransferKind, tip_key
from callmeter.models import Call, CallMessage, CallStatus, MessageKind, User


def message_rate_limited(settings: Settings, retry_after: float) -> MessageRateLimited:
    return MessageRateLimited(
        f"at most {settings.messages_per_window} messages per "
        f"{settings.message_window_seconds} s on a call",
        retry_after=retry_after,
    )


async def _within_pace(
    session: AsyncSession, call: Call, user: User, settings: Settings, now: datetime
) -> None:
    """429 past ``messages_per_window`` messages and tips from ``user`` on the call in any
    ``message_window_seconds`` (counted in the database: it holds across processes)."""
    window = timedelta(seconds=settings.message_window_seconds)
    recent, oldest = await repository.recent_messages(
        session, call_id=call.id, sender_id=user.id, since=now - window
    )
    if recent >= settings.messages_per_window:
        free_at = (oldest or now) + window  # when the oldest leaves the window
        raise message_rate_limited(settings, (free_at - now).total_seconds())


async def already_sent(
    session: AsyncSession, *, sender_id: int, call_id: int, client_msg_id: str,
    kind: MessageKind, body: str, amount: int | None,
) -> CallMessage | None:  # fmt: skip
    """What ``sender_id`` sent on the call with ``client_msg_id`` (a retry), or None; 409
    when that id went with another message. Read without a lock of its own: a retry that
    the in-process flood gate stopped still gets its first answer."""
    sent = await repository.message_sent(
        session, call_id=call_id, sender_id=sender_id, client_msg_id=client_msg_id
    )
    if sent is not None and (sent.kind, sent.body, sent.amount) != (kind, body, amount):
        raise IdempotencyConflict("this client_msg_id was already used for another message")
    return sent


async def _stored_limit(session: AsyncSession, call: Call, settings: Settings) -> None:
    if await repository.count_messages(session, call.id) >= settings.max_messages_per_call:
        raise MessageLimitReached(
            f"a call stores at most {settings.max_messages_per_call} messages"
        )


async def _store(session: AsyncSession, message: CallMessage) -> tuple[CallMessage, bool]:
    await repository.add_message(session, message)
    return message, True


async def send_message(
    session: AsyncSession,
    *,
    user: User,
    call_id: int,
    body: str,
    client_msg_id: str,
    settings: Settings,
    now: datetime,
) -> tuple[CallMessage, bool]:
    """Store a party's text message on a call that has not ended; returns it and whether
    it is new (a retry with the same ``client_msg_id`` returns the first one). 404 for
    anyone but the parties, 409 ``call_ended`` once it ended (the chat is read-only), 429
    past ``messages_per_window`` per ``message_window_seconds`` from one sender, 409
    ``message_limit_reached`` once the call stores ``max_messages_per_call``."""
    call, _ = await locked_party_call(session, user, call_id)
    sent = await already_sent(
        session, sender_id=user.id, call_id=call.id, client_msg_id=client_msg_id,
        kind=MessageKind.text, body=body, amount=None,
    )  # fmt: skip
    if sent is not None:
        return sent, False
    if call.status == CallStatus.ended:
        raise CallEnded("the call has ended: its chat is read-only")
    await _within_pace(session, call, user, settings, now)
    await _stored_limit(session, call, settings)
    return await _store(
        session,
        CallMessage(
            call_id=call.id,
            sender_id=user.id,
            kind=MessageKind.text,
            body=body,
            client_msg_id=client_msg_id,
            created_at=now,
        ),
    )


async def tip(
    session: AsyncSession,
    *,
    user: User,
    call_id: int,
    amount: int,
    client_msg_id: str,
    settings: Settings,
    now: datetime,
) -> tuple[CallMessage, bool]:
    """The call's client tips its host ``amount`` coins: once the call has connected and
    until ``tip_window_seconds`` after it ended. One post of the ledger moves the host's
    part (``tip_host_share_percent``) to its earnings and the rest to the platform, exactly
    once per ``client_msg_id``; 402 (writing nothing) when the client's available coins do
    not cover it; 403 ``account_frozen`` while a payment dispute of the client is open (a
    freeze stops coins leaving as it stops calls and purchases); 429 past the chat's pace
    (tips count with messages). Returns the tip's chat line and whether it is new."""
    # the user's row before the call's, as a freeze takes them (it waits for this tip)
    if await repository.client_is_frozen(session, user.id):
        raise AccountFrozen()
    call, party = await locked_party_call(session, user, call_id)
    if party != "client":
        raise Forbidden("only the call's client can tip its host")
    sent = await already_sent(
        session, sender_id=user.id, call_id=call.id, client_msg_id=client_msg_id,
        kind=MessageKind.tip, body="", amount=amount,
    )  # fmt: skip
    if sent is not None:
        return sent, False
    if call.started_at is None:
        raise InvalidCallState("a call can be tipped once it has connected")
    if call.ended_at is not None and now > call.ended_at + timedelta(
        seconds=settings.tip_window_seconds
    ):
        raise TipWindowClosed(
            f"a call can be tipped until {settings.tip_window_seconds} s after it ended"
        )
    await _within_pace(session, call, user, settings, now)
    locked, wallet, earnings = await ledger.lock_call_accounts(
        session, client_id=call.client_id, host_id=call.host_id
    )
    host_part = amount * settings.tip_host_share_percent // 100
    parts = [(TransferKind.tip, earnings, host_part)]
    if amount - host_part > 0:
        parts.append(
            (TransferKind.tip_fee, await ledger.lock_revenue(session, locked), amount - host_part)
        )
    movements = [
        Movement(
            kind=kind,
            debit_account_id=wallet,
            credit_account_id=account,
            amount=coins,
            idempotency_key=tip_key(call.id, client_msg_id, kind),
            call_id=call.id,
        )
        for kind, account, coins in parts
        if coins > 0
    ]
    [(transfer_id, _), *_] = await ledger.post(session, movements, now=now, locked=locked)
    return await _store(
        session,
        CallMessage(
            call_id=call.id,
            sender_id=user.id,
            kind=MessageKind.tip,
            body="",
            client_msg_id=client_msg_id,
            amount=amount,
            transfer_id=transfer_id,
            created_at=now,
        ),
    )


async def messages(
    session: AsyncSession, *, user: User, call_id: int, after: int, limit: int
) -> tuple[list[CallMessage], int | None]:
    """A page of the call's chat, oldest first (parties and admins): at most ``limit``
    messages after id ``after``, and the cursor of the next page (None on the last)."""
    call = await get_visible_call(session, user, call_id)
    rows = await repository.messages_after(
        session, call_id=call.id, after_id=after, limit=limit + 1
    )
    shown = rows[:limit]
    return shown, (shown[-1].id if len(rows) > limit else None)
