from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import text

from callmeter.admin.schemas import AdminUserOut, AdminUsersPage
from callmeter.auth import service as auth
from callmeter.auth.dependencies import AdminUser
from callmeter.calls import queries
from callmeter.calls import service as calls
from callmeter.calls.schemas import CallEnvelope, CallOut, CallsPage, RefundIn, RefundOut
from callmeter.kit.deps import RuntimeDep, SessionDep
from callmeter.kit.idempotency import IdempotencyKey, run_once
from callmeter.kit.pagination import DEFAULT_LIMIT, Before, Limit, PathId
from callmeter.kit.text import MAX_ID, IsoDatetime, SearchText
from callmeter.ledger import service as ledger
from callmeter.ledger.schemas import GrantIn, GrantOut, LedgerCheckOut, TransferOut
from callmeter.models import CallStatus, Role
from callmeter.payments.check import check_everything

router = APIRouter(prefix="/v1/admin", tags=["admin"])

CallId = PathId


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
            idempotency_key=ledger.grant_key(admin.id, idempotency_key),
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


@router.get("/users")
async def search_users(
    _admin: AdminUser,
    session: SessionDep,
    q: Annotated[
        SearchText | None,
        Query(description="a part of the username or display name, any case"),
    ] = None,
    role: Role | None = None,
    limit: Limit = DEFAULT_LIMIT,
    before: Before = None,
) -> AdminUsersPage:
    """Find users (newest first) with their balance: a client's wallet, a host's earnings."""
    found = await auth.search_users(
        session, query=q or None, role=role, limit=limit + 1, before=before
    )
    items = [AdminUserOut.of(user, account) for user, account in found[:limit]]
    return AdminUsersPage(items=items, next_before=items[-1].id if len(found) > limit else None)


@router.get("/ledger/check")
async def ledger_check(
    _admin: AdminUser, runtime: RuntimeDep, session: SessionDep
) -> LedgerCheckOut:
    """Verify every ledger and call invariant; ``problems`` names each one that fails. The
    audit reads every transfer and call, so it runs without the API's statement timeout (as
    the CLI's)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SET LOCAL statement_timeout = 0"))
    report = await check_everything(session, hold_days=runtime.settings.payout_hold_days)
    return LedgerCheckOut(ok=report.ok, problems=report.problems, totals=report.totals)


@router.get("/calls")
async def list_calls(
    _admin: AdminUser,
    runtime: RuntimeDep,
    session: SessionDep,
    status_filter: CallStatus | None = Query(default=None, alias="status"),
    user_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="calls where this user is a party")
    ] = None,
    since: Annotated[IsoDatetime | None, Query(description="rung at or after")] = None,
    until: Annotated[IsoDatetime | None, Query(description="rung before")] = None,
    limit: Limit = DEFAULT_LIMIT,
    before: Before = None,
) -> CallsPage:
    """All calls, newest first; ``status=active`` for the live ones, ``user_id`` for one
    user's, ``since``/``until`` (ISO 8601 with a time zone) for a period."""
    found = await queries.list_calls(
        session, user_id=user_id, status=status_filter, limit=limit + 1, before=before,
        since=since, until=until,
    )  # fmt: skip
    names = await queries.party_names(session, found[:limit])
    return CallsPage.of(found, limit, runtime.clock.now(), runtime.settings, names)


@router.post("/calls/{call_id}/end")
async def end_call(
    call_id: CallId, _admin: AdminUser, runtime: RuntimeDep, session: SessionDep
) -> CallEnvelope:
    """Force a call to end now: billed to this moment, never past the moment both parties
    were last known present (a deadline the call already passed decides instead). Idempotent."""
    now = runtime.clock.now()
    call = await calls.admin_end(session, call_id=call_id, settings=runtime.settings, now=now)
    return CallEnvelope(call=CallOut.of(call, now, runtime.settings))


@router.post("/calls/{call_id}/refund")
async def refund_call(
    call_id: CallId,
    body: RefundIn,
    admin: AdminUser,
    idempotency_key: IdempotencyKey,
    runtime: RuntimeDep,
    session: SessionDep,
    response: Response,
) -> RefundOut:
    """Give coins of an ended call back to its client (all that is left when ``amount`` is
    omitted), taken from the host's earnings and platform revenue in proportion."""
    now = runtime.clock.now()

    async def perform() -> tuple[int, dict[str, Any]]:
        call, refunded = await calls.refund(
            session, call_id=call_id, amount=body.amount, reason=body.reason, now=now
        )
        return status.HTTP_200_OK, RefundOut(
            call=CallOut.of(call, now, runtime.settings), refunded=refunded
        ).model_dump(mode="json")

    stored = await run_once(
        session,
        scope=f"admin.refund:{admin.id}",
        key=idempotency_key,
        request={"call_id": call_id, **body.model_dump(mode="json")},
        now=now,
        perform=perform,
    )
    response.status_code = stored.status_code
    return RefundOut.model_validate(stored.body)
