from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from callmeter.models.base import Base, Id, UTCDateTime


class AttemptKind(enum.StrEnum):
    login = "login"
    register = "register"


class AttemptState(enum.StrEnum):
    """A login attempt is recorded ``pending`` (and committed) before its password is
    verified, then becomes ``failed`` or ``succeeded``; pending and failed ones count
    against the limits. A registration attempt counts whatever its outcome."""

    pending = "pending"
    failed = "failed"
    succeeded = "succeeded"


class AuthAttempt(Base):
    """A login or registration attempt, kept for the throttle's window so the limits hold
    across every API process (docs/api.md, "Login and registration limits")."""

    __tablename__ = "auth_attempts"
    __table_args__ = (
        CheckConstraint("kind IN ('login', 'register')", name="kind"),
        CheckConstraint("state IN ('pending', 'failed', 'succeeded')", name="state"),
        Index("ix_auth_attempts_kind_username_at", "kind", "username", "at"),
        Index("ix_auth_attempts_kind_address_at", "kind", "address", "at"),
        Index("ix_auth_attempts_at", "at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    # Lower-cased and cut to 64 characters: an unknown name is throttled like a known one.
    username: Mapped[str] = mapped_column(String(64))
    # The client's address as the server sees it (after uvicorn's trusted proxy headers).
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16))
