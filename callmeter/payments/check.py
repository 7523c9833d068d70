"""The purchases' part of ``callmeter ledger check`` (docs/payments.md).

* Issuance: every transfer to or from the issuance account is of a kind that may touch it,
  in its direction — coins come in as grants, purchases and bonuses and leave as refunds,
  disputes lost (and payouts) — so ``issued = grants + purchases + bonuses - refunds -
  disputes lost - payouts``, reported in the totals.
* Losses: every transfer of the losses account is a shortfall (a refund or a lost dispute
  of coins already spent) into issuance, so losses explains every shortfall.
* Each purchase: paid ones were credited exactly their coins and bonus under their
  Checkout Session's keys, others nothing; the coins taken back under its keys add up to
  ``coins_reversed``, which is what its cumulative refund (or lost dispute) calls for.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.billing.purchases import reversal_target
from callmeter.calls.check import CHUNK_SIZE, Progress, check_ledger_and_calls
from callmeter.ledger.check import LedgerReport
from callmeter.ledger.service import TransferKind as K
from callmeter.models import Account, AccountKind, DisputeStatus, Purchase, PurchaseStatus
from callmeter.models import Transfer as T
from callmeter.payouts.check import check_payouts

INTO_CIRCULATION = (K.grant, K.purchase, K.purchase_bonus, K.adjustment, K.payout_reversed)
OUT_OF_CIRCULATION = (
    K.purchase_refund, K.refund_shortfall, K.dispute_lost, K.dispute_shortfall, K.payout,
    K.adjustment,
)  # fmt: skip
SHORTFALLS = (K.refund_shortfall, K.dispute_shortfall)
# what may move coins out of (or into) losses besides shortfalls: a call refund's part its
# host's earnings no longer had, and an admin's earnings adjustment
LOSSES_ALSO = (K.refund, K.earnings_adjustment)
CREDITS = (K.purchase, K.purchase_bonus)
REVERSALS = (K.purchase_refund, K.refund_shortfall, K.dispute_lost, K.dispute_shortfall)
MAX_PROBLEMS = 50


async def _system(session: AsyncSession, kind: AccountKind) -> int | None:
    return await session.scalar(
        select(Account.id).where(Account.user_id.is_(None), Account.kind == kind)
    )


async def check_purchases(session: AsyncSession) -> tuple[list[str], dict[str, int]]:
    problems: list[str] = []
    issuance = await _system(session, AccountKind.issuance)
    losses = await _system(session, AccountKind.losses)
    sums: dict[tuple[str, str], int] = defaultdict(int)
    rows = await session.execute(
        select(T.kind, T.debit_account_id, T.credit_account_id, T.amount).where(
            (T.debit_account_id == issuance) | (T.credit_account_id == issuance)
            | (T.debit_account_id == losses) | (T.credit_account_id == losses)
        )
    )  # fmt: skip
    for kind, debit, credit, amount in rows:
        if losses in (debit, credit):
            if kind in SHORTFALLS and (debit, credit) == (losses, issuance):
                sums[(kind, "out")] += amount
            elif kind in LOSSES_ALSO:
                sums[(kind, "losses")] += amount if debit == losses else -amount
            else:
                problems.append(f"a {kind} transfer touches the losses account")
        elif debit == issuance:
            if kind not in INTO_CIRCULATION:
                problems.append(f"a {kind} transfer takes coins from issuance")
            sums[(kind, "in")] += amount
        else:
            if kind not in OUT_OF_CIRCULATION:
                problems.append(f"a {kind} transfer returns coins to issuance")
            sums[(kind, "out")] += amount
    issued_balance = await session.scalar(select(Account.balance).where(Account.id == issuance))
    losses_balance = await session.scalar(select(Account.balance).where(Account.id == losses))
    coming_in = sum(v for (_, d), v in sums.items() if d == "in")
    going_out = sum(v for (_, d), v in sums.items() if d == "out")
    shortfalls = sum(v for (k, d), v in sums.items() if k in SHORTFALLS)
    absorbed = sum(v for (_, d), v in sums.items() if d == "losses")
    if -(issued_balance or 0) != coming_in - going_out:
        problems.append(
            f"issuance is {-(issued_balance or 0)}, but its transfers put in {coming_in} and "
            f"took back {going_out}"
        )
    if -(losses_balance or 0) != shortfalls + absorbed:
        problems.append(
            f"losses are {-(losses_balance or 0)}, but shortfalls are {shortfalls} and "
            f"refunds and adjustments the platform took on {absorbed}"
        )
    problems += await _each_purchase(session)
    totals = {
        "granted": sums[(K.grant, "in")],
        "purchased": sums[(K.purchase, "in")],
        "bonus": sums[(K.purchase_bonus, "in")],
        "refunded": sums[(K.purchase_refund, "out")] + sums[(K.refund_shortfall, "out")],
        "disputes_lost": sums[(K.dispute_lost, "out")] + sums[(K.dispute_shortfall, "out")],
        "paid_out": sums[(K.payout, "out")] - sums[(K.payout_reversed, "in")],
        "shortfalls": shortfalls,
        "absorbed_by_platform": absorbed,
    }
    return problems[:MAX_PROBLEMS], totals


def _session_of(key: str) -> tuple[str, str] | None:
    """(session id, part) of a ``checkout:<session>:<part>`` key."""
    parts = key.split(":", 2)
    return (parts[1], parts[2]) if len(parts) == 3 and parts[0] == "checkout" else None


async def _each_purchase(session: AsyncSession) -> list[str]:
    problems: list[str] = []
    credited: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    reversed_: dict[str, int] = defaultdict(int)
    rows = await session.execute(
        select(T.id, T.kind, T.amount, T.idempotency_key).where(T.kind.in_(CREDITS + REVERSALS))
    )
    for transfer_id, kind, amount, key in rows:
        found = _session_of(key)
        if found is None:
            problems.append(f"transfer {transfer_id} ({kind}) is not keyed to a checkout")
            continue
        session_id, part = found
        if kind in CREDITS:
            credited[session_id][part] += amount
        else:
            reversed_[session_id] += amount
    seen: set[str] = set()
    for purchase in await session.scalars(select(Purchase).order_by(Purchase.id)):
        if purchase.checkout_session_id is None:
            continue
        sid = purchase.checkout_session_id
        seen.add(sid)
        got = credited.get(sid, {})
        paid = purchase.status == PurchaseStatus.paid
        want = {"coins": purchase.coins, "bonus": purchase.bonus_coins} if paid else {}
        if {k: v for k, v in got.items() if v} != {k: v for k, v in want.items() if v}:
            problems.append(f"purchase {purchase.id} ({purchase.status}) was credited {dict(got)}")
        if reversed_.get(sid, 0) != purchase.coins_reversed:
            problems.append(
                f"purchase {purchase.id}: {reversed_.get(sid, 0)} coins were taken back, "
                f"it says {purchase.coins_reversed}"
            )
        if paid:
            target = (
                purchase.total_coins
                if purchase.dispute == DisputeStatus.lost
                else reversal_target(
                    purchase.total_coins, purchase.unit_amount, purchase.refunded_amount
                )
            )
            if purchase.coins_reversed != target:
                problems.append(
                    f"purchase {purchase.id}: {purchase.coins_reversed} coins taken back, its "
                    f"refunds and disputes call for {target}"
                )
    for orphan in (credited.keys() | reversed_.keys()) - seen:
        problems.append(f"coins moved for checkout {orphan!r}, which no purchase has")
    return problems


async def check_everything(
    session: AsyncSession, *, chunk_size: int = CHUNK_SIZE, progress: Progress | None = None,
    hold_days: int = 14,
) -> LedgerReport:  # fmt: skip
    """``callmeter ledger check``: the ledger's, the calls' and the purchases' invariants."""
    report = await check_ledger_and_calls(session, chunk_size=chunk_size, progress=progress)
    problems, totals = await check_purchases(session)
    problems = report.problems + problems + await check_payouts(session, hold_days)
    return LedgerReport(ok=not problems, problems=problems, totals={**report.totals, **totals})
