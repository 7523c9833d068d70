"""The meter's batch path: settle a batch of due calls in one transaction.

At an interval boundary every active call comes due at once, so the meter settles them a
batch at a time with the same steps as the per-call path (``calls.settlement``), only
with N rows instead of one:

1. lock due calls ``FOR UPDATE SKIP LOCKED`` (with their wallet and earnings account ids);
2. lock every account the batch touches, in id order (the ledger's lock order);
3. plan each call with the pure planner, threading each wallet's available coins from one
   plan to the next — a charge, a full or partial hold, or the end of the call;
4. apply them all: one ledger post (one multi-row statement per table) and one
   compare-and-set UPDATE of the call rows.

The platform revenue account is read and written once per batch instead of once per
charge, which is what kept every meter transaction queued behind one row lock.

Calls in another state (ringing, connecting) and LiveKit calls (whose presence is
reconciled with LiveKit first) are leased to the per-call path, which runs after this
batch commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.billing.settlement import CallState, plan_many
from callmeter.calls import repository as calls_repository
from callmeter.calls.repository import DueCall
from callmeter.calls.settlement import CallAccounts, Settlement, apply
from callmeter.ledger import service as ledger
from callmeter.models import AccountKind, CallStatus


@dataclass
class BatchResult:
    picked: int = 0  # due calls this batch took
    settled: list[tuple[int, datetime]] = field(default_factory=list)  # (call id, due at)
    ended: int = 0  # of the settled calls, how many ended
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
    rows = await calls_repository.lock_due_calls(session, now=now, limit=limit)
    result = BatchResult(picked=len(rows))
    batch = [
        row
        for row in rows
        if row.status == CallStatus.active
        and row.media_provider == "p2p"
        and row.hold_id is not None
        and row.wallet_id is not None
        and row.earnings_id is not None
    ]
    if batch:
        revenue = await ledger.system_account_id(session, AccountKind.revenue)
        locked = await ledger.lock_accounts(
            session, [revenue, *(r.wallet_id for r in batch), *(r.earnings_id for r in batch)]
        )
        available = {r.wallet_id: locked[r.wallet_id].available for r in batch}
        outcomes = plan_many(
            ((CallState.of(row), row.wallet_id) for row in batch), available, now, heartbeat_timeout
        )
        settlements = [
            Settlement(outcome, CallAccounts(row.wallet_id, row.earnings_id, revenue, row.hold_id))
            for row, outcome in zip(batch, outcomes, strict=True)
        ]
        result.settled = [(row.id, row.due_at) for row in batch]
        result.ended = sum(outcome.ended for outcome in outcomes)
        await apply(session, settlements, locked=locked, now=now)
    taken = {row.id for row in batch}
    result.others = [
        DueCall(row.id, row.status, row.media_provider, row.room)
        for row in rows
        if row.id not in taken
    ]
    await calls_repository.lease(session, [c.id for c in result.others], lease_until)
    return result
