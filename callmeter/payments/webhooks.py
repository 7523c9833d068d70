"""Stripe's webhooks: verified, stored in an inbox by event id, then applied.

The body is verified with ``stripe.Webhook.construct_event`` (the provider's ``verify``):
a bad or stale signature is 400 and nothing is stored. An event's own ``created`` may be
days old — Stripe retries for days — and is only recorded. Each event id is claimed in
``payment_events`` in the transaction that applies it: a duplicate (even twenty at once)
waits for the first and then does nothing; events may arrive in any order. A database
error is a 5xx, so Stripe delivers the event again.

Handled: ``checkout.session.completed`` and ``checkout.session.async_payment_succeeded``
(fulfil when paid), ``checkout.session.async_payment_failed`` (failed),
``checkout.session.expired`` (expired), ``charge.refunded``, ``charge.dispute.created``
and ``charge.dispute.closed``; for payouts (Connect), ``account.updated`` and
``transfer.reversed``. Anything else is acknowledged and recorded as ignored.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.config import Settings
from callmeter.errors import InvalidStripeWebhook
from callmeter.kit.db import run_in_transaction
from callmeter.kit.runtime import Runtime
from callmeter.models import PurchaseStatus
from callmeter.payments import repository, service
from callmeter.payments.provider import PaymentProvider, purchase_id_in, stripe_id
from callmeter.payouts import service as payouts

CHECKOUT_EVENTS = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
)
CHARGE_EVENTS = ("charge.refunded", "charge.dispute.created", "charge.dispute.closed")
PAYOUT_EVENTS = ("account.updated", "transfer.reversed")  # Connect (docs/payouts.md)


def _created(event: dict[str, Any], now: datetime) -> datetime:
    value = event.get("created")
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**33:
        return datetime.fromtimestamp(value, UTC)
    return now


async def _purchase_of(
    runtime: Runtime, provider: PaymentProvider, kind: str, obj: dict[str, Any]
) -> int | None:
    """Which purchase an event is about. A checkout event: the purchase holding its session
    id (or, when the session's id was never stored — its creation's answer was lost — the
    purchase named in its metadata; fulfilment checks it further). A charge or dispute: the
    purchase holding its payment intent, or else the one holding the Checkout Session that
    created the intent (asked of the provider: a refund can arrive before the payment does).
    Read before the event's transaction, so no lock is held while the provider answers."""
    async with runtime.read_sessionmaker() as session:
        if kind in CHECKOUT_EVENTS:
            session_id = stripe_id(obj.get("id"))
            found = (
                None if session_id is None else await repository.id_by_session(session, session_id)
            )
            return found if found is not None else purchase_id_in(obj.get("metadata"))
        intent = stripe_id(obj.get("payment_intent"))
        if intent is None:
            return None
        found = await repository.id_by_payment_intent(session, intent)
    if found is not None:
        return found
    checkout = await provider.checkout_of_payment_intent(intent)
    if checkout is None:
        return None
    async with runtime.read_sessionmaker() as session:
        return await repository.id_by_session(session, checkout)


async def _apply(
    session: AsyncSession, kind: str, obj: dict[str, Any], purchase_id: int,
    settings: Settings, now: datetime,
) -> str:  # fmt: skip
    if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        return await service.fulfil(session, obj, purchase_id, settings=settings, now=now)
    if kind == "checkout.session.async_payment_failed":
        return await service.close_checkout(session, obj, purchase_id, PurchaseStatus.failed, now)
    if kind == "checkout.session.expired":
        return await service.close_checkout(session, obj, purchase_id, PurchaseStatus.expired, now)
    if kind == "charge.refunded":
        return await service.refund(session, obj, purchase_id, settings=settings, now=now)
    if kind == "charge.dispute.created":
        return await service.dispute_opened(session, obj, purchase_id, settings=settings, now=now)
    return await service.dispute_closed(session, obj, purchase_id, settings=settings, now=now)


async def receive(
    runtime: Runtime, provider: PaymentProvider, body: bytes, signature: str | None
) -> tuple[bool, str]:
    """Verify, record and apply one webhook delivery: (new, what it did)."""
    event = provider.verify(body, signature)
    event_id = stripe_id(event.get("id"))
    if event_id is None:
        raise InvalidStripeWebhook("the event has no Stripe id")
    now = runtime.clock.now()
    kind = event.get("type")
    kind = kind if isinstance(kind, str) and re.fullmatch(r"[a-z0-9_.]{1,64}", kind) else "unknown"
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    obj = obj if isinstance(obj, dict) else {}
    purchase_id = None
    if kind in CHECKOUT_EVENTS or kind in CHARGE_EVENTS:
        purchase_id = await _purchase_of(runtime, provider, kind, obj)
    object_id = stripe_id(obj.get("id"))

    async def work(session: AsyncSession) -> tuple[bool, str]:
        row = await repository.record_event(
            session, event_id=event_id, type_=kind,
            object_id=object_id,
            created=_created(event, now), now=now,
        )  # fmt: skip
        if row is None:
            return False, "duplicate"
        if kind == "account.updated":
            outcome = await payouts.account_updated(session, obj)
        elif kind == "transfer.reversed":
            outcome = await payouts.transfer_reversed(session, obj, now)
        elif kind not in CHECKOUT_EVENTS and kind not in CHARGE_EVENTS:
            outcome = "ignored: not an event callmeter acts on"
        elif purchase_id is None:
            outcome = "ignored: not a purchase of callmeter's"
        else:
            outcome = await _apply(session, kind, obj, purchase_id, runtime.settings, now)
        await repository.note_event(session, row, outcome, purchase_id)
        return True, outcome

    return await run_in_transaction(runtime.sessionmaker, work)
