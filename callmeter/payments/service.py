"""Coins in: selling packs, fulfilling paid checkouts, and taking coins back on refunds and
lost disputes (docs/payments.md).

Every change to a purchase locks its row first, then (where a call may have to end) the
client's unfinished call, then accounts through the ledger — the ledger's lock order. Coins
move only through :func:`callmeter.ledger.service.post`, keyed by the Checkout Session:
``checkout:<session>:coins`` and ``:bonus`` when it is paid (two events — completed and
async_payment_succeeded — can fulfil one session; the keys make that once), and
``checkout:<session>:refund:<target>`` / ``:refund_shortfall:<target>`` /
``:dispute:<target>`` / ``:dispute_shortfall:<target>`` when coins are taken back, where
``<target>`` is the purchase's cumulative coins taken back once it is posted. The
arithmetic is :mod:`callmeter.billing.purchases`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callmeter.billing.purchases import reversal_target, reverse
from callmeter.calls import service as calls
from callmeter.config import CoinPack, Settings
from callmeter.errors import (
    AccountFrozen,
    DisputeOpen,
    Forbidden,
    IdempotencyConflict,
    NotFound,
    TooManyPurchases,
)
from callmeter.ledger import service as ledger
from callmeter.ledger.service import Movement, TransferKind
from callmeter.models import (
    AccountKind,
    DisputeStatus,
    EndReason,
    Purchase,
    PurchaseStatus,
    Role,
    User,
)
from callmeter.payments import repository
from callmeter.payments.provider import CheckoutRequest, PaymentProvider, stripe_id

log = logging.getLogger(__name__)

# Stripe wants a Checkout's expiry 30 minutes to 24 hours after its creation. A purchase's
# is fixed (so a retried create sends identical parameters); a purchase whose checkout
# could not be created within this window is expired instead.
CHECKOUT_LIFETIME = timedelta(hours=2)
CREATE_WINDOW = CHECKOUT_LIFETIME - timedelta(minutes=35)
MAX_SESSION_ID = 120  # ours and Stripe's are far shorter; a key must fit 200 characters


def packs(settings: Settings, currency: str | None = None) -> list[CoinPack]:
    return [p for p in settings.coin_packs if currency is None or p.currency == currency]


def pack(settings: Settings, pack_id: str) -> CoinPack:
    found = next((p for p in settings.coin_packs if p.id == pack_id), None)
    if found is None:
        raise NotFound(f"no coin pack {pack_id!r}")
    return found


def checkout_key(session_id: str, part: str) -> str:
    return f"checkout:{session_id}:{part}"


# --- buying ---------------------------------------------------------------------------


async def _claim(
    session: AsyncSession, user: User, pack_id: str, request_key: str,
    settings: Settings, provider: str, now: datetime,
) -> Purchase:  # fmt: skip
    """The purchase for this Idempotency-Key: the one made before, or a new pending one.
    The client's row is locked first: a freeze waits for us (or we see it), and two
    purchases of one client are counted one after the other."""
    client = await repository.lock_user(session, user.id)
    if client is None or client.frozen_at is not None:
        raise AccountFrozen()
    existing = await repository.by_request_key(session, user.id, request_key)
    if existing is not None:
        if existing.pack_id != pack_id:
            raise IdempotencyConflict("this Idempotency-Key was used for another pack")
        return existing
    chosen = pack(settings, pack_id)
    recent = await repository.pending_since(session, user.id, now - timedelta(hours=1))
    if recent >= settings.pending_purchases_per_hour:
        raise TooManyPurchases()
    purchase = Purchase(
        user_id=user.id, request_key=request_key, pack_id=chosen.id, coins=chosen.coins,
        bonus_coins=chosen.bonus_coins, currency=chosen.currency,
        unit_amount=chosen.unit_amount, provider=provider, status=PurchaseStatus.pending,
        refunded_amount=0, coins_reversed=0, created_at=now, updated_at=now,
    )  # fmt: skip
    try:
        async with session.begin_nested():  # its rollback also forgets the new row
            session.add(purchase)
            await session.flush()
    except IntegrityError:  # the same key, concurrently: theirs stands
        again = await repository.by_request_key(session, user.id, request_key)
        if again is None:
            raise
        if again.pack_id != pack_id:
            raise IdempotencyConflict("this Idempotency-Key was used for another pack") from None
        return again
    return purchase


def _stripe_key(purchase: Purchase) -> str:
    """Stripe's idempotency key for a purchase's checkout: the same on every retry, and not
    shared with another installation that uses the same Stripe account."""
    seed = f"{purchase.id}:{purchase.user_id}:{purchase.request_key}:{purchase.created_at}"
    return f"callmeter-purchase-{purchase.id}-{hashlib.sha256(seed.encode()).hexdigest()[:24]}"


async def start_purchase(
    session: AsyncSession,
    provider: PaymentProvider,
    *,
    user: User,
    pack_id: str,
    request_key: str,
    return_base: str,
    settings: Settings,
    now: datetime,
) -> Purchase:
    """Start (or, for a repeated Idempotency-Key, resume) a purchase, in three steps, each
    committed: the row; the provider's checkout, with no transaction open (a slow provider
    holds no lock); its id and URL on the row. A failure in between leaves a pending
    purchase without a checkout, and repeating the request creates the same checkout (the
    provider's idempotency key is the purchase's)."""
    if user.role != Role.client:
        raise Forbidden("only clients buy coins")
    await session.commit()  # the request's reads so far (who is asking) hold no lock
    purchase = await _claim(session, user, pack_id, request_key, settings, provider.name, now)
    await session.commit()
    if purchase.checkout_session_id is not None or purchase.status != PurchaseStatus.pending:
        return purchase
    if now - purchase.created_at > CREATE_WINDOW:
        expired = await _expire_unstarted(session, purchase.id, now)
        await session.commit()
        return expired
    base = return_base.rstrip("/")
    bonus = f" + {purchase.bonus_coins:,} bonus" if purchase.bonus_coins else ""
    checkout = await provider.create_checkout(
        CheckoutRequest(
            purchase_id=purchase.id,
            product_name=f"{purchase.coins:,} coins{bonus}",
            currency=purchase.currency,
            unit_amount=purchase.unit_amount,
            success_url=f"{base}/coins/return?purchase={purchase.id}&result=success",
            cancel_url=f"{base}/coins/return?purchase={purchase.id}&result=cancel",
            expires_at=int((purchase.created_at + CHECKOUT_LIFETIME).timestamp()),
            idempotency_key=_stripe_key(purchase),
            customer_reference=str(purchase.user_id),
        )
    )
    locked = await repository.lock(session, purchase.id)
    assert locked is not None
    if locked.checkout_session_id is None:
        locked.checkout_session_id = checkout.session_id
    if locked.checkout_url is None:
        locked.checkout_url = checkout.url
    locked.updated_at = now
    await session.flush()
    return locked


async def _expire_unstarted(session: AsyncSession, purchase_id: int, now: datetime) -> Purchase:
    locked = await repository.lock(session, purchase_id)
    assert locked is not None
    if locked.status == PurchaseStatus.pending and locked.checkout_session_id is None:
        locked.status = PurchaseStatus.expired
        locked.updated_at = now
        await session.flush()
    return locked


# --- fulfilment -----------------------------------------------------------------------


async def fulfil(
    session: AsyncSession, checkout: dict[str, Any], purchase_id: int, *,
    settings: Settings, now: datetime,
) -> str:  # fmt: skip
    """Credit a paid Checkout Session's coins and bonus, once, after checking its amount and
    currency against the purchase. Returns what it did (recorded in the event inbox)."""
    purchase = await repository.lock(session, purchase_id)
    if purchase is None:
        return "ignored: no such purchase"
    session_id = stripe_id(checkout.get("id"))
    if session_id is None or len(session_id) > MAX_SESSION_ID:
        return "ignored: not a checkout session id"
    if purchase.checkout_session_id is None:
        # its creation's answer was lost: the session must be this client's
        if checkout.get("client_reference_id") != str(purchase.user_id):
            return f"ignored: the session is not purchase {purchase.id}'s"
    elif purchase.checkout_session_id != session_id:
        return f"ignored: purchase {purchase.id} has another checkout session"
    # the lock order: the purchase, the client's call (a refund or dispute recorded before
    # the payment may end it), then accounts
    await calls.lock_client_call(session, purchase.user_id)
    purchase.checkout_session_id = session_id
    intent = stripe_id(checkout.get("payment_intent"))
    if intent is not None and purchase.payment_intent_id is None:
        purchase.payment_intent_id = intent
    purchase.updated_at = now
    if purchase.status in (PurchaseStatus.paid, PurchaseStatus.review):
        await session.flush()
        return f"already {purchase.status}"
    if checkout.get("payment_status") != "paid":
        await session.flush()
        return "not paid yet"
    amount, currency = checkout.get("amount_total"), checkout.get("currency")
    if amount != purchase.unit_amount or currency != purchase.currency:
        purchase.status = PurchaseStatus.review
        purchase.review_reason = (
            f"Stripe says {str(amount)[:20]} {str(currency)[:8]}, the purchase is "
            f"{purchase.unit_amount} {purchase.currency}"
        )
        await session.flush()
        log.warning("purchase %s flagged for review: %s", purchase.id, purchase.review_reason)
        return "review: amount or currency mismatch"
    # money was taken: the coins are due even if the checkout had been marked expired
    issuance = await ledger.system_account_id(session, AccountKind.issuance)
    wallet = await ledger.account_for_user(session, purchase.user_id)
    movements = [
        Movement(TransferKind.purchase, issuance, wallet.id, purchase.coins,
                 checkout_key(session_id, "coins")),
    ]  # fmt: skip
    if purchase.bonus_coins:
        movements.append(
            Movement(TransferKind.purchase_bonus, issuance, wallet.id, purchase.bonus_coins,
                     checkout_key(session_id, "bonus"))
        )  # fmt: skip
    await ledger.post(session, movements, now=now)
    purchase.status = PurchaseStatus.paid
    purchase.paid_at = now
    await session.flush()
    # a dispute or a refund that arrived before the payment did
    if purchase.dispute == DisputeStatus.open:
        await _hold_disputed(session, purchase, now=now)
    elif purchase.dispute == DisputeStatus.lost:
        await _take_back(session, purchase, purchase.total_coins, dispute=True,
                         settings=settings, now=now)  # fmt: skip
    if purchase.refunded_amount:
        await _apply_refund(session, purchase, settings=settings, now=now)
    return "fulfilled"


async def close_checkout(
    session: AsyncSession, checkout: dict[str, Any], purchase_id: int,
    status: PurchaseStatus, now: datetime,
) -> str:  # fmt: skip
    """A checkout expired (or was cancelled) or its delayed payment failed: a pending
    purchase is over, and nothing was paid."""
    purchase = await repository.lock(session, purchase_id)
    if purchase is None:
        return "ignored: no such purchase"
    if purchase.checkout_session_id != stripe_id(checkout.get("id")):
        return f"ignored: not purchase {purchase.id}'s checkout session"
    if purchase.status != PurchaseStatus.pending:
        return f"already {purchase.status}"
    purchase.status = status
    purchase.updated_at = now
    await session.flush()
    return str(status)


# --- taking coins back ----------------------------------------------------------------


async def _take_back(
    session: AsyncSession, purchase: Purchase, target: int, *, dispute: bool,
    settings: Settings, now: datetime,
) -> None:  # fmt: skip
    """Bring the coins taken back from a (locked, paid) purchase to ``target``: first from
    the purchase's dispute hold (its own coins, held), then the wallet's available coins —
    ending the client's call when only its hold still has them — and the rest, coins
    already spent, from losses.

    Locks in the ledger's order: the client's call row, then every account this may touch
    (the wallet, the call's host's earnings, the platform's), before anything moves."""
    assert purchase.checkout_session_id is not None
    due = target - purchase.coins_reversed
    if due <= 0:
        return
    call = await calls.lock_client_call(session, purchase.user_id)
    wallet = await ledger.account_for_user(session, purchase.user_id)
    platform = [
        await ledger.system_account_id(session, kind)
        for kind in (AccountKind.issuance, AccountKind.revenue, AccountKind.losses)
    ]
    issuance, _, losses = platform
    accounts = [wallet.id, *platform]
    if call is not None:
        accounts.append((await ledger.account_for_user(session, call.host_id)).id)
    locked = await ledger.lock_accounts(session, accounts)
    held, hold_id = 0, purchase.dispute_hold_id
    if hold_id is not None:
        hold = await ledger.hold_by_id(session, hold_id)
        held = hold.amount if hold is not None and hold.released_at is None else 0
    if locked[wallet.id].available + held < due and call is not None:
        reason = EndReason.account_frozen if dispute else EndReason.insufficient_funds
        await calls.end_for_payment(session, call, reason, settings=settings, now=now)
        locked = await ledger.lock_accounts(session, [wallet.id])
    from_hold = min(due, held)
    taken = reverse(due - from_hold, locked[wallet.id].available)
    sid = purchase.checkout_session_id
    kind, short_kind = (
        (TransferKind.dispute_lost, TransferKind.dispute_shortfall)
        if dispute
        else (TransferKind.purchase_refund, TransferKind.refund_shortfall)
    )
    recovered = from_hold + taken.recovered
    movements = []
    if recovered:
        movements.append(
            Movement(kind, wallet.id, issuance, recovered, checkout_key(sid, f"{kind}:{target}"))
        )
    if taken.shortfall:
        movements.append(
            Movement(short_kind, losses, issuance, taken.shortfall,
                     checkout_key(sid, f"{short_kind}:{target}"))
        )  # fmt: skip
    holds = []
    if hold_id is not None and from_hold:
        holds.append(
            ledger.HoldChange(hold_id, wallet.id, before=held, after=held - from_hold,
                              close=held == from_hold)
        )  # fmt: skip
    await ledger.post(session, movements, now=now, holds=holds)
    purchase.coins_reversed = target
    purchase.updated_at = now
    await session.flush()


async def _apply_refund(
    session: AsyncSession, purchase: Purchase, *, settings: Settings, now: datetime
) -> None:
    if purchase.dispute == DisputeStatus.lost:
        return  # the dispute already took everything back
    target = reversal_target(purchase.total_coins, purchase.unit_amount, purchase.refunded_amount)
    await _take_back(session, purchase, target, dispute=False, settings=settings, now=now)


def _same_payment(purchase: Purchase, obj: dict[str, Any]) -> str | None:
    """Why a charge or dispute is not this purchase's payment (None when it is)."""
    if obj.get("currency") != purchase.currency:
        return "ignored: not the purchase's currency"
    intent = stripe_id(obj.get("payment_intent"))
    if intent is None:
        return "ignored: no payment intent"
    if purchase.payment_intent_id is None:
        purchase.payment_intent_id = intent  # found through its Checkout Session
    elif purchase.payment_intent_id != intent:
        return f"ignored: not purchase {purchase.id}'s payment"
    return None


async def refund(
    session: AsyncSession, charge: dict[str, Any], purchase_id: int, *,
    settings: Settings, now: datetime,
) -> str:  # fmt: skip
    """``charge.refunded``: the charge's cumulative ``amount_refunded`` sets how many of the
    purchase's coins must have been taken back; only the difference moves."""
    purchase = await repository.lock(session, purchase_id)
    if purchase is None:
        return "ignored: no such purchase"
    refunded = charge.get("amount_refunded")
    if not isinstance(refunded, int) or isinstance(refunded, bool) or refunded < 0:
        return "ignored: no amount_refunded"
    if (other := _same_payment(purchase, charge)) is not None:
        return other
    purchase.refunded_amount = max(purchase.refunded_amount, min(refunded, purchase.unit_amount))
    purchase.updated_at = now
    await session.flush()
    if purchase.status != PurchaseStatus.paid:
        return "recorded: applied when the payment arrives"
    before = purchase.coins_reversed
    await _apply_refund(session, purchase, settings=settings, now=now)
    return f"refunded: {purchase.coins_reversed - before} coins taken back"


async def _freeze(
    session: AsyncSession, purchase: Purchase, reason: str, *, settings: Settings,
    now: datetime,
) -> None:  # fmt: skip
    """Freeze the purchase's client and end their call. Locks the call row, then the user
    row (the order in which a call's own paths reach the user); a call created just before
    the user row was ours is found again and ended too."""
    call = await calls.lock_client_call(session, purchase.user_id)
    user = await repository.lock_user(session, purchase.user_id)
    assert user is not None
    if user.frozen_at is None:
        user.frozen_at = now
    user.frozen_reason = reason
    await session.flush()
    if call is None:
        call = await calls.lock_client_call(session, purchase.user_id)
    if call is not None:
        await calls.end_for_payment(
            session, call, EndReason.account_frozen, settings=settings, now=now
        )


async def _hold_disputed(session: AsyncSession, purchase: Purchase, *, now: datetime) -> None:
    """Hold what is left of a disputed purchase's coins in the wallet (the frozen client's
    call was ended first, so its hold is back in the available coins)."""
    if purchase.dispute_hold_id is not None or purchase.status != PurchaseStatus.paid:
        return
    wallet = await ledger.account_for_user(session, purchase.user_id)
    locked = await ledger.lock_accounts(session, [wallet.id])
    amount = min(purchase.total_coins - purchase.coins_reversed, locked[wallet.id].available)
    if amount > 0:
        hold = await ledger.place_hold(
            session, account_id=wallet.id, amount=amount, reason="dispute", now=now
        )
        purchase.dispute_hold_id = hold.id
    await session.flush()


async def _open_dispute(
    session: AsyncSession, purchase: Purchase, dispute: dict[str, Any], *,
    settings: Settings, now: datetime,
) -> None:  # fmt: skip
    purchase.dispute = DisputeStatus.open
    purchase.dispute_id = stripe_id(dispute.get("id"))
    purchase.updated_at = now
    await _freeze(
        session, purchase, f"payment dispute on purchase {purchase.id}", settings=settings,
        now=now,
    )  # fmt: skip
    await _hold_disputed(session, purchase, now=now)


async def dispute_opened(
    session: AsyncSession, dispute: dict[str, Any], purchase_id: int, *,
    settings: Settings, now: datetime,
) -> str:  # fmt: skip
    """``charge.dispute.created``: freeze the client (no calls, no purchases; a call in
    progress ends) and hold the purchase's coins that are still in the wallet."""
    purchase = await repository.lock(session, purchase_id)
    if purchase is None:
        return "ignored: no such purchase"
    if (other := _same_payment(purchase, dispute)) is not None:
        return other
    if purchase.dispute is not None:
        return f"already {purchase.dispute}"
    await _open_dispute(session, purchase, dispute, settings=settings, now=now)
    return "dispute opened: client frozen"


async def dispute_closed(
    session: AsyncSession, dispute: dict[str, Any], purchase_id: int, *,
    settings: Settings, now: datetime,
) -> str:  # fmt: skip
    """``charge.dispute.closed``: lost — the purchase's coins are taken back (the hold's
    first, then the wallet's; what was spent from losses) and the client stays frozen
    until an admin unfreezes them; any other ending (won, an inquiry's warning_closed,
    prevented) — the hold is released and the client unfrozen when no other dispute of
    theirs is open or lost. A close that arrives before its open does the opening first."""
    purchase = await repository.lock(session, purchase_id)
    if purchase is None:
        return "ignored: no such purchase"
    if (other := _same_payment(purchase, dispute)) is not None:
        return other
    if purchase.dispute in (DisputeStatus.won, DisputeStatus.lost):
        return f"already {purchase.dispute}"
    if purchase.dispute is None:
        await _open_dispute(session, purchase, dispute, settings=settings, now=now)
    purchase.updated_at = now
    if dispute.get("status") != "lost":
        purchase.dispute = DisputeStatus.won
        if purchase.dispute_hold_id is not None:
            await ledger.release_hold(session, hold_id=purchase.dispute_hold_id, now=now)
        await session.flush()
        user = await repository.lock_user(session, purchase.user_id)
        if (
            user is not None
            and not await repository.open_disputes(session, user.id)
            and not await repository.lost_disputes(session, user.id)
        ):
            user.frozen_at = None
            user.frozen_reason = None
        return f"dispute {str(dispute.get('status'))[:32]}: coins released"
    purchase.dispute = DisputeStatus.lost
    await session.flush()
    if purchase.status == PurchaseStatus.paid:
        await _take_back(session, purchase, purchase.total_coins, dispute=True,
                         settings=settings, now=now)  # fmt: skip
    user = await repository.lock_user(session, purchase.user_id)
    if user is not None:
        user.frozen_reason = f"payment dispute lost on purchase {purchase.id}"
    return "dispute lost: coins taken back"


async def unfreeze(session: AsyncSession, user_id: int) -> User:
    """An admin lifts a client's freeze (refused while a dispute is still open)."""
    user = await repository.lock_user(session, user_id)
    if user is None or user.role != Role.client:
        raise NotFound(f"no client with id {user_id}")
    if await repository.open_disputes(session, user_id):
        raise DisputeOpen()
    user.frozen_at = None
    user.frozen_reason = None
    await session.flush()
    return user


async def list_purchases(
    session: AsyncSession, user: User, *, limit: int, before: int | None
) -> Sequence[Purchase]:
    return await repository.list_for_user(session, user.id, limit=limit, before=before)


async def get_purchase(session: AsyncSession, user: User, purchase_id: int) -> Purchase:
    purchase = await repository.get(session, purchase_id)
    if purchase is None or (purchase.user_id != user.id and user.role != Role.admin):
        raise NotFound("no such purchase")
    return purchase


async def purchase_of_checkout(
    sessionmaker: async_sessionmaker[AsyncSession], session_id: str
) -> Purchase:
    """The purchase a checkout session belongs to (404 when none does)."""
    async with sessionmaker() as session:
        purchase_id = await repository.id_by_session(session, session_id)
        purchase = None if purchase_id is None else await repository.get(session, purchase_id)
    if purchase is None:
        raise NotFound("no such checkout")
    return purchase
