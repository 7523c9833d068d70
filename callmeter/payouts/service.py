"""Coins out: hosts withdraw matured earnings (docs/payouts.md).

A request holds the coins on the host's earnings; an admin approves (the hold is captured
into ``payout_clearing``) or rejects (the hold is released); the provider pays (clearing →
out of circulation, ``payout``) or cannot (clearing → back to earnings); a reversed
transfer brings the coins back too. Every step locks the payout row first, then accounts
through the one ledger writer, keyed ``payout:<id>:<step>`` — so each happens once however
many requests race.

Only *matured* earnings can be withdrawn: credits older than ``CALLMETER_PAYOUT_HOLD_DAYS``
(the window in which refunds and disputes still arrive), less every debit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.config import Settings
from callmeter.errors import (
    AdjustmentExceedsEarnings,
    Forbidden,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidPayoutState,
    NotFound,
    PayoutBelowMinimum,
    PayoutExceedsMatured,
    PayoutsNotEnabled,
    TooManyPayouts,
)
from callmeter.ledger import service as ledger
from callmeter.ledger.service import HoldChange, Movement, TransferKind
from callmeter.models import AccountKind, Payout, PayoutStatus, Role, User
from callmeter.payouts import repository
from callmeter.payouts.provider import PayoutProvider, PayoutRefused, TransferRequest


def payout_key(payout_id: int, step: str) -> str:
    return f"payout:{payout_id}:{step}"


@dataclass(frozen=True)
class Earnings:
    """A host's earnings as a withdraw form shows them."""

    balance: int  # every coin in the earnings account
    pending: int  # held by payout requests awaiting review
    matured: int  # withdrawable now
    maturing: int  # earned within the hold: withdrawable later
    paid: int  # paid out so far
    hold_days: int
    minimum: int


async def _summary(
    session: AsyncSession, host_id: int, settings: Settings, now: datetime
) -> tuple[int, Earnings]:
    account = await ledger.account_for_user(session, host_id)
    cutoff = now - timedelta(days=settings.payout_hold_days)
    matured_balance = await ledger.matured_balance(session, account.id, cutoff)
    matured = max(0, min(matured_balance, account.balance) - account.held)
    totals = await repository.totals_by_status(session, host_id)
    paid = totals.get(PayoutStatus.paid, (0, 0))[1]
    return account.id, Earnings(
        balance=account.balance,
        pending=account.held,
        matured=matured,
        maturing=max(0, account.balance - account.held - matured),
        paid=paid,
        hold_days=settings.payout_hold_days,
        minimum=settings.payout_min_coins,
    )


async def earnings(
    session: AsyncSession, host: User, settings: Settings, now: datetime
) -> Earnings:
    if host.role != Role.host:
        raise Forbidden("only hosts have earnings")
    return (await _summary(session, host.id, settings, now))[1]


async def request_payout(
    session: AsyncSession, host: User, *, amount: int, request_key: str,
    provider: PayoutProvider, settings: Settings, now: datetime,
) -> Payout:  # fmt: skip
    """Hold ``amount`` of the host's matured earnings for a payout awaiting review. The
    earnings account is locked first, so two requests at once are counted one after the
    other: together they never exceed what has matured."""
    if host.role != Role.host:
        raise Forbidden("only hosts withdraw earnings")
    existing = await repository.by_request_key(session, host.id, request_key)
    if existing is not None:
        if existing.amount != amount:
            raise IdempotencyConflict("this Idempotency-Key was used for another amount")
        return existing
    if amount < settings.payout_min_coins:
        error = PayoutBelowMinimum(f"a payout is at least {settings.payout_min_coins} coins")
        error.fields["minimum"] = settings.payout_min_coins
        raise error
    account = await ledger.account_for_user(session, host.id)
    await ledger.lock_accounts(session, [account.id])
    if provider.automatic:
        user = await repository.lock_user(session, host.id)
        if user is None or not user.payouts_enabled or not user.stripe_account_id:
            raise PayoutsNotEnabled()
    pending = await repository.count_pending(session, host.id)
    if pending >= settings.payout_max_pending:
        too_many = TooManyPayouts(f"{pending} payout requests are waiting for review")
        too_many.fields["pending"] = pending
        raise too_many
    _, summary = await _summary(session, host.id, settings, now)
    if amount > summary.matured:
        exceeds = PayoutExceedsMatured(
            f"only {summary.matured} coins have matured (earned more than "
            f"{settings.payout_hold_days} days ago); {summary.maturing} are still maturing"
        )
        exceeds.fields["matured"] = summary.matured
        exceeds.fields["maturing"] = summary.maturing
        raise exceeds
    rate = settings.payout_rates[settings.payout_currency]
    hold = await ledger.place_hold(
        session, account_id=account.id, amount=amount, reason="payout", now=now
    )
    payout = Payout(
        host_id=host.id, request_key=request_key, amount=amount,
        currency=settings.payout_currency, rate=rate, amount_minor=amount * rate,
        provider=provider.name, status=PayoutStatus.requested, hold_id=hold.id,
        matured_at_request=summary.matured, coins_returned=0, created_at=now, updated_at=now,
    )  # fmt: skip
    try:
        async with session.begin_nested():
            session.add(payout)
            await session.flush()
    except IntegrityError:  # the same key, concurrently: theirs stands (ours rolls back)
        raise IdempotencyConflict("this Idempotency-Key is being used right now") from None
    return payout


async def _locked(session: AsyncSession, payout_id: int) -> Payout:
    payout = await repository.lock(session, payout_id)
    if payout is None:
        raise NotFound("no such payout")
    return payout


async def _platform(session: AsyncSession, kind: AccountKind) -> int:
    return await ledger.system_account_id(session, kind)


async def reject(
    session: AsyncSession, payout_id: int, *, admin: User, reason: str, now: datetime
) -> Payout:
    """Say no to a requested payout: its hold is released. Rejecting twice changes nothing."""
    payout = await _locked(session, payout_id)
    if payout.status == PayoutStatus.rejected:
        return payout
    if payout.status != PayoutStatus.requested:
        raise InvalidPayoutState(f"a payout that is {payout.status} cannot be rejected")
    if payout.hold_id is not None:
        await ledger.release_hold(session, hold_id=payout.hold_id, now=now)
    payout.status = PayoutStatus.rejected
    payout.reason = reason
    payout.reviewed_by, payout.reviewed_at, payout.updated_at = admin.id, now, now
    await session.flush()
    return payout


async def _approve(session: AsyncSession, payout_id: int, admin: User, now: datetime) -> Payout:
    """Capture a requested payout's hold into payout_clearing (once)."""
    payout = await _locked(session, payout_id)
    if payout.status != PayoutStatus.requested:
        return payout
    assert payout.hold_id is not None
    earnings = await ledger.account_for_user(session, payout.host_id)
    clearing = await _platform(session, AccountKind.payout_clearing)
    await ledger.post(
        session,
        [
            Movement(
                TransferKind.payout_approved,
                earnings.id,
                clearing,
                payout.amount,
                payout_key(payout.id, "approved"),
            )
        ],
        now=now,
        holds=[HoldChange(payout.hold_id, earnings.id, before=payout.amount, after=0, close=True)],
    )
    payout.status = PayoutStatus.approved
    payout.reviewed_by, payout.reviewed_at, payout.updated_at = admin.id, now, now
    await session.flush()
    return payout


async def _settle(
    session: AsyncSession, payout_id: int, *, paid: bool, reference: str | None,
    reason: str | None, now: datetime,
) -> Payout:  # fmt: skip
    """An approved payout is paid (clearing → issuance) or failed (clearing → earnings)."""
    payout = await _locked(session, payout_id)
    if payout.status != PayoutStatus.approved:
        return payout
    clearing = await _platform(session, AccountKind.payout_clearing)
    if paid:
        target = await _platform(session, AccountKind.issuance)
        kind, step = TransferKind.payout, "paid"
    else:
        target = (await ledger.account_for_user(session, payout.host_id)).id
        kind, step = TransferKind.payout_returned, "returned"
    await ledger.post(
        session,
        [Movement(kind, clearing, target, payout.amount, payout_key(payout.id, step))],
        now=now,
    )
    payout.status = PayoutStatus.paid if paid else PayoutStatus.failed
    payout.reference = reference or payout.reference
    payout.reason = reason
    payout.settled_at = payout.updated_at = now
    await session.flush()
    return payout


def _transfer_key(payout: Payout) -> str:
    seed = f"{payout.id}:{payout.host_id}:{payout.request_key}:{payout.created_at}"
    return f"callmeter-payout-{payout.id}-{hashlib.sha256(seed.encode()).hexdigest()[:24]}"


async def approve(
    session: AsyncSession, payout_id: int, *, admin: User, provider: PayoutProvider,
    now: datetime,
) -> Payout:  # fmt: skip
    """Approve a payout: its coins move to payout_clearing (committed), then an automatic
    provider pays it with no transaction open — one transfer per payout (its idempotency
    key is the payout's) — and the result is recorded. Approving again retries the
    provider for a payout still approved; concurrent approvals make one transfer."""
    current = await repository.get(session, payout_id)
    if current is not None and current.provider != provider.name:
        raise InvalidPayoutState(
            f"this payout was requested for the {current.provider} provider, which is no "
            f"longer configured"
        )
    payout = await _approve(session, payout_id, admin, now)
    await session.commit()
    if payout.status != PayoutStatus.approved or not provider.automatic:
        return payout
    host = await repository.lock_user(session, payout.host_id)
    destination = host.stripe_account_id if host is not None else None
    await session.commit()
    if destination is None:
        return await _settle(
            session, payout.id, paid=False, reference=None,
            reason="the host has no payout account", now=now,
        )  # fmt: skip
    request = TransferRequest(
        payout_id=payout.id, amount_minor=payout.amount_minor, currency=payout.currency,
        destination=destination, idempotency_key=_transfer_key(payout),
    )  # fmt: skip
    try:
        transfer_id = await provider.transfer(request)
    except PayoutRefused as refused:
        return await _settle(
            session, payout.id, paid=False, reference=None, reason=refused.reason, now=now
        )
    return await _settle(session, payout.id, paid=True, reference=transfer_id, reason=None, now=now)


def _by_hand(payout: Payout) -> None:
    """Only a manual payout is settled by an admin: a Stripe payout's transfer may exist
    even when its answer was lost, so only Stripe's answer (or webhook) settles it."""
    if payout.provider != "manual":
        raise InvalidPayoutState(
            f"a {payout.provider} payout is settled by its provider: approve it again"
        )


async def mark_paid(
    session: AsyncSession, payout_id: int, *, reference: str, now: datetime
) -> Payout:
    """A manual payout was paid outside (``reference``: the bank transfer's, PayPal's)."""
    payout = await _locked(session, payout_id)
    _by_hand(payout)
    if payout.status == PayoutStatus.paid:
        return payout
    if payout.status != PayoutStatus.approved:
        raise InvalidPayoutState(f"a payout that is {payout.status} cannot be marked paid")
    return await _settle(session, payout_id, paid=True, reference=reference, reason=None, now=now)


async def mark_failed(
    session: AsyncSession, payout_id: int, *, reason: str, now: datetime
) -> Payout:
    """A manual payout could not be paid: its coins go back to the host's earnings."""
    payout = await _locked(session, payout_id)
    _by_hand(payout)
    if payout.status == PayoutStatus.failed:
        return payout
    if payout.status != PayoutStatus.approved:
        raise InvalidPayoutState(f"a payout that is {payout.status} cannot be marked failed")
    return await _settle(session, payout_id, paid=False, reference=None, reason=reason, now=now)


async def transfer_reversed(session: AsyncSession, transfer: dict[str, Any], now: datetime) -> str:
    """``transfer.reversed``: the reversed share of a paid payout's transfer comes back to
    the host's earnings (issuance → earnings), cumulatively and once."""
    transfer_id = transfer.get("id")
    if not isinstance(transfer_id, str):
        return "ignored: no transfer id"
    payout_id = await repository.by_reference(session, transfer_id)
    if payout_id is None:
        return "ignored: not a payout of callmeter's"
    payout = await _locked(session, payout_id)
    reversed_minor = transfer.get("amount_reversed")
    if not isinstance(reversed_minor, int) or isinstance(reversed_minor, bool):
        return "ignored: no amount_reversed"
    if payout.status not in (PayoutStatus.paid, PayoutStatus.reversed):
        return f"ignored: the payout is {payout.status}"
    target = payout.amount * min(max(reversed_minor, 0), payout.amount_minor) // payout.amount_minor
    due = target - payout.coins_returned
    if due <= 0:
        return "already returned"
    issuance = await _platform(session, AccountKind.issuance)
    earnings = await ledger.account_for_user(session, payout.host_id)
    await ledger.post(
        session,
        [
            Movement(
                TransferKind.payout_reversed,
                issuance,
                earnings.id,
                due,
                payout_key(payout.id, f"reversed:{target}"),
            )
        ],
        now=now,
    )
    payout.coins_returned = target
    if target == payout.amount:
        payout.status = PayoutStatus.reversed
    payout.updated_at = now
    await session.flush()
    return f"reversed: {due} coins back to earnings"


async def account_updated(session: AsyncSession, account: dict[str, Any]) -> str:
    """``account.updated``: whether the host's Connect account can receive payouts now."""
    account_id = account.get("id")
    if not isinstance(account_id, str):
        return "ignored: no account id"
    host_id = await repository.user_by_stripe_account(session, account_id)
    if host_id is None:
        return "ignored: not a host's account"
    host = await repository.lock_user(session, host_id)
    assert host is not None
    capabilities = account.get("capabilities")
    transfers = capabilities.get("transfers") if isinstance(capabilities, dict) else None
    host.payouts_enabled = bool(account.get("payouts_enabled")) and transfers == "active"
    await session.flush()
    return f"payouts {'enabled' if host.payouts_enabled else 'disabled'}"


async def onboarding_link(
    session: AsyncSession, host: User, *, provider: PayoutProvider, return_base: str
) -> str:
    """The link where a host sets up (or finishes setting up) their payout account; the
    account is created once per host (its idempotency key is the host's)."""
    if host.role != Role.host:
        raise Forbidden("only hosts receive payouts")
    await session.commit()
    account_id = host.stripe_account_id
    if account_id is None:
        seed = hashlib.sha256(f"{host.id}:{host.username}:{host.created_at}".encode()).hexdigest()
        account_id = await provider.create_account(host.id, f"callmeter-host-{host.id}-{seed[:24]}")
        locked = await repository.lock_user(session, host.id)
        assert locked is not None
        if locked.stripe_account_id is None:
            locked.stripe_account_id = account_id
        account_id = locked.stripe_account_id
        await session.commit()
    base = return_base.rstrip("/")
    return await provider.onboarding_link(
        account_id,
        refresh_url=f"{base}/earnings?setup=refresh",
        return_url=f"{base}/earnings?setup=done",
    )


async def adjust_earnings(
    session: AsyncSession, *, host_id: int, amount: int, reason: str, admin: User,
    request_key: str, now: datetime,
) -> int:  # fmt: skip
    """An admin's deliberate change of a host's earnings, with its reason in the ledger:
    the platform (losses) pays a positive one and takes a negative one, never past the
    host's available earnings. Returns the transfer id."""
    account = await ledger.account_for_user(session, host_id)
    if account.kind != AccountKind.earnings:
        raise NotFound(f"no host with id {host_id}")
    losses = await _platform(session, AccountKind.losses)
    debit, credit = (losses, account.id) if amount > 0 else (account.id, losses)
    key = ledger.admin_key("adjust", admin.id, request_key)
    try:
        [(transfer_id, _)] = await ledger.post(
            session,
            [
                Movement(
                    TransferKind.earnings_adjustment,
                    debit,
                    credit,
                    abs(amount),
                    key,
                    note=f"{reason} (admin {admin.id})"[:500],
                )
            ],
            now=now,
        )
    except InsufficientFunds as exc:
        raise AdjustmentExceedsEarnings(
            f"the host has fewer than {-amount} coins available to take back"
        ) from exc
    return transfer_id


async def list_for_host(
    session: AsyncSession, host: User, *, limit: int, before: int | None
) -> Sequence[Payout]:
    return await repository.list_for_host(session, host.id, limit=limit, before=before)


async def list_for_review(
    session: AsyncSession, status: PayoutStatus | None, *, limit: int, before: int | None
) -> Sequence[Payout]:
    return await repository.list_by_status(session, status, limit=limit, before=before)


async def host_history(session: AsyncSession, host_id: int) -> dict[str, tuple[int, int]]:
    return await repository.totals_by_status(session, host_id)


async def get_payout(session: AsyncSession, user: User, payout_id: int) -> Payout:
    payout = await repository.get(session, payout_id)
    if payout is None or (payout.host_id != user.id and user.role != Role.admin):
        raise NotFound("no such payout")
    return payout
