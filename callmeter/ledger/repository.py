"""Ledger queries. Writes that guard money are conditional UPDATEs, never read-then-write."""

from __future__ import annotations

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.models import Account, AccountKind, Hold, Posting, Transfer


async def get_account(session: AsyncSession, account_id: int) -> Account | None:
    return await session.get(Account, account_id, populate_existing=True)


async def get_user_account(session: AsyncSession, user_id: int) -> Account | None:
    """The user's own account: a client's wallet or a host's earnings."""
    result = await session.execute(
        select(Account)
        .where(Account.user_id == user_id)
        .order_by(Account.id)
        .limit(1)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def system_account_ids(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(Account.kind, Account.id).where(Account.user_id.is_(None)))
    return {kind: account_id for kind, account_id in rows}


async def get_transfer_by_key(session: AsyncSession, key: str) -> Transfer | None:
    result = await session.execute(select(Transfer).where(Transfer.idempotency_key == key))
    return result.scalar_one_or_none()


async def debit(session: AsyncSession, account_id: int, amount: int) -> int | None:
    """Take ``amount`` from what the account has available. None when it has too little."""
    result = await session.execute(
        update(Account)
        .where(
            Account.id == account_id,
            (Account.kind == AccountKind.issuance) | (Account.balance - Account.held >= amount),
        )
        .values(balance=Account.balance - amount)
        .returning(Account.balance)
    )
    return result.scalar_one_or_none()


async def debit_held(session: AsyncSession, account_id: int, amount: int) -> int | None:
    """Take ``amount`` out of the account's held coins. None when fewer are held."""
    result = await session.execute(
        update(Account)
        .where(Account.id == account_id, Account.held >= amount)
        .values(balance=Account.balance - amount, held=Account.held - amount)
        .returning(Account.balance)
    )
    return result.scalar_one_or_none()


async def credit(session: AsyncSession, account_id: int, amount: int) -> int:
    result = await session.execute(
        update(Account)
        .where(Account.id == account_id)
        .values(balance=Account.balance + amount)
        .returning(Account.balance)
    )
    return result.scalar_one()


async def add_held(session: AsyncSession, account_id: int, amount: int) -> bool:
    """Reserve ``amount`` more of the account's available coins; False when it has too little."""
    result = await session.execute(
        update(Account)
        .where(
            Account.id == account_id,
            Account.kind != AccountKind.issuance,
            Account.balance - Account.held >= amount,
        )
        .values(held=Account.held + amount)
        .returning(Account.id)
    )
    return result.scalar_one_or_none() is not None


async def remove_held(session: AsyncSession, account_id: int, amount: int) -> None:
    result = await session.execute(
        update(Account)
        .where(Account.id == account_id, Account.held >= amount)
        .values(held=Account.held - amount)
        .returning(Account.id)
    )
    if result.scalar_one_or_none() is None:
        raise AssertionError(f"account {account_id} holds less than {amount}")


async def lock_open_hold(session: AsyncSession, hold_id: int) -> Hold | None:
    result = await session.execute(
        select(Hold)
        .where(Hold.id == hold_id, Hold.released_at.is_(None))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def shrink_hold(session: AsyncSession, hold_id: int, amount: int) -> bool:
    result = await session.execute(
        update(Hold)
        .where(and_(Hold.id == hold_id, Hold.released_at.is_(None), Hold.amount >= amount))
        .values(amount=Hold.amount - amount)
        .returning(Hold.id)
    )
    return result.scalar_one_or_none() is not None


async def list_postings(
    session: AsyncSession, account_id: int, *, limit: int, before: int | None
) -> list[tuple[Posting, Transfer]]:
    query = (
        select(Posting, Transfer)
        .join(Transfer, Transfer.id == Posting.transfer_id)
        .where(Posting.account_id == account_id)
        .order_by(Posting.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(Posting.id < before)
    rows = await session.execute(query)
    return [(posting, transfer) for posting, transfer in rows]


async def lock_accounts(
    session: AsyncSession, account_ids: list[int]
) -> dict[int, tuple[int, int]]:
    """Row-lock accounts in ascending id order (a no-op on SQLite, whose writers are
    serialized by BEGIN IMMEDIATE) and return their (balance, held) as locked. Taking every
    lock a transaction needs up front, in one global order, is what keeps concurrent money
    paths free of deadlocks."""
    rows = await session.execute(
        select(Account.id, Account.balance, Account.held)
        .where(Account.id.in_(sorted(set(account_ids))))
        .order_by(Account.id)
        .with_for_update()
    )
    return {account_id: (balance, held) for account_id, balance, held in rows}
