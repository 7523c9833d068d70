"""Purchase and payment-event queries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.kit.db import dialect_insert
from callmeter.models import DisputeStatus, PaymentEvent, Purchase, PurchaseStatus, User


async def by_request_key(session: AsyncSession, user_id: int, request_key: str) -> Purchase | None:
    return await session.scalar(
        select(Purchase).where(Purchase.user_id == user_id, Purchase.request_key == request_key)
    )


async def lock(session: AsyncSession, purchase_id: int) -> Purchase | None:
    """The purchase, row-locked (every change to a purchase starts here)."""
    return await session.scalar(
        select(Purchase)
        .where(Purchase.id == purchase_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def get(session: AsyncSession, purchase_id: int) -> Purchase | None:
    return await session.get(Purchase, purchase_id)


async def id_by_payment_intent(session: AsyncSession, payment_intent_id: str) -> int | None:
    return await session.scalar(
        select(Purchase.id).where(Purchase.payment_intent_id == payment_intent_id).limit(1)
    )


async def id_by_session(session: AsyncSession, checkout_session_id: str) -> int | None:
    return await session.scalar(
        select(Purchase.id).where(Purchase.checkout_session_id == checkout_session_id)
    )


async def pending_since(session: AsyncSession, user_id: int, since: datetime) -> int:
    count = await session.scalar(
        select(func.count()).where(
            Purchase.user_id == user_id,
            Purchase.status == PurchaseStatus.pending,
            Purchase.created_at >= since,
        )
    )
    return int(count or 0)


async def list_for_user(
    session: AsyncSession, user_id: int, *, limit: int, before: int | None
) -> Sequence[Purchase]:
    query = select(Purchase).where(Purchase.user_id == user_id)
    if before is not None:
        query = query.where(Purchase.id < before)
    return (await session.scalars(query.order_by(Purchase.id.desc()).limit(limit))).all()


async def open_disputes(session: AsyncSession, user_id: int) -> int:
    count = await session.scalar(
        select(func.count()).where(
            Purchase.user_id == user_id, Purchase.dispute == DisputeStatus.open
        )
    )
    return int(count or 0)


async def lock_user(session: AsyncSession, user_id: int) -> User | None:
    """The client's user row, locked FOR NO KEY UPDATE (which does not block the key-share
    locks that inserting rows referring to the user takes): a freeze, a purchase and a call
    being created for them (which reads it under a share lock) take turns."""
    return await session.scalar(
        select(User)
        .where(User.id == user_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )


async def record_event(
    session: AsyncSession, *, event_id: str, type_: str, object_id: str | None,
    created: datetime, now: datetime,
) -> int | None:  # fmt: skip
    """Claim a webhook event id in the inbox: its row id, or None when it was seen before
    (a concurrent duplicate waits on the unique index, then gets None)."""
    values = {
        "event_id": event_id, "type": type_, "object_id": object_id, "outcome": "received",
        "created": created, "received_at": now,
    }  # fmt: skip
    statement = (
        dialect_insert(session, PaymentEvent.__table__)
        .values(values)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(PaymentEvent.__table__.c.id)
    )
    row_id = await session.scalar(statement)
    return None if row_id is None else int(row_id)


async def note_event(
    session: AsyncSession, row_id: int, outcome: str, purchase_id: int | None
) -> None:
    await session.execute(
        update(PaymentEvent)
        .where(PaymentEvent.id == row_id)
        .values(outcome=outcome[:255], purchase_id=purchase_id)
    )


async def lost_disputes(session: AsyncSession, user_id: int) -> int:
    count = await session.scalar(
        select(func.count()).where(
            Purchase.user_id == user_id, Purchase.dispute == DisputeStatus.lost
        )
    )
    return int(count or 0)


async def client_frozen(session: AsyncSession, user_id: int) -> bool:
    frozen_at = await session.scalar(select(User.frozen_at).where(User.id == user_id))
    return frozen_at is not None
