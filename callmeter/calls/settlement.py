"""``settle`` and ``finish``: the only code that turns call time into charges.

Every path — heartbeat, hang-up, webhook, meter, admin — locks the call row and calls these
(design rules 3 to 7):

* the charge only ever moves ``charged`` up to ``cost(billable seconds)``, paid out of the
  call's hold, with one transfer per (call, kind, new cumulative total): settling twice, or
  from ten processes at once, charges what settling once does;
* the hold always covers the call until the next settlement point, so
  ``charged + held >= cost(t)`` for every ``t`` up to ``paid_until``; when it cannot be
  extended the call ends at ``paid_until`` with ``insufficient_funds``;
* the host's cumulative share is ``floor(charged * share / 100)``, the platform gets the rest.

Billable time is whole seconds since ``started_at``, never past the presence horizon (the
moment both parties were last known to be present: their last heartbeats, or LiveKit's word),
never past ``paid_until``. Presence bounds every charge on every path (design rule 6):
``settle`` first ends a call whose party has been silent past the heartbeat timeout
(``connection_lost`` at the horizon), a call whose coins ran out ends ``insufficient_funds``
only once both parties were seen at ``paid_until`` (until then it waits, charging nothing
more), and ``finish`` never bills past the horizon. None of this depends on the meter: it
only makes things happen sooner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.billing.policy import Tariff, cost, covered_seconds, host_earnings, next_boundary
from callmeter.config import BillingPolicy, Settings
from callmeter.errors import InsufficientFunds
from callmeter.ledger import repository as ledger_repository
from callmeter.ledger import service as ledger
from callmeter.media.kicks import enqueue_kick
from callmeter.models import AccountKind, Call, CallStatus, EndReason

LOW_BALANCE = "low_balance"


def tariff_of(call: Call | CallSnapshot) -> Tariff:
    return Tariff(
        policy=BillingPolicy(call.policy),
        rate=call.rate,
        interval_seconds=call.interval_seconds,
        free_seconds=call.free_seconds,
        host_share_percent=call.host_share_percent,
    )


def seconds_between(start: datetime, moment: datetime) -> int:
    """Whole seconds from ``start`` to ``moment`` (0 when ``moment`` is earlier)."""
    return max(0, int((moment - start).total_seconds()))


def at(call: Call, seconds: int) -> datetime:
    assert call.started_at is not None
    return call.started_at + timedelta(seconds=seconds)


def presence_horizon(call: Call | CallSnapshot) -> datetime | None:
    """The latest moment both parties are known to have been on the call."""
    client, host = call.client_last_seen_at, call.host_last_seen_at
    if client is None or host is None:
        return None
    return min(client, host)


def presence_lost(call: Call | CallSnapshot, now: datetime, heartbeat_timeout: int) -> bool:
    """Whether a party of an active call has been silent past the heartbeat timeout."""
    horizon = presence_horizon(call)
    return horizon is not None and now >= horizon + timedelta(seconds=heartbeat_timeout)


def billing_horizon(call: Call | CallSnapshot) -> datetime:
    """The latest moment an active call may be billed to: its presence horizon (its start
    while a party has not been seen yet)."""
    assert call.started_at is not None
    return max(call.started_at, presence_horizon(call) or call.started_at)


def paid_seconds(call: Call | CallSnapshot) -> int:
    """How long the coins committed to the call (charged + held) let it run."""
    return covered_seconds(tariff_of(call), call.charged + call.held)


def charge_pending(call: Call, now: datetime) -> bool:
    """Whether settling now would charge or extend anything (cheap: no I/O)."""
    if call.status != CallStatus.active or call.started_at is None:
        return False
    if (call.next_charge_at and now >= call.next_charge_at) or (
        call.paid_until and now >= call.paid_until
    ):
        return True
    horizon = presence_horizon(call)
    if horizon is None:
        return False
    billable = min(seconds_between(call.started_at, min(horizon, now)), paid_seconds(call))
    return cost(tariff_of(call), billable) > call.charged


async def _charge_to(session: AsyncSession, call: Call, target: int, now: datetime) -> None:
    """Raise ``call.charged`` to ``target``, paid from the call's hold."""
    if target <= call.charged:
        return
    assert call.hold_id is not None
    tariff = tariff_of(call)
    host_total = host_earnings(tariff, target)
    host_part = host_total - call.host_earned
    platform_part = (target - call.charged) - host_part
    earnings = await ledger.account_for_user(session, call.host_id)
    revenue = await ledger.system_account_id(session, AccountKind.revenue)
    wallet = await ledger.account_for_user(session, call.client_id)
    await ledger.lock_accounts(session, [wallet.id, earnings.id, revenue])
    for kind, credit, amount in (
        (ledger.TransferKind.host_share, earnings.id, host_part),
        (ledger.TransferKind.call_charge, revenue, platform_part),
    ):
        if amount > 0:
            await ledger.capture_hold(
                session,
                hold_id=call.hold_id,
                credit_account_id=credit,
                amount=amount,
                kind=kind,
                # one key per call, kind and cumulative total: a repeat cannot post twice
                idempotency_key=f"call:{call.id}:{kind}:{target}",
                now=now,
                call_id=call.id,
            )
    call.held -= target - call.charged
    call.charged = target
    call.host_earned = host_total


async def _extend_hold_to(session: AsyncSession, call: Call, needed: int) -> None:
    """Hold at least ``needed`` coins for the call, or as much as helps: a per-second call
    can use a partial hold, an interval call only a whole interval's worth."""
    missing = needed - call.held
    if missing <= 0:
        return
    assert call.hold_id is not None
    try:
        await ledger.extend_hold(session, hold_id=call.hold_id, amount=missing)
        call.held += missing
        return
    except InsufficientFunds:
        pass
    wallet = await ledger.account_for_user(session, call.client_id)
    available = wallet.balance - wallet.held
    if call.policy != BillingPolicy.per_second:
        available -= available % call.rate  # whole intervals only
    if available > 0:
        try:
            await ledger.extend_hold(session, hold_id=call.hold_id, amount=available)
            call.held += available
        except InsufficientFunds:  # spent concurrently; the next settlement tries again
            pass


async def _available(session: AsyncSession, call: Call) -> int:
    account = await ledger_repository.get_user_account(session, call.client_id)
    assert account is not None
    return account.balance - account.held


def _schedule(call: Call, now: datetime, heartbeat_timeout: int) -> None:
    """Set ``next_charge_at``, ``paid_until`` and ``due_at`` (when the meter must look)."""
    assert call.started_at is not None
    tariff = tariff_of(call)
    t_now = seconds_between(call.started_at, now)
    call.paid_until = at(call, paid_seconds(call))
    call.next_charge_at = at(call, next_boundary(tariff, t_now))
    call.due_at = _due_at(
        call.next_charge_at, call.paid_until, presence_horizon(call), heartbeat_timeout, now
    )


def _due_at(
    next_charge_at: datetime,
    paid_until: datetime,
    horizon: datetime | None,
    timeout: int,
    now: datetime,
) -> datetime:
    """When the meter must look at an active call: the next boundary, the end of its paid
    time, or the moment a silent party times out, whichever comes first. A call already
    past its paid time waits for presence (a heartbeat ends it), so the meter looks at the
    timeout rather than at every tick."""
    deadlines = [next_charge_at]
    if paid_until > now:
        deadlines.append(paid_until)
    if horizon is not None:
        deadlines.append(horizon + timedelta(seconds=timeout))
    return min(deadlines)


def visible_state(call: Call) -> tuple[object, ...]:
    """What a party sees of a call; the version moves when this changes."""
    return (
        call.status,
        call.charged,
        call.held,
        call.host_earned,
        call.warning,
        call.paid_until,
        call.next_charge_at,
        call.billed_seconds,
        call.end_reason,
    )


@dataclass(frozen=True, slots=True)
class CallSnapshot:
    """What settlement reads of a call row (the meter's batch path reads rows, not objects)."""

    id: int
    version: int
    status: str
    started_at: datetime | None
    policy: str
    rate: int
    interval_seconds: int
    free_seconds: int
    host_share_percent: int
    charged: int
    held: int
    host_earned: int
    billed_seconds: int
    warning: str | None
    paid_until: datetime | None
    next_charge_at: datetime | None
    client_last_seen_at: datetime | None
    host_last_seen_at: datetime | None


@dataclass(frozen=True, slots=True)
class IntervalCharge:
    """The outcome of :func:`settle` for a call that goes on: what to charge and hold, and
    the call's new billing state. Computed without I/O by :func:`plan_interval_charge`."""

    call_id: int
    old_version: int
    version: int
    charged: int
    host_earned: int
    host_part: int  # coins to the host's earnings now
    platform_part: int  # coins to the platform's revenue now
    hold_delta: int  # change of the call's hold: the extension minus what was captured
    extension: int  # coins newly reserved out of the wallet's available coins
    held: int
    billed_seconds: int
    warning: str | None
    paid_until: datetime
    next_charge_at: datetime
    due_at: datetime


def plan_interval_charge(
    call: CallSnapshot, available: int, now: datetime, heartbeat_timeout: int
) -> IntervalCharge | None:
    """What :func:`settle` (and the meter's timeout check before it) would do to an active
    call whose client has ``available`` coins, when that is the common case: the charge is
    made and the hold fully extended. None when the call needs the per-call path: a party
    timed out, the hold cannot be extended in full, or the call would end.

    Same arithmetic as ``settle`` step by step; the meter's batch path relies on it, and
    tests/meter/test_batch.py drives both paths through the same calls and compares them.
    """
    if call.status != CallStatus.active or call.started_at is None:
        return None
    started = call.started_at
    if presence_lost(call, now, heartbeat_timeout):
        return None  # connection_lost: ``finish`` decides the billed end
    horizon = presence_horizon(call)
    tariff = tariff_of(call)
    t_now = seconds_between(started, now)
    billable = min(seconds_between(started, min(horizon or started, now)), paid_seconds(call))
    charged, host_earned = call.charged, call.host_earned
    if (target := cost(tariff, billable)) > charged:
        charged, host_earned = target, host_earnings(tariff, target)
    host_part = host_earned - call.host_earned
    platform_part = (charged - call.charged) - host_part
    held = call.held - (charged - call.charged)
    extension = max(0, cost(tariff, next_boundary(tariff, t_now)) - charged - held)
    if extension > available:
        return None  # a partial hold or the end of the call: ``settle`` decides
    held += extension
    paid = covered_seconds(tariff, charged + held)
    if paid <= t_now:
        return None
    reach = covered_seconds(tariff, charged + held + available - extension)
    warning = LOW_BALANCE if reach - t_now <= tariff.interval_seconds else None
    paid_until = started + timedelta(seconds=paid)
    next_charge_at = started + timedelta(seconds=next_boundary(tariff, t_now))
    due_at = _due_at(next_charge_at, paid_until, horizon, heartbeat_timeout, now)
    before = (
        call.charged,
        call.held,
        call.host_earned,
        call.warning,
        call.paid_until,
        call.next_charge_at,
        call.billed_seconds,
    )
    after = (charged, held, host_earned, warning, paid_until, next_charge_at, billable)
    return IntervalCharge(
        call_id=call.id,
        old_version=call.version,
        version=call.version + (after != before),
        charged=charged,
        host_earned=host_earned,
        host_part=host_part,
        platform_part=platform_part,
        hold_delta=held - call.held,
        extension=extension,
        held=held,
        billed_seconds=billable,
        warning=warning,
        paid_until=paid_until,
        next_charge_at=next_charge_at,
        due_at=due_at,
    )


async def settle(session: AsyncSession, call: Call, now: datetime, settings: Settings) -> None:
    """Bring an active call's charges and hold up to ``now`` (never past the presence
    horizon); end it ``connection_lost`` at the horizon when a party has been silent past
    the heartbeat timeout, and ``insufficient_funds`` at ``paid_until`` when its coins ran
    out and both parties were seen there. ``call`` must be locked. Idempotent: a second
    call is a no-op."""
    if call.status != CallStatus.active:
        return
    timeout = settings.heartbeat_timeout_seconds
    if presence_lost(call, now, timeout):
        # billed to the last moment both were there; no hold is extended for the silence
        await finish(session, call, billing_horizon(call), EndReason.connection_lost, now)
        return
    before = visible_state(call)
    assert call.started_at is not None
    tariff = tariff_of(call)
    t_now = seconds_between(call.started_at, now)
    horizon = billing_horizon(call)
    billable = min(seconds_between(call.started_at, min(horizon, now)), paid_seconds(call))
    await _charge_to(session, call, cost(tariff, billable), now)
    # Cover the call up to the next settlement point after now.
    await _extend_hold_to(session, call, cost(tariff, next_boundary(tariff, t_now)) - call.charged)
    paid = paid_seconds(call)
    if paid <= t_now and seconds_between(call.started_at, horizon) >= paid:
        await finish(session, call, at(call, paid), EndReason.insufficient_funds, now)
        return
    # Out of paid time but a party not yet seen at paid_until: the call waits (nothing more
    # is charged) until a heartbeat shows both there — then it ends at paid_until — or the
    # silence reaches the timeout — then it ends connection_lost at the horizon.
    reach = covered_seconds(tariff, call.charged + call.held + await _available(session, call))
    call.warning = LOW_BALANCE if reach - t_now <= tariff.interval_seconds else None
    call.billed_seconds = billable
    _schedule(call, now, timeout)
    if visible_state(call) != before:
        call.version += 1


async def finish(
    session: AsyncSession,
    call: Call,
    end_at: datetime,
    reason: EndReason,
    now: datetime,
) -> None:
    """End ``call`` (locked) as of ``end_at``: the final charge for an active call (never
    past the presence horizon nor ``paid_until``), the hold released, the state frozen.
    Ending an ended call is a no-op, so the first ender's summary stands."""
    if call.status == CallStatus.ended:
        return
    if call.status == CallStatus.active:
        assert call.started_at is not None
        # never past the presence horizon, never past the paid time
        end_at = max(
            call.started_at, min(end_at, billing_horizon(call), at(call, paid_seconds(call)))
        )
        billed = seconds_between(call.started_at, end_at)
        if cost(tariff_of(call), billed) < call.charged:
            # Settlement is monotone: an end stamped before a moment already charged for
            # (an early event time, a clock that disagrees) cannot un-bill it.
            billed = call.billed_seconds
            end_at = at(call, billed)
        await _charge_to(session, call, cost(tariff_of(call), billed), now)
        call.billed_seconds = billed
    else:
        reason = _unbilled_reason(reason)
    if call.hold_id is not None:
        await ledger.release_hold(session, hold_id=call.hold_id, now=now)
    if call.media_provider == "livekit":
        await enqueue_kick(session, call, now)  # expiring tokens disconnects nobody
    call.held = 0
    call.status = CallStatus.ended
    call.end_reason = reason
    call.ended_at = end_at
    call.warning = None
    call.due_at = None
    call.next_charge_at = None
    call.version += 1


def _unbilled_reason(reason: EndReason) -> EndReason:
    """A call that never became active ends as declined/cancelled/missed/connect_failed."""
    return {
        EndReason.host_hangup: EndReason.declined,
        EndReason.client_hangup: EndReason.cancelled,
        EndReason.insufficient_funds: EndReason.cancelled,
        EndReason.connection_lost: EndReason.connect_failed,
        EndReason.media_left: EndReason.connect_failed,
    }.get(reason, reason)
