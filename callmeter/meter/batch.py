"""The meter's batch path: settle a batch of due calls with a handful of statements.

The per-call path (``calls.service.advance``) takes one transaction and about twenty
statements per call. At an interval boundary every active call comes due at once, so the
meter settles the common case — an active peer-to-peer call that goes on, with its hold
fully extended — for a whole batch in one transaction:

1. pick due calls ``FOR UPDATE SKIP LOCKED`` (with their wallet and earnings account ids);
2. lock every account the batch touches, in id order (the ledger's lock order), and read
   their balances;
3. compute each call's charge with :func:`plan_interval_charge` — the same arithmetic as
   ``settle`` — and the running balance after every posting;
4. write: one multi-row INSERT of transfers (same idempotency keys as the per-call path),
   one of postings, and one executemany UPDATE each for accounts (by delta, so the CHECK
   constraint still guards ``balance - held >= 0``), holds, and calls (compare-and-set on
   ``version``).

The platform revenue account is read and written once per batch instead of once per
charge, which is what kept every meter transaction queued behind one row lock.

Calls that need anything else (timeouts, partial holds, the end of paid time, LiveKit
presence) are leased to the per-call path, which runs after this batch commits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from sqlalchemy import Table, and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from callmeter.calls.repository import NOT_ENDED, DueCall
from callmeter.calls.settlement import CallSnapshot, IntervalCharge, plan_interval_charge
from callmeter.errors import LedgerError
from callmeter.kit.bulk import insert_rows, new_ids, update_rows
from callmeter.ledger import service as ledger
from callmeter.ledger.service import TransferKind
from callmeter.models import Account, AccountKind, Call, CallStatus, Hold, Posting, Transfer
from callmeter.ops import metrics

Wallet = aliased(Account, name="wallet")
Earnings = aliased(Account, name="earnings")

TRANSFERS = cast(Table, Transfer.__table__)
POSTINGS = cast(Table, Posting.__table__)
ACCOUNTS = cast(Table, Account.__table__)
HOLDS = cast(Table, Hold.__table__)
CALLS = cast(Table, Call.__table__)

# what a settlement changes on a call row
CALL_BILLING_COLUMNS = (
    "version",
    "charged",
    "host_earned",
    "held",
    "billed_seconds",
    "warning",
    "paid_until",
    "next_charge_at",
    "due_at",
)

_SNAPSHOT_COLUMNS = [getattr(Call, name) for name in CallSnapshot.__slots__]


@dataclass
class BatchResult:
    picked: int = 0  # due calls this batch took
    settled: list[tuple[int, datetime]] = field(default_factory=list)  # (call id, due at)
    others: list[DueCall] = field(default_factory=list)  # leased to the per-call path


async def settle_due_batch(
    session: AsyncSession,
    *,
    now: datetime,
    lease_until: datetime,
    limit: int,
    heartbeat_timeout: int,
) -> BatchResult:
    """Settle up to ``limit`` due calls in the caller's transaction (see the module doc)."""
    rows = (
        await session.execute(
            select(
                *_SNAPSHOT_COLUMNS,
                Call.due_at,
                Call.hold_id,
                Call.media_provider,
                Call.room,
                Wallet.id.label("wallet_id"),
                Earnings.id.label("earnings_id"),
            )
            .outerjoin(
                Wallet, and_(Wallet.user_id == Call.client_id, Wallet.kind == AccountKind.wallet)
            )
            .outerjoin(
                Earnings,
                and_(Earnings.user_id == Call.host_id, Earnings.kind == AccountKind.earnings),
            )
            .where(NOT_ENDED, Call.due_at <= now)
            .order_by(Call.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True, of=Call.__table__)
        )
    ).all()
    result = BatchResult(picked=len(rows))
    candidates = [
        row
        for row in rows
        if row.status == CallStatus.active
        and row.media_provider == "p2p"
        and row.hold_id is not None
        and row.wallet_id is not None
        and row.earnings_id is not None
    ]
    revenue_id = await ledger.system_account_id(session, AccountKind.revenue)
    balance: dict[int, int] = {}
    held: dict[int, int] = {}
    if candidates:
        locked = await ledger.lock_accounts(
            session,
            [revenue_id, *(r.wallet_id for r in candidates), *(r.earnings_id for r in candidates)],
        )
        for account_id, (account_balance, account_held) in locked.items():
            balance[account_id], held[account_id] = account_balance, account_held

    plans: list[tuple[IntervalCharge, int, int, int]] = []  # plan, wallet, earnings, hold
    leased: list[int] = []
    by_id = {row.id: row for row in candidates}
    for row in rows:
        plan = None
        if row.id in by_id:
            available = balance[row.wallet_id] - held[row.wallet_id]
            snapshot = CallSnapshot(*(getattr(row, name) for name in CallSnapshot.__slots__))
            plan = plan_interval_charge(snapshot, available, now, heartbeat_timeout)
        if plan is None:
            leased.append(row.id)
            result.others.append(DueCall(row.id, row.status, row.media_provider, row.room))
            continue
        held[row.wallet_id] += plan.extension  # later calls of this wallet see less
        plans.append((plan, row.wallet_id, row.earnings_id, row.hold_id))
        result.settled.append((row.id, row.due_at))

    if plans:
        await _write(session, plans, revenue_id, balance, now)
    if leased:
        await session.execute(
            update(Call)
            .where(Call.id.in_(leased))
            .values(due_at=lease_until)
            .execution_options(synchronize_session=False)
        )
    return result


async def _write(
    session: AsyncSession,
    plans: list[tuple[IntervalCharge, int, int, int]],
    revenue_id: int,
    balance: dict[int, int],
    now: datetime,
) -> None:
    transfers: list[dict[str, object]] = []
    legs: list[tuple[int, int, int, str]] = []  # debit, credit, amount, kind of each transfer
    for plan, wallet_id, earnings_id, _hold in plans:
        for transfer_kind, credit_id, amount in (
            (TransferKind.host_share, earnings_id, plan.host_part),
            (TransferKind.call_charge, revenue_id, plan.platform_part),
        ):
            if amount > 0:
                legs.append((wallet_id, credit_id, amount, str(transfer_kind)))
                transfers.append(
                    {
                        "debit_account_id": wallet_id,
                        "credit_account_id": credit_id,
                        "amount": amount,
                        "kind": str(transfer_kind),
                        "call_id": plan.call_id,
                        # the per-call path's key: whichever path charges first, once
                        "idempotency_key": f"call:{plan.call_id}:{transfer_kind}:{plan.charged}",
                        "note": None,
                        "created_at": now,
                    }
                )
    delta_balance: dict[int, int] = defaultdict(int)
    if transfers:
        ids = await new_ids(session, TRANSFERS, len(transfers))
        for transfer_id, row in zip(ids, transfers, strict=True):
            row["id"] = transfer_id
        await insert_rows(session, TRANSFERS, transfers)
        postings: list[dict[str, int]] = []
        for transfer_id, (debit, credit, amount, kind) in zip(ids, legs, strict=True):
            balance[debit] -= amount
            balance[credit] += amount
            delta_balance[debit] -= amount
            delta_balance[credit] += amount
            postings.append(
                {
                    "transfer_id": transfer_id,
                    "account_id": debit,
                    "amount": -amount,
                    "balance_after": balance[debit],
                }
            )
            postings.append(
                {
                    "transfer_id": transfer_id,
                    "account_id": credit,
                    "amount": amount,
                    "balance_after": balance[credit],
                }
            )
            metrics.record_transfer(session, kind)
        # in list order: each account's running balance follows posting ids
        await insert_rows(session, POSTINGS, postings)

    delta_held: dict[int, int] = defaultdict(int)
    for plan, wallet_id, _earnings, _hold in plans:
        delta_held[wallet_id] += plan.hold_delta
    changed = sorted(set(delta_balance) | {a for a, d in delta_held.items() if d})
    await _expect(
        len(changed),
        # by delta: the CHECK constraint still guards balance - held >= 0
        update_rows(
            session,
            ACCOUNTS,
            [{"id": a, "balance": delta_balance[a], "held": delta_held[a]} for a in changed],
            where={"id": "id"},
            add={"balance": "balance", "held": "held"},
        ),
    )
    moved = [
        {"id": hold_id, "amount": plan.hold_delta}
        for plan, _w, _e, hold_id in plans
        if plan.hold_delta
    ]
    await _expect(
        len(moved),
        update_rows(
            session,
            HOLDS,
            moved,
            where={"id": "id"},
            add={"amount": "amount"},
            where_null=("released_at",),
        ),
    )
    await _expect(
        len(plans),
        update_rows(
            session,
            CALLS,
            [
                {
                    "id": plan.call_id,
                    "old_version": plan.old_version,
                    "version": plan.version,
                    "charged": plan.charged,
                    "host_earned": plan.host_earned,
                    "held": plan.held,
                    "billed_seconds": plan.billed_seconds,
                    "warning": plan.warning,
                    "paid_until": plan.paid_until,
                    "next_charge_at": plan.next_charge_at,
                    "due_at": plan.due_at,
                }
                for plan, _w, _e, _h in plans
            ],
            # compare-and-set on the version, as every ORM update of a call does
            where={"id": "id", "old_version": "version"},
            assign={name: name for name in CALL_BILLING_COLUMNS},
        ),
    )


async def _expect(rows: int, changed: Awaitable[int | None]) -> None:
    """Every row the batch updates is locked by its transaction, so each must change; a
    miss means a broken invariant, and the whole batch rolls back."""
    count = await changed
    if count is not None and count != rows:
        raise LedgerError(f"batch update changed {count} rows, not {rows}")
