from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from callmeter.models.base import Base, UTCDateTime


class HostBlock(Base):
    """A host refuses calls from one client. The client is never told: its rings get the
    answer an unavailable host gives."""

    __tablename__ = "host_blocks"

    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class HostAvatar(Base):
    """A host's picture: a small JPEG the server made from the upload (never the upload
    itself), served to anyone with its ETag."""

    __tablename__ = "host_avatars"

    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    etag: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
