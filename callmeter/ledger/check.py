"""``callmeter ledger check``: proves every coin against the invariants of docs/design.md.

Each check is one SQL query that returns only the rows that break an invariant, so the
check scales with the ledger and reports exactly what is wrong.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

MAX_PROBLEMS_PER_CHECK = 50

Check = Callable[[AsyncSession], Awaitable[list[str]]]


@dataclass
class LedgerReport:
    ok: bool
    problems: list[str]
    totals: dict[str, int] = field(default_factory=dict)


async def _rows(session: AsyncSession, sql: str) -> list[tuple[object, ...]]:
    result = await session.execute(text(f"{sql} LIMIT {MAX_PROBLEMS_PER_CHECK}"))
    return [tuple(row) for row in result]


async def _sum_is_zero(session: AsyncSession) -> list[str]:
    total = (await session.execute(text("SELECT COALESCE(SUM(balance), 0) FROM accounts"))).scalar()
    return [] if total == 0 else [f"the sum of all account balances is {total}, not 0"]


async def _balances_match_postings(session: AsyncSession) -> list[str]:
    rows = await _rows(
        session,
        """
        SELECT a.id, a.kind, a.balance, COALESCE(p.total, 0)
        FROM accounts a
        LEFT JOIN (SELECT account_id, SUM(amount) AS total FROM postings GROUP BY account_id) p
               ON p.account_id = a.id
        WHERE a.balance != COALESCE(p.total, 0)
        ORDER BY a.id
        """,
    )
    return [
        f"account {aid} ({kind}) has balance {bal} but its postings sum to {total}"
        for aid, kind, bal, total in rows
    ]


async def _held_matches_holds(session: AsyncSession) -> list[str]:
    rows = await _rows(
        session,
        """
        SELECT a.id, a.kind, a.held, COALESCE(h.total, 0)
        FROM accounts a
        LEFT JOIN (SELECT account_id, SUM(amount) AS total FROM holds GROUP BY account_id) h
               ON h.account_id = a.id
        WHERE a.held != COALESCE(h.total, 0)
        ORDER BY a.id
        """,
    )
    return [
        f"account {aid} ({kind}) holds {held} but its open holds sum to {total}"
        for aid, kind, held, total in rows
    ]


async def _available_not_negative(session: AsyncSession) -> list[str]:
    rows = await _rows(
        session,
        """
        SELECT id, kind, balance, held FROM accounts
        WHERE held < 0 OR (kind != 'issuance' AND balance - held < 0)
        ORDER BY id
        """,
    )
    return [
        f"account {aid} ({kind}) has balance {bal} and held {held}: available is negative"
        for aid, kind, bal, held in rows
    ]


async def _transfers_balanced(session: AsyncSession) -> list[str]:
    rows = await _rows(
        session,
        """
        SELECT t.id, COUNT(p.id),
               SUM(CASE WHEN p.account_id = t.debit_account_id AND p.amount = -t.amount
                        THEN 1 ELSE 0 END),
               SUM(CASE WHEN p.account_id = t.credit_account_id AND p.amount = t.amount
                        THEN 1 ELSE 0 END)
        FROM transfers t LEFT JOIN postings p ON p.transfer_id = t.id
        GROUP BY t.id
        HAVING COUNT(p.id) != 2
            OR SUM(CASE WHEN p.account_id = t.debit_account_id AND p.amount = -t.amount
                        THEN 1 ELSE 0 END) != 1
            OR SUM(CASE WHEN p.account_id = t.credit_account_id AND p.amount = t.amount
                        THEN 1 ELSE 0 END) != 1
        ORDER BY t.id
        """,
    )
    return [
        f"transfer {tid} has {n} postings ({d} matching debit, {c} matching credit), "
        "not one of each"
        for tid, n, d, c in rows
    ]


async def _running_balances(session: AsyncSession) -> list[str]:
    rows = await _rows(
        session,
        """
        SELECT id, account_id, balance_after, amount, prev FROM (
            SELECT id, account_id, balance_after, amount,
                   LAG(balance_after) OVER (PARTITION BY account_id ORDER BY id) AS prev
            FROM postings
        ) q
        WHERE balance_after - amount != COALESCE(prev, 0)
        ORDER BY id
        """,
    )
    return [
        f"posting {pid} on account {aid}: balance_after {after} minus amount {amount} "
        f"is not the previous balance {prev or 0}"
        for pid, aid, after, amount, prev in rows
    ]


async def _released_holds_empty(session: AsyncSession) -> list[str]:
    rows = await _rows(
        session,
        "SELECT id, amount FROM holds WHERE released_at IS NOT NULL AND amount != 0 ORDER BY id",
    )
    return [f"hold {hid} is released but still reserves {amount}" for hid, amount in rows]


# cost(billed_seconds) of design rule 2, in SQL (integer division on both databases)
_COST_SQL = """
    CASE WHEN c.billed_seconds <= c.free_seconds THEN 0
         WHEN c.policy = 'per_completed_interval'
              THEN c.rate * ((c.billed_seconds - c.free_seconds) / c.interval_seconds)
         WHEN c.policy = 'per_started_interval'
              THEN c.rate * ((c.billed_seconds - c.free_seconds + c.interval_seconds - 1)
                             / c.interval_seconds)
         ELSE c.rate * (c.billed_seconds - c.free_seconds) / c.interval_seconds
    END
"""


async def _calls_match_their_transfers(session: AsyncSession) -> list[str]:
    rows = await _rows(
        session,
        """
        SELECT c.id, c.charged, c.host_earned, c.refunded,
               COALESCE(t.charges, 0), COALESCE(t.host, 0), COALESCE(t.refunds, 0)
        FROM calls c
        LEFT JOIN (
            SELECT call_id,
                   SUM(CASE WHEN kind IN ('call_charge', 'host_share') THEN amount ELSE 0 END)
                       AS charges,
                   SUM(CASE WHEN kind = 'host_share' THEN amount ELSE 0 END) AS host,
                   SUM(CASE WHEN kind = 'refund' THEN amount ELSE 0 END) AS refunds
            FROM transfers WHERE call_id IS NOT NULL GROUP BY call_id
        ) t ON t.call_id = c.id
        WHERE c.charged != COALESCE(t.charges, 0)
           OR c.host_earned != COALESCE(t.host, 0)
           OR c.refunded != COALESCE(t.refunds, 0)
        ORDER BY c.id
        """,
    )
    return [
        f"call {cid} says charged {ch}, host {he}, refunded {rf}; its transfers say "
        f"{tch}, {the}, {trf}"
        for cid, ch, he, rf, tch, the, trf in rows
    ]


async def _host_share_formula(session: AsyncSession) -> list[str]:
    rows = await _rows(
        session,
        """
        SELECT id, charged, host_earned, host_share_percent FROM calls
        WHERE host_earned != charged * host_share_percent / 100
        ORDER BY id
        """,
    )
    return [
        f"call {cid}: host earned {he} of {ch} charged, not floor({ch} * {pct} / 100)"
        for cid, ch, he, pct in rows
    ]


async def _ended_calls_cost_what_they_lasted(session: AsyncSession) -> list[str]:
    rows = await _rows(
        session,
        f"""
        SELECT c.id, c.billed_seconds, c.charged, {_COST_SQL} AS expected
        FROM calls c
        WHERE c.status = 'ended' AND c.charged != {_COST_SQL}
        ORDER BY c.id
        """,  # noqa: S608 - only constant SQL fragments are interpolated
    )
    return [
        f"ended call {cid} billed {secs} s and charged {ch}, but cost({secs}) is {exp}"
        for cid, secs, ch, exp in rows
    ]


async def _call_holds(session: AsyncSession) -> list[str]:
    rows = await _rows(
        session,
        """
        SELECT c.id, c.status, c.held, COALESCE(h.amount, 0), h.released_at
        FROM calls c LEFT JOIN holds h ON h.id = c.hold_id
        WHERE c.held != COALESCE(h.amount, 0)
           OR (c.status = 'ended' AND (c.held != 0 OR (h.id IS NOT NULL
                                                        AND h.released_at IS NULL)))
        ORDER BY c.id
        """,
    )
    return [
        f"call {cid} ({st}) says it holds {held}; its hold has {amount}"
        + (" and is still open" if st == "ended" and released is None else "")
        for cid, st, held, amount, released in rows
    ]


CORE_CHECKS: tuple[Check, ...] = (
    _sum_is_zero,
    _balances_match_postings,
    _held_matches_holds,
    _available_not_negative,
    _transfers_balanced,
    _running_balances,
    _released_holds_empty,
    _calls_match_their_transfers,
    _host_share_formula,
    _ended_calls_cost_what_they_lasted,
    _call_holds,
)


async def totals(session: AsyncSession) -> dict[str, int]:
    row = (
        await session.execute(
            text(
                """
                SELECT
                  (SELECT COUNT(*) FROM accounts),
                  (SELECT COUNT(*) FROM transfers),
                  (SELECT COALESCE(-SUM(balance), 0) FROM accounts WHERE kind = 'issuance'),
                  (SELECT COALESCE(SUM(balance), 0) FROM accounts WHERE kind = 'wallet'),
                  (SELECT COALESCE(SUM(held), 0) FROM accounts),
                  (SELECT COALESCE(SUM(balance), 0) FROM accounts WHERE kind = 'earnings'),
                  (SELECT COALESCE(SUM(balance), 0) FROM accounts WHERE kind = 'revenue')
                """
            )
        )
    ).one()
    names = ("accounts", "transfers", "issued", "wallets", "held", "earnings", "revenue")
    return {name: int(value) for name, value in zip(names, row, strict=True)}


async def check_ledger(session: AsyncSession) -> LedgerReport:
    """Run every invariant check; ``ok`` is True only when none reports a problem."""
    problems: list[str] = []
    for check in CORE_CHECKS:
        problems.extend(await check(session))
    return LedgerReport(ok=not problems, problems=problems, totals=await totals(session))
