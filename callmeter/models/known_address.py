from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from callmeter.models.base import Base, UTCDateTime


class KnownAddress(Base):
    """An address a user logged in from successfully: the per-username limit, which a
    third party can exhaust, does not apply to it (the owner is not locked out)."""

    __tablename__ = "known_addresses"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_login_at: Mapped[datetime] = mapped_column(UTCDateTime())
