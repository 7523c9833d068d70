from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from callmeter.models.base import Base, Id, UTCDateTime

# The most coins one transfer may move: a CHECK constraint here, and the bound of every
# amount the API accepts (``kit.text.Coins``).
MAX_AMOUNT = 10**12


class Transfer(Base):
    """A movement of ``amount`` coins from one account to another.

    Never updated or deleted (database triggers refuse it); mistakes are corrected by new
    transfers. ``idempotency_key`` makes every posting path safe to repeat.
    """

    __tablename__ = "transfers"
    __table_args__ = (
        CheckConstraint(f"amount > 0 AND amount <= {MAX_AMOUNT}", name="amount"),
        CheckConstraint("debit_account_id != credit_account_id", name="distinct_accounts"),
        Index("ix_transfers_call_id", "call_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    debit_account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    credit_account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    call_id: Mapped[int | None] = mapped_column(BigInteger)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Posting(Base):
    """One side of a transfer on one account: the account's statement line.

    ``amount`` is signed (negative on the debited account) and ``balance_after`` is the
    account's balance right after it, read under the account's row lock.
    """

    __tablename__ = "postings"
    __table_args__ = (
        CheckConstraint("amount != 0", name="amount"),
        Index("ix_postings_account_id_id", "account_id", "id"),
        Index("ix_postings_transfer_id", "transfer_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfers.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
