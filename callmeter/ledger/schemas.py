from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from callmeter.models import MAX_AMOUNT, Account

# Whole coins only: strict refuses strings ("5"), floats (5.0) and booleans.
Coins = Annotated[int, Field(strict=True, gt=0, le=MAX_AMOUNT)]


class WalletOut(BaseModel):
    balance: int
    held: int
    available: int

    @classmethod
    def of(cls, account: Account) -> WalletOut:
        return cls(
            balance=account.balance, held=account.held, available=account.balance - account.held
        )


class EntryOut(BaseModel):
    id: int
    amount: int = Field(description="signed: negative when coins left the wallet")
    kind: str
    call_id: int | None
    created_at: datetime
    balance_after: int


class EntriesOut(BaseModel):
    items: list[EntryOut]
    next_before: int | None


class TransferOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    amount: int
    debit_account_id: int
    credit_account_id: int
    call_id: int | None
    note: str | None
    created_at: datetime


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Annotated[int, Field(strict=True, gt=0, le=2**63 - 1)]
    amount: Coins
    note: Annotated[str, Field(max_length=500)] | None = None


class GrantOut(BaseModel):
    transfer: TransferOut


class LedgerCheckOut(BaseModel):
    ok: bool
    problems: list[str]
    totals: dict[str, int]
