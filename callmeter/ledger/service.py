"""The ledger service: the only code that moves coins.

:func:`post` is the one writer: every transfer — a call's charge, a refund, a grant, and
later purchases, payouts and tips — and every change of a hold is written by it, with one
multi-row statement per table (``ledger/repository.py``), whether it posts one transfer or
the meter's batch of thousands. It owns the idempotency key formats (:func:`charge_key`,
:func:`refund_key`), the postings with their running ``balance_after``, the account and hold
updates and the metrics. ``ledger check`` proves that every transfer was written this way.

Every function takes the caller's session first and never commits: the caller's
transaction decides. A function that raises leaves the transaction unusable for further
money movements; roll it back (the request and worker transactions do).

Lock order, to keep PostgreSQL free of deadlocks: the call row (taken by the caller), then
the users' accounts in ascending id order, then the platform's accounts (revenue,
issuance; :func:`lock_accounts`), then the call's hold. The platform's rows are the
hottest, so they come last and only when coins move to or from them. A hold is only ever
used under its call's row lock, so its place in the order cannot close a cycle.
"""

from __future__ import annotations

import enum
import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import String, select
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.errors import IdempotencyConflict, InsufficientFunds, LedgerError, NotFound
from callmeter.ledger import repository
from callmeter.ledger.repository import Locked as Locked  # the type of locked accounts
from callmeter.models import (
    EXTERNAL_KINDS,
    MAX_AMOUNT,
    Account,
    AccountKind,
    Hold,
    Posting,
    Transfer,
)
from callmeter.ops import metrics


class TransferKind(enum.StrEnum):
    grant = "grant"  # coins given by an admin (issuance -> wallet)
    purchase = "purchase"  # coins bought (issuance -> wallet)
    call_charge = "call_charge"  # the platform's part of a call's charge (wallet -> revenue)
    host_share = "host_share"  # the host's part of a call's charge (wallet -> earnings)
    refund = "refund"  # a charge given back (earnings/revenue -> wallet)
    payout = "payout"  # a payout the provider settled (payout_clearing -> issuance)
    adjustment = "adjustment"  # a correction made by finance
    # coins bought (docs/payments.md); ``purchase`` is the pack's coins
    purchase_bonus = "purchase_bonus"  # a pack's bonus coins (issuance -> wallet)
    purchase_refund = "purchase_refund"  # refunded coins taken back (wallet -> issuance)
    refund_shortfall = "refund_shortfall"  # refunded coins already spent (losses -> issuance)
    dispute_lost = "dispute_lost"  # disputed coins removed (wallet -> issuance)
    dispute_shortfall = "dispute_shortfall"  # disputed coins already spent (losses -> issuance)
    # payouts (docs/payouts.md); ``payout`` is a settled one (payout_clearing -> issuance)
    payout_approved = "payout_approved"  # captured for paying (earnings -> payout_clearing)
    payout_returned = "payout_returned"  # not paid after all (payout_clearing -> earnings)
    payout_reversed = "payout_reversed"  # paid, then reversed (issuance -> earnings)
    earnings_adjustment = "earnings_adjustment"  # an admin's, with a reason (losses <-> earnings)
    # a client's tip on a call (docs/chat.md): the host's part and the platform's
    tip = "tip"  # (wallet -> earnings)
    tip_fee = "tip_fee"  # (wallet -> revenue), when tips are shared


CHARGE_KINDS = (TransferKind.call_charge, TransferKind.host_share)
TIP_KINDS = (TransferKind.tip, TransferKind.tip_fee)


def tip_key(call_id: int, client_msg_id: str, kind: TransferKind) -> str:
    """The key of a tip's transfer of ``kind``: a retry with the client's id tips once."""
    return f"call:{call_id}:" + kind + f":{client_msg_id}"


MAX_KEY_LENGTH = cast(String, Transfer.__table__.c.idempotency_key.type).length or 200


def charge_key(call_id: int, kind: TransferKind, charged: int) -> str:
    """The key of a call's charge transfer of ``kind`` that brings the call's cumulative
    charge to ``charged``: whichever path charges first, a repeat cannot post twice."""
    return f"call:{call_id}:" + kind + f":{charged}"  # (+ on the str: Enum.value is slow)


def admin_key(action: str, admin_id: int, request_key: str) -> str:
    """The key of an admin's transfer (``grant``, ``adjust``) made with the request's
    ``Idempotency-Key``: the key itself while it fits the column, else its SHA-256 (a key
    of any length is honoured)."""
    key = f"{action}:{admin_id}:{request_key}"
    if len(key) <= MAX_KEY_LENGTH:
        return key
    return f"{action}:{admin_id}:sha256:{hashlib.sha256(request_key.encode()).hexdigest()}"


def grant_key(admin_id: int, request_key: str) -> str:
    """The key of an admin's grant (:func:`admin_key`)."""
    return admin_key("grant", admin_id, request_key)


def refund_key(call_id: int, side: str, refunded: int) -> str:
    """The key of a refund from ``side`` (host or platform) that brings the call's
    cumulative refunds to ``refunded``."""
    return f"call:{call_id}:refund:{side}:{refunded}"


@dataclass(slots=True)  # immutable by use; not frozen: a meter batch builds 10,000s
class Movement:
    """One transfer to post: ``amount`` coins from the debit to the credit account."""

    kind: TransferKind
    debit_account_id: int
    credit_account_id: int
    amount: int
    idempotency_key: str
    call_id: int | None = None
    note: str | None = None


@dataclass(slots=True)  # immutable by use; not frozen: a meter batch builds 10,000s
class HoldChange:
    """A hold goes from ``before`` to ``after`` coins (captures included), and is closed
    when ``close``. Compare-and-set: a hold that does not hold ``before`` is an error."""

    hold_id: int
    account_id: int
    before: int
    after: int
    close: bool = False


@dataclass(frozen=True)
class TransferResult:
    transfer: Transfer
    created: bool  # False when the idempotency key had already been used


def _check_amount(amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise LedgerError("amounts are whole coins")
    if not 0 < amount <= MAX_AMOUNT:
        raise LedgerError(f"amount must be between 1 and {MAX_AMOUNT}")


async def post(
    session: AsyncSession,
    movements: Sequence[Movement],
    *,
    now: datetime,
    holds: Sequence[HoldChange] = (),
    locked: Mapping[int, Locked] | None = None,
    fresh_keys: bool = False,
) -> list[tuple[int, bool]]:
    """Post ``movements`` and ``holds`` together: the only way coins move.

    ``locked``: the accounts involved, as :func:`lock_accounts` returned them in this
    transaction (a caller that plans with their balances locks them first); without it
    they are locked now. Each movement is posted exactly once
    per idempotency key: a key already used with the same terms is skipped, with other
    terms it raises :class:`IdempotencyConflict`.
    Raises :class:`InsufficientFunds` (writing nothing) when an account other than the
    issuance or losses account would end with fewer coins than it holds.
    """
    for movement in movements:
        _check_amount(movement.amount)
        if movement.debit_account_id == movement.credit_account_id:
            raise LedgerError("a transfer needs two different accounts")
    too_long = next((m for m in movements if len(m.idempotency_key) > MAX_KEY_LENGTH), None)
    if too_long is not None:
        raise LedgerError(f"an idempotency key is at most {MAX_KEY_LENGTH} characters")
    if len({m.idempotency_key for m in movements}) != len(movements):
        raise LedgerError("two transfers of one post share an idempotency key")
    # Claim the keys first: a concurrent duplicate waits on the unique index and is then
    # skipped, so the balances below move once.
    insert = repository.insert_fresh_transfers if fresh_keys else repository.insert_transfers
    created = await insert(
        session,
        [
            {
                "debit_account_id": m.debit_account_id,
                "credit_account_id": m.credit_account_id,
                "amount": m.amount,
                "kind": str(m.kind),
                "call_id": m.call_id,
                "idempotency_key": m.idempotency_key,
                "note": m.note,
                "created_at": now,
            }
            for m in movements
        ],
    )
    repeats = [m for m, new in zip(movements, created, strict=True) if new is None]
    existing = await _check_repeats(session, repeats)
    if repeats and holds:
        # a hold moves with the charges it pays: a charge posted before means the caller's
        # state is stale, and moving the hold again would double-count it
        raise LedgerError(f"transfer {repeats[0].idempotency_key!r} was already posted")
    posted = [(m, tid) for m, tid in zip(movements, created, strict=True) if tid is not None]
    result = [
        (transfer_id, True) if transfer_id is not None else (existing[m.idempotency_key], False)
        for m, transfer_id in zip(movements, created, strict=True)
    ]
    if not posted and not holds:
        return result  # nothing moves

    involved = {m.debit_account_id for m in movements} | {m.credit_account_id for m in movements}
    involved |= {h.account_id for h in holds}
    if locked is None:
        # after the keys are claimed: a repeat that waits on a key holds no account lock
        locked = await lock_accounts(session, sorted(involved))
    missing = involved - set(locked)
    if missing:
        raise NotFound(f"account {min(missing)} does not exist")

    balances = {account_id: locked[account_id].balance for account_id in involved}
    delta_balance: dict[int, int] = defaultdict(int)
    delta_held: dict[int, int] = defaultdict(int)
    postings: list[dict[str, int]] = []
    for movement, transfer_id in posted:
        for account_id, amount in (
            (movement.debit_account_id, -movement.amount),
            (movement.credit_account_id, movement.amount),
        ):
            delta_balance[account_id] += amount
            balances[account_id] += amount
            postings.append(
                {
                    "transfer_id": transfer_id,
                    "account_id": account_id,
                    "amount": amount,
                    "balance_after": balances[account_id],
                }
            )
    for hold in holds:
        delta_held[hold.account_id] += hold.after - hold.before
    for account_id in delta_balance.keys() | delta_held.keys():
        account = locked[account_id]
        balance = account.balance + delta_balance[account_id]
        held = account.held + delta_held[account_id]
        if account.kind not in EXTERNAL_KINDS and not 0 <= held <= balance:
            # what this post asked of the account: its debits and the coins it reserves
            needed = max(0, delta_held[account_id]) - min(0, delta_balance[account_id])
            raise InsufficientFunds(needed)

    # in list order: each account's running balance follows posting ids
    await repository.insert_postings(session, postings)
    await repository.move_accounts(session, delta_balance, delta_held)
    await repository.move_holds(
        session, [(h.hold_id, h.before, h.after, now if h.close else None) for h in holds]
    )
    for movement, _ in posted:
        metrics.record_transfer(session, movement.kind)
    return result


async def _check_repeats(session: AsyncSession, repeats: Sequence[Movement]) -> dict[str, int]:
    """A key used before must have been used for the same transfer: their ids by key."""
    ids = {}
    for movement in repeats:
        existing = await repository.get_transfer_by_key(session, movement.idempotency_key)
        assert existing is not None
        terms = (
            movement.debit_account_id,
            movement.credit_account_id,
            movement.amount,
            str(movement.kind),
            movement.call_id,
        )
        if terms != (
            existing.debit_account_id,
            existing.credit_account_id,
            existing.amount,
            existing.kind,
            existing.call_id,
        ):
            raise IdempotencyConflict(
                f"transfer key {movement.idempotency_key!r} was already used for another transfer"
            )
        ids[movement.idempotency_key] = existing.id
    return ids


async def open_account(
    session: AsyncSession, *, user_id: int, kind: AccountKind, now: datetime
) -> Account:
    """Create the user's account of ``kind`` (a client's wallet or a host's earnings)."""
    account = Account(kind=kind, user_id=user_id, balance=0, held=0, created_at=now)
    session.add(account)
    await session.flush()
    return account


async def system_account_id(session: AsyncSession, kind: AccountKind) -> int:
    """The id of the platform's ``revenue``, ``issuance`` or ``losses`` account."""
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
) -> TransferResult:
    """Move ``amount`` coins, exactly once per ``idempotency_key`` (a :func:`post` of one).

    The debited account must have ``amount`` available (unless it is the issuance
    account). Repeating a key returns the first transfer; repeating it with other terms
    raises :class:`IdempotencyConflict`. Raises :class:`InsufficientFunds` when the coins
    are not there.
    """
    movement = Movement(
        kind=kind,
        debit_account_id=debit_account_id,
        credit_account_id=credit_account_id,
        amount=amount,
        idempotency_key=idempotency_key,
        call_id=call_id,
        note=note,
    )
    [(transfer_id, created)] = await post(session, [movement], now=now)
    if not created:  # read by post, so no statement
        existing = await session.get(Transfer, transfer_id)
        assert existing is not None
        return TransferResult(existing, created=False)
    written = Transfer(
        id=transfer_id,
        debit_account_id=debit_account_id,
        credit_account_id=credit_account_id,
        amount=amount,
        kind=str(kind),
        call_id=call_id,
        idempotency_key=idempotency_key,
        note=note,
        created_at=now,
    )
    return TransferResult(written, created=True)


async def place_hold(
    session: AsyncSession,
    *,
    account_id: int,
    amount: int,
    reason: str,
    now: datetime,
    call_id: int | None = None,
) -> Hold:
    """Reserve ``amount`` of the account's available coins in a new hold, or raise
    InsufficientFunds (writing nothing, so a caller may catch it and go on)."""
    _check_amount(amount)
    if not await repository.reserve(session, account_id, amount):
        raise InsufficientFunds(amount)
    hold = Hold(
        account_id=account_id, amount=amount, reason=reason, call_id=call_id, created_at=now
    )
    session.add(hold)
    await session.flush()
    return hold


async def _open_hold(session: AsyncSession, hold_id: int) -> Hold:
    hold = await repository.lock_open_hold(session, hold_id)
    if hold is None:
        raise LedgerError(f"hold {hold_id} is not open")
    return hold


async def extend_hold(session: AsyncSession, *, hold_id: int, amount: int, now: datetime) -> None:
    """Reserve ``amount`` more on an open hold, or raise InsufficientFunds (writing nothing)."""
    _check_amount(amount)
    hold = await _open_hold(session, hold_id)
    change = HoldChange(hold_id, hold.account_id, before=hold.amount, after=hold.amount + amount)
    await post(session, [], now=now, holds=[change])


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
) -> None:
    """Transfer ``amount`` of the coins reserved by a hold to ``credit_account_id``."""
    _check_amount(amount)
    hold = await _open_hold(session, hold_id)
    if hold.amount < amount:
        raise LedgerError(f"hold {hold_id} does not cover {amount} coins")
    movement = Movement(
        kind=kind,
        debit_account_id=hold.account_id,
        credit_account_id=credit_account_id,
        amount=amount,
        idempotency_key=idempotency_key,
        call_id=call_id,
    )
    change = HoldChange(hold_id, hold.account_id, before=hold.amount, after=hold.amount - amount)
    await post(session, [movement], now=now, holds=[change])


async def release_hold(session: AsyncSession, *, hold_id: int, now: datetime) -> int:
    """Give back whatever a hold still reserves and close it. Returns the coins released;
    releasing a closed hold releases nothing."""
    hold = await repository.lock_open_hold(session, hold_id)
    if hold is None:
        return 0
    released = hold.amount
    change = HoldChange(hold_id, hold.account_id, before=released, after=0, close=True)
    await post(session, [], now=now, holds=[change])
    return released


async def lock_accounts(session: AsyncSession, account_ids: Sequence[int]) -> dict[int, Locked]:
    """Lock these accounts now, in the ledger's lock order, before moving coins between
    several of them; returns each one's kind, balance and held as locked."""
    return await repository.lock_accounts(session, account_ids)


async def lock_user_accounts(session: AsyncSession, user_ids: Sequence[int]) -> dict[int, Locked]:
    """Lock these users' accounts now, in one statement and in the ledger's order."""
    return {row[0]: row[3] for row in await repository.lock_user_accounts(session, user_ids)}


async def lock_call_accounts(
    session: AsyncSession, *, client_id: int, host_id: int
) -> tuple[dict[int, Locked], int, int]:
    """Lock, in one statement, the users' accounts a call's money moves between: the
    client's wallet and the host's earnings. Returns them as locked, with their ids. The
    platform's revenue is locked after them, only when a charge moves coins to it
    (:func:`lock_revenue`)."""
    rows = await repository.lock_user_accounts(session, [client_id, host_id])
    wallet = earnings = None
    for account_id, user_id, kind, _ in rows:
        if user_id == client_id and kind == AccountKind.wallet:
            wallet = account_id
        elif user_id == host_id and kind == AccountKind.earnings:
            earnings = account_id
    if wallet is None or earnings is None:
        raise NotFound("this call's client has no wallet or its host no earnings account")
    return {row[0]: row[3] for row in rows}, wallet, earnings


async def lock_revenue(session: AsyncSession, locked: dict[int, Locked]) -> int:
    """Lock the platform's revenue account (last, after the users' accounts) into
    ``locked``; returns its id."""
    revenue, row = await repository.lock_system_account(session, AccountKind.revenue)
    locked[revenue] = row
    return revenue


async def account_for_user(session: AsyncSession, user_id: int) -> Account:
    account = await repository.get_user_account(session, user_id)
    if account is None:
        raise NotFound("this user has no wallet")
    return account


async def statement(
    session: AsyncSession, user_id: int, *, limit: int, before: int | None
) -> list[tuple[Posting, Transfer]]:
    """The user's own account's postings with their transfers, newest first (at most
    ``limit``, only those before posting id ``before`` when given)."""
    account = await account_for_user(session, user_id)
    return await repository.list_postings(session, account.id, limit=limit, before=before)


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


# Credits to earnings that are withdrawable at once: coins that had matured before (a payout
# that came back) and an admin's deliberate adjustment.
MATURE_AT_ONCE = (
    TransferKind.payout_returned,
    TransferKind.payout_reversed,
    TransferKind.earnings_adjustment,
)


async def matured_balance(session: AsyncSession, account_id: int, cutoff: datetime) -> int:
    """What an account's balance would be if only credits made by ``cutoff`` (and those in
    ``MATURE_AT_ONCE``) counted, and every debit did: its matured coins."""
    return await repository.matured_balance(
        session, account_id, cutoff, [str(k) for k in MATURE_AT_ONCE]
    )
