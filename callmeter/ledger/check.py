"""The ledger's half of ``callmeter ledger check``: proves every coin against the ledger
invariants of docs/design.md (accounts, transfers, postings, holds). It knows nothing about
calls: their invariants are ``callmeter.calls.check``, which runs this check and its own.

Each check is one SQL query that returns only the rows that break an invariant, so the
check scales with the ledger and reports exactly what is wrong.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.ledger.writer_check import transfers_keyed_by_the_writer

MAX_PROBLEMS_PER_CHECK = 50

Check = Callable[[AsyncSession], Awaitable[list[str]]]


@dataclass
class LedgerReport:
    ok: bool
    problems: list[str]
    totals: dict[str, int] = field(default_factory=dict)


async def problem_rows(session: AsyncSession, sql: str) -> list[tuple[object, ...]]:
    result = await session.execute(text(f"{sql} LIMIT {MAX_PROBLEMS_PER_CHECK}"))
    return [tuple(row) for row in result]


async def _sum_is_zero(session: AsyncSession) -> list[str]:
    total = (await session.execute(text("SELECT COALESCE(SUM(balance), 0) FROM accounts"))).scalar()
    return [] if total == 0 else [f"the sum of all account balances is {total}, not 0"]


async def _balances_match_postings(session: AsyncSession) -> list[str]:
    rows = await problem_rows(
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
    rows = await problem_rows(
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
    rows = await problem_rows(
        session,
        """
        SELECT id, kind, balance, held FROM accounts
        WHERE held < 0 OR (kind NOT IN ('issuance', 'losses') AND balance - held < 0)
        ORDER BY id
        """,
    )
    return [
        f"account {aid} ({kind}) has balance {bal} and held {held}: available is negative"
        for aid, kind, bal, held in rows
    ]


async def _transfers_balanced(session: AsyncSession) -> list[str]:
    rows = await problem_rows(
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
    rows = await problem_rows(
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
    rows = await problem_rows(
        session,
        "SELECT id, amount FROM holds WHERE released_at IS NOT NULL AND amount != 0 ORDER BY id",
    )
    return [f"hold {hid} is released but still reserves {amount}" for hid, amount in rows]


CORE_CHECKS: tuple[Check, ...] = (
    _sum_is_zero,
    _balances_match_postings,
    _held_matches_holds,
    _available_not_negative,
    _transfers_balanced,
    _running_balances,
    _released_holds_empty,
    transfers_keyed_by_the_writer,  # no transfer was written but by ledger.service.post
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
                  (SELECT COALESCE(SUM(balance), 0) FROM accounts WHERE kind = 'revenue'),
                  (SELECT COALESCE(-SUM(balance), 0) FROM accounts WHERE kind = 'losses')
                """
            )
        )
    ).one()
    names = (
        "accounts", "transfers", "issued", "wallets", "held", "earnings", "revenue", "losses"
    )  # fmt: skip
    return {name: int(value) for name, value in zip(names, row, strict=True)}


async def check_ledger(session: AsyncSession) -> LedgerReport:
    """Run every ledger invariant check; ``ok`` is True only when none reports a problem."""
    problems: list[str] = []
    for check in CORE_CHECKS:
        problems.extend(await check(session))
    return LedgerReport(ok=not problems, problems=problems, totals=await totals(session))
