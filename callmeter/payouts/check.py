"""The payouts' part of ``callmeter ledger check`` (docs/payouts.md).

* ``payout_clearing`` holds exactly the approved payouts that are not settled yet.
* Each payout's transfers are the ones its status calls for, under its keys, each of its
  amount: approved → captured; paid → captured and paid; failed → captured and returned;
  reversed → captured, paid and returned by reversal; requested → its hold still holds
  the amount; rejected → nothing moved and its hold is released.
* No host was paid from unmatured earnings: when each payout was requested, its amount fit
  in what had matured by then (credits older than the hold, less every debit until then,
  less the payouts still awaiting review at that moment).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.ledger.service import MATURE_AT_ONCE
from callmeter.models import Account, AccountKind, Hold, Payout, PayoutStatus, Posting, Transfer

EXPECTED = {
    PayoutStatus.requested: set(),
    PayoutStatus.rejected: set(),
    PayoutStatus.approved: {"approved"},
    PayoutStatus.paid: {"approved", "paid"},
    PayoutStatus.failed: {"approved", "returned"},
    PayoutStatus.reversed: {"approved", "paid", "reversed"},
}


async def check_payouts(session: AsyncSession, hold_days: int) -> list[str]:
    problems: list[str] = []
    payouts = list(await session.scalars(select(Payout).order_by(Payout.id)))
    clearing = await session.scalar(
        select(Account.balance).where(
            Account.user_id.is_(None), Account.kind == AccountKind.payout_clearing
        )
    )
    approved = sum(p.amount for p in payouts if p.status == PayoutStatus.approved)
    if (clearing or 0) != approved:
        problems.append(f"payout_clearing holds {clearing}, approved payouts {approved}")
    moved: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rows = await session.execute(
        select(Transfer.idempotency_key, Transfer.amount).where(
            Transfer.idempotency_key.like("payout:%")
        )
    )
    for key, amount in rows:
        _, payout_id, step = key.split(":", 2)
        moved[int(payout_id)][step.split(":", 1)[0]] += amount
    holds = {
        h.id: h
        for h in await session.scalars(
            select(Hold).where(Hold.id.in_([p.hold_id for p in payouts if p.hold_id]))
        )
    }
    for p in payouts:
        steps = moved.pop(p.id, {})
        expected = EXPECTED[PayoutStatus(p.status)]
        if p.status == PayoutStatus.paid and p.coins_returned:
            expected = expected | {"reversed"}  # reversed in part
        if set(steps) != expected:
            problems.append(f"payout {p.id} is {p.status} but moved {dict(steps)}")
        for step, amount in steps.items():
            want = p.coins_returned if step == "reversed" else p.amount
            if amount != want:
                problems.append(f"payout {p.id}: its {step} transfers move {amount}, not {want}")
        hold = holds.get(p.hold_id) if p.hold_id else None
        if p.status == PayoutStatus.requested and (
            hold is None or hold.released_at is not None or hold.amount != p.amount
        ):
            problems.append(f"payout {p.id} is requested but its hold does not hold it")
        if p.status != PayoutStatus.requested and hold is not None and hold.released_at is None:
            problems.append(f"payout {p.id} is {p.status} but its hold is still open")
    for orphan in moved:
        problems.append(f"payout transfers for payout {orphan}, which does not exist")
    problems += await _matured_when_requested(session, payouts, timedelta(days=hold_days))
    return problems[:50]


async def _matured_when_requested(
    session: AsyncSession, payouts: list[Payout], hold: timedelta
) -> list[str]:
    problems: list[str] = []
    by_host: dict[int, list[Payout]] = defaultdict(list)
    for p in payouts:
        by_host[p.host_id].append(p)
    at_once = {str(k) for k in MATURE_AT_ONCE}
    for host_id, theirs in by_host.items():
        account = await session.scalar(
            select(Account.id).where(
                Account.user_id == host_id, Account.kind == AccountKind.earnings
            )
        )
        entries = [
            (int(amount), created, str(kind), _payout_of(key))
            for amount, created, kind, key in await session.execute(
                select(Posting.amount, Transfer.created_at, Transfer.kind, Transfer.idempotency_key)
                .join(Transfer, Transfer.id == Posting.transfer_id)
                .where(Posting.account_id == account)
            )
        ]
        for p in theirs:
            matured = _matured(entries, p, hold, at_once)
            waiting = sum(
                q.amount
                for q in theirs
                if q.id < p.id and (q.reviewed_at is None or q.reviewed_at > p.created_at)
            )
            if p.amount > matured - waiting:
                problems.append(
                    f"payout {p.id} of host {host_id} asked {p.amount} coins when "
                    f"{matured - waiting} had matured"
                )
    return problems


def _payout_of(key: str) -> int | None:
    parts = key.split(":", 2)
    return int(parts[1]) if parts[0] == "payout" and parts[1].isdigit() else None


def _matured(
    entries: list[tuple[int, datetime, str, int | None]], p: Payout, hold: timedelta,
    at_once: set[str],
) -> int:  # fmt: skip
    """What had matured when ``p`` was requested: moves made by then (a payout's own steps
    and later payouts' come after it, even at the same instant)."""
    at, cutoff = p.created_at, p.created_at - hold
    return sum(
        amount
        for amount, created, kind, payout in entries
        if created <= at
        and (payout is None or payout < p.id)
        and (amount < 0 or created <= cutoff or kind in at_once)
    )
