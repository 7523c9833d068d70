"""Ledger queries and the ledger's multi-row writes (one statement per table, whether for
one transfer or a batch of thousands: ``kit/bulk``). Only ``ledger.service.post`` writes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.errors import LedgerError
from callmeter.kit.bulk import insert_new_rows, insert_rows, new_ids, update_rows
from callmeter.models import EXTERNAL_KINDS, Account, AccountKind, Hold, Posting, Transfer

TRANSFERS = cast(Table, Transfer.__table__)
POSTINGS = cast(Table, Posting.__table__)
ACCOUNTS = cast(Table, Account.__table__)
HOLDS = cast(Table, Hold.__table__)


@dataclass(slots=True)  # immutable by use; not frozen: a meter batch builds 10,000s
class Locked:
    """An account as its row lock found it (and as the transaction has moved it since)."""

    kind: str
    balance: int
    held: int

    @property
    def available(self) -> int:
        return self.balance - self.held


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


async def lock_open_hold(session: AsyncSession, hold_id: int) -> Hold | None:
    result = await session.execute(
        select(Hold)
        .where(Hold.id == hold_id, Hold.released_at.is_(None))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


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


# The ledger's lock order: users' accounts by id, then the platform's (by id: issuance,
# revenue, losses).
# The platform's rows are the hottest, so they are locked last and only when coins move to
# or from them: a settlement that only extends a hold never waits for them. The locks are
# FOR NO KEY UPDATE (what an UPDATE of a balance takes itself): they do not block the
# KEY SHARE locks that inserting a transfer, a posting or a hold takes on its accounts.
LOCK_ORDER = (Account.user_id.is_(None), Account.id)


async def lock_accounts(session: AsyncSession, account_ids: Sequence[int]) -> dict[int, Locked]:
    """Row-lock accounts in the ledger's lock order (a no-op on SQLite, whose writers are
    serialized by BEGIN IMMEDIATE) and return them as locked. Taking the locks a
    transaction needs in one global order is what keeps concurrent money paths free of
    deadlocks."""
    rows = await session.execute(
        select(Account.id, Account.kind, Account.balance, Account.held)
        .where(Account.id.in_(sorted(set(account_ids))))
        .order_by(*LOCK_ORDER)
        .with_for_update(key_share=True)
    )
    return {account_id: Locked(kind, balance, held) for account_id, kind, balance, held in rows}


async def lock_user_accounts(
    session: AsyncSession, user_ids: Sequence[int]
) -> list[tuple[int, int | None, str, Locked]]:
    """Lock the accounts of these users, in id order: (id, user id, kind, as locked)."""
    rows = await session.execute(
        select(Account.id, Account.user_id, Account.kind, Account.balance, Account.held)
        .where(Account.user_id.in_(sorted(set(user_ids))))
        .order_by(*LOCK_ORDER)
        .with_for_update(key_share=True)
    )
    return [(aid, uid, kind, Locked(kind, bal, held)) for aid, uid, kind, bal, held in rows]


async def lock_system_account(session: AsyncSession, kind: AccountKind) -> tuple[int, Locked]:
    """Lock the platform's account of ``kind``: (id, as locked)."""
    row = (
        await session.execute(
            select(Account.id, Account.kind, Account.balance, Account.held)
            .where(Account.user_id.is_(None), Account.kind == kind)
            .with_for_update(key_share=True)
        )
    ).one_or_none()
    if row is None:
        raise LedgerError(f"the {kind} account is missing: run `callmeter migrate`")
    return row[0], Locked(row[1], row[2], row[3])


async def insert_transfers(
    session: AsyncSession, rows: list[dict[str, object]]
) -> list[int | None]:
    """Insert transfers, skipping those whose idempotency key is taken: the new id of each
    row, or None where its key had been used."""
    return await insert_new_rows(session, TRANSFERS, rows, unique="idempotency_key")


async def reserve(session: AsyncSession, account_id: int, amount: int) -> bool:
    """Hold ``amount`` more of an account's available coins (one conditional UPDATE, which
    takes the row's lock itself); False, writing nothing, when it has too little."""
    result = await session.execute(
        update(Account)
        .where(
            Account.id == account_id,
            Account.kind.not_in(EXTERNAL_KINDS),
            Account.balance - Account.held >= amount,
        )
        .values(held=Account.held + amount)
        .returning(Account.id)
    )
    return result.scalar_one_or_none() is not None


async def insert_fresh_transfers(
    session: AsyncSession, rows: list[dict[str, object]]
) -> list[int | None]:
    """Insert transfers whose keys cannot have been used (a used one fails the statement on
    the unique index): their new ids."""
    ids = await new_ids(session, TRANSFERS, len(rows))
    for row, transfer_id in zip(rows, ids, strict=True):
        row["id"] = transfer_id
    await insert_rows(session, TRANSFERS, rows)
    return list(ids)


async def insert_postings(session: AsyncSession, rows: list[dict[str, int]]) -> None:
    await insert_rows(session, POSTINGS, rows)


async def move_accounts(
    session: AsyncSession, balance: Mapping[int, int], held: Mapping[int, int]
) -> None:
    """Add to accounts' balances and held coins, by delta (the CHECK constraint still
    guards ``balance >= held``), in id order."""
    changed = sorted(a for a in balance.keys() | held.keys() if balance.get(a) or held.get(a))
    rows = [{"id": a, "balance": balance.get(a, 0), "held": held.get(a, 0)} for a in changed]
    _expect(
        len(rows),
        await update_rows(
            session,
            ACCOUNTS,
            rows,
            where={"id": "id"},
            add={"balance": "balance", "held": "held"},
        ),
    )


async def move_holds(
    session: AsyncSession, changes: Sequence[tuple[int, int, int, datetime | None]]
) -> None:
    """Set open holds from their amount to a new one (compare-and-set), closing those
    with a release time: (hold id, amount before, amount after, released at)."""
    rows = [
        {"id": hold_id, "before": before, "amount": after, "released_at": released_at}
        for hold_id, before, after, released_at in changes
        if before != after or released_at is not None
    ]
    _expect(
        len(rows),
        await update_rows(
            session,
            HOLDS,
            rows,
            where={"id": "id", "before": "amount"},
            assign={"amount": "amount", "released_at": "released_at"},
            where_null=("released_at",),
        ),
    )


def _expect(rows: int, changed: int | None) -> None:
    """Every row written is locked by its transaction, so each must change; a miss means
    a broken invariant, and the transaction rolls back."""
    if changed is not None and changed != rows:
        raise LedgerError(f"a ledger update changed {changed} rows, not {rows}")


async def matured_balance(
    session: AsyncSession, account_id: int, cutoff: datetime, at_once: Sequence[str]
) -> int:
    """Every debit of the account, and its credits made by ``cutoff`` or of a kind in
    ``at_once``."""
    counted = case(
        (Posting.amount < 0, Posting.amount),
        (or_(Transfer.created_at <= cutoff, Transfer.kind.in_(at_once)), Posting.amount),
        else_=0,
    )
    total = await session.scalar(
        select(func.coalesce(func.sum(counted), 0))
        .select_from(Posting)
        .join(Transfer, Transfer.id == Posting.transfer_id)
        .where(Posting.account_id == account_id)
    )
    return int(total or 0)
