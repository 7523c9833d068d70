from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from callmeter.config import CoinPack
from callmeter.kit.text import InputModel
from callmeter.models import Purchase


class CoinPackOut(BaseModel):
    id: str
    coins: int
    bonus_coins: int
    total_coins: int
    currency: str
    unit_amount: int = Field(description="the price in the currency's minor units (cents)")

    @classmethod
    def of(cls, pack: CoinPack) -> CoinPackOut:
        return cls(
            id=pack.id, coins=pack.coins, bonus_coins=pack.bonus_coins,
            total_coins=pack.total_coins, currency=pack.currency, unit_amount=pack.unit_amount,
        )  # fmt: skip


class CoinPacksOut(BaseModel):
    provider: Literal["stripe", "test"]
    currencies: list[str]
    items: list[CoinPackOut]


class PurchaseIn(InputModel):
    pack_id: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_-]*$")


class PurchaseOut(BaseModel):
    id: int
    pack_id: str
    coins: int
    bonus_coins: int
    currency: str
    unit_amount: int
    status: str
    refunded_amount: int
    coins_reversed: int
    dispute: str | None
    created_at: datetime
    paid_at: datetime | None
    checkout_url: str | None = Field(description="where to pay, while the purchase is pending")

    @classmethod
    def of(cls, purchase: Purchase) -> PurchaseOut:
        return cls(
            id=purchase.id, pack_id=purchase.pack_id, coins=purchase.coins,
            bonus_coins=purchase.bonus_coins, currency=purchase.currency,
            unit_amount=purchase.unit_amount, status=purchase.status,
            refunded_amount=purchase.refunded_amount, coins_reversed=purchase.coins_reversed,
            dispute=purchase.dispute, created_at=purchase.created_at, paid_at=purchase.paid_at,
            checkout_url=purchase.checkout_url if purchase.status == "pending" else None,
        )  # fmt: skip


class PurchaseCreated(BaseModel):
    purchase: PurchaseOut
    checkout_url: str | None


class PurchasesPage(BaseModel):
    items: list[PurchaseOut]
    next_before: int | None


class StripeWebhookAck(BaseModel):
    status: Literal["ok", "duplicate"]
    outcome: str


class TestCheckoutOut(BaseModel):
    session_id: str
    purchase_id: int
    pack_id: str
    coins: int
    bonus_coins: int
    currency: str
    unit_amount: int
    status: Literal["open", "complete", "expired"]
    success_url: str
    cancel_url: str


class RedirectOut(BaseModel):
    redirect_url: str


class UnfrozenOut(BaseModel):
    user_id: int
    frozen: bool
