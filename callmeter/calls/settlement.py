"""Settling calls: lock, plan, apply — for one call or a batch of thousands alike.

The arithmetic is the pure planner's (:mod:`callmeter.billing.settlement`); the coins move
through the one ledger writer (:func:`callmeter.ledger.service.post`). This module only
joins them:

* :func:`settle` and :func:`finish` — every per-call path (heartbeat, hang-up, webhook,
  admin, the meter's per-call step) with the call row locked: lock the call's accounts,
  plan, :func:`apply` a batch of one;
* the meter's batch (``meter/batch.py``) locks N calls and their accounts, plans each
  (threading each wallet's available coins from one plan to the next) and :func:`apply`s
  N. The two paths differ only in row count — and in how the call row is written: an
  ORM row loaded by the request is assigned (its flush is the compare-and-set on
  ``version``), the batch's rows are written by one compare-and-set statement.

Ending a LiveKit call also needs its room closed; that is the caller's to enqueue
(``Outcome.ended``), since a call ended here may be rolled back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.billing.settlement import CallState, Outcome, plan, plan_finish
from callmeter.calls import repository
from callmeter.config import Settings
from callmeter.ledger import service as ledger
from callmeter.ledger.service import HoldChange, Locked, Movement, TransferKind
from callmeter.models import Call, CallStatus, EndReason


@dataclass(slots=True)  # immutable by use; not frozen: a meter batch builds 10,000s
class CallAccounts:
    """Where a call's coins move: its client's wallet (and the call's hold on it), its
    host's earnings and the platform's revenue."""

    wallet: int
    earnings: int
    revenue: int | None  # locked only when a charge moves coins to it
    hold: int | None


@dataclass(slots=True)  # immutable by use; not frozen: a meter batch builds 10,000s
class Settlement:
    outcome: Outcome
    accounts: CallAccounts


def ledger_entries(settlement: Settlement) -> tuple[list[Movement], HoldChange | None]:
    """The transfers and the hold change that carry out a planned settlement."""
    outcome, accounts = settlement.outcome, settlement.accounts
    legs = [(TransferKind.host_share, accounts.earnings, outcome.host_part)]
    if outcome.platform_part:
        assert accounts.revenue is not None, "the revenue account must be locked for a charge"
        legs.append((TransferKind.call_charge, accounts.revenue, outcome.platform_part))
    movements = [
        Movement(
            kind=kind,
            debit_account_id=accounts.wallet,
            credit_account_id=credit,
            amount=amount,
            # one key per call, kind and cumulative total: a repeat cannot post twice
            idempotency_key=ledger.charge_key(outcome.call_id, kind, outcome.charged),
            call_id=outcome.call_id,
        )
        for kind, credit, amount in legs
        if amount > 0
    ]
    hold = None
    if accounts.hold is not None and (outcome.hold_delta or outcome.ended):
        hold = HoldChange(
            accounts.hold,
            accounts.wallet,
            before=outcome.held - outcome.hold_delta,
            after=outcome.held,
            close=outcome.ended,
        )
    return movements, hold


async def apply(
    session: AsyncSession,
    settlements: Sequence[Settlement],
    *,
    locked: dict[int, Locked],
    now: datetime,
    loaded: Mapping[int, Call] | None = None,
) -> None:
    """Carry out planned settlements: their coins in one ledger post, their call rows in
    one compare-and-set statement (or, for ``loaded`` ORM rows, by assignment)."""
    movements: list[Movement] = []
    holds: list[HoldChange] = []
    for settlement in settlements:
        moves, hold = ledger_entries(settlement)
        movements.extend(moves)
        if hold is not None:
            holds.append(hold)
    if movements or holds:
        # a batch's keys come from the cumulative charges of calls it holds locked
        await ledger.post(
            session, movements, holds=holds, locked=locked, now=now, fresh_keys=loaded is None
        )
    loaded = loaded or {}
    rows = []
    for settlement in settlements:
        outcome = settlement.outcome
        # the planner leaves a call that is neither active nor ending as it is
        assert outcome.status == CallStatus.active or outcome.ended, outcome
        call = loaded.get(outcome.call_id)
        if call is None:
            rows.append(outcome)
            continue
        for name, value in outcome.values().items():
            setattr(call, name, value)
    await repository.save_outcomes(session, rows)


async def _settle_one(
    session: AsyncSession,
    call: Call,
    planner: Callable[[CallState, int], Outcome],
    now: datetime,
) -> Outcome:
    """Lock the call's accounts, plan with its client's available coins, apply. The
    platform's revenue is locked (last, as the ledger's lock order wants) only when the
    plan moves coins to it."""
    locked, wallet, earnings = await ledger.lock_call_accounts(
        session, client_id=call.client_id, host_id=call.host_id
    )
    outcome = planner(CallState.of(call), locked[wallet].available)
    revenue = await ledger.lock_revenue(session, locked) if outcome.platform_part else None
    accounts = CallAccounts(wallet, earnings, revenue, call.hold_id)
    settlement = Settlement(outcome, accounts)
    await apply(session, [settlement], locked=locked, now=now, loaded={call.id: call})
    return outcome


async def settle(session: AsyncSession, call: Call, now: datetime, settings: Settings) -> Outcome:
    """Bring an active call (locked) up to ``now``: charge, extend the hold, or end it
    (``connection_lost`` at the horizon, ``insufficient_funds`` at ``paid_until``).
    Idempotent: a second call changes nothing."""
    timeout = settings.heartbeat_timeout_seconds
    if call.status != CallStatus.active:
        return plan(CallState.of(call), 0, now, timeout)  # changes nothing
    return await _settle_one(
        session, call, lambda state, available: plan(state, available, now, timeout), now
    )


async def finish(
    session: AsyncSession, call: Call, end_at: datetime, reason: EndReason, now: datetime
) -> Outcome:
    """End ``call`` (locked) as of ``end_at``: its final charge (never past the presence
    horizon nor ``paid_until``) and its hold released. Ending an ended call changes
    nothing, so the first ender's summary stands."""
    if call.status == CallStatus.ended:
        return plan_finish(CallState.of(call), end_at, reason)  # changes nothing
    return await _settle_one(
        session, call, lambda state, _: plan_finish(state, end_at, reason), now
    )
