"""The call lifecycle: ringing → connecting → active → ended, driven only by the server.

Each function locks the call row first, changes it, and flushes (the ORM's UPDATE carries
``WHERE version = :old``); the caller's transaction commits. Money moves only through
:mod:`callmeter.calls.settlement`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from callmeter.billing.policy import first_hold
from callmeter.billing.settlement import (
    billing_horizon,
    charge_pending,
    may_coalesce,
    presence_lost,
    tariff_of,
)
from callmeter.calls import repository, settlement
from callmeter.config import Settings
from callmeter.errors import (
    AccountFrozen,
    CallEnded,
    ClientBusy,
    ConcurrentUpdate,
    Forbidden,
    HostBusy,
    HostOffline,
    HostUnavailable,
    InsufficientFunds,
    InvalidCallState,
    MediaUnavailable,
    NotFound,
    PayloadTooLarge,
    RateChanged,
    RefundBlockedByPayout,
    RefundTooLarge,
    RingCooldown,
    SignalLimitReached,
    SignalRateLimited,
)
from callmeter.hosts import repository as hosts
from callmeter.hosts.service import is_online as host_is_online
from callmeter.ledger import service as ledger
from callmeter.media import presence
from callmeter.media import repository as media_repository
from callmeter.media.kicks import enqueue_kick
from callmeter.media.livekit import LiveKit, Participant
from callmeter.models import AccountKind, Call, CallSignal, CallStatus, EndReason, Role, User

Party = Literal["client", "host"]


async def finish(
    session: AsyncSession, call: Call, end_at: datetime, reason: EndReason, now: datetime
) -> None:
    """End a locked call (:func:`settlement.finish`) and, for a LiveKit call, have its room
    closed: expiring tokens disconnects nobody."""
    outcome = await settlement.finish(session, call, end_at, reason, now)
    await _after(session, call, outcome.ended, now)


async def settle(session: AsyncSession, call: Call, now: datetime, settings: Settings) -> None:
    """Settle a locked active call (:func:`settlement.settle`); it may end."""
    outcome = await settlement.settle(session, call, now, settings)
    await _after(session, call, outcome.ended, now)


async def _after(session: AsyncSession, call: Call, ended: bool, now: datetime) -> None:
    if ended and call.media_provider == "livekit":
        await enqueue_kick(session, call, now)


def party_of(call: Call, user: User) -> Party | None:
    if user.id == call.client_id:
        return "client"
    if user.id == call.host_id:
        return "host"
    return None


def _require_party(call: Call | None, user: User) -> tuple[Call, Party]:
    # Someone else's call is "not found": ids reveal nothing.
    if call is None or (party := party_of(call, user)) is None:
        raise NotFound("no such call")
    return call, party


async def _locked(session: AsyncSession, call_id: int) -> Call | None:
    return await repository.lock_call(session, call_id)


async def media_call(session: AsyncSession, user: User, call_id: int) -> Call:
    """The call whose media ``user`` may join now: theirs, not ended, and for the host once
    picked up."""
    call, party = _require_party(await repository.get_call(session, call_id), user)
    if call.status == CallStatus.ended:
        raise CallEnded()
    if party == "host" and call.status == CallStatus.ringing:
        raise InvalidCallState("pick the call up first")
    return call


async def locked_party_call(session: AsyncSession, user: User, call_id: int) -> tuple[Call, Party]:
    """The call, locked for this transaction, and which party ``user`` is (404 for anyone
    else: ids reveal nothing)."""
    return _require_party(await _locked(session, call_id), user)


async def _save(session: AsyncSession) -> None:
    try:
        await session.flush()
    except StaleDataError as exc:  # lost a compare-and-set: the caller may retry
        raise ConcurrentUpdate() from exc


async def get_visible_call(session: AsyncSession, user: User, call_id: int) -> Call:
    """The call, if ``user`` is one of its parties or an admin."""
    call = await repository.get_call(session, call_id)
    if call is not None and user.role == Role.admin:
        return call
    return _require_party(call, user)[0]


async def create_call(
    session: AsyncSession,
    *,
    client: User,
    host_id: int,
    settings: Settings,
    now: datetime,
    livekit: LiveKit | None = None,
    expected_rate: int | None = None,
) -> Call:
    """Ring a host. Holds the first interval's price so the call can start; 402 when the
    client's available coins are below it (``policy.first_hold``), 409 when either side is busy, the
    host is away (or blocks the client) or its rate is not ``expected_rate``, 429 when the
    client rings too often (see :func:`check_ring_pace`)."""
    host = await hosts.lock_host(session, host_id)  # a block of this client waits for us
    if host is None or host.role != Role.host:
        raise NotFound("no such host")
    if not host_is_online(host, settings, now):
        raise HostOffline()
    if not host.accepting_calls or await hosts.is_blocked(
        session, host_id=host.id, client_id=client.id
    ):
        raise HostUnavailable()  # a blocked client is told no more than this
    # A call of either side that is past a deadline ends now, meter or not: a ring nobody
    # answered, a connect that never completed or a silent party does not keep anyone busy.
    await end_stale_calls(session, client_id=client.id, host_id=host.id, settings=settings, now=now)
    if await repository.client_is_frozen(session, client.id):
        raise AccountFrozen()
    if await repository.has_unfinished_call(session, client_id=client.id):
        raise ClientBusy()
    await check_ring_pace(session, client_id=client.id, host_id=host.id, settings=settings, now=now)
    if await repository.has_unfinished_call(session, host_id=host.id):
        raise HostBusy()
    rate = host.rate or settings.default_rate
    if expected_rate is not None and expected_rate != rate:
        raise RateChanged(rate)
    wallet = await ledger.account_for_user(session, client.id)

    call = Call(
        client_id=client.id,
        host_id=host.id,
        status=CallStatus.ringing,
        policy=settings.billing_policy,
        rate=rate,
        interval_seconds=settings.billing_interval_seconds,
        free_seconds=settings.free_seconds,
        host_share_percent=settings.host_share_percent,
        created_at=now,
        billed_seconds=0,
        charged=0,
        host_earned=0,
        refunded=0,
        held=0,
        due_at=now + timedelta(seconds=settings.ring_timeout_seconds),
        media_provider="livekit" if settings.livekit_enabled else "p2p",
        room="",
        version=1,
    )
    first = first_hold(tariff_of(call))
    if wallet.balance - wallet.held < first:
        raise InsufficientFunds(first)
    session.add(call)
    try:
        await session.flush()  # the partial unique indexes decide a race between two rings
    except IntegrityError as exc:
        text = str(exc.orig)
        raise (ClientBusy() if "client" in text else HostBusy()) from exc
    hold = await ledger.place_hold(
        session, account_id=wallet.id, amount=first, reason="call", now=now, call_id=call.id
    )
    call.hold_id = hold.id
    call.held = first
    call.room = f"call-{call.id}"
    await _save(session)
    # Last, inside the transaction: if LiveKit is down the whole call rolls back (503),
    # nothing held and nothing left ringing.
    await _ensure_room(call, livekit)
    return call


async def check_ring_pace(
    session: AsyncSession, *, client_id: int, host_id: int, settings: Settings, now: datetime
) -> None:
    """429 ``ring_cooldown`` when the client's last call to this host ended without
    connecting less than ``rering_cooldown_seconds`` ago, or when it made
    ``unanswered_rings_per_window`` rings nobody picked up in the last
    ``ring_window_seconds``. Read from the calls table, so it holds across API processes."""
    cooldown = timedelta(seconds=settings.rering_cooldown_seconds)
    if cooldown:
        last = await repository.last_unconnected_end(
            session, client_id=client_id, host_id=host_id, since=now - cooldown
        )
        if last is not None:
            raise RingCooldown(
                (last + cooldown - now).total_seconds(),
                "your last call to this host did not connect; wait before ringing it again",
            )
    limit = settings.unanswered_rings_per_window
    if limit:
        window = timedelta(seconds=settings.ring_window_seconds)
        ends = await repository.unanswered_ends(
            session, client_id=client_id, since=now - window, limit=limit
        )
        if len(ends) >= limit:
            raise RingCooldown(
                (ends[-1] + window - now).total_seconds(),
                "too many of your rings went unanswered lately; wait before ringing again",
            )


async def _ensure_room(call: Call, livekit: LiveKit | None) -> None:
    if call.media_provider != "livekit":
        return
    if livekit is None:
        raise MediaUnavailable("this call uses LiveKit, which is not configured")
    await livekit.create_room(call.room)


async def accept(
    session: AsyncSession,
    *,
    user: User,
    call_id: int,
    settings: Settings,
    now: datetime,
    livekit: LiveKit | None = None,
) -> Call:
    """The host picks up: the call starts connecting (billing waits for both media)."""
    call, party = _require_party(await _locked(session, call_id), user)
    if party != "host":
        raise Forbidden("only the host can accept a call")
    await end_if_overdue(session, call, settings, now)
    if call.status == CallStatus.ended:
        raise CallEnded()
    if call.status != CallStatus.ringing:
        raise InvalidCallState(f"the call is {call.status}, not ringing")
    call.status = CallStatus.connecting
    call.accepted_at = now
    call.due_at = now + timedelta(seconds=settings.connect_timeout_seconds)
    if call.media_provider == "livekit":
        call.due_at = min(call.due_at, presence.next_look(call, now, settings))
    call.version += 1
    await _save(session)
    await _ensure_room(call, livekit)  # the room may have expired while ringing
    return call


async def decline(
    session: AsyncSession, *, user: User, call_id: int, settings: Settings, now: datetime
) -> Call:
    """The host refuses a ringing call. It costs nothing."""
    call, party = _require_party(await _locked(session, call_id), user)
    if party != "host":
        raise Forbidden("only the host can decline a call")
    await end_if_overdue(session, call, settings, now)
    if call.status == CallStatus.ended:
        raise CallEnded()
    if call.status != CallStatus.ringing:
        raise InvalidCallState(f"the call is {call.status}, not ringing")
    await finish(session, call, now, EndReason.declined, now)
    await _save(session)
    return call


async def decline_ringing(
    session: AsyncSession, *, host: User, client_id: int, now: datetime
) -> Call | None:
    """End the call ringing from ``client_id`` to ``host`` as ``declined``, if there is one
    (a call already picked up is left alone)."""
    call_id = await repository.ringing_call_id(session, client_id=client_id, host_id=host.id)
    call = await _locked(session, call_id) if call_id is not None else None
    if call is None or call.status != CallStatus.ringing:
        return None
    await finish(session, call, now, EndReason.declined, now)
    await _save(session)
    return call


PRESENCE_COALESCE = timedelta(seconds=1)  # a party's last-seen moves at most once a second


async def quick_heartbeat(
    session: AsyncSession, *, user_id: int, role: str, call_id: int, settings: Settings,
    now: datetime, left_to_meter: Callable[[Call, datetime], bool] | None = None,
) -> Call | None:  # fmt: skip
    """Most heartbeats only say "still here" on an active call with nothing due: that is one
    ``UPDATE … RETURNING`` of the party's last-seen (or, when it was recorded less than
    ``PRESENCE_COALESCE`` ago and no billing boundary lies in between, one read and no
    write), with no user read and no lock taken first. None when the heartbeat needs
    :func:`heartbeat` — a call being set up, a charge, paid time or a deadline due, a
    LiveKit party not in the room, not a party, no such call.
    The same rules decide either way: the conditions are those under which :func:`heartbeat`
    would do nothing but :func:`presence.saw`, checked again on the row it returns.
    With ``left_to_meter`` (while the meter says it ticks: ``calls.beats``), a charge or the
    end of paid time due is no reason for :func:`heartbeat` when it says so of the row: the
    presence is recorded and the call brought due for the meter, in the same transaction."""
    if role not in ("client", "host"):
        return None
    check = repository.PresenceCheck.of(settings, call_id, role, user_id, now, PRESENCE_COALESCE)
    due_ok = left_to_meter is not None
    call = await repository.record_presence(session, check, due_ok=due_ok)
    if call is None:
        call = await repository.recently_present(session, check, due_ok=due_ok)
        seen = None if call is None else getattr(call, f"{role}_last_seen_at")
        if call is not None and not may_coalesce(call, seen, now):
            return None  # recording this beat could change a charge: the full path does
    if call is None or passed_deadline(call, now, settings):
        return None
    if charge_pending(call, now):
        if left_to_meter is None or not left_to_meter(call, now):
            return None  # the full path settles, with this presence (same transaction)
        await repository.bring_due(session, [call.id], now)
    return call


async def heartbeat(
    session: AsyncSession,
    *,
    user: User,
    call_id: int,
    media_connected: bool,
    settings: Settings,
    now: datetime,
) -> Call:
    """A party says it is still there (and whether its media plays). Billing starts when
    both have reported media; an active call is settled here when a charge is due."""
    call, party = _require_party(await _locked(session, call_id), user)
    # The presence rule comes first, with what was known before this heartbeat: a party
    # that comes back after the timeout cannot revive the call and bill the gap.
    if await end_if_overdue(session, call, settings, now) or call.status == CallStatus.ended:
        await _save(session)
        return call
    if call.media_provider == "livekit":
        # LiveKit is the witness of who is in the room; a heartbeat only keeps a party
        # present while LiveKit has it joined and not left (so calls survive a meter
        # outage, when nothing reconciles, without a browser ever vouching alone).
        if presence.in_room(call, party):
            presence.saw(call, party, now)
    else:
        presence.saw(call, party, now)
        if media_connected and call.status == CallStatus.connecting:
            setattr(call, f"{party}_media_at", getattr(call, f"{party}_media_at") or now)
    activate_if_connected(call)
    if charge_pending(call, now):
        await settle(session, call, now, settings)
    look_again_for_media(call, now, settings)
    await _save(session)
    return call


def passed_deadline(
    call: Call, now: datetime, settings: Settings
) -> tuple[datetime, EndReason] | None:
    """The end a call has earned by ``now`` (pure: no I/O), whoever looks at it first: a
    ring not answered in time is ``missed``, a connect not completed in time
    ``connect_failed``, a LiveKit party gone past its grace ``media_left`` (billed to when
    it left), a party silent past the heartbeat timeout ``connection_lost`` (billed to the
    presence horizon). None while the call may go on."""
    if call.status == CallStatus.ringing:
        deadline = call.created_at + timedelta(seconds=settings.ring_timeout_seconds)
        return (deadline, EndReason.missed) if now >= deadline else None
    if call.status == CallStatus.connecting:
        assert call.accepted_at is not None
        deadline = call.accepted_at + timedelta(seconds=settings.connect_timeout_seconds)
        return (deadline, EndReason.connect_failed) if now >= deadline else None
    if call.status == CallStatus.active:
        departed = presence.departed_at(call, now, settings)
        if departed is not None:
            return departed, EndReason.media_left
        if presence_lost(call, now, settings.heartbeat_timeout_seconds):
            return billing_horizon(call), EndReason.connection_lost
    return None


async def end_overdue(
    session: AsyncSession, calls: Sequence[Call], settings: Settings, now: datetime
) -> bool:
    """End those of ``calls`` (read, not locked) that passed a deadline. Only those are
    locked — all of them first, in id order, then all their parties' accounts, then they
    are ended (an end that charges locks revenue last): the ledger's lock order, as on every
    other path. Returns whether any call ended."""
    due = sorted(c.id for c in calls if passed_deadline(c, now, settings) is not None)
    locked = [c for c in [await _locked(session, call_id) for call_id in due] if c is not None]
    if len(locked) > 1:
        # every end locks its users' accounts: take all of them now, in the ledger's order,
        # so that no end locks a user's account after another end locked revenue
        parties = [user for c in locked for user in (c.client_id, c.host_id)]
        await ledger.lock_user_accounts(session, parties)
    ended = False
    for call in locked:
        ended = await end_if_overdue(session, call, settings, now) or ended
    await _save(session)
    return ended


async def end_stale_calls(
    session: AsyncSession, *, client_id: int, host_id: int, settings: Settings, now: datetime
) -> bool:
    """End the unfinished calls of this client or host that passed a deadline: a ring nobody
    answered, a connect that never completed or a silent party keeps nobody busy."""
    unfinished = await repository.unfinished_calls(session, client_id=client_id, host_id=host_id)
    return await end_overdue(session, unfinished, settings, now)


async def end_call_if_overdue(
    session: AsyncSession, call_id: int, settings: Settings, now: datetime
) -> bool:
    """End call ``call_id`` if it passed a deadline (it need not be locked beforehand)."""
    call = await repository.get_call(session, call_id)
    return call is not None and await end_overdue(session, [call], settings, now)


async def end_if_overdue(
    session: AsyncSession, call: Call, settings: Settings, now: datetime
) -> bool:
    """End a locked call that passed a deadline (:func:`passed_deadline`) — a heartbeat, a
    hang-up, a webhook, an admin, a new ring or the meter, whichever looks first; the meter
    only makes it happen sooner. Returns whether the call ended here."""
    due = passed_deadline(call, now, settings)
    if due is None:
        return False
    await finish(session, call, due[0], due[1], now)
    return True


def activate_if_connected(call: Call) -> None:
    """Once both parties are connected, billing starts: at the later of the two moments."""
    if call.status != CallStatus.connecting or not (call.client_media_at and call.host_media_at):
        return
    call.status = CallStatus.active
    call.started_at = max(call.client_media_at, call.host_media_at)
    call.next_charge_at = call.started_at  # settle right away: sets the schedule and hold
    call.version += 1


async def end(
    session: AsyncSession, *, user: User, call_id: int, settings: Settings, now: datetime
) -> Call:
    """A party hangs up. Billed to this moment, never past the presence horizon nor
    ``paid_until``; ending an ended call returns the same final call."""
    call, party = _require_party(await _locked(session, call_id), user)
    if not await end_if_overdue(session, call, settings, now):
        if call.status == CallStatus.active and (
            call.media_provider != "livekit" or presence.in_room(call, party)
        ):
            presence.saw(call, party, now)  # the hang-up itself shows its sender was there
        reason = EndReason.client_hangup if party == "client" else EndReason.host_hangup
        await finish(session, call, now, reason, now)
    await _save(session)
    return call


async def admin_end(
    session: AsyncSession, *, call_id: int, settings: Settings, now: datetime
) -> Call:
    """An admin ends a call: billed to now, never past the presence horizon (a deadline
    the call already passed decides its end instead)."""
    call = await _locked(session, call_id)
    if call is None:
        raise NotFound("no such call")
    if not await end_if_overdue(session, call, settings, now):
        await finish(session, call, now, EndReason.admin, now)
    await _save(session)
    return call


async def lock_client_call(session: AsyncSession, client_id: int) -> Call | None:
    """The client's unfinished call, locked — before any account, as the ledger's lock order
    wants — for a money path that may have to end it (a refund, a dispute)."""
    return await repository.lock_unfinished_call_of_client(session, client_id)


async def end_for_payment(
    session: AsyncSession, call: Call, reason: EndReason, *, settings: Settings, now: datetime
) -> None:
    """End a locked call because of its client's payments: ``insufficient_funds`` when a
    refund takes back the coins its hold reserves, ``account_frozen`` for a dispute. Billed
    to now, never past the presence horizon (a deadline it already passed decides instead);
    a call not yet connected costs nothing."""
    if call.status == CallStatus.ended:
        return
    if not await end_if_overdue(session, call, settings, now):
        await finish(session, call, now, reason, now)
    await _save(session)


@dataclass(frozen=True)
class Roster:
    """What LiveKit's ListParticipants said (``participants`` None: the room is gone)."""

    participants: list[Participant] | None


async def advance(
    session: AsyncSession,
    *,
    call_id: int,
    settings: Settings,
    now: datetime,
    roster: Roster | None = None,
) -> Call | None:
    """What the meter does to a due call: reconcile LiveKit presence (when ``roster`` is
    given), time out rings, connects and silent or departed parties, settle charges, end
    calls whose coins ran out, and schedule the next look."""
    call = await _locked(session, call_id)
    if call is None or call.status == CallStatus.ended:
        return call
    if roster is not None and call.status in (CallStatus.connecting, CallStatus.active):
        # a roster is read before this transaction: a participant_left that arrived since
        # outranks it (a sid LiveKit said left is never present again)
        sids = [p.sid for p in roster.participants or []]
        departed = await media_repository.departed_sids(session, sids)
        presence.reconcile(call, roster.participants, now, departed)
        activate_if_connected(call)
    await _advance_locked(session, call, settings, now)
    await _save(session)
    return call


async def _advance_locked(
    session: AsyncSession, call: Call, settings: Settings, now: datetime
) -> None:
    if not await end_if_overdue(session, call, settings, now):
        if call.status == CallStatus.ringing:
            call.due_at = call.created_at + timedelta(seconds=settings.ring_timeout_seconds)
        elif call.status == CallStatus.connecting:
            assert call.accepted_at is not None
            call.due_at = call.accepted_at + timedelta(seconds=settings.connect_timeout_seconds)
        else:
            await settle(session, call, now, settings)
    look_again_for_media(call, now, settings)


def look_again_for_media(call: Call, now: datetime, settings: Settings) -> None:
    """A LiveKit call comes due for reconciliation every few seconds, and when a departed
    party's grace period ends."""
    if call.media_provider == "livekit" and call.status != CallStatus.ended:
        call.due_at = min(call.due_at or now, presence.next_look(call, now, settings))


def signal_rate_limited(settings: Settings, retry_after: float) -> SignalRateLimited:
    return SignalRateLimited(
        f"at most {settings.signals_per_window} signals per "
        f"{settings.signal_window_seconds} s on a call",
        retry_after=retry_after,
    )


async def add_signal(
    session: AsyncSession,
    *,
    user: User,
    call_id: int,
    signal_type: str,
    payload: object,
    settings: Settings,
    now: datetime,
) -> CallSignal:
    """Relay a peer-to-peer signaling message to the other party.

    Bounded, so that one party cannot fill the database or the other's stream: a payload of
    at most ``max_signal_bytes`` serialized (413), at most ``signals_per_window`` signals per
    sender per call in any ``signal_window_seconds`` (429 with Retry-After; counted in the
    database, so the bound holds across API processes) and at most ``max_signals_per_call``
    stored per call (409)."""
    size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    if size > settings.max_signal_bytes:
        raise PayloadTooLarge(
            f"a signal's payload is at most {settings.max_signal_bytes} bytes serialized; "
            f"this one is {size}"
        )
    # The call's row lock makes counting and inserting one step: concurrent signals of a
    # call queue here instead of all passing the same count.
    call, party = _require_party(await _locked(session, call_id), user)
    if call.status == CallStatus.ended:
        raise CallEnded()
    window = timedelta(seconds=settings.signal_window_seconds)
    recent, oldest = await repository.recent_signals(
        session, call_id=call.id, sender_id=user.id, since=now - window
    )
    if recent >= settings.signals_per_window:
        free_at = (oldest or now) + window  # when the oldest leaves the window
        raise signal_rate_limited(settings, (free_at - now).total_seconds())
    if await repository.count_signals(session, call.id) >= settings.max_signals_per_call:
        raise SignalLimitReached(f"a call stores at most {settings.max_signals_per_call} signals")
    signal = CallSignal(
        call_id=call.id,
        sender_id=user.id,
        recipient_id=call.host_id if party == "client" else call.client_id,
        type=signal_type,
        payload=payload,
        created_at=now,
    )
    await repository.add_signal(session, signal)
    return signal


async def refund(
    session: AsyncSession, *, call_id: int, amount: int | None, reason: str, now: datetime
) -> tuple[Call, int]:
    """Give coins of an ended call back to its client, taken from the host's earnings and
    the platform's revenue in proportion to how the charge was split. Returns the call and
    the amount refunded."""
    call = await _locked(session, call_id)
    if call is None:
        raise NotFound("no such call")
    if call.status != CallStatus.ended:
        raise InvalidCallState("only an ended call can be refunded")
    refundable = call.charged - call.refunded
    amount = refundable if amount is None else amount
    if amount <= 0 or amount > refundable:
        raise RefundTooLarge(
            f"this call can be refunded at most {refundable} more coin(s); asked {amount}"
        )
    total = call.refunded + amount
    # cumulative proportional split, as for charges: no rounding drift across refunds
    host_total = total * call.host_earned // call.charged
    host_part = host_total - call.refunded * call.host_earned // call.charged
    platform_part = amount - host_part
    locked, wallet, earnings = await ledger.lock_call_accounts(
        session, client_id=call.client_id, host_id=call.host_id
    )
    revenue = await ledger.lock_revenue(session, locked)
    # losses stay with the platform: what the host's earnings no longer have (paid out)
    # comes from losses, never making the earnings negative
    from_host = min(host_part, max(0, locked[earnings].available))
    losses = None
    if from_host < host_part and locked[earnings].held > 0:
        # the coins are the host's still, held by a payout request: it is reviewed first
        raise RefundBlockedByPayout()
    if from_host < host_part:
        losses = await ledger.system_account_id(session, AccountKind.losses)
        locked.update(await ledger.lock_accounts(session, [losses]))
    await ledger.post(
        session,
        [
            ledger.Movement(
                kind=ledger.TransferKind.refund,
                debit_account_id=source,
                credit_account_id=wallet,
                amount=part,
                idempotency_key=ledger.refund_key(call.id, side, total),
                call_id=call.id,
                note=reason,
            )
            for source, part, side in (
                (earnings, from_host, "host"),
                (losses, host_part - from_host, "losses"),
                (revenue, platform_part, "platform"),
            )
            if part > 0 and source is not None
        ],
        locked=locked,
        now=now,
    )
    call.refunded = total
    call.version += 1
    await _save(session)
    return call, amount
