"""Coins in: the pack catalogue, purchases, Stripe's webhook and the test checkout."""

from __future__ import annotations

import secrets
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Query, Request, status

from callmeter.auth.dependencies import AdminUser, ClientUser, CurrentUser
from callmeter.errors import NotFound
from callmeter.kit.deps import RuntimeDep, SessionDep
from callmeter.kit.idempotency import IdempotencyKey
from callmeter.kit.pagination import DEFAULT_LIMIT, Before, Limit, PathId
from callmeter.models import PurchaseStatus
from callmeter.payments import service, webhooks
from callmeter.payments.provider import TEST_INTENT_PREFIX, TestProvider, provider
from callmeter.payments.schemas import (
    CoinPackOut,
    CoinPacksOut,
    PurchaseCreated,
    PurchaseIn,
    PurchaseOut,
    PurchasesPage,
    RedirectOut,
    StripeWebhookAck,
    TestCheckoutOut,
    UnfrozenOut,
)

router = APIRouter(prefix="/v1", tags=["purchases"])
webhooks_router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
test_checkout_router = APIRouter(prefix="/v1/test-checkout", tags=["test payments"])
admin_router = APIRouter(prefix="/v1/admin", tags=["admin"])

Currency = Annotated[str | None, Query(pattern=r"^[a-z]{3}$", description="e.g. eur, usd")]
SessionId = Annotated[str, Path(min_length=1, max_length=255)]


@router.get("/coin-packs")
async def list_coin_packs(
    _user: CurrentUser, runtime: RuntimeDep, currency: Currency = None
) -> CoinPacksOut:
    """The coin packs for sale (the server's prices: a purchase names only the pack)."""
    settings = runtime.settings
    return CoinPacksOut(
        provider="stripe" if settings.stripe_enabled else "test",
        currencies=sorted({p.currency for p in settings.coin_packs}),
        items=[CoinPackOut.of(p) for p in service.packs(settings, currency)],
    )


@router.post("/purchases", status_code=status.HTTP_201_CREATED)
async def create_purchase(
    body: PurchaseIn,
    client: ClientUser,
    idempotency_key: IdempotencyKey,
    runtime: RuntimeDep,
    session: SessionDep,
    request: Request,
) -> PurchaseCreated:
    """Buy a coin pack: a pending purchase and its hosted checkout (`checkout_url`, where
    the browser goes to pay). The coins arrive when the provider says it was paid. The same
    Idempotency-Key returns the same purchase and checkout (another pack: 409); 403
    `account_frozen` while a payment dispute is open; 429 `too_many_purchases`; 503
    `payment_provider_unavailable` (nothing was charged: repeat with the same key)."""
    purchase = await service.start_purchase(
        session,
        provider(runtime),
        user=client,
        pack_id=body.pack_id,
        request_key=idempotency_key,
        return_base=runtime.settings.public_url or str(request.base_url),
        settings=runtime.settings,
        now=runtime.clock.now(),
    )
    out = PurchaseOut.of(purchase)
    return PurchaseCreated(purchase=out, checkout_url=out.checkout_url)


@router.get("/purchases")
async def list_purchases(
    user: CurrentUser, session: SessionDep, limit: Limit = DEFAULT_LIMIT, before: Before = None
) -> PurchasesPage:
    """Your purchases, newest first: status, refunds and disputes — your receipts."""
    rows = await service.list_purchases(session, user, limit=limit + 1, before=before)
    items = [PurchaseOut.of(p) for p in rows[:limit]]
    return PurchasesPage(items=items, next_before=items[-1].id if len(rows) > limit else None)


@router.get("/purchases/{purchase_id}")
async def get_purchase(purchase_id: PathId, user: CurrentUser, session: SessionDep) -> PurchaseOut:
    """One of your purchases (the success page polls it until it is paid)."""
    return PurchaseOut.of(await service.get_purchase(session, user, purchase_id))


@webhooks_router.post("/stripe")
async def stripe_webhook(
    request: Request,
    runtime: RuntimeDep,
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> StripeWebhookAck:
    """Stripe's webhooks: the raw body, signed (`Stripe-Signature`). 400 when the signature
    does not verify or is older than Stripe's tolerance; a repeated event id is
    acknowledged with no second effect; 5xx (so Stripe retries) when the database fails."""
    new, outcome = await webhooks.receive(
        runtime, provider(runtime), await request.body(), stripe_signature
    )
    return StripeWebhookAck(status="ok" if new else "duplicate", outcome=outcome)


# --- the built-in test provider's checkout page (no Stripe keys) ---------------------


def _test_provider(runtime: RuntimeDep) -> TestProvider:
    found = provider(runtime)
    if not isinstance(found, TestProvider):
        raise NotFound("there is no test checkout: payments go through Stripe")
    return found


def _return_url(purchase_id: int, result: str) -> str:
    return f"/coins/return?purchase={purchase_id}&result={result}"


@test_checkout_router.get("/{session_id}")
async def get_test_checkout(session_id: SessionId, runtime: RuntimeDep) -> TestCheckoutOut:
    """The test checkout page's data. The session id is the capability (as a Stripe
    checkout URL is): no sign-in needed."""
    _test_provider(runtime)
    purchase = await service.purchase_of_checkout(runtime.read_sessionmaker, session_id)
    state: Literal["open", "complete", "expired"] = (
        "open" if purchase.status == PurchaseStatus.pending
        else "expired" if purchase.status in (PurchaseStatus.expired, PurchaseStatus.failed)
        else "complete"
    )  # fmt: skip
    return TestCheckoutOut(
        session_id=session_id, purchase_id=purchase.id, pack_id=purchase.pack_id,
        coins=purchase.coins, bonus_coins=purchase.bonus_coins, currency=purchase.currency,
        unit_amount=purchase.unit_amount, status=state,
        success_url=_return_url(purchase.id, "success"),
        cancel_url=_return_url(purchase.id, "cancel"),
    )  # fmt: skip


@test_checkout_router.post("/{session_id}/{action}")
async def act_on_test_checkout(
    session_id: SessionId, action: Literal["pay", "fail", "cancel"], runtime: RuntimeDep
) -> RedirectOut:
    """Pay, fail or cancel a test checkout: sends the Stripe event it would cause (signed
    as Stripe signs, to the same webhook code) and says where the browser goes next."""
    test = _test_provider(runtime)
    purchase = await service.purchase_of_checkout(runtime.read_sessionmaker, session_id)
    kind = {
        "pay": "checkout.session.completed",
        "fail": "checkout.session.async_payment_failed",
        "cancel": "checkout.session.expired",
    }[action]
    paid = action == "pay"
    checkout = {
        "id": session_id, "object": "checkout.session", "mode": "payment",
        "amount_total": purchase.unit_amount, "currency": purchase.currency,
        "payment_status": "paid" if paid else "unpaid",
        "status": "complete" if action != "cancel" else "expired",
        "payment_intent": f"{TEST_INTENT_PREFIX}{purchase.id}" if paid else None,
        "client_reference_id": str(purchase.user_id),
        "metadata": {"purchase_id": str(purchase.id)},
    }  # fmt: skip
    event = {
        "id": f"evt_test_local_{secrets.token_hex(16)}", "object": "event",
        "type": kind, "created": int(runtime.clock.now().timestamp()), "livemode": False,
        "api_version": "2025-01-27.acacia", "pending_webhooks": 1,
        "data": {"object": checkout},
    }  # fmt: skip
    body, signature = test.sign(event)
    await webhooks.receive(runtime, test, body, signature)
    return RedirectOut(
        redirect_url=_return_url(purchase.id, "cancel" if action == "cancel" else "success")
    )


@admin_router.post("/users/{user_id}/unfreeze")
async def unfreeze_client(user_id: PathId, _admin: AdminUser, session: SessionDep) -> UnfrozenOut:
    """Lift a client's freeze after a payment dispute (409 while one is still open)."""
    user = await service.unfreeze(session, user_id)
    return UnfrozenOut(user_id=user.id, frozen=user.frozen_at is not None)
