"""The ledger service: the only code that moves coins.

Every function takes the caller's session first and flushes, never commits: the caller's
transaction decides. A function that raises leaves the transaction unusable for further
money movements; roll it back (the request and worker transactions do).

Lock order, to keep PostgreSQL free of deadlocks: the call row (taken by the caller), then
every account the transaction will touch, in ascending id order (:func:`lock_accounts`),
then the call's hold. A hold is only ever used under its call's row lock, so its place in
the order cannot close a cycle.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.errors import IdempotencyConflict, InsufficientFunds, LedgerError, NotFound
from callmeter.kit.db import dialect_insert
from callmeter.ledger import repository
from callmeter.models import MAX_AMOUNT, Account, AccountKind, Hold, Posting, Transfer
from callmeter.ops import metrics


class TransferKind(enum.StrEnum):
    grant = "grant"  # coins given by an admin (issuance -> wallet)
    purchase = "purchase"  # coins bought (issuance -> wallet)
    call_charge = "call_charge"  # the platform's part of a call's charge (wallet -> revenue)
    host_share = "host_share"  # the host's part of a call's charge (wallet -> earnings)
    refund = "refund"  # a charge given back (earnings/revenue -> wallet)
    payout = "payout"  # earnings paid out to the host (earnings -> issuance)
    adjustment = "adjustment"  # a correction made by finance


CHARGE_KINDS = (TransferKind.call_charge, TransferKind.host_share)


@dataclass(frozen=True)
class TransferResult:
    transfer: Transfer
    created: bool  # False when the idempotency key had already been used


def _check_amount(amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise LedgerError("amounts are whole coins")
    if not 0 < amount <= MAX_AMOUNT:
        raise LedgerError(f"amount must be between 1 and {MAX_AMOUNT}")


async def open_account(
    session: AsyncSession, *, user_id: int, kind: AccountKind, now: datetime
) -> Account:
    """Create the user's account of ``kind`` (a client's wallet or a host's earnings)."""
    account = Account(kind=kind, user_id=user_id, balance=0, held=0, created_at=now)
    session.add(account)
    await session.flush()
    return account


async def system_account_id(session: AsyncSession, kind: AccountKind) -> int:
    """The id of the platform's ``revenue`` or ``issuance`` account."""
    ids = await repository.system_account_ids(session)
    try:
        return ids[kind]
    except KeyError:
        raise LedgerError(f"the {kind} account is missing: run `callmeter migrate`") from None


async def transfer(
    session: AsyncSession,
    *,
    debit_account_id: int,
    credit_account_id: int,
    amount: int,
    kind: TransferKind,
    idempotency_key: str,
    now: datetime,
    call_id: int | None = None,
    note: str | None = None,
    hold_id: int | None = None,
) -> TransferResult:
    """Move ``amount`` coins, exactly once per ``idempotency_key``.

    The debited account must have ``amount`` available (unless it is the issuance
    account), or, with ``hold_id``, the coins come out of that hold on the debited account.
    Repeating a key returns the first transfer; repeating it with other terms raises
    :class:`IdempotencyConflict`. Raises :class:`InsufficientFunds` when the coins are not
    there.
    """
    _check_amount(amount)
    if debit_account_id == credit_account_id:
        raise LedgerError("a transfer needs two different accounts")

    # Claim the key first: a concurrent duplicate waits here on the unique index and then
    # finds the winner's row, so the balances below move once.
    inserted = await session.scalars(
        dialect_insert(session, Transfer.__table__)
        .values(
            debit_account_id=debit_account_id,
            credit_account_id=credit_account_id,
            amount=amount,
            kind=kind,
            call_id=call_id,
            idempotency_key=idempotency_key,
            note=note,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(Transfer.__table__.c.id)
    )
    transfer_id = inserted.one_or_none()
    if transfer_id is None:
        existing = await repository.get_transfer_by_key(session, idempotency_key)
        assert existing is not None
        terms = (debit_account_id, credit_account_id, amount, str(kind), call_id)
        if terms != (
            existing.debit_account_id,
            existing.credit_account_id,
            existing.amount,
            existing.kind,
            existing.call_id,
        ):
            raise IdempotencyConflict(
                f"transfer key {idempotency_key!r} was already used for another transfer"
            )
        return TransferResult(existing, created=False)

    if hold_id is not None and not await repository.shrink_hold(session, hold_id, amount):
        raise LedgerError(f"hold {hold_id} does not cover {amount} coins")

    balances: dict[int, int] = {}
    for account_id in sorted((debit_account_id, credit_account_id)):
        if account_id == credit_account_id:
            balances[account_id] = await repository.credit(session, account_id, amount)
            continue
        if hold_id is not None:
            after = await repository.debit_held(session, account_id, amount)
        else:
            after = await repository.debit(session, account_id, amount)
        if after is None:
            if await repository.get_account(session, account_id) is None:
                raise NotFound(f"account {account_id} does not exist")
            raise InsufficientFunds(f"not enough coins: {amount} needed")
        balances[account_id] = after

    await session.execute(
        insert(Posting),
        [
            {
                "transfer_id": transfer_id,
                "account_id": debit_account_id,
                "amount": -amount,
                "balance_after": balances[debit_account_id],
            },
            {
                "transfer_id": transfer_id,
                "account_id": credit_account_id,
                "amount": amount,
                "balance_after": balances[credit_account_id],
            },
        ],
    )
    metrics.record_transfer(session, kind)
    created = await session.get(Transfer, transfer_id)
    assert created is not None
    return TransferResult(created, created=True)


async def place_hold(
    session: AsyncSession,
    *,
    account_id: int,
    amount: int,
    reason: str,
    now: datetime,
    call_id: int | None = None,
) -> Hold:
    """Reserve ``amount`` of the account's available coins, or raise InsufficientFunds.

    Nothing is written when the coins are not there, so a caller may catch the error and
    go on with its transaction.
    """
    _check_amount(amount)
    if not await repository.add_held(session, account_id, amount):
        raise InsufficientFunds(f"not enough coins: {amount} needed")
    hold = Hold(
        account_id=account_id, amount=amount, reason=reason, call_id=call_id, created_at=now
    )
    session.add(hold)
    await session.flush()
    return hold


async def extend_hold(session: AsyncSession, *, hold_id: int, amount: int) -> None:
    """Reserve ``amount`` more on an open hold, or raise InsufficientFunds (writing nothing)."""
    _check_amount(amount)
    hold = await repository.lock_open_hold(session, hold_id)
    if hold is None:
        raise LedgerError(f"hold {hold_id} is not open")
    if not await repository.add_held(session, hold.account_id, amount):
        raise InsufficientFunds(f"not enough coins: {amount} needed")
    await session.execute(
        update(Hold).where(Hold.id == hold_id).values(amount=Hold.amount + amount)
    )


async def capture_hold(
    session: AsyncSession,
    *,
    hold_id: int,
    credit_account_id: int,
    amount: int,
    kind: TransferKind,
    idempotency_key: str,
    now: datetime,
    call_id: int | None = None,
) -> TransferResult:
    """Transfer ``amount`` of the coins reserved by a hold to ``credit_account_id``."""
    hold = await repository.lock_open_hold(session, hold_id)
    if hold is None:
        raise LedgerError(f"hold {hold_id} is not open")
    return await transfer(
        session,
        debit_account_id=hold.account_id,
        credit_account_id=credit_account_id,
        amount=amount,
        kind=kind,
        idempotency_key=idempotency_key,
        now=now,
        call_id=call_id,
        hold_id=hold_id,
    )


async def release_hold(session: AsyncSession, *, hold_id: int, now: datetime) -> int:
    """Give back whatever a hold still reserves and close it. Returns the coins released;
    releasing a closed hold releases nothing."""
    hold = await repository.lock_open_hold(session, hold_id)
    if hold is None:
        return 0
    released = hold.amount
    await session.execute(update(Hold).where(Hold.id == hold_id).values(amount=0, released_at=now))
    if released:
        await repository.remove_held(session, hold.account_id, released)
    return released


async def lock_accounts(
    session: AsyncSession, account_ids: list[int]
) -> dict[int, tuple[int, int]]:
    """Lock these accounts now, in id order, before moving coins between several of them;
    returns each one's (balance, held) as locked."""
    return await repository.lock_accounts(session, account_ids)


async def account_for_user(session: AsyncSession, user_id: int) -> Account:
    account = await repository.get_user_account(session, user_id)
    if account is None:
        raise NotFound("this user has no wallet")
    return account


async def hold_by_id(session: AsyncSession, hold_id: int) -> Hold | None:
    return (
        await session.execute(
            select(Hold).where(Hold.id == hold_id).execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


async def grant(
    session: AsyncSession,
    *,
    user_id: int,
    amount: int,
    idempotency_key: str,
    now: datetime,
    note: str | None = None,
) -> TransferResult:
    """Put new coins into a client's wallet (from the issuance account), once per key."""
    account = await repository.get_user_account(session, user_id)
    if account is None or account.kind != AccountKind.wallet:
        raise NotFound(f"no client with id {user_id}: coins are granted to client wallets")
    return await transfer(
        session,
        debit_account_id=await system_account_id(session, AccountKind.issuance),
        credit_account_id=account.id,
        amount=amount,
        kind=TransferKind.grant,
        idempotency_key=idempotency_key,
        now=now,
        note=note,
    )
