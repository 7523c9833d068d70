from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from callmeter.models.base import Base, UTCDateTime


class HostBlock(Base):
    """A host refuses calls from one client. The client is never told: its rings get the
    answer an unavailable host gives."""

    __tablename__ = "host_blocks"

    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
