from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class StatementCallOut(BaseModel):
    id: int
    with_user_id: int = Field(description="the other party of the call")
    with_name: str
    seconds: int | None = Field(description="a charge's: the talk time it paid for")


class StatementLineOut(BaseModel):
    id: int = Field(description="pass as `before` to read the lines older than this one")
    kind: str = Field(
        description="`call_charge` for a call's charge (both its parts: what the call cost "
        "the client, or earned the host), `tip` for a tip on a call (both its parts), else "
        "the ledger's transfer kind (grant, purchase, refund, payout_approved, …)"
    )
    amount: int = Field(description="signed: negative when coins left the account")
    balance_after: int
    created_at: datetime
    call: StatementCallOut | None


class StatementOut(BaseModel):
    items: list[StatementLineOut]
    next_before: int | None = Field(description="pass as `before` for the next page")
