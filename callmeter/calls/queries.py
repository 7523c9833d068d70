"""Reads of calls the routers show, so that no endpoint queries the repository itself
(the call lifecycle, and every change to a call, is in ``service.py``)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.calls import repository
from callmeter.models import Call, CallStatus


async def list_calls(
    session: AsyncSession,
    *,
    user_id: int | None,
    status: CallStatus | None,
    limit: int,
    before: int | None,
) -> list[Call]:
    """Calls newest first: ``user_id``'s (as client or host) or everyone's (``None``), of
    one status or any; ``limit + 1`` rows may be asked for to learn whether there is a
    next page, ``before`` is the previous page's last id."""
    return await repository.list_calls(
        session, user_id=user_id, status=status, limit=limit, before=before
    )
