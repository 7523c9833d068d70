from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from callmeter.auth.dependencies import AdminUser
from callmeter.kit.deps import RuntimeDep, SessionDep
from callmeter.kit.idempotency import IdempotencyKey, run_once
from callmeter.ledger import service as ledger
from callmeter.ledger.check import check_ledger
from callmeter.ledger.schemas import GrantIn, GrantOut, LedgerCheckOut, TransferOut

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post("/grants", status_code=status.HTTP_201_CREATED)
async def create_grant(
    body: GrantIn,
    admin: AdminUser,
    idempotency_key: IdempotencyKey,
    runtime: RuntimeDep,
    session: SessionDep,
    response: Response,
) -> GrantOut:
    """Give coins to a client. Repeating the Idempotency-Key replays the first response
    without a second credit; the same key with a different body is 409."""
    now = runtime.clock.now()

    async def perform() -> tuple[int, dict[str, Any]]:
        result = await ledger.grant(
            session,
            user_id=body.user_id,
            amount=body.amount,
            idempotency_key=f"grant:{admin.id}:{idempotency_key}",
            now=now,
            note=body.note,
        )
        out = GrantOut(transfer=TransferOut.model_validate(result.transfer))
        return status.HTTP_201_CREATED, out.model_dump(mode="json")

    stored = await run_once(
        session,
        scope=f"admin.grants:{admin.id}",
        key=idempotency_key,
        request=body.model_dump(mode="json"),
        now=now,
        perform=perform,
    )
    response.status_code = stored.status_code
    return GrantOut.model_validate(stored.body)


@router.get("/ledger/check")
async def ledger_check(_admin: AdminUser, session: SessionDep) -> LedgerCheckOut:
    """Verify every ledger invariant; ``problems`` names each one that fails."""
    report = await check_ledger(session)
    return LedgerCheckOut(ok=report.ok, problems=report.problems, totals=report.totals)
