"""Proof that every call transfer was written by the one ledger writer.

``ledger.service.post`` keys a call's charge transfers ``charge_key(call, kind, N)`` and its
refunds ``refund_key(call, side, N)``, where ``N`` is the call's cumulative charge (or
refund) once that settlement is posted. A transfer written any other way — another code
path, a hand-made INSERT — cannot know the cumulative totals, so this check replays each
call's transfers in id order and requires, for every settlement: the key the writer would
have given it, and the running total of the call's charges (refunds) equal to ``N`` once the
settlement's transfers are counted. Refunds must come from the host's earnings (side
``host``), the platform's revenue (side ``platform``) or, for the host's part their
earnings no longer had, the platform's losses (side ``losses``).

Transfers are read in chunks (keyset pagination on (call id, id)), so memory stays flat
however big the ledger is. Only the ledger's own tables are read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import and_, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.ledger.service import (
    CHARGE_KINDS,
    TIP_KINDS,
    TransferKind,
    charge_key,
    refund_key,
    tip_key,
)
from callmeter.models import Account, AccountKind, Transfer

CHUNK = 5_000
CALL_KINDS = (*CHARGE_KINDS, TransferKind.refund)
# a tip is a call's too, keyed by the client's message id (its chat line is checked against
# it by calls.check): only its key's shape is the writer's to prove
ATTACHED_KINDS = (*CALL_KINDS, *TIP_KINDS)
REFUND_SIDES = {
    "host": AccountKind.earnings,
    "platform": AccountKind.revenue,
    "losses": AccountKind.losses,  # the host's part their earnings no longer had
}


@dataclass
class _Settlements:
    """One call's settlements of one sort (charges or refunds): amount per cumulative total,
    in the order they were first posted."""

    totals: dict[int, int] = field(default_factory=dict)

    def add(self, total: int, amount: int) -> None:
        self.totals[total] = self.totals.get(total, 0) + amount

    def problems(self, call_id: int, what: str) -> list[str]:
        running, found = 0, []
        for total, amount in self.totals.items():
            running += amount
            if running != total or total <= 0:
                found.append(
                    f"call {call_id}: the {what} keyed to a total of {total} bring its {what}s "
                    f"to {running}"
                )
                running = total  # report each broken settlement once
        return found


def _total(key: str) -> int | None:
    tail = key.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _check_call(call_id: int, rows: Iterable[tuple[int, str, int, str, str]]) -> list[str]:
    problems: list[str] = []
    charges, refunds = _Settlements(), _Settlements()
    for transfer_id, kind, amount, key, debit_kind in rows:
        total = _total(key)
        if kind in CHARGE_KINDS:
            settlements = charges
            expected = None if total is None else charge_key(call_id, TransferKind(kind), total)
        else:
            side = next((s for s, k in REFUND_SIDES.items() if k == debit_kind), None)
            if side is None:
                problems.append(
                    f"transfer {transfer_id}: a refund of call {call_id} from a {debit_kind}"
                )
                continue
            settlements = refunds
            expected = None if total is None else refund_key(call_id, side, total)
        if total is None or key != expected:
            problems.append(
                f"transfer {transfer_id} ({kind} of call {call_id}) has key {key!r}, "
                "not one the ledger writer gives"
            )
            continue
        settlements.add(total, amount)
    return problems + charges.problems(call_id, "charge") + refunds.problems(call_id, "refund")


async def transfers_keyed_by_the_writer(
    session: AsyncSession, *, chunk: int = CHUNK, limit: int = 50
) -> list[str]:
    """Problems with call transfers (see the module doc), at most ``limit``; empty when
    there are none."""
    problems: list[str] = []
    unattached = await session.scalars(
        select(Transfer.id).where(
            or_(
                and_(Transfer.kind.in_(ATTACHED_KINDS), Transfer.call_id.is_(None)),
                and_(Transfer.kind.not_in(ATTACHED_KINDS), Transfer.call_id.is_not(None)),
            )
        )
    )
    problems += [f"transfer {tid}: call transfers and call ids go together" for tid in unattached]
    tips = await session.execute(
        select(Transfer.id, Transfer.call_id, Transfer.kind, Transfer.idempotency_key).where(
            Transfer.kind.in_(TIP_KINDS), Transfer.call_id.is_not(None)
        )
    )
    for tid, call_id, kind, key in tips:
        assert call_id is not None  # (the query's)
        prefix = tip_key(call_id, "", TransferKind(kind))
        if not key.startswith(prefix) or len(key) == len(prefix):
            problems.append(
                f"transfer {tid} ({kind} of call {call_id}) has key {key!r}, "
                "not one the ledger writer gives"
            )
    after = (0, 0)
    current: int | None = None
    pending: list[tuple[int, str, int, str, str]] = []
    while True:
        rows = (
            await session.execute(
                select(
                    Transfer.call_id,
                    Transfer.id,
                    Transfer.kind,
                    Transfer.amount,
                    Transfer.idempotency_key,
                    Account.kind,
                )
                .join(Account, Account.id == Transfer.debit_account_id)
                .where(
                    Transfer.call_id.is_not(None),
                    Transfer.kind.in_(CALL_KINDS),
                    tuple_(Transfer.call_id, Transfer.id) > tuple_(*after),
                )
                .order_by(Transfer.call_id, Transfer.id)
                .limit(chunk)
            )
        ).all()
        for call_id, transfer_id, kind, amount, key, debit_kind in rows:
            if call_id != current:
                if current is not None:
                    problems += _check_call(current, pending)
                current, pending = call_id, []
            pending.append((transfer_id, kind, amount, key, debit_kind))
        if len(rows) < chunk:
            break
        last_call, last_id = rows[-1][0], rows[-1][1]
        assert last_call is not None
        after = (last_call, last_id)
    if current is not None:
        problems += _check_call(current, pending)
    return problems[:limit]
