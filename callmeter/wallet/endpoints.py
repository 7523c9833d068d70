from __future__ import annotations

import csv
import io

from fastapi import APIRouter, Response
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.auth.dependencies import CurrentUser
from callmeter.kit.deps import SessionDep
from callmeter.kit.pagination import DEFAULT_LIMIT, Before, Limit
from callmeter.ledger import service
from callmeter.ledger.schemas import EntriesOut, EntryOut, WalletOut
from callmeter.wallet import statement
from callmeter.wallet.schemas import StatementCallOut, StatementLineOut, StatementOut

router = APIRouter(prefix="/v1", tags=["wallet"])


@router.get("/wallet")
async def get_wallet(user: CurrentUser, session: SessionDep) -> WalletOut:
    """Your coins: balance, what is held for calls in progress, and what is available."""
    return WalletOut.of(await service.account_for_user(session, user.id))


@router.get("/wallet/entries")
async def list_entries(
    user: CurrentUser,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    before: Before = None,
) -> EntriesOut:
    """Your statement, newest first."""
    rows = await service.statement(session, user.id, limit=limit + 1, before=before)
    items = [
        EntryOut(
            id=posting.id,
            amount=posting.amount,
            kind=transfer.kind,
            call_id=transfer.call_id,
            created_at=transfer.created_at,
            balance_after=posting.balance_after,
        )
        for posting, transfer in rows[:limit]
    ]
    next_before = items[-1].id if len(rows) > limit else None
    return EntriesOut(items=items, next_before=next_before)


async def _lines_out(
    session: AsyncSession, user_id: int, lines: list[statement.Line]
) -> list[StatementLineOut]:
    facts = await statement.call_facts(session, user_id, lines)
    return [
        StatementLineOut(
            id=line.id,
            kind=line.kind,
            amount=line.amount,
            balance_after=line.balance_after,
            created_at=line.created_at,
            call=None
            if fact is None or line.call_id is None
            else StatementCallOut(
                id=line.call_id,
                with_user_id=fact.with_user_id,
                with_name=fact.with_name,
                seconds=fact.seconds,
            ),
        )
        for line, fact in zip(lines, facts, strict=True)
    ]


@router.get("/wallet/statement")
async def get_statement(
    user: CurrentUser,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    before: Before = None,
) -> StatementOut:
    """Your statement as a person reads it, newest first: one line per event (a call's
    charge is one line, whatever the platform's split), with the other party of each call
    and the talk time each charge paid for."""
    lines, next_before = await statement.page(session, user.id, limit=limit, before=before)
    return StatementOut(items=await _lines_out(session, user.id, lines), next_before=next_before)


CSV_COLUMNS = ("date", "kind", "call", "with", "seconds", "amount", "balance_after")


@router.get(
    "/wallet/statement.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "every line, newest first"}},
)
async def export_statement(user: CurrentUser, session: SessionDep) -> Response:
    """Your whole statement as CSV (UTF-8, a header row, newest first), for a spreadsheet.
    Read whole inside the request's transaction: one consistent snapshot."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    async for lines in statement.everything(session, user.id):
        for line in await _lines_out(session, user.id, lines):
            call = line.call
            writer.writerow(
                (
                    line.created_at.isoformat(),
                    line.kind,
                    call.id if call else "",
                    _safe_cell(call.with_name) if call else "",
                    call.seconds if call and call.seconds is not None else "",
                    line.amount,
                    line.balance_after,
                )
            )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="callmeter-statement.csv"'},
    )


def _safe_cell(text: str) -> str:
    """A name that a spreadsheet would run as a formula (=, +, -, @) is kept as text."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
