from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from callmeter.kit.text import Coins, InputModel, Note, PositiveId
from callmeter.models import Account


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


class GrantIn(InputModel):
    user_id: PositiveId
    amount: Coins
    note: Note | None = None


class GrantOut(BaseModel):
    transfer: TransferOut


class LedgerCheckOut(BaseModel):
    ok: bool
    problems: list[str]
    totals: dict[str, int]
