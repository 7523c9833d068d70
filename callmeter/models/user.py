from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, String, false, true
from sqlalchemy.orm import Mapped, mapped_column

from callmeter.models.base import Base, Id, UTCDateTime


class Role(enum.StrEnum):
    client = "client"
    host = "host"
    admin = "admin"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('client', 'host', 'admin')", name="role"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # Stored lower-case; the unique constraint therefore is case-insensitive.
    username: Mapped[str] = mapped_column(String(32), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    display_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Hosts only: coins per interval (None = the configured default) and availability.
    rate: Mapped[int | None] = mapped_column(BigInteger)
    accepting_calls: Mapped[bool] = mapped_column(Boolean, server_default=true(), default=True)
    # Hosts only: when one of the host's pages last said it is open (docs/api.md, presence).
    presence_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The web client's language, as the user chose it (None: not chosen yet).
    language: Mapped[str | None] = mapped_column(String(8))
    # Hosts only: their profile (the picture is a HostAvatar).
    bio: Mapped[str | None] = mapped_column(String(1000))
    languages: Mapped[list[str] | None] = mapped_column(JSON)
    tags: Mapped[list[str] | None] = mapped_column(JSON)
    # Clients only: set while a payment dispute is open (or was lost): no calls, no purchases.
    frozen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    frozen_reason: Mapped[str | None] = mapped_column(String(255))
    # Hosts only: their Stripe Connect account, and whether Stripe lets it receive payouts.
    stripe_account_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    payouts_enabled: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
