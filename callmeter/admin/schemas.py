from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from callmeter.models import Account, User


class AdminUserOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    created_at: datetime
    frozen: bool
    balance: int | None = Field(description="a client's wallet, a host's earnings; null: admin")
    held: int | None

    @classmethod
    def of(cls, user: User, account: Account | None) -> AdminUserOut:
        return cls(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            role=user.role,
            created_at=user.created_at,
            frozen=user.frozen_at is not None,
            balance=None if account is None else account.balance,
            held=None if account is None else account.held,
        )


class AdminUsersPage(BaseModel):
    items: list[AdminUserOut]
    next_before: int | None
