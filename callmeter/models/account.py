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
    """What an account holds. Only ``issuance`` may go negative: it is where coins come from."""

    wallet = "wallet"  # a client's coins
    earnings = "earnings"  # a host's share of call charges
    revenue = "revenue"  # the platform's share
    issuance = "issuance"  # the outside world: negative by the coins it has put in


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("kind IN ('wallet', 'earnings', 'revenue', 'issuance')", name="kind"),
        # available = balance - held can never go below zero (design rule 4).
        CheckConstraint("held >= 0 AND (kind = 'issuance' OR balance >= held)", name="available"),
        CheckConstraint("kind != 'issuance' OR held = 0", name="issuance_holds_nothing"),
        UniqueConstraint("user_id", "kind"),
        # One platform revenue and one issuance account.
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
