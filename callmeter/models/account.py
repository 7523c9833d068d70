from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from callmeter.models.base import Base, Id, UTCDateTime


class AccountKind(enum.StrEnum):
    """What an account holds. Only the outside world (``issuance`` and ``losses``) may go
    negative: coins come from issuance, and losses pays for coins refunded after they were
    spent."""

    wallet = "wallet"  # a client's coins
    earnings = "earnings"  # a host's share of call charges
    revenue = "revenue"  # the platform's share
    issuance = "issuance"  # the outside world: negative by the coins it has put in
    losses = "losses"  # the platform's: negative by the refunded coins it could not take back
    payout_clearing = "payout_clearing"  # approved payouts the provider has not settled yet


# The accounts that may go negative and hold nothing.
EXTERNAL_KINDS = (AccountKind.issuance, AccountKind.losses)


KINDS = "('wallet', 'earnings', 'revenue', 'issuance', 'losses', 'payout_clearing')"
EXTERNAL = "('issuance', 'losses')"


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint(f"kind IN {KINDS}", name="kind"),
        # available = balance - held can never go below zero (design rule 4).
        CheckConstraint(f"held >= 0 AND (kind IN {EXTERNAL} OR balance >= held)", name="available"),
        CheckConstraint(f"kind NOT IN {EXTERNAL} OR held = 0", name="external_holds_nothing"),
        UniqueConstraint("user_id", "kind"),
        # One platform account of each kind (revenue, issuance, losses).
        Index(
            "ix_accounts_system_kind",
            "kind",
            unique=True,
            sqlite_where=text("user_id IS NULL"),
            postgresql_where=text("user_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
