from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from callmeter.kit.text import Coins, InputModel, Note, PositiveId
from callmeter.models import Payout
from callmeter.payouts.service import Earnings


class PayoutIn(InputModel):
    amount: Coins = Field(description="coins to withdraw")


class PayoutOut(BaseModel):
    id: int
    host_id: int
    amount: int
    currency: str
    rate: int = Field(description="minor units (cents) paid per coin")
    amount_minor: int
    provider: str
    status: str
    reference: str | None
    reason: str | None
    coins_returned: int
    created_at: datetime
    reviewed_at: datetime | None
    settled_at: datetime | None

    @classmethod
    def of(cls, p: Payout) -> PayoutOut:
        return cls(
            id=p.id, host_id=p.host_id, amount=p.amount, currency=p.currency, rate=p.rate,
            amount_minor=p.amount_minor, provider=p.provider, status=p.status,
            reference=p.reference, reason=p.reason, coins_returned=p.coins_returned,
            created_at=p.created_at, reviewed_at=p.reviewed_at, settled_at=p.settled_at,
        )  # fmt: skip


class PayoutsPage(BaseModel):
    items: list[PayoutOut]
    next_before: int | None


class EarningsOut(BaseModel):
    balance: int
    pending: int = Field(description="held by payout requests awaiting review")
    matured: int = Field(description="withdrawable now")
    maturing: int = Field(description="earned within the hold: withdrawable later")
    paid: int
    hold_days: int
    minimum: int
    currency: str
    rate: int = Field(description="minor units (cents) paid per coin")
    provider: str
    payouts_enabled: bool = Field(description="can the provider pay this host now")

    @classmethod
    def of(
        cls, e: Earnings, *, currency: str, rate: int, provider: str, enabled: bool
    ) -> EarningsOut:
        return cls(
            balance=e.balance, pending=e.pending, matured=e.matured, maturing=e.maturing,
            paid=e.paid, hold_days=e.hold_days, minimum=e.minimum, currency=currency,
            rate=rate, provider=provider, payouts_enabled=enabled,
        )  # fmt: skip


class ReviewIn(InputModel):
    reason: Annotated[Note, Field(min_length=1)]


class MarkPaidIn(InputModel):
    reference: Annotated[Note, Field(min_length=1, max_length=255)] = Field(
        description="the bank's or PayPal's"
    )


class ReviewItem(BaseModel):
    payout: PayoutOut
    host_history: dict[str, list[int]] = Field(description="status -> [count, coins]")


class ReviewPage(BaseModel):
    items: list[ReviewItem]
    next_before: int | None


class AdjustmentIn(InputModel):
    host_id: PositiveId
    amount: Annotated[int, Field(strict=True, ge=-1_000_000_000, le=1_000_000_000)] = Field(
        description="coins, not 0: positive paid by the platform, negative taken back",
        json_schema_extra={"not": {"const": 0}},
    )
    reason: Annotated[Note, Field(min_length=3, max_length=400)]


class AdjustmentOut(BaseModel):
    transfer_id: int


class OnboardingOut(BaseModel):
    url: str
