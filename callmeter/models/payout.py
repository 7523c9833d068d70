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


class PayoutStatus(enum.StrEnum):
    requested = "requested"  # the coins are held on the host's earnings, awaiting review
    approved = "approved"  # captured into payout_clearing; the provider is paying
    paid = "paid"  # the provider paid: the coins left circulation
    failed = "failed"  # the provider could not pay: the coins went back to earnings
    reversed = "reversed"  # paid, then the transfer was reversed: back to earnings
    rejected = "rejected"  # an admin said no: the hold was released


class Payout(Base):
    """A host withdrawing earnings: the coins, what they pay in money (at the rate recorded
    here), and each step of its review and payment."""

    __tablename__ = "payouts"
    __table_args__ = (
        UniqueConstraint("host_id", "request_key"),
        CheckConstraint(
            "status IN ('requested', 'approved', 'paid', 'failed', 'reversed', 'rejected')",
            name="status",
        ),
        CheckConstraint(
            "amount > 0 AND rate > 0 AND amount_minor > 0 AND coins_returned >= 0 "
            "AND coins_returned <= amount",
            name="amounts",
        ),
        Index("ix_payouts_host_id_id", "host_id", "id"),
        Index("ix_payouts_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    request_key: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger)  # coins
    currency: Mapped[str] = mapped_column(String(3))
    rate: Mapped[int] = mapped_column(Integer)  # minor units per coin
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    provider: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    hold_id: Mapped[int | None] = mapped_column(BigInteger)
    matured_at_request: Mapped[int] = mapped_column(BigInteger)  # withdrawable when asked
    coins_returned: Mapped[int] = mapped_column(BigInteger, default=0)  # by a reversal
    reference: Mapped[str | None] = mapped_column(String(255))  # bank ref / Stripe transfer
    reason: Mapped[str | None] = mapped_column(String(500))  # rejection or failure
    reviewed_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
