"""Payout queries."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.models import Payout, PayoutStatus, User


async def lock(session: AsyncSession, payout_id: int) -> Payout | None:
    """The payout, row-locked (every change to a payout starts here)."""
    return await session.scalar(
        select(Payout)
        .where(Payout.id == payout_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def get(session: AsyncSession, payout_id: int) -> Payout | None:
    return await session.get(Payout, payout_id)


async def by_request_key(session: AsyncSession, host_id: int, request_key: str) -> Payout | None:
    return await session.scalar(
        select(Payout).where(Payout.host_id == host_id, Payout.request_key == request_key)
    )


async def by_reference(session: AsyncSession, reference: str) -> int | None:
    """The Stripe payout whose transfer this is (an admin's typed references never match)."""
    return await session.scalar(
        select(Payout.id).where(Payout.provider == "stripe", Payout.reference == reference)
    )


async def count_pending(session: AsyncSession, host_id: int) -> int:
    count = await session.scalar(
        select(func.count()).where(
            Payout.host_id == host_id, Payout.status == PayoutStatus.requested
        )
    )
    return int(count or 0)


async def list_for_host(
    session: AsyncSession, host_id: int, *, limit: int, before: int | None
) -> Sequence[Payout]:
    query = select(Payout).where(Payout.host_id == host_id)
    if before is not None:
        query = query.where(Payout.id < before)
    return (await session.scalars(query.order_by(Payout.id.desc()).limit(limit))).all()


async def list_by_status(
    session: AsyncSession, status: PayoutStatus | None, *, limit: int, before: int | None
) -> Sequence[Payout]:
    query = select(Payout)
    if status is not None:
        query = query.where(Payout.status == status)
    if before is not None:
        query = query.where(Payout.id < before)
    return (await session.scalars(query.order_by(Payout.id.desc()).limit(limit))).all()


async def totals_by_status(session: AsyncSession, host_id: int) -> dict[str, tuple[int, int]]:
    """(count, coins) of a host's payouts per status."""
    rows = await session.execute(
        select(Payout.status, func.count(), func.coalesce(func.sum(Payout.amount), 0))
        .where(Payout.host_id == host_id)
        .group_by(Payout.status)
    )
    return {status: (int(n), int(coins)) for status, n, coins in rows}


async def lock_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.scalar(
        select(User)
        .where(User.id == user_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )


async def user_by_stripe_account(session: AsyncSession, account_id: str) -> int | None:
    return await session.scalar(select(User.id).where(User.stripe_account_id == account_id))
