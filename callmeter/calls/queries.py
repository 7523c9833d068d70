"""Reads of calls the routers show, so that no endpoint queries the repository itself
(the call lifecycle, and every change to a call, is in ``service.py``)."""

from __future__ import annotations

from datetime import datetime

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
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Call]:
    """Calls newest first: ``user_id``'s (as client or host) or everyone's (``None``), of
    one status or any; ``limit + 1`` rows may be asked for to learn whether there is a
    next page, ``before`` is the previous page's last id; ``since``/``until`` bound when the
    call was rung."""
    return await repository.list_calls(
        session, user_id=user_id, status=status, limit=limit, before=before, since=since,
        until=until,
    )  # fmt: skip


async def party_names(session: AsyncSession, calls: list[Call]) -> dict[int, str]:
    """The display names of the clients and hosts of ``calls``, by user id."""
    ids = {c.client_id for c in calls} | {c.host_id for c in calls}
    return await repository.display_names(session, ids) if ids else {}
