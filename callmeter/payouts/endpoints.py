"""Coins out: a host's earnings and payouts; the admin's review queue."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response, status

from callmeter.auth.dependencies import AdminUser, HostUser
from callmeter.errors import ValidationFailed
from callmeter.kit.deps import RuntimeDep, SessionDep
from callmeter.kit.idempotency import IdempotencyKey, run_once
from callmeter.kit.pagination import DEFAULT_LIMIT, Before, Limit, PathId
from callmeter.models import PayoutStatus
from callmeter.payouts import service
from callmeter.payouts.provider import payout_provider
from callmeter.payouts.schemas import (
    AdjustmentIn,
    AdjustmentOut,
    EarningsOut,
    MarkPaidIn,
    OnboardingOut,
    PayoutIn,
    PayoutOut,
    PayoutsPage,
    ReviewIn,
    ReviewItem,
    ReviewPage,
)

router = APIRouter(prefix="/v1", tags=["payouts"])
admin_router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.get("/earnings")
async def get_earnings(host: HostUser, runtime: RuntimeDep, session: SessionDep) -> EarningsOut:
    """Your earnings: matured (withdrawable now), maturing (earned within the hold), pending
    (requested, awaiting review) and paid."""
    settings = runtime.settings
    found = await service.earnings(session, host, settings, runtime.clock.now())
    provider = payout_provider(runtime)
    return EarningsOut.of(
        found,
        currency=settings.payout_currency,
        rate=settings.payout_rates[settings.payout_currency],
        provider=provider.name,
        enabled=not provider.automatic or host.payouts_enabled,
    )


@router.post("/payouts", status_code=status.HTTP_201_CREATED)
async def create_payout(
    body: PayoutIn, host: HostUser, idempotency_key: IdempotencyKey, runtime: RuntimeDep,
    session: SessionDep,
) -> PayoutOut:  # fmt: skip
    """Withdraw matured earnings: the coins are held until an admin reviews the request.
    409 `payout_exceeds_matured` (with `matured`), 422 `payout_below_minimum` (with
    `minimum`), 409 `too_many_payouts` (with `pending`), 409 `payouts_not_enabled`."""
    payout = await service.request_payout(
        session, host, amount=body.amount, request_key=idempotency_key,
        provider=payout_provider(runtime), settings=runtime.settings, now=runtime.clock.now(),
    )  # fmt: skip
    return PayoutOut.of(payout)


@router.get("/payouts")
async def list_payouts(
    host: HostUser, session: SessionDep, limit: Limit = DEFAULT_LIMIT, before: Before = None
) -> PayoutsPage:
    """Your payouts, newest first."""
    rows = await service.list_for_host(session, host, limit=limit + 1, before=before)
    items = [PayoutOut.of(p) for p in rows[:limit]]
    return PayoutsPage(items=items, next_before=items[-1].id if len(rows) > limit else None)


@router.post("/payouts/account-link")
async def payout_account_link(
    host: HostUser, runtime: RuntimeDep, session: SessionDep, request: Request
) -> OnboardingOut:
    """Stripe Connect: the link where you set up the account your payouts go to."""
    url = await service.onboarding_link(
        session, host, provider=payout_provider(runtime),
        return_base=runtime.settings.public_url or str(request.base_url),
    )  # fmt: skip
    return OnboardingOut(url=url)


@admin_router.get("/payouts")
async def review_queue(
    _admin: AdminUser,
    session: SessionDep,
    status_filter: PayoutStatus | None = Query(default=PayoutStatus.requested, alias="status"),
    limit: Limit = DEFAULT_LIMIT,
    before: Before = None,
) -> ReviewPage:
    """Payouts to review (``status=requested``, the default; any status), each with its
    host's history: how many payouts of each status, and their coins."""
    rows = await service.list_for_review(session, status_filter, limit=limit + 1, before=before)
    items = []
    for payout in rows[:limit]:
        history = await service.host_history(session, payout.host_id)
        items.append(
            ReviewItem(
                payout=PayoutOut.of(payout),
                host_history={k: [n, coins] for k, (n, coins) in history.items()},
            )
        )
    return ReviewPage(items=items, next_before=items[-1].payout.id if len(rows) > limit else None)


@admin_router.post("/payouts/{payout_id}/approve")
async def approve_payout(
    payout_id: PathId, admin: AdminUser, runtime: RuntimeDep, session: SessionDep
) -> PayoutOut:
    """Approve: the coins move to payout_clearing; Stripe Connect pays at once (a refusal
    returns them to the host's earnings), a manual payout waits to be marked paid. Approving
    again is harmless (and retries a transfer Stripe did not answer)."""
    payout = await service.approve(
        session, payout_id, admin=admin, provider=payout_provider(runtime),
        now=runtime.clock.now(),
    )  # fmt: skip
    return PayoutOut.of(payout)


@admin_router.post("/payouts/{payout_id}/reject")
async def reject_payout(
    payout_id: PathId, body: ReviewIn, admin: AdminUser, runtime: RuntimeDep, session: SessionDep
) -> PayoutOut:
    """Reject a requested payout (with a reason): its coins are released to the host."""
    payout = await service.reject(
        session, payout_id, admin=admin, reason=body.reason, now=runtime.clock.now()
    )
    return PayoutOut.of(payout)


@admin_router.post("/payouts/{payout_id}/paid")
async def mark_payout_paid(
    payout_id: PathId, body: MarkPaidIn, _admin: AdminUser, runtime: RuntimeDep,
    session: SessionDep,
) -> PayoutOut:  # fmt: skip
    """A manual payout was paid outside callmeter: record its reference."""
    payout = await service.mark_paid(
        session, payout_id, reference=body.reference, now=runtime.clock.now()
    )
    return PayoutOut.of(payout)


@admin_router.post("/payouts/{payout_id}/failed")
async def mark_payout_failed(
    payout_id: PathId, body: ReviewIn, _admin: AdminUser, runtime: RuntimeDep,
    session: SessionDep,
) -> PayoutOut:  # fmt: skip
    """A manual payout could not be paid: its coins go back to the host's earnings."""
    payout = await service.mark_failed(
        session, payout_id, reason=body.reason, now=runtime.clock.now()
    )
    return PayoutOut.of(payout)


@admin_router.post("/earnings-adjustments", status_code=status.HTTP_201_CREATED)
async def adjust_earnings(
    body: AdjustmentIn, admin: AdminUser, idempotency_key: IdempotencyKey, runtime: RuntimeDep,
    session: SessionDep, response: Response,
) -> AdjustmentOut:  # fmt: skip
    """A deliberate change of a host's earnings, with a reason (audited in the ledger): the
    platform pays a positive one (from losses) and takes a negative one back."""
    if body.amount == 0:
        raise ValidationFailed("amount: an adjustment is not 0")
    now = runtime.clock.now()

    async def perform() -> tuple[int, dict[str, Any]]:
        transfer_id = await service.adjust_earnings(
            session, host_id=body.host_id, amount=body.amount, reason=body.reason,
            admin=admin, request_key=idempotency_key, now=now,
        )  # fmt: skip
        return status.HTTP_201_CREATED, AdjustmentOut(transfer_id=transfer_id).model_dump()

    stored = await run_once(
        session, scope=f"admin.adjustments:{admin.id}", key=idempotency_key,
        request=body.model_dump(mode="json"), now=now, perform=perform,
    )  # fmt: skip
    response.status_code = stored.status_code
    return AdjustmentOut.model_validate(stored.body)
