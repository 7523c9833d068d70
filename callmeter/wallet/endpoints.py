from __future__ import annotations

from fastapi import APIRouter

from callmeter.auth.dependencies import CurrentUser
from callmeter.kit.deps import SessionDep
from callmeter.kit.pagination import DEFAULT_LIMIT, Before, Limit
from callmeter.ledger import service
from callmeter.ledger.schemas import EntriesOut, EntryOut, WalletOut

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
