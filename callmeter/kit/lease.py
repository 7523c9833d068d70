"""Claim due rows with a lease: the one way workers share a queue table.

A worker takes up to ``limit`` rows whose due time has come, oldest first, passing by rows
another worker has locked (``FOR UPDATE SKIP LOCKED``; SQLite's ``BEGIN IMMEDIATE``
serializes writers instead), and in the same statement pushes their due time to
``lease_until``: other workers pass them by while this one works on them, and a crashed
worker's rows come due again when the lease runs out. Used by the meter's due calls
(``calls.repository.claim_due_calls``) and the LiveKit kick outbox (``media.kicks``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute


async def claim_due(
    session: AsyncSession,
    *,
    id_column: InstrumentedAttribute[int],
    due_column: InstrumentedAttribute[Any],  # a datetime column (nullable or not)
    where: Sequence[ColumnElement[bool]] = (),
    now: datetime,
    lease_until: datetime,
    limit: int,
    returning: Sequence[InstrumentedAttribute[Any]],
) -> list[Row[Any]]:
    """Lease up to ``limit`` rows of ``due_column``'s table that match ``where`` and are due
    at ``now``; returns the ``returning`` columns of each row claimed (in no order)."""
    due = (
        select(id_column)
        .where(*where, due_column <= now)
        .order_by(due_column)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        update(due_column.class_)
        .where(id_column.in_(due.scalar_subquery()))
        .values({due_column.key: lease_until})
        .returning(*returning)
        .execution_options(synchronize_session=False)
    )
    return list(result)
