"""The calls' half of ``callmeter ledger check``: every call agrees with its transfers and
holds, and costs what its tariff says (docs/design.md, rules 2 and 7).

Bookkeeping (a call's ``charged``, ``host_earned`` and ``refunded`` are the sums of its
transfers; its ``held`` is its hold) is one SQL query each, like the ledger's checks. The
money arithmetic is not repeated in SQL: the expected charge of an ended call and the host's
share of every call come from :func:`callmeter.billing.policy.cost` and
:func:`~callmeter.billing.policy.host_earnings` themselves, in Python, over the calls read in
chunks of ``chunk_size`` rows by id (keyset pagination: constant memory, one index range
scan per chunk).

:func:`check_ledger_and_calls` is what the CLI and the admin API run: the ledger's checks,
then these, as one report.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.billing.policy import Tariff, cost, host_earnings
from callmeter.billing.settlement import tariff_of
from callmeter.ledger.check import MAX_PROBLEMS_PER_CHECK, LedgerReport, check_ledger, problem_rows
from callmeter.models import Call, CallStatus

CHUNK_SIZE = 5_000

# (calls read so far, calls in all): called after every chunk
Progress = Callable[[int, int], None]

_ENDED = str(CallStatus.ended)
# what the Python checks read of a call: its state, then its tariff (the cache key)
_COLUMNS = (
    Call.id,
    Call.status,
    Call.billed_seconds,
    Call.charged,
    Call.host_earned,
    Call.policy,
    Call.rate,
    Call.interval_seconds,
    Call.free_seconds,
    Call.host_share_percent,
)


async def _calls_match_their_transfers(session: AsyncSession) -> list[str]:
    found = await problem_rows(
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
        for cid, ch, he, rf, tch, the, trf in found
    ]


async def _tips_match_their_transfers(session: AsyncSession) -> list[str]:
    """Every tip in a call's chat moved its coins, and no tip transfer lacks its line: per
    call, the tips' amounts and the tip transfers' sums agree."""
    found = await problem_rows(
        session,
        """
        SELECT COALESCE(m.call_id, t.call_id), COALESCE(m.tips, 0), COALESCE(t.moved, 0)
        FROM (
            SELECT call_id, SUM(amount) AS tips FROM call_messages
            WHERE kind = 'tip' GROUP BY call_id
        ) m
        FULL OUTER JOIN (
            SELECT call_id, SUM(amount) AS moved FROM transfers
            WHERE kind IN ('tip', 'tip_fee') GROUP BY call_id
        ) t ON t.call_id = m.call_id
        WHERE COALESCE(m.tips, 0) != COALESCE(t.moved, 0)
        ORDER BY 1
        """,
    )
    return [
        f"call {cid}: its chat shows {tips} coins of tips; its tip transfers moved {moved}"
        for cid, tips, moved in found
    ]


async def _call_holds(session: AsyncSession) -> list[str]:
    found = await problem_rows(
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
        for cid, st, held, amount, released in found
    ]


async def _calls_cost_what_their_tariff_says(
    session: AsyncSession, *, chunk_size: int, progress: Progress | None
) -> tuple[list[str], list[str]]:
    """(host-share problems, cost problems): every call's host earned
    ``host_earnings(tariff, charged)``; every ended call charged ``cost(tariff, billed)``."""
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    conn = await session.connection()  # plain rows: no ORM loading for 100,000s of them
    total = (await conn.execute(select(func.count()).select_from(Call))).scalar_one()
    shares: list[str] = []
    costs: list[str] = []
    # calls share a handful of tariffs: build each Tariff once
    tariffs: dict[tuple[str, int, int, int, int], Tariff] = {}
    after, seen = 0, 0
    while len(shares) < MAX_PROBLEMS_PER_CHECK or len(costs) < MAX_PROBLEMS_PER_CHECK:
        chunk = (
            await conn.execute(
                select(*_COLUMNS).where(Call.id > after).order_by(Call.id).limit(chunk_size)
            )
        ).all()
        if not chunk:
            break
        for row in chunk:
            cid, status, billed, charged, earned = row[:5]
            key: tuple[str, int, int, int, int] = row[5:]
            tariff = tariffs.get(key)
            if tariff is None:
                try:
                    tariff = tariffs[key] = tariff_of(row)
                except ValueError as exc:  # a policy or bounds no tariff may have
                    costs.append(f"call {cid} has no valid tariff {key}: {exc}")
                    continue
            if earned != host_earnings(tariff, charged):
                shares.append(
                    f"call {cid}: host earned {earned} of {charged} charged, "
                    f"not floor({charged} * {tariff.host_share_percent} / 100)"
                )
            if status == _ENDED and charged != (expected := cost(tariff, billed)):
                costs.append(
                    f"ended call {cid} billed {billed} s and charged {charged}, "
                    f"but cost({billed}) is {expected}"
                )
        after, seen = chunk[-1].id, seen + len(chunk)
        if progress is not None:
            progress(seen, max(total, seen))
    return shares[:MAX_PROBLEMS_PER_CHECK], costs[:MAX_PROBLEMS_PER_CHECK]


async def check_calls(
    session: AsyncSession, *, chunk_size: int = CHUNK_SIZE, progress: Progress | None = None
) -> list[str]:
    """Every problem with the calls' invariants (at most 50 per check); [] when none."""
    problems = await _calls_match_their_transfers(session)
    shares, costs = await _calls_cost_what_their_tariff_says(
        session, chunk_size=chunk_size, progress=progress
    )
    problems += shares + costs
    problems += await _call_holds(session)
    problems += await _tips_match_their_transfers(session)
    return problems


async def check_ledger_and_calls(
    session: AsyncSession, *, chunk_size: int = CHUNK_SIZE, progress: Progress | None = None
) -> LedgerReport:
    """``callmeter ledger check``: the ledger's invariants and the calls', one report."""
    report = await check_ledger(session)
    problems = report.problems + await check_calls(
        session, chunk_size=chunk_size, progress=progress
    )
    return LedgerReport(ok=not problems, problems=problems, totals=report.totals)
