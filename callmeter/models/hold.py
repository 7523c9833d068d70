from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from callmeter.models.base import Base, Id, UTCDateTime


class Hold(Base):
    """Coins reserved on an account: counted in ``accounts.held`` until captured or released.

    ``amount`` is what is still reserved; it shrinks as it is captured and drops to zero on
    release. The account's ``held`` always equals the sum of its holds' amounts.
    """

    __tablename__ = "holds"
    __table_args__ = (
        CheckConstraint("amount >= 0", name="amount"),
        Index(
            "ix_holds_account_id_open",
            "account_id",
            sqlite_where=text("released_at IS NULL"),
            postgresql_where=text("released_at IS NULL"),
        ),
        Index("ix_holds_call_id", "call_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(32))
    call_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
