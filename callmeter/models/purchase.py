from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from callmeter.models.base import Base, Id, UTCDateTime


class PurchaseStatus(enum.StrEnum):
    pending = "pending"  # checkout created (or being created), not paid yet
    paid = "paid"  # the coins (and bonus) were credited
    expired = "expired"  # the checkout expired or was cancelled: nothing was paid
    failed = "failed"  # a delayed payment method failed
    review = "review"  # paid, but Stripe's amount or currency differ from ours: no coins


class DisputeStatus(enum.StrEnum):
    open = "open"
    won = "won"
    lost = "lost"


class Purchase(Base):
    """A client buying a coin pack: the pack's terms as sold (the catalogue may change), the
    Checkout Session that collects the money, and what refunds and disputes took back."""

    __tablename__ = "purchases"
    __table_args__ = (
        UniqueConstraint("user_id", "request_key"),
        CheckConstraint(
            "status IN ('pending', 'paid', 'expired', 'failed', 'review')", name="status"
        ),
        CheckConstraint("dispute IS NULL OR dispute IN ('open', 'won', 'lost')", name="dispute"),
        CheckConstraint(
            "coins > 0 AND bonus_coins >= 0 AND unit_amount > 0 "
            "AND refunded_amount >= 0 AND coins_reversed >= 0 "
            "AND coins_reversed <= coins + bonus_coins",
            name="amounts",
        ),
        Index("ix_purchases_user_id_id", "user_id", "id"),
        Index("ix_purchases_payment_intent_id", "payment_intent_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    request_key: Mapped[str] = mapped_column(String(200))  # the Idempotency-Key
    pack_id: Mapped[str] = mapped_column(String(32))
    coins: Mapped[int] = mapped_column(BigInteger)
    bonus_coins: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    unit_amount: Mapped[int] = mapped_column(BigInteger)  # minor units
    provider: Mapped[str] = mapped_column(String(16))  # stripe | test
    status: Mapped[str] = mapped_column(String(16), default=PurchaseStatus.pending)
    checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    checkout_url: Mapped[str | None] = mapped_column(String(2048))
    payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    review_reason: Mapped[str | None] = mapped_column(String(255))
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)  # cumulative, minor
    coins_reversed: Mapped[int] = mapped_column(BigInteger, default=0)  # taken back so far
    dispute: Mapped[str | None] = mapped_column(String(8))
    dispute_id: Mapped[str | None] = mapped_column(String(255))
    dispute_hold_id: Mapped[int | None] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012

    @property
    def total_coins(self) -> int:
        return self.coins + self.bonus_coins


class PaymentEvent(Base):
    """The inbox of Stripe webhooks: one row per event id, acted on only when new."""

    __tablename__ = "payment_events"
    __table_args__ = (UniqueConstraint("event_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(255))
    purchase_id: Mapped[int | None] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(255))  # what handling it did
    created: Mapped[datetime] = mapped_column(UTCDateTime())  # Stripe's time
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
