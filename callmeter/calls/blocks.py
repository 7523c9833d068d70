"""A host blocks a client: the block itself (hosts) and the end of a call of theirs that is
still ringing (calls), in one transaction. Lives with calls because it ends a call; hosts
never import calls."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.calls import service
from callmeter.hosts import service as hosts
from callmeter.models import HostBlock, User


async def block(session: AsyncSession, host: User, *, client_id: int, now: datetime) -> HostBlock:
    """Refuse every call from ``client_id``; a ringing call from them ends ``declined``.
    Idempotent: blocking a blocked client returns the existing block."""
    blocked = await hosts.block(session, host, client_id=client_id, now=now)
    await service.decline_ringing(session, host=host, client_id=client_id, now=now)
    return blocked
